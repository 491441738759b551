"""Release readiness: the project scores itself on the ML Test Score (Breck et al., 2017).

``python -m {{ cookiecutter.package_name }}.runtime.readiness`` writes ``reports/readiness.md`` and
``reports/readiness.json`` and prints the final score.

The rubric (E. Breck, S. Cai, E. Nielsen, M. Salib, D. Sculley, "The ML Test Score: A Rubric
for ML Production Readiness and Technical Debt Reduction", IEEE Big Data 2017) has 28 tests
in four sections. A test earns 1 point when a system runs it automatically and it holds,
0.5 when it was done by hand with documented results, 0 otherwise; a section scores the sum
of its tests and the final score is the minimum of the four sections (above 5 the paper
calls exceptional).

Why this module only *reads*: points must come from checks that really ran and measured
something, in this pipeline run (the JSON records every step writes under ``reports/``, the
model registry) or in a test run of the code as it is now (pytest's JUnit XML under
``reports/tests/``). Nothing is awarded by declaration: an absent record scores ``missing``, a
record that shows the check failed scores ``failing``, and the reason names the file or the
value, and for a missing check what would automate it.

- Test results count only for the code they tested: ``tests/conftest.py`` stamps each JUnit
  file with the :func:`source_fingerprint` of ``src/``, ``tests/`` and ``notebooks/`` (and
  the git commit), and a file whose fingerprint differs from the current one, or that has
  none, is refused (any change since the tests ran, committed or not, asks for a rerun).
- Pipeline reports count only for the parameters, code and inputs that produced them: DVC
  (:func:`read_pipeline_state`: what ``dvc status`` compares, with or without git) says which stage
  wrote a report under ``reports/`` and whether that stage, or any stage before it, changed
  since ``dvc repro`` ran it (a parameter, the notebook, ``src/``, an input, its command, or an
  output edited since). A stale report is no evidence: the tests that read it score
  ``missing`` with the stage and what changed, until ``dvc repro`` runs again.
- The serving checks count for the model in service: the artifact ``serve`` and ``predict``
  load (:func:`.scoring.default_model_path`: the registry's champion, or step 08's release),
  not step 07's ``models/model.skops`` when step 08 released another artifact.
- Production is production: batches step 09 simulated from ``monitoring.simulation_source``
  (slices of static held-out data with injected drift) show that the monitor fires, and a
  simulated breach nobody was alerted to fails; but they are not online data, so the tests
  about production inputs, online quality and staleness score ``missing`` on them.
- Model age is measured from when the registry installed the champion, not read from the
  ``monitoring.model_age_days`` parameter.

Tests a template cannot automate for its users (a code review, privacy controls, a notifier
of dependency changes) are items of ``readiness_checklist.yaml`` that the team fills in; they
count 0.5 only when ``done`` is true, ``evidence`` is not empty and ``reviewer`` names the person
who checked it. A checklist entry can also stand in for an automated check whose evidence is
missing (or stale), but never for one that failed.

Monitoring tests hold when the invariant held in every production batch, or when each
batch that broke it raised an alert in step 09 (``reasons``): a monitor that fires is
doing its job, a breach nobody was told about is a failure.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ..project import file_md5, find_project_root, read_json, write_json, write_text

AUTOMATED, MANUAL, FAILING, MISSING = "automated", "manual", "failing", "missing"
POINTS = {AUTOMATED: 1.0, MANUAL: 0.5, FAILING: 0.0, MISSING: 0.0}
SECTIONS = ("data", "model", "infrastructure", "monitoring")
SECTION_PREFIX = {"data": "data", "model": "model", "infrastructure": "infra", "monitoring": "monitor"}
EXCEPTIONAL = 5.0

CHECKLIST = "readiness_checklist.yaml"
# A manual test counts when a person reviewed it: a reviewer that names nobody does not.
NO_REVIEWER = {"", "-", "?", "n/a", "na", "none", "nobody", "tbd", "todo", "unknown", "me"}
JUNIT_DIR = "reports/tests"
JUNIT = f"{JUNIT_DIR}/*.xml"
OUTPUT_MD = "reports/readiness.md"
OUTPUT_JSON = "reports/readiness.json"
# Pipeline reports: what the DVC stages write under reports/ (not the test results, not this score).
REPORTS_DIR = "reports"
NOT_PIPELINE_REPORTS = (JUNIT_DIR, OUTPUT_MD, OUTPUT_JSON)
DVC_YAML = "dvc.yaml"
# At most this many changes are named per stage in a reason.
CHANGES_SHOWN = 3
# What a test run tested: the JUnit files carry the fingerprint of these folders, written by tests/conftest.py.
SOURCE_DIRS = ("src", "tests", "notebooks")
NOT_SOURCE_DIRS = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")
FINGERPRINT_PROPERTY = "source_fingerprint"
COMMIT_PROPERTY = "git_commit"

PARAMS = "params.yaml"
CRITERIA = "reports/02_success_criteria/success_criteria.json"
SPEC = "reports/03_data_selection/dataset_spec.json"
BIAS_PLAN = "reports/04_data_bias_plan/bias_plan.json"
PIPELINE = "reports/05_data_pipeline/data_pipeline.json"
MODELING = "reports/06_modeling/modeling.json"
DEPLOYMENT = "reports/07_deployment/deployment.json"
LATENCY = "reports/metrics/latency.json"
MODEL_CARD = "reports/07_deployment/model_card.md"
TEST_SCORES = "reports/07_deployment/test_scores.parquet"
RELEASE = "reports/08_fairness_assessment/release_decision.json"
GROUP_METRICS = "reports/08_fairness_assessment/group_metrics_{feature}.csv"
MONITORING = "reports/09_monitoring/monitoring_status.json"
# Per-batch scores are not written by step 09 yet; when they are, monitor 5 checks them too.
BATCH_SCORES = "reports/09_monitoring/scores"
RETRAINING = "reports/10_retraining/retraining_decision.json"
REGISTRY = "models/registry/registry.json"
CHAMPION = "models/registry/champion.skops"

# Offline test ROC AUC may differ from the median over labelled production batches by this much.
OFFLINE_ONLINE_TOLERANCE = 0.05

# pytest modules and tests whose results answer a rubric test (module -> test names, None = all).
FEATURE_CODE_TESTS = {m: None for m in ("test_data", "test_profiling", "test_schema", "test_features", "test_scoring")}
DETERMINISM_TESTS = {
    "test_artifacts": ("test_two_fits_of_the_same_model_save_to_the_same_bytes",),
    "test_features": ("test_split_is_deterministic_with_a_seed",),
    "test_bias": ("test_resample_indices_is_deterministic_with_a_seed",),
    "test_mitigation": ("test_decisions_are_deterministic",),
}
FULL_RETRAIN_TEST = ("test_notebooks", "test_training_is_reproducible")
MODEL_SPEC_TESTS = {"test_modeling": None, "test_mitigation": None, "test_artifacts": None}
INTEGRATION_TESTS = {"test_notebooks": ("test_lifecycle_on_a_small_sample",)}
ROLLBACK_TESTS = {"test_registry": ("test_rollback_restores_the_previous_champion",)}
# How step 09 names the origin of a batch it received from data.production_dir (simulated ones name their injection).
PRODUCTION_ORIGIN = "as received"


class MissingEvidence(Exception):
    """An evidence file or field is absent: the test scores ``missing`` and the message says what."""


class StaleEvidence(MissingEvidence):
    """A pipeline report its stage would no longer write (parameters, code or inputs changed): no evidence."""


@dataclass(frozen=True)
class Outcome:
    """What a check found: its status and one line saying why."""

    status: str
    reason: str


@dataclass(frozen=True)
class RubricItem:
    """One of the 28 tests: where it sits in the paper, and the check that answers it here."""

    section: str
    number: int
    title: str
    evidence: tuple[str, ...]
    check: Callable[[Evidence], Outcome]

    @property
    def id(self) -> str:
        """The paper's short name: data_1 .. data_7, model_1, infra_1, monitor_1 and so on."""
        return f"{SECTION_PREFIX[self.section]}_{self.number}"


