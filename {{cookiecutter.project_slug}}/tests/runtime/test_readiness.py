"""The ML Test Score is computed from evidence: fabricated records in a temporary project score
every point that can be automated, and breaking one check (removing the schema, NaN scores in
a batch, a failed test, test results of other code, reports of changed parameters, checks of an
artifact not in service, simulated batches, an old champion, an unfilled or unreviewed checklist)
takes that test's points away with a reason that says why."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.project import write_json
from {{ cookiecutter.package_name }}.runtime import readiness

# DVC itself, before the project fixture answers for it
read_pipeline_state = readiness.read_pipeline_state
CHECKLIST_ONLY = ("data_5", "data_6", "model_1", "monitor_1")
# Not automatable here: per-feature cost is not measured; the whole feature set's latency can only fail it.
NOT_AUTOMATED = {*CHECKLIST_ONLY, "data_3"}
PASSING_TESTS = {
    "test_data": ["test_read_table_round_trips_every_format"],
    "test_profiling": ["test_column_kind"],
    "test_schema": ["test_training_like_data_has_no_violations"],
    "test_features": ["test_split_is_deterministic_with_a_seed"],
    "test_scoring": ["test_missing_column"],
    "test_artifacts": ["test_two_fits_of_the_same_model_save_to_the_same_bytes"],
    "test_bias": ["test_resample_indices_is_deterministic_with_a_seed"],
    "test_mitigation": ["test_decisions_are_deterministic"],
    "test_modeling": ["test_train_and_select_beats_the_baselines"],
    "test_notebooks": ["test_lifecycle_on_a_small_sample"],
    "test_registry": ["test_rollback_restores_the_previous_champion"],
}


# The generated dvc.yaml's stages (those whose reports the score reads): what each writes, which stages it rests on.
STAGES = {
    "success_criteria": (("reports/02_success_criteria",), ()),
    "data_selection": (("data/interim/selected.parquet", "reports/03_data_selection"), ()),
    "data_bias_plan": (("reports/04_data_bias_plan",), ("data_selection",)),
    "data_pipeline": (("data/processed", "reports/05_data_pipeline"), ("data_selection",)),
    "modeling": (
        ("reports/06_modeling", "reports/metrics/modeling.json"),
        ("success_criteria", "data_selection", "data_bias_plan", "data_pipeline"),
    ),
    "deployment": (
        ("models/model.skops", "reports/07_deployment", "reports/metrics/latency.json"),
        ("success_criteria", "data_selection", "data_bias_plan", "data_pipeline", "modeling"),
    ),
    "fairness_assessment": (
        ("models/release.skops", "reports/08_fairness_assessment"),
        ("success_criteria", "data_selection", "data_bias_plan", "data_pipeline", "modeling", "deployment"),
    ),
    "monitoring": (
        ("reports/09_monitoring",),
        (
            "success_criteria",
            "data_selection",
            "data_bias_plan",
            "data_pipeline",
            "modeling",
            "deployment",
            "fairness_assessment",
        ),
    ),
    "retraining": (
        ("reports/10_retraining", "models/registry"),
        (
            "success_criteria",
            "data_selection",
            "data_bias_plan",
            "data_pipeline",
            "modeling",
            "deployment",
            "fairness_assessment",
            "monitoring",
        ),
    ),
}


def pipeline_state(**changes: tuple[str, ...]) -> readiness.PipelineState:
    """What DVC would say of the fabricated project: every stage up to date, but for ``changes`` (stage -> what)."""
    return readiness.PipelineState(
        outs={stage: outs for stage, (outs, _) in STAGES.items()},
        upstream={stage: frozenset(before) for stage, (_, before) in STAGES.items()},
        changes={stage: changes.get(stage, ()) for stage in STAGES},
    )


def gate_row(gate: str, metric: str, value: float, rule: str, passed: bool = True) -> dict:
    return {"gate": gate, "metric": metric, "value": value, "rule": rule, "passed": passed, "note": ""}


def write_junit(
    path: Path, tests: dict[str, list[str]], failed: tuple[str, str] | None = None, stamp: bool = True
) -> None:
    """A JUnit file as pytest writes it under reports/tests/, stamped (like tests/conftest.py) with the project's source."""
    cases = []
    for module, names in tests.items():
        for name in names:
            body = '<failure message="assert False"/>' if failed == (module, name) else ""
            cases.append(f'<testcase classname="tests.{module}" name="{name}" time="0.1">{body}</testcase>')
    fingerprint = readiness.source_fingerprint(path.parents[2])
    properties = (
        f'<properties><property name="{readiness.FINGERPRINT_PROPERTY}" value="{fingerprint}"/></properties>'
        if stamp
        else ""
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{properties}{"".join(cases)}</testsuite>'
        "</testsuites>"
    )


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def batch(name: str, **overrides) -> dict:
    row = {
        "batch": name,
        "rows": 500,
        "schema_violations": 0,
        "missing_spikes": 0,
        "roc_auc": 0.88,
        "score_psi": 0.01,
        "positive_rate": 0.3,
        "injected": "as received",
    }
    return row | overrides


