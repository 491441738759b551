import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from {{ cookiecutter.package_name }} import intervals


def test_wilson_matches_scipy():
    for k, n in ((0, 10), (3, 47), (40, 41), (500, 1000)):
        expected = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        low, high = intervals.wilson(np.array([k]), np.array([n]), intervals.z_value(0.95))
        assert (low[0], high[0]) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_newcombe_covers_a_difference_of_proportions_at_its_level():
    rng = np.random.default_rng(0)
    n1, n2, p1, p2 = 60, 900, 0.2, 0.3
    k1, k2 = rng.binomial(n1, p1, 4000), rng.binomial(n2, p2, 4000)
    _, low, high = intervals.newcombe(k1, np.full(4000, n1), k2, np.full(4000, n2), intervals.z_value(0.95))
    coverage = np.mean((low <= p1 - p2) & (p1 - p2 <= high))
    assert 0.93 <= coverage <= 0.975


def gap_verdicts(rates, sizes, threshold, runs=2000, seed=1):
    """How often the gap's upper bound is under ``threshold`` when groups of ``sizes`` have true ``rates``."""
    rng = np.random.default_rng(seed)
    passed, values, inside = 0, [], 0
    for _ in range(runs):
        k = rng.binomial(sizes, rates)
        e = intervals.largest_gap(k, np.asarray(sizes), 0.95)
        passed += e.high <= threshold
        values.append(e.value)
        inside += e.low <= e.value <= e.high
    return passed / runs, np.mean(values), inside / runs


def test_a_gap_on_the_threshold_rarely_passes_whatever_the_group_sizes():
    # the race groups: a gap of exactly the threshold must not pass on noise (at most 2.5 %)
    rate, _, inside = gap_verdicts([0.30, 0.15, 0.30, 0.30], [3700, 420, 140, 47], 0.15)
    assert rate <= 0.025
    assert inside == 1.0  # the point estimate lies inside its own interval, always


def test_a_fair_decision_on_large_groups_passes_reliably():
    rate, _, _ = gap_verdicts([0.3, 0.3, 0.3], [3000, 1500, 800], 0.15)
    assert rate >= 0.99


def test_max_minus_min_is_biased_upward_but_the_interval_still_covers_the_truth():
    rng = np.random.default_rng(3)
    sizes = np.array([2900, 1500])
    covered = 0
    for _ in range(2000):
        e = intervals.largest_gap(rng.binomial(sizes, [0.85, 0.85]), sizes, 0.95)
        covered += e.low <= 0.0 <= e.high
    assert covered / 2000 >= 0.95


def test_required_rows_give_the_stated_power():
    """A group exactly as large as required passes a fair comparison with about the stated power."""
    rate, threshold, reference = 0.4, 0.15, 3000
    need = intervals.required_rows(rate, threshold, reference, 0.95, 0.8)
    rng = np.random.default_rng(5)
    sizes = np.array([reference, int(need)])
    passed = sum(
        intervals.largest_gap(rng.binomial(sizes, [rate, rate]), sizes, 0.95).high <= threshold for _ in range(3000)
    )
    assert 0.75 <= passed / 3000 <= 0.9
    unfair = sum(
        intervals.largest_gap(rng.binomial(sizes, [rate, rate + 2 * threshold]), sizes, 0.95).low > threshold
        for _ in range(3000)
    )
    assert unfair / 3000 >= 0.75  # and a gap of twice the threshold is failed on evidence
    assert intervals.required_rows(rate, threshold / 2, reference, 0.95, 0.8) > 3.5 * need
    assert intervals.required_rows(rate, threshold, 10, 0.95, 0.8) == float("inf")


def scored(n=3000, seed=0, strength=1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, y * strength + rng.normal(size=n), y * strength * 0.8 + rng.normal(size=n)


def test_delong_matches_the_auc_and_a_bootstrap_of_it():
    y, a, b = scored()
    e = intervals.delong(y, a, 0.95)
    assert e.value == pytest.approx(roc_auc_score(y, a))
    boot = intervals.bootstrap(roc_auc_score, y, a, 0.95, 400, 0)
    assert e.high - e.low == pytest.approx(boot.high - boot.low, rel=0.2)
    paired = intervals.delong(y, a, 0.95, against=b)
    assert paired.value == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    boot_paired = intervals.bootstrap(roc_auc_score, y, a, 0.95, 400, 0, against=b)
    assert paired.high - paired.low == pytest.approx(boot_paired.high - boot_paired.low, rel=0.25)
    assert paired.low > 0  # a stronger score is seen to be stronger on 3,000 rows


def test_delong_covers_a_null_difference_at_its_level():
    rng = np.random.default_rng(4)
    covered = 0
    for _ in range(500):
        y = (rng.random(600) < 0.3).astype(int)
        a, b = y + rng.normal(size=600), y + rng.normal(size=600)  # equally strong: the true difference is 0
        e = intervals.delong(y, a, 0.95, against=b)
        covered += e.low <= 0 <= e.high
    assert covered / 500 >= 0.93


def test_bootstrap_is_seeded_and_handles_a_metric_without_closed_form():
    y, a, _ = scored(n=800)
    first = intervals.bootstrap(average_precision_score, y, a, 0.95, 200, 7)
    assert first == intervals.bootstrap(average_precision_score, y, a, 0.95, 200, 7)
    assert first.low < first.value < first.high


def test_ratio_interval_covers_a_cost_ratio():
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(1000):
        base = rng.choice([0.0, 1.0, 4.0], 2000, p=[0.7, 0.2, 0.1])
        model = np.where(rng.random(2000) < 0.8, base, 0.0)  # saves 20 % of the baseline's cost in expectation
        e = intervals.ratio_interval(model, base, 0.95)
        covered += e.low <= 0.8 <= e.high
    assert covered / 1000 >= 0.93
    saving = intervals.reduction(intervals.Estimate(0.8, 0.75, 0.85))
    assert (saving.value, saving.low, saving.high) == pytest.approx((0.2, 0.15, 0.25))
    assert not intervals.ratio_interval(np.ones(10), np.zeros(10), 0.95).measured
