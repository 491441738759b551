"""Shared fixtures: bake projects from this template and run their own commands."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter
from filelock import FileLock

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULT_CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
GENERATED = TEMPLATE / "{{cookiecutter.project_slug}}"


def generated_steps() -> tuple[str, ...]:
    """``project.STEPS`` of the generated package, as the template's source defines it (no bake needed)."""
    source = (GENERATED / "src" / "{{cookiecutter.package_name}}" / "project.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["STEPS"]:
            return tuple(ast.literal_eval(node.value))
    raise LookupError("the generated project.py defines no STEPS")


STEPS = generated_steps()


def step_name(stage: str) -> str:
    """'modeling' -> '06_modeling', as the generated ``project.step_name`` says."""
    return f"{STEPS.index(stage) + 1:02d}_{stage}"


def report_dir(project: Path, stage: str) -> Path:
    return project / "reports" / step_name(stage)


def report(project: Path, stage: str, name: str) -> dict:
    """A JSON record a step wrote to its report directory."""
    return json.loads((report_dir(project, stage) / name).read_text())


def package_of(project: Path) -> str:
    """The baked project's package name, from the answers it saved."""
    return json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]


# `make test` runs two pytest-xdist workers. Work units start in collection order, two per
# worker, the rest as workers free up; a unit is one test, except the tests below, which must
# share a worker (a module fixture built once, or a file one test writes for the next).
# pytest-xdist's `xdist_group` mark does nothing under pytest 9 (it rewrites `Item._nodeid`,
# which pytest 9 no longer reads), so the groups are declared here and a scheduler applies them.
SAME_WORKER = {
    "tests/test_own_data.py::test_bad_input_stops": "own-data contract project",
    "tests/test_own_data.py::test_dvc_exp_run": "own-data contract project",
    "tests/test_own_data.py::": "own-data projects",
    "tests/test_pipeline.py::test_generated_project_own_tests_pass": "generated unit tests and readiness",
    "tests/test_pipeline.py::test_readiness_is_scored": "generated unit tests and readiness",
}
# Long units start first, in this order (pytest-xdist would otherwise start the units with the
# most tests first: the two own-data groups, so the default project, which most other units need,
# was reproduced only minutes later and a worker waited for it). Two workers begin: one reproduces
# the default project, then runs the contract cases; the other runs the own-data chains, then the
# unfair dataset. The longest units on the reproduced project come next, so that short ones, not
# a three-minute one, end the run.
LONG_UNITS_FIRST = (
    "test_python_versions.py::",  # the newest Python's install, unit tests and chain: the longest unit
    "test_pipeline.py::test_every_stage_ran",
    "test_generated_ci.py::test_first_push_passes_without_a_remote",  # a chain of its own: the next longest
    "test_own_data.py::test_every_step_runs",
    "test_own_data.py::test_bad_input_stops",
    "test_lifecycle_gates.py::test_an_unfair_dataset",
    "test_lifecycle_gates.py::test_promotion",
    "test_generated_ci.py::test_local_remote_within_reach_pulls_and_passes",
)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its SAME_WORKER group, or the test itself."""
    return next((unit for prefix, unit in SAME_WORKER.items() if nodeid.startswith(prefix)), nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SameWorkerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the LONG_UNITS_FIRST order (see above)
    return SameWorkerScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, unit in enumerate(LONG_UNITS_FIRST) if unit in item.nodeid), len(LONG_UNITS_FIRST))

    items.sort(key=rank)


def bake(output_dir: Path, **answers: str) -> Path:
    """Generate a project non-interactively; returns its directory."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def project_env(project: Path) -> dict[str, str]:
    """Environment in which a baked project's commands find its package and this venv's tools."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("GIT_AUTHOR_NAME", "Template Tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "Template Tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@example.com")
    return env


def run(
    cmd: list[str], project: Path, check: bool = True, timeout: float = 3600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command in a baked project (``env`` adds variables); on failure the assertion shows its output."""
    env = {**project_env(project), **(env or {})}
    result = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def dvc(project: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project, check=check, env=env)


# Run-to-run measurements: files of their own that no stage depends on (step 07's and the canary's latencies).
MEASUREMENTS = {"reports/metrics/latency.json", "reports/metrics/canary_latency.json"}
# Written under reports/ by the tests, `make report` and `make readiness`, not by a stage (the generated .gitignore's).
NOT_THE_PIPELINES = ("reports/tests/", "reports/html/", "reports/index.html", "reports/dvc_plots/", "reports/readiness.",
                     "reports/failed/")
# When the registry installed or staged a model: the clock's, not the pipeline's (registry.json keeps them).
REGISTRY_TIMES = re.compile(rb'"(installed_at|staged_at|at)": "[^"]*"')


def pipeline_results(project: Path) -> dict[str, bytes]:
    """Every file the pipeline wrote under reports/ and models/, by path, but the run-to-run measurements, with the
    registry's clock times blanked; what CI, `make report` and `make readiness` write there left out."""
    files = [p for folder in ("reports", "models") for p in sorted((project / folder).rglob("*")) if p.is_file()]
    kept = {str(p.relative_to(project)): p for p in files}
    kept = {k: p for k, p in kept.items() if k not in MEASUREMENTS and not k.startswith(NOT_THE_PIPELINES)}
    return {k: REGISTRY_TIMES.sub(rb'"\1": ""', p.read_bytes()) if p.name == "registry.json" else p.read_bytes()
            for k, p in kept.items()}


def stages_run(output: str) -> list[str]:
    """The stages a `dvc repro` ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def changed_stages(project: Path, *targets: str) -> str:
    """`dvc status`: empty when the pipeline is up to date."""
    out = dvc(project, "status", *targets).stdout
    return out.replace("Data and pipelines are up to date.", "").strip()


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, baked once for the fast checks (do not run its pipeline)."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project after a full `dvc repro` (shared by the end-to-end tests).

    Reproduced once per run, even with several pytest-xdist workers (`make test` runs two): the
    first worker to need it builds it under a file lock in the run's shared temporary directory,
    and every worker then works in its own copy, so two workers never run DVC in one project.
    """
    reuse = os.environ.get("TEMPLATE_TESTS_REPRODUCED_PROJECT")
    worker_copy = tmp_path_factory.mktemp("reproduced")
    if reuse:  # developer shortcut: a copy of an already reproduced default project
        source = Path(reuse)
    else:
        source = shared_reproduced_project(shared_temp_dir(tmp_path_factory))
    project = worker_copy / source.name
    shutil.copytree(source, project, symlinks=True)
    return project


def shared_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory every worker of this run sees (the run's own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_reproduced_project(shared: Path) -> Path:
    """Bake and reproduce the default project in ``shared`` once; a failure is kept for every worker."""
    done, failed = shared / "reproduced.done", shared / "reproduced.failed"
    with FileLock(shared / "reproduced.lock"):
        if failed.is_file():
            pytest.fail(f"the default project did not reproduce (another worker tried):\n{failed.read_text()}")
        if not done.is_file():
            try:
                project = bake(shared / "reproduced")
                dvc(project, "repro")
            except BaseException as exc:
                failed.write_text(str(exc)[-6000:])
                raise
            done.write_text(str(project))
        return Path(done.read_text())