@pytest.fixture
def project(tmp_path, spec, monkeypatch) -> Path:
    """A project directory holding every record a passing pipeline and test run leave behind.

    DVC is not asked here (tests below build a real DVC project): its answer is that every stage is current.
    """
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: pipeline_state())
    root = tmp_path / "project"
    reports = root / "reports"
    (root / "params.yaml").parent.mkdir(parents=True)
    (root / "params.yaml").write_text(
        yaml.safe_dump({"modeling": {"search_space": {"logistic_regression": {"C": [0.1, 1.0]}}}})
    )
    write_json(
        reports / "02_success_criteria/success_criteria.json",
        {
            "gates": [
                {"name": "model_quality", "metric": "test_roc_auc", "operator": ">=", "threshold": 0.8},
                {"name": "staleness", "metric": "model_age_days", "operator": "<=", "threshold": 180.0},
                {"name": "latency", "metric": "p99_latency_ms", "operator": "<=", "threshold": 500.0},
            ]
        },
    )
    write_json(reports / "03_data_selection/dataset_spec.json", spec)
    write_json(reports / "04_data_bias_plan/bias_plan.json", {"remediation": "reweighing"})
    write_json(
        reports / "05_data_pipeline/data_pipeline.json",
        {"schema_violations": [], "model_features": ["age", "hours", "job_clerk", "job_engineer", "job_nurse"]},
    )
    write_json(
        reports / "06_modeling/modeling.json",
        {
            "model": "logistic_regression",
            "test_metrics": {"roc_auc": 0.9, "expected_cost": 0.3},
            "baselines_test_metrics": {"majority_class": {"roc_auc": 0.5, "expected_cost": 0.7}},
            "candidates": [
                {"model": "majority_class", "baseline": True, "cv_roc_auc": None, "params": {}},
                {"model": "logistic_regression", "baseline": False, "cv_roc_auc": 0.88, "params": {"C": 1.0}},
            ],
            "feature_importance": {"age": 0.05, "hours": 0.02, "job": 0.01},
            "gates": [gate_row("model_quality", "test_roc_auc", 0.9, ">= 0.8")],
            "releasable": True,
            "reasons": [],
        },
    )
    write_json(
        reports / "07_deployment/deployment.json",
        {
            "artifact": "models/model.skops",
            "deployed": True,
            "reasons": [],
            "batch_scoring_matches": True,
            "service": {"single_status": 200, "matches_in_process": True, "health": {"version": "1.0.0"}},
            "gates": [gate_row("latency", "p99_latency_ms", None, "<= 500")],
        },
    )
    # step 07 keeps run-to-run latencies out of deployment.json
    write_json(reports / "metrics/latency.json", {"p99_latency_ms": 50.0, "requests": 50})
    (reports / "07_deployment/model_card.md").write_text("# Model card\n")
    scores = np.random.default_rng(0).random(200)
    pd.DataFrame({"score": scores, "decision": (scores > 0.5).astype(int)}).to_parquet(
        reports / "07_deployment/test_scores.parquet"
    )
    write_json(
        reports / "08_fairness_assessment/release_decision.json",
        {
            "released": True,
            "reasons": [],
            "mitigation": "none",
            "gates": [
                gate_row("demographic_parity[sex]", "demographic_parity_difference[sex]", 0.05, "<= 0.15"),
                gate_row("equalized_odds[sex]", "equalized_odds_difference[sex]", 0.04, "<= 0.15"),
            ],
        },
    )
    (reports / "08_fairness_assessment/group_metrics_sex.csv").write_text(
        "sex,count,true_positive_rate\nFemale,80,0.7\n"
    )
    write_json(
        reports / "09_monitoring/monitoring_status.json",
        {
            "batches": [batch("b_001"), batch("b_002")],
            "reasons": [],
            "retrain_recommended": False,
            "model_age_days": 30,
        },
    )
    write_json(
        reports / "10_retraining/retraining_decision.json",
        {
            "triggered": True,
            "triggers": {"monitoring": False, "schedule": False, "forced": True},
            "champion": {"roc_auc": 0.88, "expected_cost": 0.31},
            "challenger": {"roc_auc": 0.89, "expected_cost": 0.30},
            "recent_batch_rows": 500,
            "canary": {"passed": True, "summary": "5% of traffic for a day"},
            "promoted": False,
            "reasons": ["forced retrain, not better enough"],
        },
    )
    registry = root / "models/registry"
    (registry / "history").mkdir(parents=True)
    (registry / "champion.skops").write_bytes(b"the champion")
    # step 07's artifact: here the release is that model, unchanged, so step 07's checks cover the champion
    (root / "models/model.skops").write_bytes(b"the champion")
    (registry / "history/001_old.skops").write_bytes(b"the previous champion")
    write_json(
        registry / "registry.json",
        {
            "champion": {"version": "1.0.0", "md5": md5(registry / "champion.skops"), "installed_at": days_ago(30)},
            "history": [{"version": "0.9.0", "file": "history/001_old.skops"}],
            "release_md5": md5(registry / "champion.skops"),
        },
    )
    (root / "src/pkg").mkdir(parents=True)
    (root / "src/pkg/features.py").write_text("def encode(x):\n    return x\n")
    write_junit(reports / "tests/unit.xml", PASSING_TESTS)
    (root / readiness.CHECKLIST).write_text(
        yaml.safe_dump({i: {"done": False, "evidence": "", "reviewer": ""} for i in CHECKLIST_ONLY})
    )
    return root


def results(root: Path) -> dict[str, dict]:
    return {t["id"]: t for t in readiness.score_project(root)["tests"]}


def edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    write_json(path, record)


def test_the_rubric_has_the_28_tests_of_the_2017_paper():
    assert len(readiness.RUBRIC) == 28
    for section in readiness.SECTIONS:
        numbers = [item.number for item in readiness.RUBRIC if item.section == section]
        assert numbers == list(range(1, 8))
    assert len({item.id for item in readiness.RUBRIC}) == 28
    titles = {item.id: item.title for item in readiness.RUBRIC}
    assert titles["data_1"] == "Feature expectations are captured in a schema"
    assert titles["infra_6"] == "Models are canaried before serving"
    assert titles["monitor_5"] == "Models are numerically stable"


def test_full_evidence_scores_every_automatable_test(project):
    score = readiness.score_project(project)
    statuses = {t["id"]: t["status"] for t in score["tests"]}
    assert {i for i, s in statuses.items() if s != readiness.AUTOMATED} == NOT_AUTOMATED
    assert all(statuses[i] == readiness.MISSING for i in NOT_AUTOMATED)
    assert score["sections"] == {"data": 4.0, "model": 6.0, "infrastructure": 7.0, "monitoring": 6.0}
    assert score["final_score"] == 4.0


