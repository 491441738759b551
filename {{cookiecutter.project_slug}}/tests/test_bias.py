import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import bias, data


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


def test_selection_rate_gap_ignores_small_groups():
    groups = pd.Series(["A"] * 50 + ["B"] * 50 + ["C"] * 3)
    pred = np.array([1] * 25 + [0] * 25 + [1] * 10 + [0] * 40 + [1] * 3)
    assert bias.selection_rate_gap(pred, groups, 30) == pytest.approx(0.5 - 0.2)
    assert np.isnan(bias.selection_rate_gap(pred, groups, 100))  # no group large enough


def test_choose_remediation_trades_fairness_within_the_accuracy_budget():
    effects = pd.DataFrame(
        {"accuracy": [0.85, 0.845, 0.80], "max_parity_gap": [0.20, 0.10, 0.02]},
        index=["none", "reweighing", "resampling"],
    )
    assert bias.choose_remediation(effects, max_accuracy_loss=0.01) == "reweighing"
    assert bias.choose_remediation(effects, max_accuracy_loss=0.1) == "resampling"
    summary = bias.plan_summary("reweighing", effects)
    assert summary == {
        "remediation": "reweighing",
        "parity_gap_before": 0.2,
        "parity_gap_after": 0.1,
        "accuracy_before": 0.85,
        "accuracy_after": 0.845,
    }


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


def test_remediation_effects_are_measured_on_the_rows_given_only(make_frame, make_spec):
    spec = make_spec()
    rows = make_frame(n=600, seed=5)
    rows[spec["target"]] = (rows[spec["target"]] == spec["positive_label"]).astype(int)
    labels = data.intersection_labels(data.sensitive_groups(rows, spec))
    table = bias.reweighing_table(labels, rows[spec["target"]])
    effects = bias.remediation_effects(rows, spec, table, min_group_size=10, seed=0)
    assert list(effects.index) == ["none", "reweighing", "resampling"]
    assert effects["accuracy"].between(0, 1).all() and (effects["max_parity_gap"] >= 0).all()
    again = bias.remediation_effects(rows, spec, table, min_group_size=10, seed=0)
    pd.testing.assert_frame_equal(effects, again)  # deterministic


def test_without_a_measurable_gap_the_data_is_left_as_it_is():
    effects = pd.DataFrame(
        {"accuracy": [0.80, 0.81, 0.79], "max_parity_gap": [np.nan, np.nan, np.nan]},
        index=["none", "reweighing", "resampling"],
    )
    assert bias.choose_remediation(effects) == "none"
    effects.loc["reweighing", "max_parity_gap"] = 0.1
    assert bias.choose_remediation(effects) == "reweighing"
