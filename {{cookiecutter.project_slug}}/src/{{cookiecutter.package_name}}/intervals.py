"""The statistics every gate decides on: intervals, paired comparisons and group sizes. Adapt with care.

A gate that releases, promotes or alarms never holds a bare point estimate against its
threshold: it judges an :class:`Estimate` (the value and its confidence interval), see
:func:`.gates.evaluate`. This module makes those estimates, one method per kind of quantity:

* a rate of a group (selection rate, true or false positive rate): Wilson's score interval;
* the difference of two groups' rates: Newcombe's hybrid score interval (his method 10), built
  from the two Wilson intervals, the standard for a difference of independent proportions;
* the largest gap between several groups (a fairness gap): the Newcombe intervals of every
  pair at a Bonferroni-adjusted level, so that all pairs are covered at once; the gap lies
  between the largest lower bound of a pair's distance from zero and the largest upper bound;
* a mean of per-row values (a cost per decision), alone or as a paired difference of two
  models on the same rows: the normal (t) interval of the mean; the ratio of two such means on
  the same rows (a relative cost reduction): the delta method's interval;
* ROC AUC, and the difference of two models' ROC AUC on the same rows: DeLong's method
  (DeLong, DeLong & Clarke-Pearson 1988), exact in its variance and one pass over the rows;
* any other metric of a model, or the difference of two models' metrics on the same rows
  (average precision, F1): the percentile interval of a seeded paired bootstrap.

:func:`required_rows` sizes a group by power: the rows it takes for a gate to pass a group as
fair as the largest with that probability. Smaller groups are reported, not gated (:mod:`.fairness`).

Every interval is two-sided at ``confidence`` (0.95 by default): a gate that passes on the
upper bound of a "no more than" threshold wrongly passes at most 2.5 % of the time when the
truth sits on the threshold, and a gate that fails on the lower bound wrongly alarms as rarely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A measured value and its confidence interval (NaN everywhere: not measured)."""

    value: float
    low: float
    high: float

    @classmethod
    def missing(cls) -> Estimate:
        return cls(float("nan"), float("nan"), float("nan"))

    @classmethod
    def exact(cls, value: float) -> Estimate:
        """A value without sampling noise (a count, a configured age): its interval is itself."""
        return cls(float(value), float(value), float(value))

    @property
    def measured(self) -> bool:
        return bool(np.isfinite(self.value))

    def shifted(self, by: float) -> Estimate:
        return Estimate(self.value + by, self.low + by, self.high + by)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def z_value(confidence: float, comparisons: int = 1) -> float:
    """The normal quantile of a two-sided interval at ``confidence``, Bonferroni-adjusted for ``comparisons``."""
    alpha = (1.0 - confidence) / max(int(comparisons), 1)
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def wilson(successes: np.ndarray, trials: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``successes / trials`` (vectorised; NaN where there are no trials)."""
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def newcombe(
    k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The difference ``k1/n1 - k2/n2`` and its Newcombe (hybrid score) interval, vectorised."""
    p1, p2 = np.asarray(k1, float) / np.asarray(n1, float), np.asarray(k2, float) / np.asarray(n2, float)
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def largest_gap(successes: np.ndarray, trials: np.ndarray, confidence: float, extra_comparisons: int = 1) -> Estimate:
    """The largest difference of rate between groups (fairlearn's max - min), with a simultaneous interval.

    Every pair of groups gets a Newcombe interval at the level that covers all pairs at once
    (Bonferroni over the pairs, times ``extra_comparisons`` when the gap is one of several
    judged together, as the two rates of equalized odds). The gap's upper bound is the largest
    upper bound of a pair's absolute difference; its lower bound the largest distance from zero
    of a pair's interval. Fewer than two groups: not measured.
    """
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    if len(n) < 2:
        return Estimate.missing()
    first, second = np.triu_indices(len(n), 1)
    z = z_value(confidence, len(first) * extra_comparisons)
    d, low, high = newcombe(k[first], n[first], k[second], n[second], z)
    rates = k / n
    upper = np.maximum(np.abs(low), np.abs(high))
    lower = np.maximum(0.0, np.maximum(low, -high))  # zero when the pair's interval holds 0
    return Estimate(float(rates.max() - rates.min()), float(lower.max()), float(upper.max()))


def combined_gap(gaps: list[Estimate]) -> Estimate:
    """The larger of several gaps judged together (equalized odds: of the TPR and FPR gaps)."""
    measured = [g for g in gaps if g.measured]
    if len(measured) < len(gaps) or not measured:
        return Estimate.missing()
    return Estimate(max(g.value for g in measured), max(g.low for g in measured), max(g.high for g in measured))


def mean_interval(values: np.ndarray, confidence: float) -> Estimate:
    """The mean of per-row values (a cost per decision, a paired difference of costs) and its t interval."""
    values = np.asarray(values, float)
    n = len(values)
    if n == 0:
        return Estimate.missing()
    mean = float(values.mean())
    if n < 2:
        return Estimate(mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return Estimate(mean, mean - half, mean + half)


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray, confidence: float) -> Estimate:
    """``mean(numerator) / mean(denominator)`` of paired per-row values (two models' costs on the same
    rows) and its delta-method interval. Not measured when the denominator's mean is zero."""
    a, b = np.asarray(numerator, float), np.asarray(denominator, float)
    if len(a) < 2 or b.mean() == 0:
        return Estimate.missing()
    ratio = float(a.mean() / b.mean())
    linear = (a - ratio * b) / b.mean()  # the ratio's influence of each row
    half = z_value(confidence) * float(linear.std(ddof=1) / np.sqrt(len(a)))
    return Estimate(ratio, ratio - half, ratio + half)


def reduction(ratio: Estimate) -> Estimate:
    """``1 - ratio`` (a relative saving from a cost ratio), its bounds swapped accordingly."""
    return Estimate(1 - ratio.value, 1 - ratio.high, 1 - ratio.low)


def delong(y: np.ndarray, scores: np.ndarray, confidence: float, against: np.ndarray | None = None) -> Estimate:
    """ROC AUC of ``scores`` (with ``against``: the paired difference of the two AUCs) and its DeLong interval.

    Each positive's placement is the share of negatives it outranks (ties count half), each
    negative's the share of positives that outrank it; the AUC is their mean, and its variance
    (and the covariance of two models scored on the same rows) comes from their sample
    variances. One class only: not measured.
    """
    y = np.asarray(y).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives < 2 or negatives < 2:
        return Estimate.missing()
    models = [np.asarray(scores, float)] + ([] if against is None else [np.asarray(against, float)])
    aucs, v10, v01 = [], [], []
    for s in models:
        everyone, own_pos, own_neg = stats.rankdata(s), stats.rankdata(s[y]), stats.rankdata(s[~y])
        v10.append((everyone[y] - own_pos) / negatives)  # per positive: negatives ranked below
        v01.append(1.0 - (everyone[~y] - own_neg) / positives)  # per negative: positives ranked above
        aucs.append(float(v10[-1].mean()))
    s10, s01 = np.atleast_2d(np.cov(np.vstack(v10))), np.atleast_2d(np.cov(np.vstack(v01)))
    covariance = s10 / positives + s01 / negatives
    contrast = np.array([1.0]) if against is None else np.array([1.0, -1.0])
    value = float(contrast @ np.array(aucs))
    half = z_value(confidence) * float(np.sqrt(max(contrast @ covariance @ contrast, 0.0)))
    return Estimate(value, value - half, value + half)


def bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    scores: np.ndarray,
    confidence: float,
    samples: int,
    seed: int,
    against: np.ndarray | None = None,
) -> Estimate:
    """``metric(y, scores)`` with its percentile bootstrap interval; with ``against``, the paired
    difference ``metric(y, scores) - metric(y, against)`` on the same resampled rows.

    A resample whose metric is undefined (one class only) is skipped; ``samples`` resamples are
    drawn from the generator of ``seed``, so the interval is the same on every run.
    """
    y, scores = np.asarray(y), np.asarray(scores)
    other = None if against is None else np.asarray(against)

    def value(rows: np.ndarray | slice) -> float:
        own = metric(y[rows], scores[rows])
        return own - metric(y[rows], other[rows]) if other is not None else own

    point = _defined(value, slice(None))
    rng = np.random.default_rng(seed)
    draws = np.array([_defined(value, rng.integers(0, len(y), len(y))) for _ in range(samples)])
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(point) or len(draws) < max(10, samples // 2):
        return Estimate(point, float("nan"), float("nan"))
    low, high = np.quantile(draws, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Estimate(point, float(low), float(high))


def _defined(value: Callable[[np.ndarray | slice], float], rows: np.ndarray | slice) -> float:
    try:
        return float(value(rows))
    except ValueError:  # e.g. ROC AUC of a resample with one class
        return float("nan")


def required_rows(rate: float, threshold: float, reference_rows: float, confidence: float, power: float) -> float:
    """Rows a group needs so that a gate on its gap with the reference group decides with ``power``.

    The gate passes when the upper bound of the gap's interval, ``|d| + z SE``, is under
    ``threshold``. For a group as fair as the reference (``d`` about normal around 0), that
    happens with probability ``2 Phi(threshold / SE - z) - 1``: at least ``power`` when the
    difference's standard error is at most ``threshold / (z + z_power)`` with ``z_power`` the
    ``(1 + power) / 2`` quantile; a gap of twice the threshold is then also failed on evidence
    with at least that probability. With the rate's variance ``rate (1 - rate)`` (the pooled
    rate, floored at 0.05 so that a rare rate does not promise a tiny group too much), that
    gives the group's rows given the reference's. ``inf`` when even an infinite group would not
    do (the reference itself is too small).
    """
    spread = max(min(rate, 1 - rate), 0.05)
    variance = spread * (1 - spread)
    z_total = z_value(confidence) + float(stats.norm.ppf((1 + power) / 2))
    allowed = (threshold / z_total) ** 2 - variance / max(reference_rows, 1.0)
    return float(np.ceil(variance / allowed)) if allowed > 0 else float("inf")