def test_reports_are_written_and_main_prints_the_score(project, capsys):
    assert readiness.main(["--root", str(project)]) == 0
    assert "ML Test Score: 4 (data 4, model 6, infrastructure 7, monitoring 6)" in capsys.readouterr().out
    table = (project / readiness.OUTPUT_MD).read_text()
    rows = ("| data | data_", "| model | model_", "| infrastructure | infra_", "| monitoring | monitor_")
    assert sum(line.startswith(rows) for line in table.splitlines()) == 28
    assert "**Final score: 4**" in table
    record = json.loads((project / readiness.OUTPUT_JSON).read_text())
    assert record["final_score"] == 4.0 and len(record["tests"]) == 28
    assert readiness.main(["--root", str(project), "--fail-under", "6"]) == 1


def test_an_empty_project_scores_zero_and_names_what_is_missing(tmp_path):
    score = readiness.score_project(tmp_path)
    assert score["final_score"] == 0
    assert {t["status"] for t in score["tests"]} == {readiness.MISSING}
    by_id = {t["id"]: t for t in score["tests"]}
    assert "dataset_spec.json not found" in by_id["data_1"]["reason"] and "dvc repro" in by_id["data_1"]["reason"]
    assert "no pytest JUnit XML" in by_id["infra_3"]["reason"]


def test_removing_the_schema_takes_data_1_points(project):
    (project / readiness.SPEC).unlink()
    data_1 = results(project)["data_1"]
    assert data_1["status"] == readiness.MISSING and data_1["points"] == 0
    assert "reports/03_data_selection/dataset_spec.json not found" in data_1["reason"]


def test_training_data_that_breaks_the_schema_fails_data_1(project):
    edit_json(
        project / readiness.PIPELINE,
        lambda r: r.update(schema_violations=[{"column": "age", "check": "in_range(18, 69)", "rows": 3}]),
    )
    data_1 = results(project)["data_1"]
    assert data_1["status"] == readiness.FAILING and data_1["points"] == 0
    assert "age in_range(18, 69) (3 rows)" in data_1["reason"]


def test_a_batch_never_validated_fails_data_1(project):
    edit_json(project / readiness.MONITORING, lambda r: r["batches"][1].pop("schema_violations"))
    data_1 = results(project)["data_1"]
    assert data_1["status"] == readiness.FAILING and "b_002" in data_1["reason"]


def test_a_batch_with_nan_scores_fails_monitor_5(project):
    scores = project / readiness.BATCH_SCORES / "b_002.parquet"
    scores.parent.mkdir(parents=True)
    pd.DataFrame({"score": [0.2, np.nan, np.inf, 0.7]}).to_parquet(scores)
    monitor_5 = results(project)["monitor_5"]
    assert monitor_5["status"] == readiness.FAILING and monitor_5["points"] == 0
    assert "reports/09_monitoring/scores/b_002.parquet: 2 NaN/infinite" in monitor_5["reason"]


def test_a_batch_summary_with_a_nan_score_psi_fails_monitor_5(project):
    edit_json(project / readiness.MONITORING, lambda r: r["batches"][0].update(score_psi=None))
    monitor_5 = results(project)["monitor_5"]
    assert monitor_5["status"] == readiness.FAILING and "b_001" in monitor_5["reason"]


def test_scores_outside_zero_one_fail_monitor_5(project):
    pd.DataFrame({"score": [0.5, 1.5]}).to_parquet(project / readiness.TEST_SCORES)
    assert "1 out-of-range" in results(project)["monitor_5"]["reason"]


def test_schema_violations_without_an_alert_fail_monitor_2(project):
    edit_json(project / readiness.MONITORING, lambda r: r["batches"][1].update(schema_violations=20))
    monitor_2 = results(project)["monitor_2"]
    assert monitor_2["status"] == readiness.FAILING
    assert "b_002: 20 schema violations, 0 missing spikes, no alert" in monitor_2["reason"]


def test_schema_violations_that_raised_an_alert_keep_monitor_2(project):
    def breach(record):
        record["batches"][1]["schema_violations"] = 20
        record["reasons"] = ["b_002: feature_drift: drifted_features = 1, required <= 0"]

    edit_json(project / readiness.MONITORING, breach)
    monitor_2 = results(project)["monitor_2"]
    assert monitor_2["status"] == readiness.AUTOMATED
    assert "b_002 alerted by other gates only" in monitor_2["reason"]


def test_quality_below_the_gate_without_an_alert_fails_monitor_7(project):
    edit_json(project / readiness.MONITORING, lambda r: r["batches"][0].update(roc_auc=0.7))
    monitor_7 = results(project)["monitor_7"]
    assert monitor_7["status"] == readiness.FAILING and "b_001: ROC AUC below 0.8" in monitor_7["reason"]


def test_no_labelled_batch_means_quality_is_not_monitored(project):
    edit_json(project / readiness.MONITORING, lambda r: [b.pop("roc_auc") for b in r["batches"]])
    found = results(project)
    assert found["monitor_7"]["status"] == readiness.MISSING and found["model_2"]["status"] == readiness.MISSING


def test_a_better_baseline_fails_model_5(project):
    edit_json(
        project / readiness.MODELING,
        lambda r: r["baselines_test_metrics"].update(shallow_tree={"roc_auc": 0.95, "expected_cost": 0.2}),
    )
    model_5 = results(project)["model_5"]
    assert model_5["status"] == readiness.FAILING and "shallow_tree ROC AUC 0.95 >= 0.9" in model_5["reason"]


