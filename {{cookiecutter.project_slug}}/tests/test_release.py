import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import business, gates, release

PARITY = {
    "name": "demographic_parity[sex]",
    "metric": "demographic_parity_difference[sex]",
    "operator": "<=",
    "threshold": 0.15,
    "enforced_by": ["fairness_assessment"],
}
CRITERIA = {
    "criteria": {"primary_metric": "roc_auc"},
    "gates": [
        gates.gate("model_quality", "test_roc_auc", ">=", 0.8, ["modeling"], ""),
        gates.gate("cost_vs_baseline", "cost_reduction_vs_baseline", ">=", 0.1, ["modeling"], ""),
        {**PARITY, "why": ""},
    ],
}
DEPLOYED = {"deployed": True, "reasons": []}


def tradeoff(**rows) -> pd.DataFrame:
    """A trade-off table from ``name=(passes, expected_cost, max_dp_difference)``."""
    frame = pd.DataFrame(
        [
            {"mitigation": name, "passes_fairness_gates": p, "expected_cost": c, "max_dp_difference": dp}
            for name, (p, c, dp) in rows.items()
        ]
    )
    return frame.set_index("mitigation")


def test_auto_releases_the_cheapest_option_that_passes():
    table = tradeoff(
        none=(False, 0.2, 0.25), threshold_optimizer=(True, 0.3, 0.10), exponentiated_gradient=(True, 0.5, 0.05)
    )
    assert release.choose(table, "auto") == "threshold_optimizer"
    assert release.choose(tradeoff(none=(True, 0.2, 0.1), threshold_optimizer=(True, 0.3, 0.05)), "auto") == "none"


def test_auto_without_a_passing_option_takes_the_smallest_parity_gap():
    table = tradeoff(
        none=(False, 0.2, 0.25), threshold_optimizer=(False, 0.3, 0.18), exponentiated_gradient=(False, 0.5, np.nan)
    )
    assert release.choose(table, "auto") == "threshold_optimizer"


def test_a_named_mitigation_is_released_when_it_was_fitted_else_none():
    table = tradeoff(none=(False, 0.2, 0.25), exponentiated_gradient=(True, 0.5, 0.05))
    assert release.choose(table, "exponentiated_gradient") == "exponentiated_gradient"
    assert release.choose(table, "threshold_optimizer") == "none"
    assert release.choose(table, "none") == "none"


def test_the_tradeoff_row_is_the_options_decision_metrics_and_gate():
    y = np.array([1, 1, 0, 0])
    decisions = np.array([1, 0, 1, 0])
    gaps = {"demographic_parity_difference[sex]": 0.2, "equalized_odds_difference[sex]": 0.1}
    row = release.tradeoff_row(y, np.array([0.9, 0.4, 0.6, 0.1]), decisions, gaps, [PARITY], business.Costs(1.0, 3.0))
    assert row["accuracy"] == 0.5 and row["selection_rate"] == 0.5
    assert row["expected_cost"] == pytest.approx((1 * 1.0 + 1 * 3.0) / 4)
    assert row["passes_fairness_gates"] is False
    assert (row["max_dp_difference"], row["max_eo_difference"]) == (0.2, 0.1)


def test_the_verdict_holds_every_gate_and_step_07s_reasons():
    fairness_table = gates.evaluate([PARITY], {"demographic_parity_difference[sex]": 0.1})
    quality = release.quality_gates(CRITERIA, 0.9, expected_cost=0.6, baseline_cost=1.0)
    table, reasons = release.verdict(fairness_table, quality, DEPLOYED)
    assert table["gate"].tolist() == ["demographic_parity[sex]", "model_quality", "cost_vs_baseline"]
    assert table.loc[2, "value"] == pytest.approx(business.cost_reduction(0.6, 1.0))
    assert reasons == []
    _, reasons = release.verdict(fairness_table, quality, {"deployed": False, "reasons": ["latency: too slow"]})
    assert reasons == ["step 07: latency: too slow"]
    _, reasons = release.verdict(fairness_table, release.quality_gates(CRITERIA, 0.7, 0.95, 1.0), DEPLOYED)
    assert [r.split(":")[0] for r in reasons] == ["model_quality", "cost_vs_baseline"]


def test_the_release_bundle_records_the_mitigation_and_the_verdict():
    bundle = {"model": "deployed", "threshold": 0.4, "metadata": {"model_name": "m", "version": "1", "schema": {},
              "feature_columns": ["a"], "sensitive_features": ["sex"], "positive_label": 1, "releasable": True}}  # fmt: skip
    gaps = {"demographic_parity_difference[sex]": 0.1}
    same = release.release_bundle(bundle, "none", release.Option(), [], ["a reason"], gaps)
    assert same["model"] == "deployed" and same["metadata"]["releasable"] is False
    assert bundle["metadata"]["releasable"] is True  # the deployed bundle is left as it was
    mitigated = release.release_bundle(
        bundle, "threshold_optimizer", release.Option("mitigated", "equalized_odds"), ["sex"], [], gaps
    )
    assert mitigated["model"] == "mitigated" and mitigated["threshold"] == 0.4
    meta = mitigated["metadata"]
    assert meta["needs_sensitive_features"] and meta["mitigation"] == "threshold_optimizer"
    assert (meta["mitigation_constraint"], meta["mitigation_features"]) == ("equalized_odds", ["sex"])
    assert (meta["releasable"], meta["reasons"], meta["fairness"]) == (True, [], gaps)


def test_the_decision_note_says_what_was_chosen_and_why():
    table = tradeoff(none=(False, 0.25, 0.25), threshold_optimizer=(True, 0.34, 0.14)).assign(accuracy=[0.80, 0.81])
    note = release.decision_note(
        ["demographic_parity[sex]: ..."], [], "threshold_optimizer", "equalized_odds", ["sex"], table, []
    )
    assert note.startswith("Fairness gates failed before mitigation (demographic_parity[sex]: ...). ")
    assert "**threshold_optimizer** (equalized odds constraint on `sex`)" in note
    assert "largest parity gap 0.250 → **0.140**" in note and "expected cost 0.250 → **0.340**" in note
    assert note.endswith("**Released**: `models/release.skops` passes every gate.")
    note = release.decision_note(
        [], ["equalized_odds[race]"], "none", None, [], table, ["equalized_odds[race]: not measured"]
    )
    assert (
        note
        == "No measured fairness gate fails, so no mitigation. **Not released**: equalized_odds[race]: not measured."
    )
