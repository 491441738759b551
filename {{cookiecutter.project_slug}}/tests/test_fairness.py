import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
)

from {{ cookiecutter.package_name }} import fairness


def decisions(seed: int, n: int = 3000, groups=("a", "b", "c"), shares=(0.5, 0.3, 0.2), hit_step=0.1, alarm_step=0.08):
    """Labels and decisions whose rates differ by group; every group is large.

    ``hit_step`` and ``alarm_step`` set how much the true and false positive rates
    rise from one group to the next."""
    rng = np.random.default_rng(seed)
    g = pd.Series(rng.choice(list(groups), n, p=list(shares)), name="group")
    base = g.map({k: 0.3 + 0.1 * i for i, k in enumerate(groups)}).to_numpy()
    y = (rng.random(n) < base).astype(int)
    hit = g.map({k: 0.6 + hit_step * i for i, k in enumerate(groups)}).to_numpy()
    false_alarm = g.map({k: 0.1 + alarm_step * i for i, k in enumerate(groups)}).to_numpy()
    p = (rng.random(n) < np.where(y == 1, hit, false_alarm)).astype(int)
    return y, p, g


@pytest.mark.parametrize(
    "seed, hit_step, alarm_step",
    [
        (0, 0.1, 0.08),  # the true positive rates differ most, the false positive rates' ratio is smallest
        (1, 0.02, 0.15),  # the false positive rates differ most
        (2, 0.15, 0.0),  # the true positive rates set both the difference and the ratio
    ],
)
def test_fairness_gaps_equal_fairlearn_when_every_group_is_large(seed, hit_step, alarm_step):
    y, p, g = decisions(seed, hit_step=hit_step, alarm_step=alarm_step)
    gaps = fairness.fairness_gaps(y, p, g, min_group_size=30)
    expected = {
        "demographic_parity_difference": demographic_parity_difference(y, p, sensitive_features=g),
        "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=g),
        "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=g),
        "equalized_odds_ratio": equalized_odds_ratio(y, p, sensitive_features=g),
    }
    assert gaps == pytest.approx(expected, abs=1e-12)
    assert gaps["demographic_parity_difference"] > 0.05  # a real gap, not a trivial zero


def test_small_groups_are_left_out_of_the_gaps():
    y, p, g = decisions(0)
    tiny = pd.Series(["tiny"] * 8, name="group")
    y_all = np.concatenate([y, [1, 1, 1, 1, 0, 0, 0, 0]])
    p_all = np.concatenate([p, [1] * 8])  # selection rate 1: would dominate every gap
    g_all = pd.concat([g, tiny], ignore_index=True)
    with_tiny = fairness.fairness_gaps(y_all, p_all, g_all, min_group_size=30)
    without = fairness.fairness_gaps(y, p, g, min_group_size=30)
    assert with_tiny == pytest.approx(without)
    counted = fairness.fairness_gaps(y_all, p_all, g_all, min_group_size=5)
    assert counted["demographic_parity_difference"] > with_tiny["demographic_parity_difference"]


