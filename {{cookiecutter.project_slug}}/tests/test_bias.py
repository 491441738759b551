import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import bias, data, gates, modeling


@pytest.fixture
def unbalanced():
    """Group A: 300 rows, 20% positive; group B: 200 rows, 60% positive."""
    groups = pd.Series(["A"] * 300 + ["B"] * 200)
    y = pd.Series([1] * 60 + [0] * 240 + [1] * 120 + [0] * 80)
    return groups, y


def test_reweighing_makes_group_and_label_independent(unbalanced):
    groups, y = unbalanced
    table = bias.reweighing_table(groups, y)
    assert len(table) == 4
    assert table.set_index(["group", "label"]).loc[("A", 1), "weight"] == pytest.approx(0.6 * 0.36 * 500 / 60)
    weights = bias.row_weights(groups, y, table)
    frame = pd.DataFrame({"g": groups, "y": y, "w": weights})
    total = frame["w"].sum()
    assert total == pytest.approx(len(frame))  # reweighing keeps the effective size
    p_group = frame.groupby("g")["w"].sum() / total
    p_label = frame.groupby("y")["w"].sum() / total
    p_cell = frame.groupby(["g", "y"])["w"].sum() / total
    for (g, label), share in p_cell.items():
        assert share == pytest.approx(p_group[g] * p_label[label])
    # the same thing said differently: the weighted positive rate is the same in every group
    rates = frame.assign(wy=frame["w"] * frame["y"]).groupby("g")[["wy", "w"]].sum()
    rates = rates["wy"] / rates["w"]
    assert rates["A"] == pytest.approx(rates["B"]) and rates["A"] == pytest.approx(y.mean())
    # the groups keep their unweighted share
    assert p_group["A"] == pytest.approx(0.6)


def test_reweighing_weights_are_clipped():
    groups = pd.Series(["A"] * 1000 + ["B"] * 1000)
    y = pd.Series([1] * 999 + [0] * 1 + [1] * 1 + [0] * 999)  # B has almost no positives
    table = bias.reweighing_table(groups, y).set_index(["group", "label"])
    assert table.loc[("B", 1), "weight"] == bias.WEIGHT_BOUNDS[1]
    assert table["weight"].between(*bias.WEIGHT_BOUNDS).all()


def test_row_weights_default_to_one_for_unknown_cells(unbalanced):
    groups, y = unbalanced
    table = bias.reweighing_table(groups, y)
    weights = bias.row_weights(pd.Series(["A", "C"]), pd.Series([1, 1]), table)
    assert weights[0] == pytest.approx(1.8) and weights[1] == 1.0


def test_resample_indices_is_deterministic_with_a_seed():
    weights = np.array([1.0] * 2000 + [3.0] * 2000)
    first, again = bias.resample_indices(weights, 3), bias.resample_indices(weights, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, bias.resample_indices(weights, 4))
    assert len(first) == len(weights) and first.min() >= 0 and first.max() < len(weights)
    assert np.mean(first >= 2000) == pytest.approx(0.75, abs=0.03)  # drawn in proportion to the weights


def test_resampling_with_reweighing_weights_balances_base_rates(unbalanced):
    groups, y = unbalanced
    weights = bias.row_weights(groups, y, bias.reweighing_table(groups, y))
    pick = bias.resample_indices(weights, 0)
    rates = y.iloc[pick].groupby(groups.iloc[pick].to_numpy()).mean()
    assert abs(rates["A"] - rates["B"]) < 0.12  # was 0.40 before resampling


def test_representation_and_base_rate_gap(unbalanced):
    groups, y = unbalanced
    groups = pd.concat([groups, pd.Series(["C"] * 5)], ignore_index=True)
    y = pd.concat([y, pd.Series([1] * 5)], ignore_index=True)
    table = bias.representation(groups, y, min_group_size=30)
    assert table.index.tolist() == ["A", "B", "C"]
    assert table.loc["A", "rows"] == 300 and table.loc["A", "share"] == pytest.approx(300 / 505)
    assert table.loc["B", "positive_rate"] == pytest.approx(0.6)
    assert table["assessable"].tolist() == [True, True, False]
    gap, high, low = bias.base_rate_gap(table)
    assert (gap, high, low) == (pytest.approx(0.4), "B", "A")  # C (100%) is too small to count


def test_proxy_scan_finds_a_proxy():
    rng = np.random.default_rng(0)
    groups = pd.Series(rng.choice(["F", "M"], 400))
    features = pd.DataFrame(
        {
            "relationship": np.where(groups == "F", "wife", "husband"),  # a perfect proxy
            "noise": rng.normal(size=400),
        }
    )
    scores = bias.proxy_scan(features, groups, {"noise": "numeric"}, min_group_size=30, seed=0)
    assert scores.index[0] == "relationship" and scores["relationship"] == pytest.approx(1.0)
    assert scores["noise"] < 0.6


