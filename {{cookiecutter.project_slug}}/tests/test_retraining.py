"""Step 10's decisions: triggers, the challenger's data, the promotion gates and the verdict."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import business, config, gates, mitigation, modeling, project, retraining, scoring
from {{ cookiecutter.package_name }}.intervals import Estimate
from {{ cookiecutter.package_name }}.runtime import run_step

CRITERIA = {
    "primary_metric": "roc_auc",
    "max_quality_loss_vs_baseline": 0.01,
    "min_cost_reduction_vs_baseline": 0.1,
    "max_plausible_roc_auc": 0.99,
    "max_demographic_parity_difference": 0.15,
    "max_equalized_odds_difference": 0.15,
    "max_batch_latency_ms": 1000.0,
    "psi_alert": 0.25,
    "max_drifted_features": 0,
    "max_staleness_days": 90.0,
    "confidence": 0.95,
    "decide_on": "interval",
    "fairness_power": 0.8,
}
SUCCESS = {"criteria": CRITERIA, "gates": gates.build_gates(CRITERIA, ["sex"])}
CHARTER = {
    "cost_false_positive": 1.0,
    "cost_false_negative": 5.0,
    "baseline_true_positive_rate": 0.5,
    "baseline_false_positive_rate": 0.2,
    "baseline_expected_cost": 0.8,
}


def retraining_config(**changes) -> config.Retraining:
    root = Path(__file__).resolve().parents[1]
    given = run_step.stage_parameters(run_step.load_stage(root, "retraining"), project.load_params(root))
    return config.Retraining.from_cell(given).model_copy(update=changes)


def test_triggers_fire_on_monitoring_schedule_or_force():
    cfg = retraining_config(trigger_on_monitoring=True, trigger_on_schedule=True, force=False)
    fresh = {"retrain_recommended": False, "model_age_days": 30}
    assert retraining.triggers(cfg, fresh, SUCCESS) == {"monitoring": False, "schedule": False, "forced": False}
    alarmed = {"retrain_recommended": True, "model_age_days": 120}
    assert retraining.triggers(cfg, alarmed, SUCCESS) == {"monitoring": True, "schedule": True, "forced": False}
    off = retraining_config(trigger_on_monitoring=False, trigger_on_schedule=False, force=True)
    assert retraining.triggers(off, alarmed, SUCCESS) == {"monitoring": False, "schedule": False, "forced": True}
    assert retraining.staleness_limit(SUCCESS) == 90


def windows(make_frame, sizes, seed=0):
    return [
        make_frame(n=n, seed=seed + i).assign(income=lambda f: (f["income"] == ">50K").astype(int))
        for i, n in enumerate(sizes)
    ]


def far_away(make_frame):
    """Test rows no window can share (hours no real row has)."""
    return make_frame(n=50, seed=99).assign(hours=1000.0)


def test_blocker_says_why_no_challenger_is_trained(make_frame):
    fired, quiet = {"monitoring": True}, {"monitoring": False}
    test = make_frame(n=50, seed=99)
    enough = retraining.pool(windows(make_frame, [300, 300]), test, ["age", "income"], 500)
    few = retraining.pool(windows(make_frame, [100, 100]), test, ["age", "income"], 500)
    assert "no trigger fired" in retraining.blocker(quiet, False, None, 500)
    assert "no champion in service" in retraining.blocker(fired, False, enough, 500)
    assert "no labelled production batch" in retraining.blocker(fired, True, None, 500)
    assert "too few outcomes to judge: 200 labelled" in retraining.blocker(fired, True, few, 500)
    assert retraining.blocker(fired, True, enough, 500) is None


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


def test_the_newest_windows_are_pooled_to_judge_and_the_older_ones_learnt_from(make_frame):
    reference = make_frame(n=100, seed=0)
    columns = ["age", "hours", "job", "sex", "income"]
    found = retraining.pool(windows(make_frame, [400, 300, 200, 150], seed=10), far_away(make_frame), columns, 300)
    assert found.windows == 2 and len(found.judged) == 350  # the two newest: 150 + 200 reach 300
    assert [len(b) for b in found.learn] == [400, 300] and found.labelled == 1050 and found.test_rows == 0
    train = retraining.training_data(reference, found)
    assert len(train) == 100 + 700 and list(train.columns) == list(reference.columns)
    assert retraining.challenger_version("0.1.0+3fa4ccaa", "b3782da4" + "0" * 24) == "0.1.0+retrained.b3782da4"


def test_rows_of_the_test_split_never_reach_a_training_set(make_frame):
    """The issue's case: step 09 simulated its batches from the test split, so the windows are test rows."""
    test = make_frame(n=600, seed=5).assign(income=lambda f: (f["income"] == ">50K").astype(int))
    batches = [test.iloc[:200].reset_index(drop=True), test.iloc[200:400].reset_index(drop=True), test.iloc[400:]]
    columns = [*test.columns]
    found = retraining.pool(batches, test, columns, 200)
    assert found.test_rows == 600 and sum(len(b) for b in found.learn) == 0
    train = retraining.training_data(make_frame(n=100, seed=0), found)
    assert len(train) == 100  # the training split alone
    other = retraining.pool(windows(make_frame, [200, 200], seed=20), far_away(make_frame), columns, 200)
    assert other.test_rows == 0 and sum(len(b) for b in other.learn) == 200