def test_a_feature_without_benefit_fails_data_2(project):
    edit_json(project / readiness.MODELING, lambda r: r["feature_importance"].update(job=-0.001))
    data_2 = results(project)["data_2"]
    assert data_2["status"] == readiness.FAILING and "job" in data_2["reason"]


def test_a_sensitive_feature_used_as_input_fails_data_4(project, spec):
    spec["categorical_features"].append("sex")
    write_json(project / readiness.SPEC, spec)
    data_4 = results(project)["data_4"]
    assert data_4["status"] == readiness.FAILING and "sex" in data_4["reason"]


def test_a_failed_fairness_gate_fails_model_7(project):
    edit_json(
        project / readiness.RELEASE,
        lambda r: r["gates"].__setitem__(
            0, gate_row("demographic_parity[sex]", "demographic_parity_difference[sex]", 0.3, "<= 0.15", passed=False)
        ),
    )
    model_7 = results(project)["model_7"]
    assert model_7["status"] == readiness.FAILING
    assert model_7["reason"] == "demographic_parity[sex]: demographic_parity_difference[sex] = 0.3, required <= 0.15"


def test_a_failed_test_in_the_junit_report_fails_its_rubric_test(project):
    write_junit(
        project / "reports/tests/unit.xml",
        PASSING_TESTS,
        failed=("test_schema", "test_training_like_data_has_no_violations"),
    )
    data_7 = results(project)["data_7"]
    assert data_7["status"] == readiness.FAILING
    assert data_7["reason"] == "tests/test_schema.py::test_training_like_data_has_no_violations failed"


def test_without_junit_reports_the_test_based_checks_are_missing(project):
    (project / "reports/tests/unit.xml").unlink()
    found = results(project)
    for test_id in ("data_7", "infra_1", "infra_2", "infra_3", "infra_7"):
        assert found[test_id]["status"] == readiness.MISSING, test_id
        assert "no pytest JUnit XML in reports/tests/" in found[test_id]["reason"]


def test_a_required_test_that_did_not_run_is_named(project):
    write_junit(project / "reports/tests/unit.xml", {k: v for k, v in PASSING_TESTS.items() if k != "test_modeling"})
    infra_2 = results(project)["infra_2"]
    assert infra_2["status"] == readiness.MISSING and "tests/test_modeling.py did not run" in infra_2["reason"]


def test_junit_files_are_merged(project):
    write_junit(project / "reports/tests/unit.xml", {k: v for k, v in PASSING_TESTS.items() if k != "test_notebooks"})
    assert results(project)["infra_3"]["status"] == readiness.MISSING
    write_junit(project / "reports/tests/notebooks.xml", {"test_notebooks": PASSING_TESTS["test_notebooks"]})
    assert results(project)["infra_3"]["status"] == readiness.AUTOMATED


def test_without_a_canary_record_infra_6_is_missing_and_says_what_is_absent(project):
    edit_json(project / readiness.RETRAINING, lambda r: r.pop("canary"))
    infra_6 = results(project)["infra_6"]
    assert infra_6["status"] == readiness.MISSING and infra_6["reason"].startswith("no canary")


def test_a_promotion_without_a_canary_fails_infra_6(project):
    edit_json(project / readiness.RETRAINING, lambda r: (r.pop("canary"), r.update(promoted=True)))
    infra_6 = results(project)["infra_6"]
    assert infra_6["status"] == readiness.FAILING and "without a canary" in infra_6["reason"]


def test_no_canary_this_run_is_missing_even_when_the_canary_code_is_unit_tested(project):
    # Issue 17: a unit test of the canary is not a canary; with no promotion attempted, no model was canaried
    edit_json(project / readiness.RETRAINING, lambda r: r.pop("canary"))
    canary_test = "test_canary_passes_a_faithful_challenger_and_catches_training_serving_skew"
    write_junit(project / "reports/tests/canary.xml", {"test_deployment": [canary_test]})
    infra_6 = results(project)["infra_6"]
    assert (infra_6["status"], infra_6["points"]) == (readiness.MISSING, 0)
    assert "forced retrain, not better enough" in infra_6["reason"] and "records the canary" in infra_6["reason"]


def test_a_failed_canary_followed_by_a_promotion_fails_infra_6(project):
    edit_json(project / readiness.RETRAINING, lambda r: r.update(canary={"passed": False}, promoted=True))
    assert results(project)["infra_6"]["status"] == readiness.FAILING


def test_a_champion_changed_outside_the_registry_fails_infra_4(project):
    (project / readiness.CHAMPION).write_bytes(b"swapped by hand")
    infra_4 = results(project)["infra_4"]
    assert infra_4["status"] == readiness.FAILING and "differs from the md5 recorded" in infra_4["reason"]


def test_a_champion_approved_by_a_person_after_step_10_s_gates_is_validated(project):
    # Issue 28: step 10 stages a challenger that passes; `approve` installs it with the approver's name
    (project / readiness.CHAMPION).write_bytes(b"the approved challenger")
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].update(
        md5=md5(project / readiness.CHAMPION), version="1.1+retrained.x", approved_by="Ada"))  # fmt: skip
    edit_json(project / readiness.RETRAINING, lambda r: r.update(promoted=False, passed_gates=True,
                                                                  challenger_version="1.1+retrained.x"))  # fmt: skip
    assert results(project)["infra_4"]["status"] == readiness.AUTOMATED
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].update(approved_by=None))  # installed by nobody
    assert results(project)["infra_4"]["status"] == readiness.FAILING


def test_a_lost_history_file_fails_infra_7(project):
    (project / "models/registry/history/001_old.skops").unlink()
    infra_7 = results(project)["infra_7"]
    assert infra_7["status"] == readiness.FAILING and "001_old.skops is gone" in infra_7["reason"]