@dataclass(frozen=True)
class Result:
    """A scored test, as written to the report."""

    section: str
    id: str
    number: int
    test: str
    status: str
    points: float
    evidence: str
    reason: str


# ---------------------------------------------------------------------------- evidence


def source_fingerprint(root: Path) -> str:
    """SHA-256 over the path and bytes of every file in src/, tests/ and notebooks/ (caches and build metadata left out).

    A test result is evidence only for the code it ran on: any change to these files, committed or not, changes this.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            ignored = any(p in NOT_SOURCE_DIRS or p.endswith(".egg-info") for p in relative.parts)
            if ignored or not path.is_file() or path.suffix in (".pyc", ".pyo"):
                continue
            digest.update(relative.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def test_run_properties(root: Path) -> dict[str, str]:
    """What tests/conftest.py records in the JUnit XML: the source fingerprint and, in a git work tree, the commit."""
    properties = {FINGERPRINT_PROPERTY: source_fingerprint(root)}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit:
        properties[COMMIT_PROPERTY] = commit
    return properties


def read_junit_file(path: Path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The test-suite properties and (module, test name without parameters, outcome) of every testcase of a JUnit file."""
    tree = ET.parse(path).getroot()
    properties = {
        prop.get("name") or "": prop.get("value") or ""
        for suite in tree.iter("testsuite")
        for props in suite.findall("properties")
        for prop in props.findall("property")
    }
    cases = []
    for case in tree.iter("testcase"):
        parts = (case.get("classname") or "").split(".")
        module = next((p for p in reversed(parts) if p.startswith("test_")), parts[-1])
        name = (case.get("name") or "").split("[")[0]
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        cases.append((module, name, outcome))
    return properties, cases


class Evidence:
    """Reads the project's records once each; absent files raise :class:`MissingEvidence`, pipeline reports
    their stage would no longer write (:meth:`report`) :class:`StaleEvidence`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._json: dict[str, Any] = {}

    def path(self, relative: str) -> Path:
        return self.root / relative

    @cached_property
    def pipeline(self) -> PipelineState:
        return read_pipeline_state(self.root)

    @cached_property
    def served(self) -> tuple[str, str]:
        """(path, md5) of the artifact in service (:func:`served_artifact`)."""
        return served_artifact(self.root)

    def report(self, relative: str) -> Path:
        """The path of a piece of evidence; a pipeline report must be current (its stage unchanged since it ran)."""
        if is_pipeline_report(relative):
            reason = self.pipeline.stale_reason(relative)
            if reason:
                raise StaleEvidence(reason)
        return self.path(relative)

    def json(self, relative: str) -> Any:
        if relative not in self._json:
            if not self.path(relative).is_file():
                raise MissingEvidence(f"{relative} not found ({where_from(relative)})")
            self._json[relative] = read_json(self.path(relative))
        self.report(relative)
        return self._json[relative]

    def note_json(self, relative: str) -> dict[str, Any]:
        """A record read only for a note that decides no verdict: empty when absent or stale."""
        try:
            record = self.json(relative)
        except MissingEvidence:
            return {}
        return record if isinstance(record, dict) else {}

    def yaml(self, relative: str) -> Any:
        if not self.path(relative).is_file():
            raise MissingEvidence(f"{relative} not found")
        return yaml.safe_load(self.path(relative).read_text(encoding="utf-8")) or {}

    @cached_property
    def junit_files(self) -> list[Path]:
        folder = self.path(JUNIT_DIR)
        return sorted(folder.glob("*.xml")) if folder.is_dir() else []

    @cached_property
    def source_fingerprint(self) -> str:
        return source_fingerprint(self.root)

    @cached_property
    def junit_runs(self) -> tuple[dict[Path, list[tuple[str, str, str]]], dict[Path, str]]:
        """JUnit files of a test run of the current code (their cases), and the refused ones with the reason."""
        accepted: dict[Path, list[tuple[str, str, str]]] = {}
        refused: dict[Path, str] = {}
        for path in self.junit_files:
            name = path.relative_to(self.root).as_posix()
            try:
                properties, cases = read_junit_file(path)
            except ET.ParseError as exc:
                refused[path] = f"{name} is not valid JUnit XML ({exc})"
                continue
            tested = properties.get(FINGERPRINT_PROPERTY)
            if not tested:
                refused[path] = f"{name} does not say which source it tested (no {FINGERPRINT_PROPERTY} property)"
            elif tested != self.source_fingerprint:
                commit = properties.get(COMMIT_PROPERTY, "")
                refused[path] = (
                    f"{name} tested other code (source {tested[:12]}{f', commit {commit[:10]}' if commit else ''}; "
                    f"src/, tests/ or notebooks/ changed since, now {self.source_fingerprint[:12]})"
                )
            else:
                accepted[path] = cases
        return accepted, refused

    @cached_property
    def test_outcomes(self) -> dict[tuple[str, str], list[str]]:
        """Outcomes of every test in the accepted JUnit files, keyed by (module, test name)."""
        outcomes: dict[tuple[str, str], list[str]] = {}
        for cases in self.junit_runs[0].values():
            for module, name, outcome in cases:
                outcomes.setdefault((module, name), []).append(outcome)
        return outcomes

    @cached_property
    def checklist(self) -> dict[str, Any]:
        try:
            entries = self.yaml(CHECKLIST)
        except (MissingEvidence, yaml.YAMLError):  # an unreadable checklist earns nothing, like an empty one
            return {}
        return entries if isinstance(entries, dict) else {}


def where_from(relative: str) -> str:
    """Which command writes a piece of evidence: the reason for a missing file says what to run."""
    if relative.startswith("reports/tests") or relative == JUNIT:
        return "run the tests with --junitxml, e.g. `make test`"
    parts = relative.split("/")
    if parts[0] == "reports" and len(parts) > 1 and parts[1][:2].isdigit():
        return f"run `dvc repro` (step {parts[1]})"
    return "run `dvc repro`"


# ---------------------------------------------------------------------------- is a report current?


@dataclass(frozen=True)
class PipelineState:
    """What DVC knows of the stages: what each writes, which stages it rests on, what changed since it ran.

    ``outs`` maps each stage (in ``dvc.yaml`` order) to the paths it writes, ``upstream`` to every stage
    it depends on (transitively), ``changes`` to what differs from ``dvc.lock`` (empty: up to date).
    ``error`` says why DVC could not be asked; then no report can be shown current.
    """

    outs: dict[str, tuple[str, ...]]
    upstream: dict[str, frozenset[str]]
    changes: dict[str, tuple[str, ...]]
    error: str | None = None

    def writer(self, relative: str) -> str | None:
        """The stage whose output holds ``relative`` (a path under ``reports/``), or None."""
        for stage, outs in self.outs.items():
            if any(relative == out or relative.startswith(f"{out.rstrip('/')}/") for out in outs):
                return stage
        return None

    def stale_reason(self, relative: str) -> str | None:
        """Why the report ``relative`` is not what its stage would write now (None when it is current).

        Current means its stage and every stage before it are as ``dvc.lock`` recorded them: the same
        parameters, notebook, code, inputs and command, and outputs not edited since.
        """
        if self.error:
            return f"cannot tell which parameters and code produced {relative} ({self.error})"
        stage = self.writer(relative)
        if stage is None:
            return f"no stage of {DVC_YAML} writes {relative}: nothing records the parameters and code that produced it"
        changed = [s for s in self.outs if (s == stage or s in self.upstream.get(stage, ())) and self.changes.get(s)]
        if not changed:
            return None
        by_change: dict[tuple[str, ...], list[str]] = {}  # stages that changed alike (e.g. src/) are named once
        for s in changed:
            by_change.setdefault(self.changes[s], []).append(s)
        what = "; ".join(
            f"stage{'s' if len(stages) > 1 else ''} {named(stages)} changed: {named(changes)}"
            for changes, stages in by_change.items()
        )
        after = "" if changed == [stage] else f"; {stage} wrote it"
        return f"{relative} was produced with other parameters/code ({what}{after}): rerun `dvc repro`"


def named(items: Iterable[str]) -> str:
    """The first few of a list (changes, stages), and how many more."""
    items = list(items)
    more = len(items) - CHANGES_SHOWN
    return ", ".join(items[:CHANGES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def changed_keys(recorded: Any, current: Any, prefix: str) -> list[str]:
    """Dotted names of the parameters whose value differs (recorded in dvc.lock vs params.yaml now)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        keys = list(dict.fromkeys([*recorded, *current]))
        return [k for key in keys for k in changed_keys(recorded.get(key), current.get(key), f"{prefix}.{key}")]
    return [] if recorded == current else [prefix]


