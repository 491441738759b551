import math

import pytest

from {{ cookiecutter.package_name }} import gates

CRITERIA = {
    "primary_metric": "roc_auc",
    "min_primary_metric": 0.85,
    "min_cost_reduction_vs_baseline": 0.1,
    "max_demographic_parity_difference": 0.15,
    "max_equalized_odds_difference": 0.2,
    "max_batch_latency_ms": 500,
    "psi_alert": 0.25,
    "max_drifted_features": 0,
    "max_staleness_days": 180,
}


@pytest.fixture
def some_gates():
    return [
        gates.gate("quality", "test_roc_auc", ">=", 0.85, ["modeling"], "good enough"),
        gates.gate("latency", "p99_latency_ms", "<=", 500, ["deployment"], "fast enough"),
    ]


def test_evaluate_passes_and_fails(some_gates):
    table = gates.evaluate(some_gates, {"test_roc_auc": 0.90, "p99_latency_ms": 800.0})
    assert table["gate"].tolist() == ["quality", "latency"]
    assert table["passed"].tolist() == [True, False]
    assert table["value"].tolist() == [0.90, 800.0]
    assert table["rule"].tolist() == [">= 0.85", "<= 500"]
    table = gates.evaluate(some_gates, {"test_roc_auc": 0.80, "p99_latency_ms": 20})
    assert table["passed"].tolist() == [False, True]


def test_evaluate_threshold_itself_passes(some_gates):
    table = gates.evaluate(some_gates, {"test_roc_auc": 0.85, "p99_latency_ms": 500})
    assert table["passed"].all()


@pytest.mark.parametrize("observed", [{}, {"test_roc_auc": None}, {"test_roc_auc": math.nan}, {"other": 1.0}])
def test_a_gate_whose_metric_is_missing_fails(some_gates, observed):
    table = gates.evaluate(some_gates[:1], observed)
    row = table.iloc[0]
    assert not row["passed"]
    assert row["value"] is None or math.isnan(row["value"])
    assert row["note"] == "not measured"
    assert gates.failures(table) == ["quality: test_roc_auc = not measured, required >= 0.85"]


def test_failures_explains_every_failed_gate(some_gates):
    table = gates.evaluate(some_gates, {"test_roc_auc": 0.8, "p99_latency_ms": 612.5})
    assert gates.failures(table) == [
        "quality: test_roc_auc = 0.8, required >= 0.85",
        "latency: p99_latency_ms = 612.5, required <= 500",
    ]
    assert gates.failures(gates.evaluate(some_gates, {"test_roc_auc": 0.9, "p99_latency_ms": 1})) == []


def test_gate_rejects_an_unknown_operator():
    with pytest.raises(ValueError, match="operator"):
        gates.gate("x", "m", ">", 1, [], "")


def test_build_gates_covers_every_sensitive_feature_and_stage():
    built = gates.build_gates(CRITERIA, ["sex", "race"])
    names = [g["name"] for g in built]
    assert len(names) == len(set(names))
    for feature in ("sex", "race"):
        assert f"demographic_parity[{feature}]" in names and f"equalized_odds[{feature}]" in names
    by_name = {g["name"]: g for g in built}
    assert by_name["model_quality"]["metric"] == "test_roc_auc"
    assert by_name["model_quality"]["threshold"] == 0.85
    assert by_name["equalized_odds[race]"]["threshold"] == 0.2
    assert by_name["equalized_odds[race]"]["metric"] == "equalized_odds_difference[race]"
    assert [g["name"] for g in gates.gates_for(built, "deployment")] == ["latency"]
    assert "feature_drift" in [g["name"] for g in gates.gates_for(built, "monitoring")]
    assert "latency" not in [g["name"] for g in gates.gates_for(built, "monitoring")]


def test_a_test_roc_auc_too_good_to_be_true_is_a_leakage_alarm():
    built = gates.build_gates({**CRITERIA, "max_plausible_roc_auc": 0.99}, ["sex"])
    alarm = [g for g in built if g["name"] == "leakage_alarm"]
    assert alarm and alarm[0]["metric"] == "test_roc_auc" and alarm[0]["enforced_by"] == ["modeling", "retraining"]
    table = gates.evaluate(alarm, {"test_roc_auc": 0.998})
    assert gates.failures(table) == ["leakage_alarm: test_roc_auc = 0.998, required <= 0.99"]
    assert gates.evaluate(alarm, {"test_roc_auc": 0.93})["passed"].all()