def test_dependency_notification_is_a_checklist_item_not_a_lock_comparison(project):
    # Issue 17: right after `dvc repro` the files always match dvc.lock; that notifies nobody
    monitor_1 = results(project)["monitor_1"]
    assert (monitor_1["status"], monitor_1["points"]) == (readiness.MISSING, 0)
    assert "scheduled job" in monitor_1["reason"] and "monitor_1" in monitor_1["reason"]
    (project / readiness.CHECKLIST).write_text(
        yaml.safe_dump({"monitor_1": {"done": True, "evidence": "ci.yml schedule job", "reviewer": "Ada"}})
    )
    assert results(project)["monitor_1"]["status"] == readiness.MANUAL


def test_model_age_is_measured_from_the_registry_install_not_the_declared_parameter(project):
    # Issue 17: a champion installed 400 days ago is stale, whatever monitoring.model_age_days says
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].update(installed_at=days_ago(400)))
    edit_json(project / readiness.MONITORING, lambda r: r.update(model_age_days=1))
    monitor_4 = results(project)["monitor_4"]
    assert (monitor_4["status"], monitor_4["points"]) == (readiness.FAILING, 0)
    assert "400 days ago (> 180)" in monitor_4["reason"]


def test_a_registry_without_install_times_leaves_model_age_declared_and_missing(project):
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].pop("installed_at"))
    monitor_4 = results(project)["monitor_4"]
    assert (monitor_4["status"], monitor_4["points"]) == (readiness.MISSING, 0)
    assert "records no install time" in monitor_4["reason"] and "model_age_days = 30" in monitor_4["reason"]


def test_a_changed_source_refuses_the_test_results_until_the_tests_rerun(project):
    # Issue 17: JUnit XML counts only for the code it tested (readiness-evidence check)
    (project / "src/pkg/features.py").write_text("def encode(x):\n    return x + 1\n")
    found = results(project)
    for test_id in ("data_7", "infra_1", "infra_2", "infra_3", "infra_7"):
        assert (found[test_id]["status"], found[test_id]["points"]) == (readiness.MISSING, 0), test_id
        assert "reports/tests/unit.xml tested other code" in found[test_id]["reason"]
    assert "rerun the tests" in found["data_7"]["reason"]
    write_junit(project / "reports/tests/unit.xml", PASSING_TESTS)
    assert results(project)["data_7"]["status"] == readiness.AUTOMATED


def test_test_results_that_do_not_say_which_source_they_tested_are_refused(project):
    write_junit(project / "reports/tests/unit.xml", PASSING_TESTS, stamp=False)
    score = readiness.score_project(project)
    data_7 = {t["id"]: t for t in score["tests"]}["data_7"]
    assert data_7["status"] == readiness.MISSING and "no source_fingerprint property" in data_7["reason"]
    assert score["junit"] == [] and len(score["junit_refused"]) == 1


def test_the_source_fingerprint_ignores_caches_but_not_a_test_change(project):
    before = readiness.source_fingerprint(project)
    (project / "src/pkg/__pycache__").mkdir()
    (project / "src/pkg/__pycache__/features.cpython-312.pyc").write_bytes(b"\0")
    (project / "src/pkg.egg-info").mkdir()
    (project / "src/pkg.egg-info/PKG-INFO").write_text("Name: pkg\n")
    assert readiness.source_fingerprint(project) == before
    (project / "tests").mkdir()
    (project / "tests/test_new.py").write_text("def test_x():\n    pass\n")
    assert readiness.source_fingerprint(project) != before


def test_the_conftest_stamps_the_junit_xml_with_the_source_it_tested(tmp_path, request):
    """tests/conftest.py's hook, run on pytest's own JUnit writer (a nested pytest run costs minutes on a busy machine)."""
    from _pytest.junitxml import LogXML, xml_key

    root = Path(__file__).resolve().parents[2]
    conftest = next(
        p
        for p in request.config.pluginmanager.get_plugins()
        if Path(getattr(p, "__file__", None) or "/").resolve() == root / "tests" / "conftest.py"
    )
    junit = tmp_path / "unit.xml"
    xml = LogXML(str(junit), None)
    conftest.pytest_sessionstart(SimpleNamespace(config=SimpleNamespace(stash={xml_key: xml})))
    xml.pytest_sessionstart()
    xml.pytest_sessionfinish()
    properties, _ = readiness.read_junit_file(junit)
    assert properties[readiness.FINGERPRINT_PROPERTY] == readiness.source_fingerprint(root)


def test_simulated_batches_show_the_monitor_works_but_are_not_production(project):
    # Issue 17: slices of static held-out data are not online data
    edit_json(project / readiness.MONITORING, lambda r: [b.update(injected="none") for b in r["batches"]])
    found = results(project)
    for test_id in ("model_2", "model_4", "monitor_2", "monitor_7"):
        assert (found[test_id]["status"], found[test_id]["points"]) == (readiness.MISSING, 0), test_id
        assert "simulated by step 09" in found[test_id]["reason"], test_id
    assert "the monitor works (2 batches checked" in found["monitor_2"]["reason"]


def test_a_silent_breach_in_a_simulated_batch_still_fails_monitor_2(project):
    edit_json(
        project / readiness.MONITORING,
        lambda r: [b.update(injected="none", schema_violations=5) for b in r["batches"]],
    )
    assert results(project)["monitor_2"]["status"] == readiness.FAILING


def test_feature_cost_is_not_automated_and_a_slow_feature_set_fails_it(project):
    data_3 = results(project)["data_3"]
    assert (data_3["status"], data_3["points"]) == (readiness.MISSING, 0)
    assert "per-feature cost is not measured" in data_3["reason"]
    edit_json(
        project / readiness.DEPLOYMENT,
        lambda r: r.update(gates=[gate_row("latency", "p99_latency_ms", 900.0, "<= 500", False)]),
    )
    assert results(project)["data_3"]["status"] == readiness.FAILING