def test_equalized_odds_needs_enough_cases_of_each_class():
    y, p, g = decisions(1)
    # group "d" is large but has only 5 positives: fine for parity, noise for error rates
    y_all = np.concatenate([y, [1] * 5 + [0] * 95])
    p_all = np.concatenate([p, [0] * 5 + [1] * 95])
    g_all = pd.concat([g, pd.Series(["d"] * 100)], ignore_index=True)
    gaps = fairness.fairness_gaps(y_all, p_all, g_all, min_group_size=30)
    assert gaps["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_all, p_all, sensitive_features=g_all)
    )
    assert gaps["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))
    mask = fairness.assessable(g_all, 30, y_all)
    assert not mask[-100:].any() and mask[:-100].all()
    assert fairness.assessable(g_all, 30).all()


def test_gaps_are_nan_with_fewer_than_two_groups():
    y, p, _ = decisions(0, n=500)
    gaps = fairness.fairness_gaps(y, p, pd.Series(["a"] * 500), min_group_size=30)
    assert all(math.isnan(v) for v in gaps.values())


def test_bootstrap_intervals_bracket_the_point_estimates():
    y, p, g = decisions(4, n=2000)
    intervals = fairness.bootstrap_intervals(y, p, g, samples=300, seed=0)
    assert len(intervals) == 3 * 4
    points = fairness.metric_frame(y, p, g).by_group
    for row in intervals.itertuples(index=False):
        point = points.loc[row.group, row.metric]
        assert row.low <= point <= row.high, row
        assert row.high - row.low < 0.15  # informative with hundreds of rows per group
    again = fairness.bootstrap_intervals(y, p, g, samples=300, seed=0)
    pd.testing.assert_frame_equal(intervals, again)


def test_group_table_joins_the_intervals_largest_group_first():
    y, p, g = decisions(4, n=2000)
    table = fairness.group_table(y, p, g, samples=50, seed=0)
    assert table.index.tolist() == g.value_counts().index.tolist()
    assert {"selection_rate", "selection_rate_low", "selection_rate_high", "precision_high"} <= set(table.columns)
    assert (table["selection_rate_low"] <= table["selection_rate"]).all()


def test_bootstrap_intervals_narrow_with_more_data():
    y, p, g = decisions(5, n=4000)
    wide = fairness.bootstrap_intervals(y[:400], p[:400], g[:400], samples=200, seed=0)
    narrow = fairness.bootstrap_intervals(y, p, g, samples=200, seed=0)
    width = lambda t: (t["high"] - t["low"]).mean()  # noqa: E731
    assert width(narrow) < width(wide)


def test_gap_metrics_and_lower_bounds_are_named_like_the_gates():
    y, p, g = decisions(6, n=2000, groups=("F", "M"), shares=(0.4, 0.6))
    frame = pd.DataFrame({"sex": g})
    spec = {"sensitive_features": ["sex"], "sensitive_bins": {}}
    gaps = fairness.gap_metrics(y, p, frame, spec, min_group_size=30)
    assert set(gaps) == {
        f"{m}[sex]"
        for m in (
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
        )
    }
    assert gaps["demographic_parity_difference[sex]"] == pytest.approx(
        demographic_parity_difference(y, p, sensitive_features=g)
    )
    lower = fairness.gap_lower_bounds(y, p, frame, spec, 30, samples=200, seed=0)
    assert set(lower) == {"demographic_parity_difference[sex]", "equalized_odds_difference[sex]"}
    for name, bound in lower.items():
        assert 0 < bound < gaps[name]


def test_group_metrics_table(spec):
    y, p, g = decisions(7, n=600, groups=("Female", "Male"), shares=(0.4, 0.6))
    table = fairness.group_metrics_table(y, p, pd.DataFrame({"sex": g}), spec)
    assert table.index.names == ["feature", "group"]
    assert table.loc[("sex", "Female"), "count"] == (g == "Female").sum()
    assert table["count"].sum() == 600
    female = (g == "Female").to_numpy()
    assert table.loc[("sex", "Female"), "selection_rate"] == pytest.approx(p[female].mean())


def test_bootstrap_chunks_draw_the_same_resamples(monkeypatch):
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 2, 1001), rng.integers(0, 2, 1001)
    whole = fairness.group_intervals(y_true, y_pred, 50, np.random.SeedSequence(9), 0.95)
    monkeypatch.setattr(fairness, "BOOTSTRAP_CHUNK", 3 * 1001)  # three resamples at a time, the last chunk of two
    assert fairness.group_intervals(y_true, y_pred, 50, np.random.SeedSequence(9), 0.95) == whole
    assert all(
        np.isnan(v).all() for v in fairness.group_intervals(y_true, y_pred, 0, np.random.SeedSequence(9), 0.95).values()
    )
