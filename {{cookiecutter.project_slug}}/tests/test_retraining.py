"""Step 10's decisions: triggers, the challenger's data, the promotion gates and the verdict."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import business, config, gates, mitigation, modeling, project, retraining, scoring
from {{ cookiecutter.package_name }}.runtime import run_step

CRITERIA = {
    "primary_metric": "roc_auc",
    "min_primary_metric": 0.8,
    "min_cost_reduction_vs_baseline": 0.1,
    "max_demographic_parity_difference": 0.15,
    "max_equalized_odds_difference": 0.15,
    "max_batch_latency_ms": 1000.0,
    "psi_alert": 0.25,
    "max_drifted_features": 0,
    "max_staleness_days": 90.0,
}
SUCCESS = {"criteria": CRITERIA, "gates": gates.build_gates(CRITERIA, ["sex"])}


def retraining_config(**changes) -> config.Retraining:
    root = Path(__file__).resolve().parents[1]
    given = run_step.stage_parameters(run_step.load_stage(root, "retraining"), project.load_params(root))
    return config.Retraining.from_cell(given).model_copy(update=changes)


def metrics(roc_auc: float, cost_reduction: float = 0.3, parity: float = 0.05) -> dict:
    return {
        "roc_auc": roc_auc,
        "expected_cost": 0.3,
        "cost_reduction_vs_baseline": cost_reduction,
        "demographic_parity_difference[sex]": parity,
        "equalized_odds_difference[sex]": 0.05,
    }


def test_triggers_fire_on_monitoring_schedule_or_force():
    cfg = retraining_config(trigger_on_monitoring=True, trigger_on_schedule=True, force=False)
    fresh = {"retrain_recommended": False, "model_age_days": 30}
    assert retraining.triggers(cfg, fresh, SUCCESS) == {"monitoring": False, "schedule": False, "forced": False}
    alarmed = {"retrain_recommended": True, "model_age_days": 120}
    assert retraining.triggers(cfg, alarmed, SUCCESS) == {"monitoring": True, "schedule": True, "forced": False}
    off = retraining_config(trigger_on_monitoring=False, trigger_on_schedule=False, force=True)
    assert retraining.triggers(off, alarmed, SUCCESS) == {"monitoring": False, "schedule": False, "forced": True}
    assert retraining.staleness_limit(SUCCESS) == 90


def test_blocker_says_why_no_challenger_is_trained():
    fired, quiet, some = {"monitoring": True}, {"monitoring": False}, [pd.DataFrame()]
    assert "no trigger fired" in retraining.blocker(quiet, False, [])
    assert "no champion in service" in retraining.blocker(fired, False, some)
    assert "no labelled production batch" in retraining.blocker(fired, True, [])
    assert retraining.blocker(fired, True, some) is None


def test_labelled_batches_need_enough_labels_of_both_classes(tmp_path, make_frame):
    batch = make_frame(n=200, seed=1).assign(income=lambda f: (f["income"] == ">50K").astype(float))
    batch.to_parquet(tmp_path / "2026-02.parquet")
    batch.assign(income=np.nan).to_parquet(tmp_path / "2026-01.parquet")  # no labels yet
    batch.assign(income=0.0).to_parquet(tmp_path / "2026-03.parquet")  # one class
    batch.head(40).to_parquet(tmp_path / "2026-04.parquet")  # too few
    batch.drop(columns="income").to_parquet(tmp_path / "2026-05.parquet")
    batch.tail(60).to_parquet(tmp_path / "2026-06.parquet")
    found = retraining.labelled_batches(tmp_path, "income")
    assert [len(b) for b in found] == [200, 60]
    assert retraining.labelled_batches(tmp_path / "absent", "income") == []


def test_the_challenger_learns_from_every_labelled_batch_but_the_one_it_is_judged_on(make_frame):
    reference = make_frame(n=100, seed=0)
    first = make_frame(n=30, seed=1).assign(extra=1)
    first.loc[:4, "income"] = None
    last = make_frame(n=20, seed=2)
    last.loc[:2, "income"] = None
    train, recent = retraining.training_data(reference, [first, last], "income")
    assert len(train) == 100 + 25 and list(train.columns) == list(reference.columns)
    assert len(recent) == 17 and recent["income"].notna().all()
    assert retraining.challenger_version("0.1.0+3fa4ccaa", "b3782da4" + "0" * 24) == "0.1.0+retrained.b3782da4"


def test_promotion_gates_add_no_regression_and_leave_staleness_to_the_triggers():
    cfg = retraining_config(max_regression=0.01)
    table = retraining.promotion_gates({"champion": metrics(0.90), "challenger": metrics(0.895)}, SUCCESS, cfg)
    assert "staleness" not in set(table["gate"]) and table["passed"].all()
    assert table.iloc[-1]["gate"] == "no_regression" and table.iloc[-1]["value"] == pytest.approx(0.005)
    worse = retraining.promotion_gates(
        {"champion": metrics(0.90), "challenger": metrics(0.85, parity=0.2)}, SUCCESS, cfg
    )
    assert gates.failures(worse) == [
        "demographic_parity[sex]: demographic_parity_difference[sex] = 0.2, required <= 0.15",
        "no_regression: roc_auc loss vs champion = 0.05, required <= 0.01",
    ]


@pytest.fixture
def challenge(pipeline, spec, metadata, make_frame):
    result = modeling.TrainingResult(
        name="logistic_regression",
        model=pipeline,
        threshold=0.5,
        params={"C": 1.0},
        candidates=pd.DataFrame(),
        validation_scores=np.array([]),
    )
    champion = scoring.make_bundle(pipeline, 0.5, metadata)
    train, validation = make_frame(n=300, seed=1), make_frame(n=200, seed=2)
    recent = make_frame(n=400, seed=3).assign(income=lambda f: (f["income"] == ">50K").astype(int))
    cfg = retraining_config(min_group_size=30)
    built, notes = retraining.build_challenger(
        result, champion, (train, validation, recent), spec, SUCCESS, cfg, business.Costs(1.0, 5.0), "1.0.0+retrained.x"
    )
    return built, notes, cfg


def test_build_challenger_and_compare_on_the_same_recent_batch(challenge, spec):
    built, notes, cfg = challenge
    assert notes == [] and built.treatment is None  # the champion was not mitigated: neither is the challenger
    meta = built.challenger["metadata"]
    assert meta["version"] == "1.0.0+retrained.x" and meta["train_rows"] == 300 and meta["params"] == {"C": 1.0}
    charter = {"cost_false_positive": 1.0, "cost_false_negative": 5.0, "baseline_expected_cost": 0.8}
    compared, scores = retraining.compare(built, spec, charter, cfg)
    assert compared["champion"] == compared["challenger"]  # the same model on the same rows
    assert compared["challenger"]["cost_reduction_vs_baseline"] == pytest.approx(
        business.cost_reduction(compared["challenger"]["expected_cost"], 0.8)
    )
    assert "demographic_parity_difference[sex]" in compared["challenger"]
    np.testing.assert_array_equal(scores["champion"], scores["challenger"])
    assert len(scores["challenger"]) == 400


def test_decide_promotes_only_after_every_gate_and_a_passed_canary(challenge):
    built = challenge[0]
    compared = {"champion": metrics(0.90), "challenger": metrics(0.91)}
    table = retraining.promotion_gates(compared, SUCCESS, retraining_config())
    passed = {"passed": True, "failed_checks": [], "summary": "all served"}
    promoted = retraining.decide(built, compared, retraining.with_canary(table, passed), passed)
    assert promoted["promoted"] is True and "passed its canary" in promoted["reasons"][0]
    assert promoted["gates"][-1]["gate"] == "canary" and promoted["training_rows"] == 300
    failed = {"passed": False, "failed_checks": ["serving nothing fails"], "summary": "0 served"}
    refused = retraining.decide(built, compared, retraining.with_canary(table, failed), failed)
    assert refused["promoted"] is False
    assert refused["reasons"] == ["canary: failed canary checks = 1, required == 0", "serving nothing fails"]
    without = retraining.decide(built, compared, table, None)  # offline gates passed but no canary ran
    assert without["promoted"] is False and "canary" in without["reasons"][0]
    worse = {"champion": metrics(0.90), "challenger": metrics(0.80)}
    offline = retraining.decide(built, worse, retraining.promotion_gates(worse, SUCCESS, retraining_config()), None)
    assert offline["promoted"] is False and all(not r.startswith("canary") for r in offline["reasons"])
    assert retraining.with_canary(table, None) is table
    assert retraining.install_reason({"monitoring": True, "schedule": False, "forced": True}) == (
        "promoted by step 10 (trigger: monitoring, forced)"
    )


def test_a_mitigated_champion_s_challenger_gets_the_same_treatment(pipeline, spec, metadata, make_frame):
    result = modeling.TrainingResult(
        name="logistic_regression",
        model=pipeline,
        threshold=0.5,
        params={},
        candidates=pd.DataFrame(),
        validation_scores=np.array([]),
    )
    meta = {
        **metadata,
        "mitigation": "threshold_optimizer",
        "mitigation_features": ["sex"],
        "needs_sensitive_features": True,
    }
    champion = scoring.make_bundle(pipeline, 0.5, meta | {"mitigation_constraint": "demographic_parity"})
    validation = make_frame(n=400, seed=2).assign(income=lambda f: (f["income"] == ">50K").astype(int))
    cfg = retraining_config(min_group_size=30, mitigation_max_rows=100)
    built, notes = retraining.build_challenger(
        result, champion, (validation, validation, validation), spec, SUCCESS, cfg, business.Costs(1.0, 5.0), "v"
    )
    assert built.treatment == "threshold_optimizer"
    assert built.challenger["metadata"]["mitigation_constraint"] in ("demographic_parity", "equalized_odds")
    assert built.challenger["model"] is not pipeline  # the mitigated model, not the plain one
    expected = mitigation.sample_note(len(validation), 100, "the recent batch")
    assert expected and notes == [expected]  # fitted on a sample, and the notebook says so
    decisions = scoring.score(built.challenger, validation, allow_extra=True)["decision"]
    assert set(decisions) <= {0, 1}