def params_changed(dep: Any, status: dict[str, Any]) -> list[str]:
    """The parameters of a params dependency whose value changed, by dotted key (``success_criteria.min_primary_metric``)."""
    changed = status.get(str(dep))
    recorded = dep.hash_info.value if dep.hash_info else None
    if not isinstance(changed, dict) or not isinstance(recorded, dict):
        return [f"{path} {what}" for path, what in status.items()]
    current = dep.read_params()
    return [
        f"{key} ({what})" if what != "modified" else key
        for name, what in changed.items()
        for key in changed_keys(recorded.get(name), current.get(name), name) or [name]
    ]


def stage_changes(stage: Any) -> list[str]:
    """What differs in one DVC stage from its ``dvc.lock`` entry, as ``dvc status`` compares it.

    Parameters are named down to the changed key. Outputs count when edited or deleted since the stage
    wrote them, except persistent ones (the model registry, which ``approve`` and ``rollback`` change
    on purpose) and an absent cache copy (the workspace is what is read).
    """
    from dvc.dependency.param import ParamsDependency

    changes = ["its command"] if stage.cmd_changed else []
    for dep in stage.deps:
        status = dep.workspace_status()
        if not status:
            continue
        if isinstance(dep, ParamsDependency):
            changes += [f"parameter {key}" for key in params_changed(dep, status)]
        else:
            changes += [f"{path} {what}" for path, what in status.items()]
    for out in stage.outs:
        if not out.persist:
            changes += [f"output {path} {what} since it ran" for path, what in out.workspace_status().items()]
    return changes


def read_pipeline_state(root: Path) -> PipelineState:
    """Ask DVC which stage writes what and which stages changed since ``dvc repro`` ran them.

    The same comparison as ``dvc status`` (file hashes cached by DVC, a second or two), through DVC's
    Python API with ``core.no_scm`` so that it works in a copy without git too.
    """
    root = Path(root)
    if not (root / ".dvc").is_dir() or not (root / DVC_YAML).is_file():
        return PipelineState({}, {}, {}, error=f"not a DVC project: no .dvc/ or no {DVC_YAML} in {root}")
    try:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ImportError as exc:
        return PipelineState({}, {}, {}, error=f"DVC is not installed ({exc})")
    try:
        with Repo(str(root), config={"core": {"no_scm": True}}) as repo:
            stages = [s for s in repo.index.stages if getattr(s, "cmd", None)]
            graph = repo.index.graph
            outs = {
                s.addressing: tuple(Path(os.path.relpath(o.fs_path, root)).as_posix() for o in s.outs) for s in stages
            }
            upstream = {s.addressing: frozenset(d.addressing for d in reachable(graph, s)) for s in stages}
            changes = {s.addressing: tuple(stage_changes(s)) for s in stages}
    except (DvcException, OSError, ValueError) as exc:
        return PipelineState({}, {}, {}, error=f"DVC could not compare the stages with dvc.lock: {exc}")
    return PipelineState(outs, upstream, changes)