def paired(quality, low, high, cost=(0.0, -0.01, 0.01)):
    return {"quality_vs_champion": Estimate(quality, low, high), "cost_reduction_vs_champion": Estimate(*cost)}


def test_promotion_is_non_inferiority_on_the_paired_intervals():
    cfg = retraining_config(max_regression=0.01, max_cost_increase=0.02, min_gain=0.0)
    same = retraining.promotion_gates(paired(0.0, -0.006, 0.006), cfg)
    assert same["gate"].tolist() == ["no_regression", "no_cost_increase"] and same["passed"].all()
    # the case: a difference known only to +-0.02 on 50 labels cannot show non-inferiority
    noisy = retraining.promotion_gates(paired(0.002, -0.018, 0.022), cfg)
    assert noisy["verdict"].tolist() == ["inconclusive", "pass"]
    worse = retraining.promotion_gates(paired(-0.03, -0.04, -0.02), cfg)
    assert worse["verdict"].iloc[0] == "fail"
    gain = retraining.promotion_gates(paired(0.01, 0.002, 0.018), retraining_config(min_gain=0.005))
    assert gain["gate"].tolist()[-1] == "gain" and gain["verdict"].iloc[-1] == "inconclusive"


def test_the_power_note_says_what_the_pool_can_tell():
    cfg = retraining_config(max_regression=0.01)
    wide = retraining.power_note(paired(0.0, -0.02, 0.02), 500, cfg, 0.95)
    tight = retraining.power_note(paired(0.0, -0.004, 0.004), 5000, cfg, 0.95)
    chance = lambda text: [int(p.split("%")[0]) for p in text.split("with probability ")[1:]]  # noqa: E731
    assert chance(wide)[0] < 50 < 90 < chance(tight)[0]
    # the cost gate is stated too, with the margin the pool would need: +-0.01 (se 0.0051) needs 0.0143 at 80 %
    assert chance(tight)[1] > 90 and "`max_cost_increase` = 0.02" in tight and "a margin of 0.0143" in tight


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


