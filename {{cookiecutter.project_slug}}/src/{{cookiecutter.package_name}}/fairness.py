"""Group fairness of decisions: per-group metrics (fairlearn's MetricFrame), gaps, intervals. Adapt freely.

The gaps follow fairlearn's definitions (demographic parity difference: largest
minus smallest selection rate; equalized odds difference: the larger of the true
and false positive rate differences), computed over the groups large enough to
measure, and fast enough to bootstrap. The unit tests check them against
fairlearn's own functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score

from . import data

GROUP_METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "precision": lambda y, p: precision_score(y, p, zero_division=0),
}


def metric_frame(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series | pd.DataFrame) -> MetricFrame:
    return MetricFrame(
        metrics=GROUP_METRICS, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), sensitive_features=groups
    )


def group_table(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, samples: int, seed: int) -> pd.DataFrame:
    """Per-group metrics of one grouping with their bootstrap intervals (``<metric>_low``, ``<metric>_high``),
    largest group first."""
    table = metric_frame(y_true, y_pred, groups).by_group
    wide = bootstrap_intervals(y_true, y_pred, groups, samples, seed).pivot(
        index="group", columns="metric", values=["low", "high"]
    )
    wide.columns = [f"{metric}_{bound}" for bound, metric in wide.columns]
    return table.join(wide).sort_values("count", ascending=False)


def group_metrics_table(
    y_true: np.ndarray, y_pred: np.ndarray, frame: pd.DataFrame, spec: dict[str, Any]
) -> pd.DataFrame:
    """Per-group metrics for every sensitive feature, stacked (feature, group)."""
    groups = data.sensitive_groups(frame, spec)
    parts = {f: metric_frame(y_true, y_pred, groups[f].to_numpy()).by_group for f in spec["sensitive_features"]}
    table = pd.concat(parts, names=["feature", "group"])
    table["count"] = table["count"].astype(int)
    return table


MIN_CLASS_COUNT = 10  # a true/false positive rate from fewer cases than this is noise, not evidence


def assessable(groups: pd.Series, min_group_size: int, y_true: np.ndarray | None = None) -> np.ndarray:
    """Rows whose group is large enough to measure: ``min_group_size`` rows and, when
    ``y_true`` is given (for error-rate gaps), :data:`MIN_CLASS_COUNT` cases of each class."""
    codes, _ = pd.factorize(groups.to_numpy())
    counts = _group_counts(
        codes, np.zeros(len(codes)) if y_true is None else np.asarray(y_true, float), np.zeros(len(codes))
    )
    ok = counts["rows"] >= min_group_size
    if y_true is not None:
        ok &= (counts["positives"] >= MIN_CLASS_COUNT) & (counts["rows"] - counts["positives"] >= MIN_CLASS_COUNT)
    return ok[codes]


def _group_counts(
    codes: np.ndarray, y: np.ndarray, p: np.ndarray, n_groups: int | None = None
) -> dict[str, np.ndarray]:
    n = int(codes.max()) + 1 if n_groups is None else n_groups
    return {
        "rows": np.bincount(codes, minlength=n).astype(float),
        "positives": np.bincount(codes, weights=y, minlength=n),
        "selected": np.bincount(codes, weights=p, minlength=n),
        "true_positives": np.bincount(codes, weights=y * p, minlength=n),
    }


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Largest difference and smallest ratio between groups (NaN with fewer than two groups)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    high, low = float(values.max()), float(values.min())
    return high - low, (low / high if high > 0 else float("nan"))


def _gaps_from_codes(
    codes: np.ndarray, n_groups: int, y: np.ndarray, p: np.ndarray, min_group_size: int
) -> dict[str, float]:
    c = _group_counts(codes, y, p, n_groups)
    negatives = c["rows"] - c["positives"]
    big = c["rows"] >= min_group_size
    out = {}
    out["demographic_parity_difference"], out["demographic_parity_ratio"] = _spread(c["selected"][big] / c["rows"][big])
    both = big & (c["positives"] >= MIN_CLASS_COUNT) & (negatives >= MIN_CLASS_COUNT)
    tpr_gap, tpr_ratio = _spread(c["true_positives"][both] / c["positives"][both])
    fpr_gap, fpr_ratio = _spread((c["selected"] - c["true_positives"])[both] / negatives[both])
    out["equalized_odds_difference"] = max(tpr_gap, fpr_gap) if both.sum() >= 2 else float("nan")
    out["equalized_odds_ratio"] = min(tpr_ratio, fpr_ratio) if both.sum() >= 2 else float("nan")
    return out


def fairness_gaps(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, min_group_size: int) -> dict[str, float]:
    """Demographic parity and equalized odds differences and ratios over measurable groups.

    Demographic parity uses groups with at least ``min_group_size`` rows; equalized
    odds also needs :data:`MIN_CLASS_COUNT` positives and negatives per group.
    """
    codes, uniques = pd.factorize(pd.Series(groups).to_numpy())
    return _gaps_from_codes(codes, len(uniques), np.asarray(y_true, float), np.asarray(y_pred, float), min_group_size)


def gap_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, frame: pd.DataFrame, spec: dict[str, Any], min_group_size: int
) -> dict[str, float]:
    """Gap metrics named as the gates name them, e.g. ``demographic_parity_difference[sex]``."""
    groups = data.sensitive_groups(frame, spec)
    out = {}
    for feature in spec["sensitive_features"]:
        for name, value in fairness_gaps(y_true, y_pred, groups[feature], min_group_size).items():
            out[f"{name}[{feature}]"] = value
    return out


def gap_lower_bounds(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    frame: pd.DataFrame,
    spec: dict[str, Any],
    min_group_size: int,
    samples: int,
    seed: int,
    level: float = 0.9,
) -> dict[str, float]:
    """One-sided bootstrap lower bounds of the difference gaps: how large a gap is *at least*.

    Monitoring alerts on these, so that a small batch's sampling noise alone does not
    raise a fairness alarm; a gap whose lower bound is above the gate is real.
    """
    rng = np.random.default_rng(seed)
    groups = data.sensitive_groups(frame, spec)
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    encoded = {f: pd.factorize(groups[f].to_numpy()) for f in spec["sensitive_features"]}
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        pick = rng.integers(0, len(groups), len(groups))
        for feature, (codes, uniques) in encoded.items():
            gaps = _gaps_from_codes(codes[pick], len(uniques), y_true[pick], y_pred[pick], min_group_size)
            for name in ("demographic_parity_difference", "equalized_odds_difference"):
                draws.setdefault(f"{name}[{feature}]", []).append(gaps[name])
    return {
        name: float(np.nanquantile(values, 1 - level)) if np.isfinite(values).any() else float("nan")
        for name, values in draws.items()
    }


def bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, samples: int, seed: int, level: float = 0.95
) -> pd.DataFrame:
    """Percentile bootstrap intervals of every per-group rate (rows resampled within each group).

    Each group is one call of :func:`.compute.run` with a random stream of its own (the
    ``seed``'s SeedSequence spawned once per group, in the groups' order of appearance), so the
    intervals are the same whether the groups run in this process or on a cluster's workers.
    """
    from . import compute

    y_true, y_pred, g = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int), groups.to_numpy()
    present = pd.unique(g)
    streams = np.random.SeedSequence(seed).spawn(len(present))
    calls = [
        (y_true[g == group], y_pred[g == group], samples, stream, level)
        for group, stream in zip(present, streams, strict=True)
    ]
    rows = []
    for group, intervals in zip(present, compute.run(group_intervals, calls), strict=True):
        rows += [{"group": group, "metric": name, "low": lo, "high": hi} for name, (lo, hi) in intervals.items()]
    return pd.DataFrame(rows)


BOOTSTRAP_CHUNK = 1 << 24  # drawn rows per chunk of resamples (int64: 128 MB per array)


def group_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, samples: int, stream: np.random.SeedSequence, level: float
) -> dict[str, tuple[float, float]]:
    """One group's percentile bootstrap intervals of its selection rate, TPR, FPR and precision."""
    rng = np.random.default_rng(stream)
    bounds = [(1 - level) / 2, 1 - (1 - level) / 2]
    # the resamples a few at a time (about 16M drawn rows each): a group of a million rows would need
    # gigabytes at once; the generator draws the same numbers in the same order either way
    per_chunk = max(1, min(samples, BOOTSTRAP_CHUNK // max(len(y_true), 1)))
    chunks = []
    for start in range(0, max(samples, 1), per_chunk):  # samples=0: one empty chunk, no interval
        pick = rng.integers(0, len(y_true), size=(min(per_chunk, samples - start), len(y_true)))
        yt, yp = y_true[pick], y_pred[pick]
        with np.errstate(invalid="ignore", divide="ignore"):
            chunks.append(
                {
                    "selection_rate": yp.mean(axis=1),
                    "true_positive_rate": (yt * yp).sum(axis=1) / yt.sum(axis=1),
                    "false_positive_rate": ((1 - yt) * yp).sum(axis=1) / (1 - yt).sum(axis=1),
                    "precision": (yt * yp).sum(axis=1) / yp.sum(axis=1),
                }
            )
    rates = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}
    out = {}
    for name, values in rates.items():
        finite = values[np.isfinite(values)]
        lo, hi = np.quantile(finite, bounds) if len(finite) else (np.nan, np.nan)
        out[name] = (float(lo), float(hi))
    return out