def test_sample_positions_are_all_rows_or_a_sorted_reproducible_sample():
    assert np.array_equal(bias.sample_positions(5, 10, seed=0), np.arange(5))
    sample = bias.sample_positions(1000, 100, seed=0)
    assert len(sample) == 100 and len(set(sample)) == 100 and np.all(np.diff(sample) > 0) and sample.max() < 1000
    assert np.array_equal(sample, bias.sample_positions(1000, 100, seed=0))
    with pytest.raises(ValueError, match="max_rows must be a positive number of rows, got 0"):
        bias.sample_positions(1000, 0, seed=0)


EO_GATED = {
    "criteria": {"max_equalized_odds_difference": 0.15, "max_demographic_parity_difference": None, "confidence": 0.95},
    "gates": [
        gates.gate("equalized_odds[sex]", "equalized_odds_difference[sex]", "<=", 0.15, ["fairness_assessment"], "")
    ],
}


def test_remediation_effects_judge_each_remediation_at_the_cost_threshold_on_the_same_rows(make_frame, make_spec):
    spec = make_spec()
    rows = make_frame(n=4000, seed=5, proxy_gap=6.0)
    rows[spec["target"]] = (rows[spec["target"]] == spec["positive_label"]).astype(int)
    labels = data.intersection_labels(data.sensitive_groups(rows, spec))
    table = bias.reweighing_table(labels, rows[spec["target"]])
    effects = bias.remediation_effects(rows, spec, table, (1.0, 4.0), EO_GATED, seed=0)
    assert list(effects.costs.index) == list(bias.REMEDIATIONS)
    assert effects.rows == 4000  # every row judged, by the model fitted on the other half
    # step 06's rule, not 0.5: decisions at the threshold minimising the cost on other held-out rows
    thresholds = effects.costs[["threshold_min", "threshold_max"]].to_numpy()
    assert (thresholds < 0.5).all() and (thresholds > 0).all()
    none = effects.costs.loc["none"]
    assert (none["cost_ratio"], none["cost_ratio_low"], none["cost_ratio_high"]) == (1.0, 1.0, 1.0)
    for name in ("reweighing", "resampling"):
        cost = effects.costs.loc[name]
        assert cost["cost_ratio_low"] < cost["cost_ratio"] < cost["cost_ratio_high"]
        assert cost["cost_ratio"] == pytest.approx(cost["expected_cost"] / none["expected_cost"])
    # both gaps reported for the grouping, the gated one judged; every reduction is none's gap minus its own
    assert effects.judged == ["equalized_odds_difference[sex]"]
    gaps = effects.gaps
    assert set(gaps.loc["none"].index) == {"demographic_parity_difference[sex]", "equalized_odds_difference[sex]"}
    assert gaps["judged"].sum() == 3
    after = gaps.loc[("reweighing", "equalized_odds_difference[sex]")]
    before = gaps.loc[("none", "equalized_odds_difference[sex]")]
    assert after["reduction"] == pytest.approx(before["gap"] - after["gap"])
    assert after["reduction_low"] == pytest.approx(before["gap_low"] - after["gap_high"])
    assert gaps.loc["none", "reduction"].isna().all()
    again = bias.remediation_effects(rows, spec, table, (1.0, 4.0), EO_GATED, seed=0)
    pd.testing.assert_frame_equal(effects.costs, again.costs)  # deterministic for a seed
    pd.testing.assert_frame_equal(effects.gaps, again.gaps)


def test_cross_fitted_decisions_never_use_a_threshold_chosen_on_the_row():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    scores = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    decisions, thresholds = bias.cross_fitted_decisions(y, scores, (1.0, 4.0), seed=0)
    halves = list(bias.StratifiedKFold(2, shuffle=True, random_state=0).split(scores, y))
    for (chosen_on, applied_to), threshold in zip(halves, thresholds, strict=True):
        assert threshold == modeling.cost_threshold(y[chosen_on], scores[chosen_on], 1.0, 4.0)[0]
        np.testing.assert_array_equal(decisions[applied_to], scores[applied_to] >= threshold)


def test_judged_metrics_are_the_gated_gaps_or_else_every_gap(make_spec):
    spec = make_spec()
    assert bias.judged_metrics(EO_GATED, spec) == ["equalized_odds_difference[sex]"]
    ungated = {"criteria": {}, "gates": []}
    assert bias.judged_metrics(ungated, spec) == [
        "demographic_parity_difference[sex]",
        "equalized_odds_difference[sex]",
    ]
    two = {**spec, "sensitive_features": ["sex", "race"]}
    assert bias.judged_metrics(ungated, two)[-1] == "equalized_odds_difference[sex & race]"