def test_build_challenger_and_compare_both_on_the_same_rows_by_the_same_gates(challenge, spec, pipeline):
    built, notes, cfg = challenge
    assert notes == [] and built.treatment is None  # the champion was not mitigated: neither is the challenger
    meta = built.challenger["metadata"]
    assert meta["version"] == "1.0.0+retrained.x" and meta["train_rows"] == 300 and meta["params"] == {"C": 1.0}
    baseline = modeling.Scored(np.full(len(built.recent), 0.3), np.ones(len(built.recent), dtype=int))
    found = retraining.compare(built, spec, CHARTER, SUCCESS, baseline, cfg)
    assert pd.Series(found.metrics["champion"]).equals(pd.Series(found.metrics["challenger"]))  # the same model, rows
    np.testing.assert_array_equal(found.scores["champion"], found.scores["challenger"])
    assert found.estimates["challenger"]["quality_vs_champion"].value == 0.0
    champion_gates, challenger_gates = found.tables["champion"], found.tables["challenger"]
    fair = ["demographic_parity[sex]", "equalized_odds[sex]"]
    assert {"model_quality", "cost_vs_baseline", "leakage_alarm", *fair} <= set(champion_gates["gate"])
    # the challenger is held to the champion (non-inferiority), fairness and leakage, not to the baseline's bars
    assert challenger_gates["gate"].tolist() == ["leakage_alarm", *fair, "no_regression", "no_cost_increase"]
    assert "quality_vs_baseline" in found.estimates["challenger"]  # measured and recorded all the same
    assert {"low", "high", "verdict"} <= set(challenger_gates.columns)


def test_decide_passes_only_after_every_gate_and_a_passed_canary(challenge, spec):
    built, _, cfg = challenge
    baseline = modeling.Scored(np.full(len(built.recent), 0.3), np.ones(len(built.recent), dtype=int))
    found = retraining.compare(built, spec, CHARTER, SUCCESS, baseline, cfg)
    good = pd.DataFrame(
        [
            {
                "gate": "g",
                "metric": "m",
                "rule": ">= 0",
                "value": 1.0,
                "low": 1.0,
                "high": 1.0,
                "verdict": "pass",
                "passed": True,
                "note": "",
            }
        ]
    )
    found.tables = {"champion": good, "challenger": good}
    passed = {"passed": True, "failed_checks": [], "summary": "all served"}
    ok = retraining.decide(built, found, passed)
    assert ok["passed_gates"] is True and "passed its canary" in ok["reasons"][0]
    assert ok["gates"][-1]["gate"] == "canary" and ok["training_rows"] == 300 and ok["judged_rows"] == 400
    assert ok["evidence"] == "pass" and ok["champion_failing"] == []
    failed = {"passed": False, "failed_checks": ["serving nothing fails"], "summary": "0 served"}
    refused = retraining.decide(built, found, failed)
    assert refused["passed_gates"] is False
    assert refused["reasons"] == ["canary: failed canary checks = 1, required == 0", "serving nothing fails"]
    without = retraining.decide(built, found, None)  # offline gates passed but no canary ran
    assert without["passed_gates"] is False and "canary" in without["reasons"][0]
    unsure = good.assign(verdict="inconclusive", passed=False, low=-1.0)
    found.tables = {"champion": good.assign(verdict="fail", passed=False, high=-1.0), "challenger": unsure}
    doubtful = retraining.decide(built, found, None)
    assert doubtful["evidence"] == "inconclusive" and doubtful["reasons"][0].startswith("g: inconclusive")
    assert doubtful["champion_failing"]  # the model in service fails on evidence: said whatever the challenger does
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
    cfg = retraining_config(min_group_size=5, mitigation_max_rows=100)  # a sample of 100 rows: ~15 positives
    built, notes = retraining.build_challenger(
        result, champion, (validation, validation, validation), spec, SUCCESS, cfg, business.Costs(1.0, 5.0), "v"
    )
    assert built.treatment == "threshold_optimizer"
    assert built.challenger["metadata"]["mitigation_constraint"] in ("demographic_parity", "equalized_odds")
    assert built.challenger["model"] is not pipeline  # the mitigated model, not the plain one
    expected = mitigation.sample_note(len(validation), 100, "the judged rows")
    assert expected and notes == [expected]  # fitted on a sample, and the notebook says so
    decisions = scoring.score(built.challenger, validation, allow_extra=True)["decision"]
    assert set(decisions) <= {0, 1}
