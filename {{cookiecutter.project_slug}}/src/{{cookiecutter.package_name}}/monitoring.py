"""Drift and health checks of production batches against the training reference.

Population Stability Index (PSI) is the effect size used for alerts on every
feature and on the scores; the Kolmogorov-Smirnov statistic (numeric) and the
Jensen-Shannon distance with a chi-square test (categorical) come from scipy and
are reported beside it, so a reader sees how large a shift is, not only whether
it is significant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from . import data

EPSILON = 1e-4
MIN_EXPECTED_COUNT = 5  # rows a batch must be expected to hold for a category to be its own PSI bin
BATCH_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    share = counts / total if total else np.zeros_like(counts, dtype=float)
    return np.clip(share, EPSILON, None)


def numeric_bin_edges(reference: pd.Series, bins: int = 10) -> np.ndarray:
    """Quantile edges of the reference (open-ended at both sides)."""
    values = pd.to_numeric(reference, errors="coerce").dropna().to_numpy()
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1))) if len(values) else np.array([0.0])
    return np.concatenate([[-np.inf], edges[1:-1], [np.inf]]) if len(edges) > 2 else np.array([-np.inf, np.inf])


def binned_counts(
    values: pd.Series, kind: str, edges: np.ndarray | None = None, categories: list[str] | None = None
) -> np.ndarray:
    """Counts per bin (numeric) or per category, with one extra bucket for missing values."""
    if kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce")
        counts = np.histogram(numbers.dropna(), bins=edges)[0]
        return np.append(counts, numbers.isna().sum()).astype(float)
    text = values.astype("string")
    counts = [int((text == c).sum()) for c in categories]
    other = int(text.notna().sum()) - sum(counts)
    return np.array([*counts, other, int(text.isna().sum())], dtype=float)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population Stability Index: sum((cur - ref) * ln(cur / ref)) over bins."""
    ref, cur = _proportions(ref_counts), _proportions(cur_counts)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def feature_drift(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, float]:
    """PSI plus the matching scipy statistic for one feature."""
    if kind == "numeric":
        edges = numeric_bin_edges(reference)
        ref_counts, cur_counts = binned_counts(reference, kind, edges), binned_counts(current, kind, edges)
        a = pd.to_numeric(reference, errors="coerce").dropna()
        b = pd.to_numeric(current, errors="coerce").dropna()
        ks = stats.ks_2samp(a, b) if len(a) and len(b) else None
        return {
            "psi": psi(ref_counts, cur_counts),
            "statistic": float(ks.statistic) if ks else float("nan"),
            "p_value": float(ks.pvalue) if ks else float("nan"),
            "test": "KS",
        }
    # A category the batch is expected to hold fewer than MIN_EXPECTED_COUNT times joins "other": its PSI
    # term (and the chi-square cell) would be sampling noise, e.g. 300 zip codes in a batch of 100 rows.
    shares = reference.dropna().astype(str).value_counts(normalize=True)
    floor = MIN_EXPECTED_COUNT / max(int(current.notna().sum()), 1)
    categories = sorted(shares.index[shares >= floor].tolist())
    ref_counts, cur_counts = (
        binned_counts(reference, kind, categories=categories),
        binned_counts(current, kind, categories=categories),
    )
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    p_value = float(stats.chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
    return {
        "psi": psi(ref_counts, cur_counts),
        "statistic": float(jensenshannon(_proportions(ref_counts), _proportions(cur_counts), base=2)),
        "p_value": p_value,
        "test": "Jensen-Shannon / chi-square",
    }


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str], psi_warning: float, psi_alert: float
) -> pd.DataFrame:
    """One row per feature: PSI, the scipy statistic and p-value, and the PSI status."""
    rows = []
    for column, kind in kinds.items():
        if column not in current.columns:
            continue
        result = feature_drift(reference[column], current[column], kind)
        status = "alert" if result["psi"] >= psi_alert else ("warning" if result["psi"] >= psi_warning else "ok")
        rows.append({"feature": column, "kind": kind, **result, "status": status})
    return pd.DataFrame(rows)


def missing_spikes(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], tolerance: float = 0.05
) -> pd.DataFrame:
    """Columns whose missing rate rose by more than ``tolerance`` over the reference."""
    ref = reference[columns].isna().mean()
    cur = current[[c for c in columns if c in current.columns]].isna().mean()
    table = pd.DataFrame({"reference": ref, "current": cur}).dropna()
    table["increase"] = table["current"] - table["reference"]
    return table[table["increase"] > tolerance].reset_index(names="column")


def list_batches(folder: str | Path) -> list[Path]:
    """Production batch files in ``folder``, in name order (name them so that order is time order)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(BATCH_SUFFIXES))


def prepare_batch(raw: pd.DataFrame, spec: dict[str, Any], source: str) -> pd.DataFrame:
    """A production batch in the selected-data layout; the label becomes 0/1 where present."""
    target = spec["target"]
    out = raw.copy()
    if target in out.columns:
        try:
            out[target] = data.binary_target(out[target], spec["positive_label"], key=f"batch {source}")
        except data.DataContractError:
            if not set(out[target].dropna().unique()) <= {0, 1}:  # not already encoded as 0/1 by step 03
                raise
    return out


def simulate_batches(
    source: pd.DataFrame,
    spec: dict[str, Any],
    batch_size: int,
    seed: int,
    shift_batch: int = 0,
    shift_feature: str | None = None,
    shift_scale: float = 1.0,
    group_mix_batch: int = 0,
    label_shift_batch: int = 0,
) -> list[tuple[str, pd.DataFrame, str]]:
    """Cut held-out data into batches and inject the requested drifts; returns (name, batch, what was injected)."""
    rng = np.random.default_rng(seed)
    shuffled = source.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    count = max(len(shuffled) // batch_size, 1)
    batches = []
    target = spec["target"]
    first = spec["sensitive_features"][0]
    for number in range(1, count + 1):
        batch = shuffled.iloc[(number - 1) * batch_size : number * batch_size].copy()
        injected = "none"
        if number == shift_batch and shift_feature:
            if shift_feature not in batch.columns:
                raise ValueError(f"monitoring.drift_shift_feature: column {shift_feature!r} is not in the data")
            batch[shift_feature] = pd.to_numeric(batch[shift_feature], errors="coerce") * shift_scale
            injected = f"{shift_feature} × {shift_scale:g}"
        if number == group_mix_batch:
            groups = data.group_labels(batch[first], spec.get("sensitive_bins", {}).get(first))
            minority = groups.value_counts().index[-1] if groups.nunique() > 1 else groups.iloc[0]
            weights = np.where(groups == minority, 6.0, 1.0)
            batch = batch.sample(n=len(batch), replace=True, weights=weights, random_state=seed)
            injected = f"{first} mix: `{minority}` over-represented"
        if number == label_shift_batch and target in batch.columns:
            weights = np.where(batch[target] == 1, 3.0, 1.0)
            batch = batch.sample(n=len(batch), replace=True, weights=weights, random_state=int(rng.integers(1 << 31)))
            injected = "positive label rate raised"
        batches.append((f"simulated_{number:03d}", batch.reset_index(drop=True), injected))
    return batches