def test_latency_is_judged_on_the_measured_p99_against_the_budget(project):
    monitor_6 = results(project)["monitor_6"]
    assert monitor_6["status"] == readiness.AUTOMATED and "p99 50 ms (<= 500)" in monitor_6["reason"]
    write_json(project / readiness.LATENCY, {"p99_latency_ms": 900.0})  # the gate row still says passed
    monitor_6 = results(project)["monitor_6"]
    assert monitor_6["status"] == readiness.FAILING and "measured p99 latency 900 ms > 500 ms" in monitor_6["reason"]


def fail_test(module: str, name: str):
    return lambda root: write_junit(root / "reports/tests/unit.xml", PASSING_TESTS, failed=(module, name))


def failed_gate(record: str, key: str, row: dict):
    return lambda root: edit_json(root / record, lambda r: r.update({key: [row]}))


# One piece of evidence per rubric test that says it does not hold (checklist-only tests: the unfilled checklist).
BREAKS = {
    "data_1": lambda root: (root / readiness.SPEC).unlink(),
    "data_2": lambda root: edit_json(root / readiness.MODELING, lambda r: r["feature_importance"].update(job=0.0)),
    "data_3": failed_gate(readiness.DEPLOYMENT, "gates", gate_row("latency", "p99_latency_ms", 900.0, "<= 500", False)),
    "data_4": lambda root: edit_json(root / readiness.SPEC, lambda r: r["categorical_features"].append("sex")),
    "data_5": lambda root: None,
    "data_6": lambda root: None,
    "data_7": fail_test("test_features", "test_split_is_deterministic_with_a_seed"),
    "model_1": lambda root: None,
    "model_2": lambda root: edit_json(
        root / readiness.MONITORING, lambda r: [b.update(roc_auc=0.8) for b in r["batches"]]
    ),
    "model_3": lambda root: edit_json(root / readiness.MODELING, lambda r: r["candidates"][1].update(cv_roc_auc=None)),
    "model_4": lambda root: edit_json(root / readiness.RETRAINING, lambda r: r.pop("challenger")),
    "model_5": lambda root: edit_json(
        root / readiness.MODELING, lambda r: r["baselines_test_metrics"]["majority_class"].update(expected_cost=0.1)
    ),
    "model_6": failed_gate(
        readiness.RELEASE,
        "gates",
        gate_row("equalized_odds[sex]", "equalized_odds_difference[sex]", 0.3, "<= 0.15", False),
    ),
    "model_7": lambda root: edit_json(root / readiness.RELEASE, lambda r: r.update(released=False, reasons=["no"])),
    "infra_1": fail_test("test_bias", "test_resample_indices_is_deterministic_with_a_seed"),
    "infra_2": fail_test("test_modeling", "test_train_and_select_beats_the_baselines"),
    "infra_3": fail_test("test_notebooks", "test_lifecycle_on_a_small_sample"),
    "infra_4": lambda root: (root / readiness.CHAMPION).write_bytes(b"swapped by hand"),
    "infra_5": lambda root: edit_json(root / readiness.DEPLOYMENT, lambda r: r["service"].update(single_status=500)),
    "infra_6": lambda root: edit_json(root / readiness.RETRAINING, lambda r: r.update(canary=None, promoted=True)),
    "infra_7": lambda root: (root / "models/registry/history/001_old.skops").unlink(),
    "monitor_1": lambda root: None,
    "monitor_2": lambda root: edit_json(
        root / readiness.MONITORING, lambda r: r["batches"][0].update(missing_spikes=2)
    ),
    "monitor_3": lambda root: edit_json(root / readiness.DEPLOYMENT, lambda r: r.update(batch_scoring_matches=False)),
    "monitor_4": lambda root: edit_json(
        root / readiness.REGISTRY, lambda r: r["champion"].update(installed_at=days_ago(181))
    ),
    "monitor_5": lambda root: pd.DataFrame({"score": [0.5, np.nan]}).to_parquet(root / readiness.TEST_SCORES),
    "monitor_6": lambda root: write_json(root / readiness.LATENCY, {"p99_latency_ms": 900.0}),
    "monitor_7": lambda root: edit_json(root / readiness.MONITORING, lambda r: r["batches"][1].update(roc_auc=0.79)),
}


def test_every_rubric_test_has_a_break():
    assert set(BREAKS) == {item.id for item in readiness.RUBRIC}


@pytest.mark.parametrize("test_id", sorted(BREAKS))
def test_evidence_that_says_a_test_does_not_hold_scores_zero(project, test_id):
    """Design: every automated readiness point has a test that makes it fail."""
    BREAKS[test_id](project)
    found = results(project)[test_id]
    assert found["points"] == 0 and found["status"] in (readiness.FAILING, readiness.MISSING), found


@pytest.mark.parametrize(
    ("entry", "status", "points"),
    [
        ({"done": False, "evidence": "", "reviewer": ""}, readiness.MISSING, 0.0),
        ({"done": True, "evidence": "  ", "reviewer": "Ada"}, readiness.MISSING, 0.0),
        ({"done": "yes", "evidence": "https://review/1", "reviewer": ""}, readiness.MISSING, 0.0),
        ({"done": True, "evidence": "https://review/1", "reviewer": ""}, readiness.MISSING, 0.0),
        ({"done": True, "evidence": "https://review/1", "reviewer": " TBD "}, readiness.MISSING, 0.0),
        ({"done": True, "evidence": "https://review/1"}, readiness.MISSING, 0.0),
        ({"done": True, "evidence": "https://review/1", "reviewer": "Ada"}, readiness.MANUAL, 0.5),
    ],
)
def test_a_checklist_item_counts_half_only_when_filled(project, entry, status, points):
    (project / readiness.CHECKLIST).write_text(yaml.safe_dump({"model_1": entry}))
    model_1 = results(project)["model_1"]
    assert (model_1["status"], model_1["points"]) == (status, points)
    if status == readiness.MANUAL:
        assert model_1["reason"] == "done by hand: https://review/1 (reviewed by Ada)"
    else:
        assert "model_1" in model_1["reason"] and "not filled in" in model_1["reason"]