def effects_of(reductions: dict[str, tuple[float, float, float]], ratios: dict[str, tuple[float, float, float]]):
    """RemediationEffects with the given reductions of the gated gap (value, low, high) and cost ratios."""
    metric = "equalized_odds_difference[sex]"
    costs = pd.DataFrame(
        {
            name: {"expected_cost": 0.3 * r[0], "cost_ratio": r[0], "cost_ratio_low": r[1], "cost_ratio_high": r[2]}
            for name, r in {"none": (1.0, 1.0, 1.0), **ratios}.items()
        }
    ).T
    rows = {("none", metric): {"gap": 0.25, "gap_low": 0.2, "gap_high": 0.3, "judged": True}}
    for name, (value, low, high) in reductions.items():
        rows[(name, metric)] = {
            "gap": 0.25 - value,
            "gap_low": 0.2,
            "gap_high": 0.3,
            "reduction": value,
            "reduction_low": low,
            "reduction_high": high,
            "judged": True,
        }
    gaps = pd.DataFrame.from_dict(rows, orient="index").rename_axis(["remediation", "metric"])
    return bias.RemediationEffects(costs, gaps, [metric], rows=1000, confidence=0.95)


def test_a_remediation_is_adopted_only_on_a_shown_reduction_at_a_cost_within_the_margin():
    shown, unclear = (0.1, 0.03, 0.17), (0.05, -0.02, 0.12)
    cheap, dear = (0.99, 0.95, 1.03), (1.02, 0.97, 1.08)
    verdicts = bias.remediation_verdicts(
        effects_of({"reweighing": shown, "resampling": unclear}, {"reweighing": cheap, "resampling": cheap})
    )
    assert verdicts["adopted"].to_dict() == {"reweighing": True, "resampling": False}
    assert "no gap reduction shown" in verdicts.loc["resampling", "why"]
    assert "reduction +0.100 [+0.030, +0.170]" in verdicts.loc["reweighing", "evidence"]
    assert bias.choose_remediation(verdicts) == "reweighing"
    # a shown reduction whose cost may exceed none's by more than the margin is not adopted
    verdicts = bias.remediation_verdicts(
        effects_of({"reweighing": shown, "resampling": shown}, {"reweighing": dear, "resampling": dear}), margin=0.05
    )
    assert not verdicts["adopted"].any() and bias.choose_remediation(verdicts) == "none"
    assert "more than 5%" in verdicts.loc["reweighing", "why"]
    # the margin is data_bias_plan.max_cost_increase (10% by default)
    assert bias.remediation_verdicts(effects_of({"reweighing": shown}, {"reweighing": dear})).loc[
        "reweighing", "adopted"
    ]
    # a widening shown is never adopted
    widened = bias.remediation_verdicts(effects_of({"reweighing": (-0.1, -0.17, -0.03)}, {"reweighing": cheap}))
    assert "shown to widen" in widened.loc["reweighing", "why"]


def test_reweighing_is_preferred_to_resampling_when_both_are_adopted():
    shown, cheap, cheaper = (0.1, 0.03, 0.17), (0.99, 0.95, 1.03), (0.97, 0.93, 1.01)
    verdicts = bias.remediation_verdicts(
        effects_of({"reweighing": shown, "resampling": shown}, {"reweighing": cheap, "resampling": cheaper})
    )
    assert verdicts["adopted"].all() and bias.choose_remediation(verdicts) == "reweighing"


def test_without_a_measurable_gap_the_data_is_left_as_it_is():
    nan = (np.nan, np.nan, np.nan)
    verdicts = bias.remediation_verdicts(
        effects_of({"reweighing": nan, "resampling": nan}, {"reweighing": (0.99, 0.95, 1.03), "resampling": (1, 1, 1)})
    )
    assert bias.choose_remediation(verdicts) == "none"
    assert verdicts.loc["reweighing", "why"].startswith("no judged gap could be measured")


def test_plan_summary_records_the_judged_gaps_and_the_cost_before_and_after():
    effects = effects_of({"reweighing": (0.1, 0.03, 0.17)}, {"reweighing": (0.99, 0.95, 1.03)})
    summary = bias.plan_summary("reweighing", effects)
    metric = "equalized_odds_difference[sex]"
    assert summary["remediation"] == "reweighing" and summary["judged"] == [metric]
    assert summary["judged_gaps_before"][metric]["gap"] == 0.25
    assert summary["judged_gaps_after"][metric]["gap"] == pytest.approx(0.15)
    assert summary["cost_ratio"] == {"cost_ratio": 0.99, "cost_ratio_low": 0.95, "cost_ratio_high": 1.03}