def reachable(graph: Any, node: Any) -> set[Any]:
    """Every node reachable from ``node`` in DVC's stage graph (its edges point from a stage to what it depends on)."""
    seen, todo = set(), [node]
    while todo:
        for nxt in graph.successors(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def is_pipeline_report(relative: str) -> bool:
    """Whether a piece of evidence is a report a DVC stage writes (under reports/, not test results or this score)."""
    return relative.startswith(f"{REPORTS_DIR}/") and not any(
        relative == skip or relative.startswith(f"{skip}/") for skip in NOT_PIPELINE_REPORTS
    )


# ---------------------------------------------------------------------------- small helpers


def fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def failed_gates(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Gate rows as written by the steps (gate, metric, rule, value, passed) that did not pass."""
    return [
        f"{r['gate']}: {r['metric']} = {fmt(r.get('value'))}, required {r['rule']}" for r in rows if not r["passed"]
    ]


def gate_named(criteria: dict[str, Any], name: str) -> dict[str, Any]:
    found = [g for g in criteria["gates"] if g["name"] == name]
    if not found:
        raise MissingEvidence(f"{CRITERIA} has no gate {name!r}")
    return found[0]


def model_inputs(spec: dict[str, Any]) -> list[str]:
    return list(spec["numeric_features"]) + list(spec["categorical_features"])


def alerted_batches(status: dict[str, Any]) -> dict[str, list[str]]:
    """Step 09's alert reasons ("batch: gate ...") grouped by batch name."""
    alerts: dict[str, list[str]] = {}
    for reason in status["reasons"]:
        batch, _, what = str(reason).partition(": ")
        alerts.setdefault(batch, []).append(what)
    return alerts


def production_batches(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The batches step 09 received from production (the prediction log's windows, ``data.production_dir``).

    Simulated batches (slices of ``monitoring.simulation_source`` with drift injected) test the monitor; they
    are not online data. A status-level ``simulated`` flag, or a batch ``origin``, wins over the wording of
    ``injected`` (``as received`` for a production file).
    """
    if isinstance(status.get("simulated"), bool):
        return [] if status["simulated"] else list(status["batches"])
    return [
        b
        for b in status["batches"]
        if b.get("origin", "production" if b.get("injected") == PRODUCTION_ORIGIN else "simulated") == "production"
    ]


NO_PRODUCTION = (
    "simulated by step 09 from monitoring.simulation_source (static held-out data), not production; "
    "automated once labelled production batches arrive (outcomes attached to the prediction log with `label`, "
    "or files in data.production_dir)"
)


def measured_latency(ev: Evidence) -> tuple[str | None, str]:
    """(why the latency budget is broken or None, what was measured): step 07's gate and its measured p99.

    Step 07 keeps the run-to-run figures out of deployment.json (in reports/metrics/latency.json); the p99 is
    compared here with the step-02 budget as well as read from the gate's verdict.
    """
    rows = [g for g in ev.json(DEPLOYMENT)["gates"] if g["gate"] == "latency"]
    if not rows:
        raise MissingEvidence(f"{DEPLOYMENT} has no latency gate")
    p99 = rows[0].get("value")
    if not is_finite_number(p99):
        p99 = ev.json(LATENCY).get("p99_latency_ms")
    if not is_finite_number(p99):
        raise MissingEvidence(f"no measured p99 latency in {DEPLOYMENT} or {LATENCY}")
    budget = gate_named(ev.json(CRITERIA), "latency")["threshold"]
    measured = f"p99 {fmt(float(p99))} ms (<= {fmt(budget)})"
    if failed_gates(rows):
        return failed_gates(rows)[0], measured
    if p99 > budget:
        return f"measured p99 latency {fmt(float(p99))} ms > {fmt(budget)} ms", measured
    return None, measured


def requirement_of_tests(ev: Evidence, required: dict[str, tuple[str, ...] | None]) -> Outcome:
    """AUTOMATED when every required test ran in the JUnit files and passed; otherwise names the first gap.

    ``required`` maps a test module to the test names it must have run (None: all its tests, at least one).
    """
    if not ev.junit_files:
        return Outcome(MISSING, f"no pytest JUnit XML in {JUNIT_DIR}/ ({where_from(JUNIT)})")
    accepted, refused = ev.junit_runs
    rerun = f"; {next(iter(refused.values()))}: rerun the tests ({where_from(JUNIT)})" if refused else ""
    if not accepted:
        return Outcome(MISSING, f"no test results of the current code{rerun}")
    outcomes = ev.test_outcomes
    passed = 0
    for module, names in required.items():
        absent = [n for n in names if (module, n) not in outcomes] if names else []
        if absent:
            return Outcome(MISSING, f"tests/{module}.py::{absent[0]} did not run in this test run{rerun}")
        keys = [k for k in outcomes if k[0] == module and (names is None or k[1] in names)]
        failed = [k for k in keys if "failed" in outcomes[k]]
        if failed:
            return Outcome(FAILING, f"tests/{module}.py::{failed[0][1]} failed")
        ran = [k for k in keys if "passed" in outcomes[k]]
        # a named test must have run; of a whole module, skipped tests (e.g. environment-dependent) are tolerated
        skipped = [k[1] for k in keys if k not in ran]
        if names and skipped:
            return Outcome(MISSING, f"tests/{module}.py::{skipped[0]} was skipped")
        if not ran:
            return Outcome(
                MISSING, f"tests/{module}.py did not run in this test run (no such tests, or all skipped){rerun}"
            )
        passed += len(ran)
    return Outcome(
        AUTOMATED,
        f"{passed} tests passed in {', '.join(f'tests/{m}.py' for m in required)} "
        f"(source {ev.source_fingerprint[:12]}, as now)",
    )


def checklist_gap(entry: Any) -> str | None:
    """What a checklist entry lacks to count as a manual test (None when it counts).

    It counts when it is done (``done: true``), says where the results are (``evidence``) and names the
    person who reviewed them (``reviewer``): a result nobody vouches for is a declaration.
    """
    entry = entry if isinstance(entry, dict) else {}
    lacks = [
        what
        for what, filled in (
            ("`done` is not true", entry.get("done") is True),
            ("no `evidence`", bool(str(entry.get("evidence") or "").strip())),
            ("no `reviewer` naming who checked it", reviewer_of(entry) is not None),
        )
        if not filled
    ]
    if not lacks:
        return None
    return "not filled in" if len(lacks) == 3 else f"not filled in ({', '.join(lacks)})"


def reviewer_of(entry: dict[str, Any]) -> str | None:
    """The person named as reviewer of a checklist entry, or None for an empty or placeholder name."""
    reviewer = str(entry.get("reviewer") or "").strip()
    return None if reviewer.lower() in NO_REVIEWER else reviewer


def checklist_entry(ev: Evidence, test_id: str) -> dict[str, Any] | None:
    """The team's checklist entry for a test if it counts (done, with evidence and a reviewer), else None."""
    entry = ev.checklist.get(test_id)
    return entry if checklist_gap(entry) is None else None


def manual_outcome(entry: dict[str, Any]) -> Outcome:
    return Outcome(MANUAL, f"done by hand: {str(entry['evidence']).strip()} (reviewed by {reviewer_of(entry)})")


def checklist_only(test_id: str, what_to_automate: str) -> Callable[[Evidence], Outcome]:
    """A check for a test the template cannot automate: 0.5 from a filled checklist entry, else missing."""

    def check(ev: Evidence) -> Outcome:
        entry = checklist_entry(ev, test_id)
        if entry:
            return manual_outcome(entry)
        gap = checklist_gap(ev.checklist.get(test_id))
        return Outcome(MISSING, f"not automated ({what_to_automate}); checklist item {test_id} in {CHECKLIST} is {gap}")

    check.__name__ = f"checklist_{test_id}"
    return check


# ---------------------------------------------------------------------------- data


def data_1_schema(ev: Evidence) -> Outcome:
    """The step-03 schema covers every input, and steps 05 and 09 enforced it on training and each batch."""
    spec = ev.json(SPEC)
    inputs = model_inputs(spec) + list(spec["sensitive_features"])
    untyped = [c for c in inputs if "kind" not in spec["columns"].get(c, {})]
    if untyped:
        return Outcome(FAILING, f"no schema entry for input column(s) {', '.join(untyped)} in {SPEC}")
    training = ev.json(PIPELINE)
    if "schema_violations" not in training:
        raise MissingEvidence(f"{PIPELINE} does not record the schema validation (schema_violations)")
    if training["schema_violations"]:
        first = training["schema_violations"][0]
        return Outcome(
            FAILING,
            f"training data breaks the schema: {len(training['schema_violations'])} failed checks, "
            f"first {first.get('column')} {first.get('check')} ({first.get('rows')} rows)",
        )
    status = ev.json(MONITORING)
    batches = status["batches"]
    unchecked = [b["batch"] for b in batches if "schema_violations" not in b]
    if not batches or unchecked:
        return Outcome(
            FAILING, f"schema not enforced on monitored batch(es) {', '.join(unchecked) or '(none monitored)'}"
        )
    return Outcome(
        AUTOMATED,
        f"{len(inputs)} input columns typed with ranges/categories/nullability; training data passes (05); "
        f"enforced on all {len(batches)} monitored batches (09; {len(production_batches(status))} from production)",
    )


def data_2_features_beneficial(ev: Evidence) -> Outcome:
    """Permutation importance (step 06, test split): removing any feature must cost quality."""
    features = model_inputs(ev.json(SPEC))
    importance = ev.json(MODELING).get("feature_importance")
    if not importance:
        raise MissingEvidence(f"{MODELING} has no feature_importance")
    unmeasured = [f for f in features if f not in importance]
    if unmeasured:
        return Outcome(FAILING, f"no importance measured for {', '.join(unmeasured)}")
    useless = [f for f in features if not importance[f] > 0]
    if useless:
        return Outcome(FAILING, f"permutation importance <= 0 (feature not beneficial): {', '.join(useless)}")
    weakest = min(features, key=lambda f: importance[f])
    return Outcome(
        AUTOMATED,
        f"all {len(features)} features lower test ROC AUC when shuffled; "
        f"weakest {weakest} ({fmt(importance[weakest])})",
    )


def data_3_feature_cost(ev: Evidence) -> Outcome:
    """Per-feature cost is not measured here: the whole feature set's serving latency can fail it, never pass it."""
    breach, measured = measured_latency(ev)
    if breach:
        return Outcome(FAILING, f"feature set too costly to serve: {breach}")
    return Outcome(
        MISSING,
        f"per-feature cost is not measured (only the whole feature set: {measured}); automated once step 06 or 07 "
        "times scoring without each feature and weighs it against its permutation importance",
    )


def encodes_one_of(model_feature: str, columns: Iterable[str]) -> bool:
    """Whether an encoded model feature (``age``, ``job_nurse``) comes from one of the columns."""
    return any(model_feature == c or model_feature.startswith(f"{c}_") for c in columns)


def data_4_meta_level_requirements(ev: Evidence) -> Outcome:
    """Sensitive and excluded columns (identifiers, leakage, data.drop_columns) are not model inputs."""
    spec = ev.json(SPEC)
    inputs = set(model_inputs(spec))
    forbidden = {**{c: "sensitive" for c in spec["sensitive_features"]}, **spec["excluded_columns"]}
    breaches = sorted(inputs & set(forbidden))
    encoded = ev.json(PIPELINE).get("model_features")
    if encoded is None:
        raise MissingEvidence(f"{PIPELINE} has no model_features")
    breaches += sorted(f for f in encoded if encodes_one_of(f, forbidden) and not encodes_one_of(f, inputs))
    if breaches:
        return Outcome(FAILING, f"forbidden column(s) used as model input: {', '.join(breaches[:5])}")
    note = ""
    release = ev.note_json(RELEASE)
    if release.get("mitigation") not in (None, "none"):
        note = f"; note: the release decides with {', '.join(spec['sensitive_features'])} ({release['mitigation']})"
    return Outcome(
        AUTOMATED,
        f"{len(forbidden)} sensitive/excluded columns absent from {len(encoded)} model features{note}",
    )


def data_7_feature_code_tested(ev: Evidence) -> Outcome:
    """The unit tests of the code that reads, validates, infers and encodes inputs (training and serving)."""
    return requirement_of_tests(ev, FEATURE_CODE_TESTS)


# ---------------------------------------------------------------------------- model


def model_2_offline_online(ev: Evidence) -> Outcome:
    """Offline test ROC AUC (06) against the median over labelled production batches (09)."""
    offline = ev.json(MODELING)["test_metrics"]["roc_auc"]
    status = ev.json(MONITORING)
    labelled = [b for b in status["batches"] if is_finite_number(b.get("roc_auc"))]
    if not labelled:
        return Outcome(MISSING, "no labelled production batch: online quality not measured (09)")
    online = [b["roc_auc"] for b in production_batches(status) if is_finite_number(b.get("roc_auc"))]
    if not online:
        return Outcome(MISSING, f"the {len(labelled)} labelled batches were {NO_PRODUCTION}")
    median = statistics.median(online)
    gap = abs(offline - median)
    verdict = AUTOMATED if gap <= OFFLINE_ONLINE_TOLERANCE else FAILING
    return Outcome(
        verdict,
        f"offline ROC AUC {fmt(offline)} vs median {fmt(median)} over {len(online)} labelled production batches "
        f"(gap {fmt(gap)}, allowed {OFFLINE_ONLINE_TOLERANCE})",
    )


def model_3_hyperparameters_tuned(ev: Evidence) -> Outcome:
    """Every non-baseline candidate was tuned by cross-validation over the search space of params.yaml."""
    candidates = [c for c in ev.json(MODELING)["candidates"] if not c["baseline"]]
    if not candidates:
        return Outcome(FAILING, "no tuned candidate in 06 (only baselines)")
    space = (ev.yaml(PARAMS).get("modeling") or {}).get("search_space") or {}
    for candidate in candidates:
        if not is_finite_number(candidate.get("cv_roc_auc")):
            return Outcome(FAILING, f"{candidate['model']} has no cross-validated score")
        allowed = space.get(candidate["model"], {})
        if allowed and not candidate.get("params"):
            return Outcome(FAILING, f"{candidate['model']} has a search space but no tuned parameters")
        outside = [k for k, v in candidate.get("params", {}).items() if k in allowed and v not in allowed[k]]
        if outside:
            return Outcome(FAILING, f"{candidate['model']}: {outside[0]} outside modeling.search_space")
    best = max(candidates, key=lambda c: c["cv_roc_auc"])
    return Outcome(
        AUTOMATED,
        f"{len(candidates)} candidates tuned by CV random search; best {best['model']} CV ROC AUC "
        f"{fmt(best['cv_roc_auc'])} with {best['params']}",
    )


def model_4_staleness_impact(ev: Evidence) -> Outcome:
    """Step 10 measures what a model retrained on newer data gains over the champion on the same recent batch."""
    decision = ev.json(RETRAINING)
    if not ("champion" in decision and "challenger" in decision):
        return Outcome(MISSING, f"no champion/challenger comparison this run: {'; '.join(decision['reasons'])}")
    if not [b for b in production_batches(ev.json(MONITORING)) if is_finite_number(b.get("roc_auc"))]:
        return Outcome(
            MISSING,
            "step 10 compared champion and challenger on a batch that is not newer data: the labelled batches "
            f"were {NO_PRODUCTION}",
        )
    champion, challenger = decision["champion"], decision["challenger"]
    gain = challenger["roc_auc"] - champion["roc_auc"]
    saving = champion["expected_cost"] - challenger["expected_cost"]
    return Outcome(
        AUTOMATED,
        f"refreshed model vs champion on the latest batch ({decision.get('recent_batch_rows')} rows): "
        f"ROC AUC {gain:+.4f}, expected cost {-saving:+.4f}",
    )


def model_5_simpler_model_not_better(ev: Evidence) -> Outcome:
    """The chosen model beats every baseline (majority class, shallow tree) on the test split."""
    record = ev.json(MODELING)
    chosen, baselines = record["test_metrics"], record["baselines_test_metrics"]
    if not baselines:
        return Outcome(MISSING, f"{MODELING} has no baseline metrics")
    for name, metrics in baselines.items():
        if metrics["roc_auc"] >= chosen["roc_auc"]:
            return Outcome(FAILING, f"baseline {name} ROC AUC {fmt(metrics['roc_auc'])} >= {fmt(chosen['roc_auc'])}")
        if metrics["expected_cost"] <= chosen["expected_cost"]:
            return Outcome(
                FAILING,
                f"baseline {name} expected cost {fmt(metrics['expected_cost'])} <= {fmt(chosen['expected_cost'])}",
            )
    best = max(baselines, key=lambda n: baselines[n]["roc_auc"])
    return Outcome(
        AUTOMATED,
        f"{record['model']} ROC AUC {fmt(chosen['roc_auc'])} vs best baseline {best} "
        f"{fmt(baselines[best]['roc_auc'])}; "
        f"cheaper than all {len(baselines)} baselines",
    )


def model_6_quality_on_slices(ev: Evidence) -> Outcome:
    """Per-group error rates (08, with bootstrap intervals) and the equalized-odds gates for every sensitive feature."""
    features = ev.json(SPEC)["sensitive_features"]
    absent = [f for f in features if not ev.report(GROUP_METRICS.format(feature=f)).is_file()]
    if absent:
        raise MissingEvidence(f"{GROUP_METRICS.format(feature=absent[0])} not found ({where_from(RELEASE)})")
    rows = [g for g in ev.json(RELEASE)["gates"] if g["gate"].startswith("equalized_odds[")]
    unchecked = [f for f in features if f"equalized_odds[{f}]" not in {g["gate"] for g in rows}]
    if unchecked:
        return Outcome(FAILING, f"no error-rate gate across groups of {', '.join(unchecked)}")
    if failed_gates(rows):
        return Outcome(FAILING, failed_gates(rows)[0])
    return Outcome(
        AUTOMATED,
        "TPR/FPR gaps across groups within gate: "
        + ", ".join(f"{g['gate']} {fmt(g['value'])} {g['rule']}" for g in rows),
    )


def model_7_inclusion(ev: Evidence) -> Outcome:
    """Data bias plan (04) and the released model's selection-rate gates (08)."""
    plan = ev.json(BIAS_PLAN)
    release = ev.json(RELEASE)
    rows = [g for g in release["gates"] if g["gate"].startswith("demographic_parity[")]
    if not rows:
        return Outcome(FAILING, f"{RELEASE} has no demographic-parity gate")
    if failed_gates(rows):
        return Outcome(FAILING, failed_gates(rows)[0])
    if not release["released"]:
        return Outcome(FAILING, f"not released: {'; '.join(release['reasons'])}")
    return Outcome(
        AUTOMATED,
        f"data remediation {plan['remediation']} (04); released with {release['mitigation']}: "
        + ", ".join(f"{g['gate']} {fmt(g['value'])}" for g in rows),
    )


# ---------------------------------------------------------------------------- infrastructure


def infra_1_reproducible_training(ev: Evidence) -> Outcome:
    """Fits with the same seed give byte-identical artifacts (unit tests); a full-stage retrain test counts too."""
    outcome = requirement_of_tests(ev, DETERMINISM_TESTS)
    if outcome.status != AUTOMATED:
        return outcome
    full = ev.test_outcomes.get(FULL_RETRAIN_TEST)
    if full and "failed" in full:
        return Outcome(FAILING, f"tests/{FULL_RETRAIN_TEST[0]}.py::{FULL_RETRAIN_TEST[1]} failed")
    scope = (
        "and the modeling stage retrained twice"
        if full and "passed" in full
        else "(toy data; no full-stage retrain test)"
    )
    return Outcome(AUTOMATED, f"same seed, same bytes: {outcome.reason} {scope}")


def infra_2_model_specs_unit_tested(ev: Evidence) -> Outcome:
    return requirement_of_tests(ev, MODEL_SPEC_TESTS)


def infra_3_pipeline_integration_tested(ev: Evidence) -> Outcome:
    return requirement_of_tests(ev, INTEGRATION_TESTS)


def infra_4_quality_validated_before_serving(ev: Evidence) -> Outcome:
    """Gates of 06, 07 and 08 passed, and the champion in the registry is that release (or a promoted challenger)."""
    modeling, deployment, release = ev.json(MODELING), ev.json(DEPLOYMENT), ev.json(RELEASE)
    for step, record, verdict in (
        (MODELING, modeling, "releasable"),
        (DEPLOYMENT, deployment, "deployed"),
        (RELEASE, release, "released"),
    ):
        failures = failed_gates(record["gates"])
        if failures or not record[verdict]:
            return Outcome(FAILING, f"{step}: not {verdict}: {'; '.join(failures or record['reasons'])}")
    registry = ev.json(REGISTRY)
    champion = registry.get("champion")
    if not champion or not ev.path(CHAMPION).is_file():
        return Outcome(FAILING, f"no champion in {REGISTRY}: nothing validated is in service")
    actual = file_md5(ev.path(CHAMPION))
    if actual != champion["md5"]:
        return Outcome(
            FAILING, f"{CHAMPION} differs from the md5 recorded in {REGISTRY} (changed outside the registry?)"
        )
    decision = ev.json(RETRAINING) if ev.path(RETRAINING).is_file() else {}
    # installed by step 10, or staged by it after passing every gate and installed by a person's approval
    signed = decision.get("passed_gates") and champion.get("approved_by")
    promoted = (decision.get("promoted") or signed) and decision.get("challenger_version") == champion["version"]
    if actual != registry.get("release_md5") and not promoted:
        return Outcome(
            FAILING,
            "the champion is neither step 08's release nor a challenger that passed step 10's gates "
            "(installed by step 10, or approved by a person)",
        )
    gates = sum(len(r["gates"]) for r in (modeling, deployment, release))
    return Outcome(AUTOMATED, f"{gates} gates passed in 06-08; champion {champion['version']} is the validated model")


def infra_5_debuggable(ev: Evidence) -> Outcome:
    """One record can be scored and explained: /predict on a single record, the model card, feature importance."""
    service = ev.json(DEPLOYMENT).get("service") or {}
    if service.get("single_status") != 200:
        return Outcome(
            FAILING, f"scoring a single record over HTTP did not answer 200 ({service.get('single_status')})"
        )
    card = ev.report(MODEL_CARD)
    if not card.is_file() or not card.read_text(encoding="utf-8").strip():
        raise MissingEvidence(f"{MODEL_CARD} not found ({where_from(MODEL_CARD)})")
    if not ev.json(MODELING).get("feature_importance"):
        return Outcome(FAILING, f"{MODELING} has no feature importance to explain the model with")
    return Outcome(
        AUTOMATED,
        f"single record scored via /predict (200, version {service.get('health', {}).get('version')}); model card and "
        "permutation importance explain it; the artifact reloads identically in a fresh process (07)",
    )


def infra_6_canary(ev: Evidence) -> Outcome:
    """A canary record (``canary`` with ``passed``) in step 10's decision, written before any promotion."""
    decision = ev.json(RETRAINING)
    canary = decision.get("canary")
    if not isinstance(canary, dict) or "passed" not in canary:
        if decision.get("promoted"):
            return Outcome(FAILING, "a challenger was promoted without a canary record")
        # Step 10 runs the canary only for a challenger that passed every offline gate: no model was canaried.
        return Outcome(
            MISSING,
            "no canary in this run (no challenger reached it: "
            f"{'; '.join(map(str, decision.get('reasons') or [])) or 'no reason recorded'}); "
            "automated once step 10 records the canary of a challenger",
        )
    if not canary["passed"]:
        verdict = FAILING if decision.get("promoted") else AUTOMATED
        return Outcome(
            verdict,
            f"canary failed{' yet the challenger was promoted' if verdict == FAILING else ', promotion blocked'}",
        )
    return Outcome(AUTOMATED, f"canary passed before promotion: {canary.get('summary', '')}".rstrip(": "))


def infra_7_rollback(ev: Evidence) -> Outcome:
    """The rollback command is tested, and the registry's history files are intact."""
    registry = ev.json(REGISTRY)
    if not registry.get("champion"):
        return Outcome(FAILING, f"no champion in {REGISTRY}: nothing is served, nothing to roll back")
    lost = [e["file"] for e in registry.get("history", []) if not ev.path(f"models/registry/{e['file']}").is_file()]
    if lost:
        return Outcome(FAILING, f"previous model models/registry/{lost[0]} is gone: rollback would fail")
    tested = requirement_of_tests(ev, ROLLBACK_TESTS)
    if tested.status != AUTOMATED:
        return tested
    count = len(registry.get("history", []))
    return Outcome(
        AUTOMATED,
        f"`rollback` tested; {count} previous model(s) kept"
        + ("" if count else " (nothing to restore until the first promotion)"),
    )


# ---------------------------------------------------------------------------- monitoring


def monitor_2_data_invariants(ev: Evidence) -> Outcome:
    """Schema violations and missing-value spikes per batch (09); a breach must have raised an alert."""
    status = ev.json(MONITORING)
    batches = status["batches"]
    if not batches:
        return Outcome(MISSING, "no production batch was monitored (09)")
    unmeasured = [b["batch"] for b in batches if "schema_violations" not in b or "missing_spikes" not in b]
    if unmeasured:
        return Outcome(FAILING, f"invariants not checked on batch(es) {', '.join(unmeasured)}")
    alerts = alerted_batches(status)
    breaches = [b for b in batches if b["schema_violations"] or b["missing_spikes"]]
    silent = [b for b in breaches if b["batch"] not in alerts]
    if silent:
        b = silent[0]
        return Outcome(
            FAILING,
            f"{b['batch']}: {b['schema_violations']} schema violations, {b['missing_spikes']} missing spikes, no alert",
        )
    indirect = [b["batch"] for b in breaches if not any("schema" in a or "missing" in a for a in alerts[b["batch"]])]
    note = f" ({', '.join(indirect)} alerted by other gates only)" if indirect else ""
    checked = f"{len(batches)} batches checked; {len(breaches)} breach(es), all alerted{note}"
    production = production_batches(status)
    if not production:
        return Outcome(MISSING, f"the monitor works ({checked}), but the batches were {NO_PRODUCTION}")
    return Outcome(AUTOMATED, f"{checked}; {len(production)} of them production")


def served_artifact(root: Path) -> tuple[str, str]:
    """(path, md5) of the artifact in service: what ``serve`` and ``predict`` load (the registry's champion,
    or a release of step 08 the registry has not installed yet; :func:`.scoring.default_model_path`)."""
    from ..scoring import default_model_path

    try:
        path = Path(default_model_path(root))
    except FileNotFoundError as exc:
        raise MissingEvidence(f"no artifact in service to check ({exc})") from exc
    return Path(os.path.relpath(path, root)).as_posix(), file_md5(path)


def checked_artifact(ev: Evidence, record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(path, md5) of the artifact a step's record says it exercised (``artifact``, and ``artifact_md5`` if kept).

    Without a recorded md5 the file at the recorded path stands for it: the report is current (checked
    before), so that output of its stage is still what the stage wrote and exercised.
    """
    artifact = record.get("artifact")
    path, md5 = (artifact.get("path"), artifact.get("md5")) if isinstance(artifact, dict) else (artifact, None)
    md5 = md5 or record.get("artifact_md5")
    if not md5 and path and ev.path(path).is_file():
        md5 = file_md5(ev.path(path))
    return path, md5


def not_the_served_artifact(ev: Evidence, record: dict[str, Any], where: str) -> str | None:
    """Why a serving check recorded in ``where`` does not cover the artifact in service (None when it does)."""
    served, served_md5 = ev.served
    path, md5 = checked_artifact(ev, record)
    if md5 == served_md5:
        return None
    if not md5:
        return (
            f"{where} does not say which artifact the check exercised ({path or 'no artifact field'}), so it is "
            f"not shown to cover the artifact in service, {served}"
        )
    mitigation = ev.note_json(RELEASE).get("mitigation")
    release = f"; step 08's release adds {mitigation}" if mitigation not in (None, "none") else ""
    return (
        f"the check ran on {path or 'another artifact'} (md5 {md5[:8]}), not on the artifact in service, {served} "
        f"(md5 {served_md5[:8]}{release}); automated once {where} records checks of the served artifact"
    )


def monitor_3_training_serving_skew(ev: Evidence) -> Outcome:
    """Batch CLI and HTTP service reproduce in-process scores (07), of the artifact in service."""
    deployment = ev.json(DEPLOYMENT)
    service = deployment.get("service") or {}
    if "batch_scoring_matches" not in deployment or "matches_in_process" not in service:
        raise MissingEvidence(f"{DEPLOYMENT} does not record the batch and HTTP comparisons")
    if deployment["batch_scoring_matches"] is not True:
        return Outcome(
            FAILING, f"batch scoring does not match in-process scores ({deployment.get('batch_scoring_matches')})"
        )
    if service.get("matches_in_process") is not True:
        return Outcome(
            FAILING, f"HTTP service scores differ from in-process scores ({service.get('matches_in_process')})"
        )
    elsewhere = not_the_served_artifact(ev, deployment, DEPLOYMENT)
    if elsewhere:
        return Outcome(MISSING, f"batch and HTTP scores match in-process scores, but {elsewhere}")
    return Outcome(
        AUTOMATED,
        "CLI batch scores and HTTP /predict scores equal in-process scores of the artifact in service "
        f"({ev.served[0]})",
    )


def installed_at(champion: dict[str, Any]) -> datetime | None:
    """When the registry installed the champion (``installed_at``, ISO 8601; UTC when it names no zone)."""
    stamp = champion.get("installed_at")
    if not stamp:
        return None
    when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def monitor_4_staleness(ev: Evidence) -> Outcome:
    """The champion's age, from when the registry installed it, against the step-02 staleness gate."""
    gate = gate_named(ev.json(CRITERIA), "staleness")
    champion = ev.json(REGISTRY).get("champion")
    if not champion:
        return Outcome(MISSING, f"no champion in {REGISTRY}: no model in service to age")
    since = installed_at(champion)
    if since is None:
        declared = ev.note_json(MONITORING).get("model_age_days")
        return Outcome(
            MISSING,
            f"{REGISTRY} records no install time of champion {champion.get('version')}, so its age is declared "
            f"(monitoring.model_age_days = {declared}), not measured; automated once the registry records "
            "installed_at at each install",
        )
    age = (datetime.now(UTC) - since).total_seconds() / 86400
    if age > gate["threshold"]:
        return Outcome(
            FAILING,
            f"champion {champion.get('version')} installed {since:%Y-%m-%d}, {age:.0f} days ago "
            f"(> {fmt(gate['threshold'])})",
        )
    return Outcome(
        AUTOMATED,
        f"champion {champion.get('version')} installed {since:%Y-%m-%d}, {age:.1f} days ago "
        f"(<= {fmt(gate['threshold'])}, from the registry)",
    )


def non_finite_scores(path: Path) -> tuple[int, int]:
    """(non-finite scores, scores outside [0, 1]) in a scores file with a ``score`` column."""
    import numpy as np
    import pandas as pd

    scores = pd.read_parquet(path, columns=["score"])["score"].to_numpy(dtype=float)
    finite = np.isfinite(scores)
    return int((~finite).sum()), int(((scores[finite] < 0) | (scores[finite] > 1)).sum())


def monitor_5_numerically_stable(ev: Evidence) -> Outcome:
    """No NaN or infinite score in 07's batch scores, in stored production scores, or in 09's per-batch summaries."""
    files = [ev.report(TEST_SCORES)] + (
        sorted(ev.report(BATCH_SCORES).glob("*.parquet")) if ev.path(BATCH_SCORES).is_dir() else []
    )
    if not files[0].exists():  # a file, or a directory of parts when the test split is partitioned
        raise MissingEvidence(f"{TEST_SCORES} not found ({where_from(TEST_SCORES)})")
    for path in files:
        bad, outside = non_finite_scores(path)
        if bad or outside:
            return Outcome(
                FAILING, f"{path.relative_to(ev.root).as_posix()}: {bad} NaN/infinite and {outside} out-of-range scores"
            )
    batches = ev.json(MONITORING)["batches"]
    unstable = [
        b["batch"] for b in batches if not all(is_finite_number(b.get(k)) for k in ("score_psi", "positive_rate"))
    ]
    if unstable:
        return Outcome(FAILING, f"batch {unstable[0]}: score summary is not finite (NaN scores?) in {MONITORING}")
    return Outcome(
        AUTOMATED,
        f"all scores finite and in [0, 1] in {len(files)} score file(s); {len(batches)} batches with finite score PSI "
        "(scoring refuses non-finite scores)",
    )


def monitor_6_computing_performance(ev: Evidence) -> Outcome:
    """p99 latency of a scoring request against the step-02 budget, measured on the real service (07) of the
    artifact in service."""
    breach, measured = measured_latency(ev)
    if breach:
        return Outcome(FAILING, breach)
    latency = ev.json(LATENCY) if ev.path(LATENCY).is_file() else {}
    record, where = (latency, LATENCY) if "artifact" in latency else (ev.json(DEPLOYMENT), DEPLOYMENT)
    elsewhere = not_the_served_artifact(ev, record, where)
    if elsewhere:
        return Outcome(MISSING, f"{measured}, but {elsewhere}")
    return Outcome(AUTOMATED, f"{measured} on loopback, each release, on the artifact in service ({ev.served[0]})")


def monitor_7_prediction_quality(ev: Evidence) -> Outcome:
    """Quality gate on every labelled batch (09); a batch below it must have raised an alert."""
    status = ev.json(MONITORING)
    gate = gate_named(ev.json(CRITERIA), "model_quality")
    labelled = [b for b in status["batches"] if is_finite_number(b.get("roc_auc"))]
    if not labelled:
        return Outcome(MISSING, "no labelled production batch: prediction quality not monitored (09)")
    below = [b for b in labelled if b["roc_auc"] < gate["threshold"]]
    silent = [b["batch"] for b in below if b["batch"] not in alerted_batches(status)]
    if silent:
        return Outcome(FAILING, f"{silent[0]}: ROC AUC below {fmt(gate['threshold'])} without an alert")
    worst = min(labelled, key=lambda b: b["roc_auc"])
    checked = (
        f"{len(labelled)} labelled batches against ROC AUC >= {fmt(gate['threshold'])}; lowest {worst['batch']} "
        f"{fmt(worst['roc_auc'])}; {len(below)} below, all alerted"
    )
    production = [b for b in production_batches(status) if is_finite_number(b.get("roc_auc"))]
    if not production:
        return Outcome(MISSING, f"the monitor works ({checked}), but the batches were {NO_PRODUCTION}")
    return Outcome(AUTOMATED, f"{checked}; {len(production)} of them production")


# ---------------------------------------------------------------------------- the rubric

RUBRIC: tuple[RubricItem, ...] = (
    RubricItem("data", 1, "Feature expectations are captured in a schema", (SPEC, PIPELINE, MONITORING), data_1_schema),
    RubricItem("data", 2, "All features are beneficial", (MODELING,), data_2_features_beneficial),
    RubricItem("data", 3, "No feature's cost is too much", (DEPLOYMENT, LATENCY), data_3_feature_cost),
    RubricItem(
        "data", 4, "Features adhere to meta-level requirements", (SPEC, PIPELINE), data_4_meta_level_requirements
    ),
    RubricItem(
        "data",
        5,
        "The data pipeline has appropriate privacy controls",
        (CHECKLIST,),
        checklist_only("data_5", "access control and deletion of personal data are organisational"),
    ),
    RubricItem(
        "data",
        6,
        "New features can be added quickly",
        (CHECKLIST,),
        checklist_only("data_6", "the calendar time to add a feature is not measured"),
    ),
    RubricItem("data", 7, "All input feature code is tested", (JUNIT,), data_7_feature_code_tested),
    RubricItem(
        "model",
        1,
        "Model specs are reviewed and submitted",
        (CHECKLIST,),
        checklist_only("model_1", "code review happens in your forge"),
    ),
    RubricItem("model", 2, "Offline and online metrics correlate", (MODELING, MONITORING), model_2_offline_online),
    RubricItem("model", 3, "All hyperparameters have been tuned", (MODELING, PARAMS), model_3_hyperparameters_tuned),
    RubricItem(
        "model", 4, "The impact of model staleness is known", (RETRAINING, MONITORING), model_4_staleness_impact
    ),
    RubricItem("model", 5, "A simpler model is not better", (MODELING,), model_5_simpler_model_not_better),
    RubricItem(
        "model",
        6,
        "Model quality is sufficient on important data slices",
        (RELEASE, GROUP_METRICS),
        model_6_quality_on_slices,
    ),
    RubricItem(
        "model", 7, "The model is tested for considerations of inclusion", (BIAS_PLAN, RELEASE), model_7_inclusion
    ),
    RubricItem("infrastructure", 1, "Training is reproducible", (JUNIT,), infra_1_reproducible_training),
    RubricItem("infrastructure", 2, "Model specs are unit tested", (JUNIT,), infra_2_model_specs_unit_tested),
    RubricItem(
        "infrastructure", 3, "The ML pipeline is integration tested", (JUNIT,), infra_3_pipeline_integration_tested
    ),
    RubricItem(
        "infrastructure",
        4,
        "Model quality is validated before serving",
        (MODELING, DEPLOYMENT, RELEASE, REGISTRY),
        infra_4_quality_validated_before_serving,
    ),
    RubricItem("infrastructure", 5, "The model is debuggable", (DEPLOYMENT, MODEL_CARD, MODELING), infra_5_debuggable),
    RubricItem("infrastructure", 6, "Models are canaried before serving", (RETRAINING,), infra_6_canary),
    RubricItem("infrastructure", 7, "Serving models can be rolled back", (REGISTRY, JUNIT), infra_7_rollback),
    RubricItem(
        "monitoring",
        1,
        "Dependency changes result in notification",
        (CHECKLIST,),
        checklist_only(
            "monitor_1",
            "nothing watches the data and packages between runs: dvc.lock is compared only when someone reruns; "
            "automated once a scheduled job (CI `schedule:` running `dvc status` and a dependency bot) alerts on a "
            "change",
        ),
    ),
    RubricItem("monitoring", 2, "Data invariants hold for inputs", (MONITORING,), monitor_2_data_invariants),
    RubricItem(
        "monitoring", 3, "Training and serving are not skewed", (DEPLOYMENT, REGISTRY), monitor_3_training_serving_skew
    ),
    RubricItem("monitoring", 4, "Models are not too stale", (REGISTRY, CRITERIA), monitor_4_staleness),
    RubricItem(
        "monitoring", 5, "Models are numerically stable", (TEST_SCORES, MONITORING), monitor_5_numerically_stable
    ),
    RubricItem(
        "monitoring",
        6,
        "Computing performance has not regressed",
        (DEPLOYMENT, LATENCY, CRITERIA, REGISTRY),
        monitor_6_computing_performance,
    ),
    RubricItem(
        "monitoring", 7, "Prediction quality has not regressed", (MONITORING, CRITERIA), monitor_7_prediction_quality
    ),
)


def run_check(item: RubricItem, ev: Evidence) -> Outcome:
    """The item's check; absent or malformed evidence scores ``missing``, and a filled checklist may stand in."""
    try:
        outcome = item.check(ev)
    except MissingEvidence as exc:
        outcome = Outcome(MISSING, str(exc))
    except (KeyError, TypeError, ValueError, OSError, yaml.YAMLError) as exc:
        outcome = Outcome(MISSING, f"evidence unreadable or incomplete ({type(exc).__name__}: {exc})")
    if outcome.status == MISSING and item.check.__name__ != f"checklist_{item.id}":
        entry = checklist_entry(ev, item.id)
        if entry:
            return Outcome(MANUAL, f"{manual_outcome(entry).reason}; automated check: {outcome.reason}")
    return outcome


def score_item(item: RubricItem, ev: Evidence) -> Result:
    outcome = run_check(item, ev)
    return Result(
        section=item.section,
        id=item.id,
        number=item.number,
        test=item.title,
        status=outcome.status,
        points=POINTS[outcome.status],
        evidence=", ".join(item.evidence),
        reason=outcome.reason,
    )


def score_project(root: Path) -> dict[str, Any]:
    """The 28 results, each section's sum and the final score (the minimum of the sections)."""
    ev = Evidence(root)
    results = [score_item(item, ev) for item in RUBRIC]
    sections = {s: sum(r.points for r in results if r.section == s) for s in SECTIONS}
    return {
        "rubric": "The ML Test Score (Breck et al., IEEE Big Data 2017): "
        "1 automated, 0.5 manual; final = min of sections",
        "final_score": min(sections.values()),
        "sections": sections,
        "tests": [r.__dict__ for r in results],
        "source_fingerprint": ev.source_fingerprint,
        "junit": [p.relative_to(ev.root).as_posix() for p in ev.junit_runs[0]],
        "junit_refused": list(ev.junit_runs[1].values()),
    }


# ---------------------------------------------------------------------------- report


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readiness_markdown(score: dict[str, Any]) -> str:
    sections = score["sections"]
    weakest = min(sections, key=sections.get)
    lines = [
        "# Release readiness: the ML Test Score",
        "",
        "Breck et al., *The ML Test Score: A Rubric for ML Production Readiness and Technical Debt Reduction* "
        "(IEEE Big Data 2017). Each test: **1** when checked automatically by this pipeline or test run and passing, "
        f"**0.5** when done by hand and documented in `{CHECKLIST}`, **0** when failing or without evidence. "
        "A section scores the sum of its tests; the final score is the minimum of the four sections.",
        "",
        f"**Final score: {score['final_score']:g}** "
        f"(weakest section: {weakest}; above {EXCEPTIONAL:g} is exceptional).",
        "",
        "| section | points |",
        "|---|---|",
        *(f"| {s} | {sections[s]:g} / 7 |" for s in SECTIONS),
        "",
        "| section | id | test | status | points | evidence | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in score["tests"]:
        lines.append(
            f"| {t['section']} | {t['id']} | {cell(t['test'])} | {t['status']} | {t['points']:g} | "
            f"{cell(t['evidence'])} | {cell(t['reason'])} |"
        )
    lines += [
        "",
        "Test-run evidence (results of the current source): "
        + (", ".join(f"`{p}`" for p in score["junit"]) or f"none in `{JUNIT_DIR}/`"),
        "",
        *(f"Refused: {cell(reason)}" for reason in score.get("junit_refused", [])),
        *([""] if score.get("junit_refused") else []),
    ]
    return "\n".join(lines)


def write_reports(root: Path, score: dict[str, Any]) -> None:
    write_json(root / OUTPUT_JSON, score)
    write_text(root / OUTPUT_MD, readiness_markdown(score))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the project on the ML Test Score from this run's evidence.")
    parser.add_argument("--root", help="project directory (default: the project around the working directory)")
    parser.add_argument("--fail-under", type=float, help="exit 1 when the final score is below this")
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else find_project_root()
    score = score_project(root)
    write_reports(root, score)
    sums = ", ".join(f"{s} {score['sections'][s]:g}" for s in SECTIONS)
    print(f"ML Test Score: {score['final_score']:g} ({sums}) -> {OUTPUT_MD}")
    if args.fail_under is not None and score["final_score"] < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