def test_a_checklist_item_without_a_reviewer_says_so(project):
    # Issue 28: a manual item counts only with a named reviewer, as the README says
    (project / readiness.CHECKLIST).write_text(
        yaml.safe_dump(
            {
                "model_1": {"done": True, "evidence": "https://review/1", "reviewer": ""},
                "infra_6": {"done": True, "evidence": "canary log 2024-05", "reviewer": "n/a"},
            }
        )
    )
    edit_json(project / readiness.RETRAINING, lambda r: r.pop("canary"))
    found = results(project)
    assert (found["model_1"]["status"], found["model_1"]["points"]) == (readiness.MISSING, 0)
    assert found["model_1"]["reason"].endswith("is not filled in (no `reviewer` naming who checked it)")
    assert (found["infra_6"]["status"], found["infra_6"]["points"]) == (readiness.MISSING, 0)


def test_a_checklist_entry_stands_in_for_missing_evidence_but_not_for_a_failure(project):
    (project / readiness.CHECKLIST).write_text(
        yaml.safe_dump(
            {
                "infra_6": {"done": True, "evidence": "canary log 2024-05", "reviewer": "Ada"},
                "model_5": {"done": True, "evidence": "we looked", "reviewer": "Ada"},
            }
        )
    )
    edit_json(project / readiness.RETRAINING, lambda r: r.pop("canary"))
    edit_json(
        project / readiness.MODELING,
        lambda r: r["baselines_test_metrics"].update(shallow_tree={"roc_auc": 0.95, "expected_cost": 0.2}),
    )
    found = results(project)
    assert (found["infra_6"]["status"], found["infra_6"]["points"]) == (readiness.MANUAL, 0.5)
    assert "automated check: no canary" in found["infra_6"]["reason"]
    assert found["model_5"]["status"] == readiness.FAILING


def test_an_incomplete_record_is_missing_evidence_not_a_crash(project):
    write_json(project / readiness.DEPLOYMENT, {"deployed": True})
    found = results(project)
    assert found["monitor_3"]["status"] == readiness.MISSING
    assert "does not record the batch and HTTP comparisons" in found["monitor_3"]["reason"]
    assert found["monitor_6"]["status"] == readiness.MISSING
    assert "gates" in found["monitor_6"]["reason"]


def test_serving_checks_of_another_artifact_than_the_one_in_service_earn_nothing(project):
    # Issue 28: step 07 exercises models/model.skops; step 08 released (and the registry serves) a mitigated model
    (project / readiness.CHAMPION).write_bytes(b"the mitigated release")
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].update(md5=md5(project / readiness.CHAMPION)))
    edit_json(project / readiness.RELEASE, lambda r: r.update(mitigation="threshold_optimizer"))
    found = results(project)
    for test_id in ("monitor_3", "monitor_6"):
        assert (found[test_id]["status"], found[test_id]["points"]) == (readiness.MISSING, 0), test_id
        reason = found[test_id]["reason"]
        assert "ran on models/model.skops" in reason and "in service, models/registry/champion.skops" in reason
        assert "step 08's release adds threshold_optimizer" in reason
    assert "the release decides with sex (threshold_optimizer)" in found["data_4"]["reason"]


def test_serving_checks_count_when_their_record_names_the_artifact_in_service(project):
    (project / readiness.CHAMPION).write_bytes(b"the mitigated release")
    edit_json(project / readiness.REGISTRY, lambda r: r["champion"].update(md5=md5(project / readiness.CHAMPION)))
    edit_json(project / readiness.DEPLOYMENT, lambda r: r.update(artifact_md5=md5(project / readiness.CHAMPION)))
    found = results(project)
    for test_id in ("monitor_3", "monitor_6"):
        assert found[test_id]["status"] == readiness.AUTOMATED, found[test_id]
        assert "artifact in service (models/registry/champion.skops)" in found[test_id]["reason"]


def test_a_serving_check_that_does_not_name_its_artifact_earns_nothing(project):
    edit_json(project / readiness.DEPLOYMENT, lambda r: r.pop("artifact"))
    monitor_3 = results(project)["monitor_3"]
    assert (monitor_3["status"], monitor_3["points"]) == (readiness.MISSING, 0)
    assert "does not say which artifact the check exercised" in monitor_3["reason"]


def test_reports_of_a_stage_whose_parameters_changed_earn_nothing(project, monkeypatch):
    # Issue 28: the AUC gate raised to 0.95 and parity tightened to 0.05 in params.yaml, without `dvc repro`
    changed = (
        "parameter success_criteria.min_primary_metric",
        "parameter success_criteria.max_demographic_parity_difference",
    )
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: pipeline_state(success_criteria=changed))
    found = results(project)
    for test_id in ("infra_4", "model_7", "model_5", "monitor_7"):
        assert (found[test_id]["status"], found[test_id]["points"]) == (readiness.MISSING, 0), test_id
        reason = found[test_id]["reason"]
        assert "was produced with other parameters/code (stage success_criteria changed: parameter " in reason, test_id
        assert reason.endswith("rerun `dvc repro`"), test_id
    assert "reports/06_modeling/modeling.json was produced" in found["infra_4"]["reason"]
    assert "success_criteria.max_demographic_parity_difference; modeling wrote it" in found["infra_4"]["reason"]
    # reports of stages that do not rest on step 02, and test results of the same code, still count
    for test_id in ("data_4", "data_7", "infra_2"):
        assert found[test_id]["status"] == readiness.AUTOMATED, found[test_id]
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: pipeline_state())
    assert {results(project)[i]["status"] for i in ("infra_4", "model_7")} == {readiness.AUTOMATED}


def test_a_stale_report_can_be_stood_in_for_by_a_reviewed_checklist_entry(project, monkeypatch):
    monkeypatch.setattr(
        readiness, "read_pipeline_state", lambda root: pipeline_state(fairness_assessment=("src/pkg modified",))
    )
    (project / readiness.CHECKLIST).write_text(
        yaml.safe_dump({"model_7": {"done": True, "evidence": "fairness review 2024-05", "reviewer": "Ada"}})
    )
    model_7 = results(project)["model_7"]
    assert (model_7["status"], model_7["points"]) == (readiness.MANUAL, 0.5)
    assert "stage fairness_assessment changed: src/pkg modified" in model_7["reason"]


def test_an_edited_report_or_a_report_no_stage_writes_earns_nothing(project, monkeypatch):
    edited = ("output reports/08_fairness_assessment modified since it ran",)
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: pipeline_state(fairness_assessment=edited))
    assert "reports/08_fairness_assessment modified since it ran" in results(project)["model_7"]["reason"]
    state = pipeline_state()
    state.outs.pop("fairness_assessment")
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: state)
    model_7 = results(project)["model_7"]
    assert (model_7["status"], model_7["points"]) == (readiness.MISSING, 0)
    assert "no stage of dvc.yaml writes reports/08_fairness_assessment/release_decision.json" in model_7["reason"]


def test_without_dvc_no_report_can_be_shown_current(project, monkeypatch):
    state = read_pipeline_state(project)  # the fabricated project has no .dvc/ and no dvc.yaml
    assert state.error and "not a DVC project" in state.error
    monkeypatch.setattr(readiness, "read_pipeline_state", lambda root: state)
    found = results(project)
    assert (found["infra_4"]["status"], found["infra_4"]["points"]) == (readiness.MISSING, 0)
    reason = found["infra_4"]["reason"]
    assert "cannot tell which parameters and code produced reports/06_modeling/modeling.json" in reason
    assert found["data_7"]["status"] == readiness.AUTOMATED  # test results rest on the source fingerprint


@pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")  # DVC's own use of pygtrie
def test_dvc_says_which_reports_their_stages_would_no_longer_write_without_git(tmp_path, monkeypatch):
    """read_pipeline_state on a real DVC project whose git is gone: a changed parameter, an edited report."""
    from dvc.repo import Repo

    root = tmp_path / "copy"
    root.mkdir()
    Repo.init(str(root), no_scm=True).close()
    (root / ".dvc/config").write_text("[core]\n    autostage = true\n")  # as `dvc init` leaves it in a git repo
    params = {"success_criteria": {"min_primary_metric": 0.85, "max_gap": 0.15}, "modeling": {"seed": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    write = f"{sys.executable} -c \"import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(exist_ok=True); p.write_text('0')\""

    def stage(report: str, params: str, deps: tuple[str, ...] = (), persist: bool = False) -> dict:
        folder = report.split("/")[0]
        out = {folder: {"persist": True}} if persist else folder
        return {"cmd": f"{write} {report}", "deps": list(deps), "params": [params], "outs": [out]}

    stages = {
        "success_criteria": stage("criteria/criteria.json", "success_criteria"),
        "modeling": stage("modeling/modeling.json", "modeling", deps=("criteria/criteria.json",)),
        "registry": stage("registry/registry.json", "modeling", persist=True),
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    monkeypatch.chdir(root)  # `dvc repro` reproduces the dvc.yaml of the working directory
    with Repo(str(root), config={"core": {"no_scm": True}}) as repo:
        repo.reproduce()

    state = read_pipeline_state(root)
    assert state.error is None and list(state.outs) == ["success_criteria", "modeling", "registry"]
    assert state.upstream["modeling"] == {"success_criteria"} and not any(state.changes.values())
    assert state.writer("modeling/modeling.json") == "modeling" and state.stale_reason("modeling/modeling.json") is None

    params["success_criteria"]["min_primary_metric"] = 0.95
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "registry/registry.json").write_text('{"champion": "rolled back"}')  # persistent: changed on purpose
    state = read_pipeline_state(root)
    assert state.changes == {
        "success_criteria": ("parameter success_criteria.min_primary_metric",),
        "modeling": (),
        "registry": (),
    }
    assert state.stale_reason("modeling/modeling.json") == (
        "modeling/modeling.json was produced with other parameters/code (stage success_criteria changed: parameter "
        "success_criteria.min_primary_metric; modeling wrote it): rerun `dvc repro`"
    )

    params["success_criteria"]["min_primary_metric"] = 0.85
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "modeling/modeling.json").write_text('{"edited": "by hand"}')
    state = read_pipeline_state(root)
    assert state.changes["modeling"] == ("output modeling modified since it ran",)
    assert state.stale_reason("criteria/criteria.json") is None


def test_skipped_tests_of_a_module_are_tolerated_but_a_skipped_named_test_is_not(project):
    junit = project / "reports/tests/unit.xml"
    write_junit(junit, PASSING_TESTS | {"test_data": [*PASSING_TESTS["test_data"], "test_needs_network"]})
    text = junit.read_text().replace(
        'name="test_needs_network" time="0.1">', 'name="test_needs_network" time="0.1"><skipped message="offline"/>'
    )
    text = text.replace(
        'name="test_rollback_restores_the_previous_champion" time="0.1">',
        'name="test_rollback_restores_the_previous_champion" time="0.1"><skipped message="no"/>',
    )
    junit.write_text(text)
    found = results(project)
    assert found["data_7"]["status"] == readiness.AUTOMATED
    assert found["infra_7"]["status"] == readiness.MISSING
    assert "test_rollback_restores_the_previous_champion was skipped" in found["infra_7"]["reason"]
