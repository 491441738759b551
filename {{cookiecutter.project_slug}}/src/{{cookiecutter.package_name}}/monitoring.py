"""Drift and health checks of production batches against the training reference. Adapt freely.

Step 09 gets its batches from :func:`production_batches`, judges them with
:func:`judge_batches` against a :class:`Reference`, and writes :func:`status`.

A feature alerts on evidence of drift whose error rate is known at the window's size, and
only when the drift is large enough to matter:

- evidence: the Population Stability Index (PSI) of the window against the training bins,
  with its p-value from PSI's null distribution for a window of that many rows (simulated
  from the reference's bin shares, :func:`psi_null`), and, for a numeric value holding a
  large share of the rows (the zeros of an amount), Fisher's exact test of that share;
  Benjamini-Hochberg controls the false discoveries over every feature of every window
  judged together (:func:`flag_drift`);
- effect: PSI at least ``success_criteria.psi_alert``, or a point mass whose share moved by
  :data:`MASS_SHIFT_RATIO` or more, so that a huge window does not alert on a trivial shift.

The Kolmogorov-Smirnov statistic (numeric) and the Jensen-Shannon distance (categorical)
come from scipy and are reported beside PSI, as a second view of how large a shift is.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from . import data

if TYPE_CHECKING:
    from .business import Costs
    from .config import Monitoring

EPSILON = 1e-4
MIN_EXPECTED_COUNT = 5  # rows a batch must be expected to hold for a category to be its own PSI bin
POINT_MASS_SHARE = 0.05  # a numeric value holding this share of the reference is a PSI bin of its own
REST_BINS = 5  # the values outside the point masses get at least this many quantile bins of their own
# A point mass alerts when the smaller side's share changes by this factor (or its inverse) and the change is
# a discovery (Fisher's exact test, under the false-discovery control): PSI cannot see a doubled 8% share.
MASS_SHIFT_RATIO = 1.5
# Draws of PSI's null distribution: at least MIN_NULL_DRAWS, and enough that the smallest p-value a draw can
# give, 1 / (draws + 1), is below the smallest Benjamini-Hochberg cutoff (fdr / tests); at most MAX_NULL_DRAWS.
MIN_NULL_DRAWS = 2000
MAX_NULL_DRAWS = 200_000
NULL_CHUNK = 20_000  # draws simulated at a time (memory: chunk x bins x 2 counts)
MIN_LABELLED = 50  # labelled rows (of both outcomes) a window needs before its quality is measured
BATCH_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _proportions(counts: np.ndarray) -> np.ndarray:
    """Shares of the bins along the last axis (clipped at EPSILON, so that PSI stays finite)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    share = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return np.clip(share, EPSILON, None)


@dataclass(frozen=True)
class NumericBins:
    """PSI bins of a numeric column: each point mass of the reference on its own, quantile bins for the rest.

    A value that holds at least :data:`POINT_MASS_SHARE` of the reference (the zeros of an amount,
    the 40 of weekly hours) is a bin of its own; plain quantile bins would merge it with its
    neighbours, or, for a column of 92% zeros, collapse the whole column into one bin whose PSI
    stays near 0 whatever happens to it. The other values are binned by their own quantiles:
    about 1/``bins`` of the reference each, and at least :data:`REST_BINS` bins however small
    their share, so that a change among them (the non-zero amounts multiplied by 10) is seen.
    """

    points: np.ndarray  # values with a bin of their own
    edges: np.ndarray  # edges of the quantile bins of the other values (open-ended at both sides)


def numeric_bins(reference: pd.Series, bins: int = 10) -> NumericBins:
    """The :class:`NumericBins` of a reference column."""
    values = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    if not len(values):
        return NumericBins(np.array([]), np.array([-np.inf, np.inf]))
    unique, counts = np.unique(values, return_counts=True)
    points = unique[counts >= POINT_MASS_SHARE * len(values)]
    rest = values[~np.isin(values, points)]
    edges = np.array([-np.inf, np.inf])
    if len(rest):
        parts = max(int(np.ceil(bins * len(rest) / len(values))), min(REST_BINS, bins))
        quantiles = np.unique(np.quantile(rest, np.linspace(0, 1, parts + 1)))
        if len(quantiles) > 2:
            edges = np.concatenate([[-np.inf], quantiles[1:-1], [np.inf]])
    return NumericBins(points, edges)


def binned_counts(
    values: pd.Series, kind: str, bins: NumericBins | None = None, categories: list[str] | None = None
) -> np.ndarray:
    """Counts per bin (numeric: point masses, then the quantile bins) or per category, plus one for missing values."""
    if kind == "numeric":
        numbers = pd.to_numeric(values, errors="coerce")
        present = numbers.dropna().to_numpy(dtype=float)
        at_point = np.isin(present, bins.points)
        points = [int(np.sum(present == p)) for p in bins.points]
        counts = np.histogram(present[~at_point], bins=bins.edges)[0]
        return np.array([*points, *counts, numbers.isna().sum()], dtype=float)
    return category_counts(values.dropna().astype(str).value_counts(), int(values.isna().sum()), categories)


def category_counts(seen: pd.Series, missing: int, categories: list[str]) -> np.ndarray:
    """Counts of ``categories`` among the values counted in ``seen``, then of the other values, then ``missing``."""
    counts = [int(seen.get(c, 0)) for c in categories]
    return np.array([*counts, int(seen.sum()) - sum(counts), missing], dtype=float)


@dataclass(frozen=True)
class ReferenceColumn:
    """One feature of the reference as every window is compared with it: computed once, not per window."""

    kind: str
    numbers: np.ndarray  # numeric: the values present
    bins: NumericBins | None  # numeric: its bins
    counts: np.ndarray  # numeric: its counts per bin
    seen: pd.Series  # categorical: the count of each category
    missing: int  # categorical: missing values
    shares: pd.Series  # categorical: each category's share of the values present

    @classmethod
    def of(cls, reference: pd.Series, kind: str) -> ReferenceColumn:
        """The column's bins and counts (numeric), or its categories' counts (categorical)."""
        if kind == "numeric":
            numbers = pd.to_numeric(reference, errors="coerce")
            bins = numeric_bins(numbers)
            counts = binned_counts(numbers, kind, bins)
            none = pd.Series(dtype=float)
            return cls(kind, numbers.dropna().to_numpy(dtype=float), bins, counts, none, 0, none)
        seen = reference.dropna().astype(str).value_counts()
        shares = seen / max(int(seen.sum()), 1)
        return cls(kind, np.array([]), None, np.array([]), seen, int(reference.isna().sum()), shares)

    def categories(self, rows: int) -> list[str]:
        """The categories a window of ``rows`` rows is expected to hold :data:`MIN_EXPECTED_COUNT` times or more.

        The others join "other": their PSI term would be sampling noise, e.g. 300 zip codes in a
        batch of 100 rows.
        """
        return sorted(self.shares.index[self.shares >= MIN_EXPECTED_COUNT / max(rows, 1)].tolist())


def point_mass_shift(ref_counts: np.ndarray, cur_counts: np.ndarray, bins: NumericBins) -> tuple[float, float]:
    """The largest change of a point mass's share: the ratio of the smaller side's shares, and its p-value.

    ``ref_counts`` and ``cur_counts`` are :func:`binned_counts` with ``bins`` (the point masses
    first, the missing values last). For a mass that holds share ``r`` of the reference's values
    and ``c`` of the batch's, the smaller side is the mass itself when ``r <= 0.5`` (ratio
    ``c / r``), else the other values (``(1 - c) / (1 - r)``): a column of 92% zeros whose
    non-zero share doubles has ratio 2, although its PSI is only about 0.06. The p-value is
    scipy's Fisher exact test of the mass's share in the batch against the reference (two
    samples: the reference's own sampling noise counts too), times the number of masses
    (Bonferroni: the mass reported is the one that moved most). Returns (1.0, nan) when the
    column has no point mass: there is nothing to test.
    """
    ref_total, cur_total = int(ref_counts[:-1].sum()), int(cur_counts[:-1].sum())
    if not len(bins.points) or not ref_total or not cur_total:
        return 1.0, float("nan")
    worst, table = 1.0, None
    masses = len(bins.points)
    for ref_hits, hits in zip(ref_counts[:masses].astype(int), cur_counts[:masses].astype(int), strict=True):
        r, c = ref_hits / ref_total, hits / cur_total
        ratio = max(c, EPSILON) / max(r, EPSILON) if r <= 0.5 else max(1 - c, EPSILON) / max(1 - r, EPSILON)
        if table is None or abs(np.log(ratio)) > abs(np.log(worst)):
            worst, table = ratio, [[hits, cur_total - hits], [ref_hits, ref_total - ref_hits]]
    p_value = float(stats.fisher_exact(table).pvalue)
    return float(worst), min(1.0, p_value * len(bins.points))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float | np.ndarray:
    """Population Stability Index: sum((cur - ref) * ln(cur / ref)) over bins (the last axis: one per row of 2-D counts)."""
    ref, cur = _proportions(ref_counts), _proportions(cur_counts)
    value = np.sum((cur - ref) * np.log(cur / ref), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


@functools.lru_cache(maxsize=64)
def psi_null(ref_counts: tuple[int, ...], rows: int, draws: int, seed: int) -> np.ndarray:
    """PSI's null distribution for a window of ``rows`` rows that has not drifted (sorted, ``draws`` values).

    Each draw is a reference of the same size and a window of ``rows`` rows, both drawn
    (multinomial) from the reference's bin shares, so that both samples' noise counts: at 100
    rows a PSI of 0.25 is common without any drift, at 100,000 rows it never is. Computed once
    per binning and window size (cached), seeded by ``seed``, the size and the counts.
    """
    counts = np.asarray(ref_counts, dtype=np.int64)
    share = counts / counts.sum()
    rng = np.random.default_rng([seed, rows, *ref_counts])
    values = []
    for start in range(0, draws, NULL_CHUNK):
        size = min(NULL_CHUNK, draws - start)
        values.append(psi(rng.multinomial(counts.sum(), share, size=size), rng.multinomial(rows, share, size=size)))
    return np.sort(np.concatenate(values))


def psi_chance(ref_counts: np.ndarray, rows: int, value: float, draws: int, seed: int) -> float:
    """The chance of a PSI of ``value`` or more in a drift-free window of ``rows`` rows (:func:`psi_null`).

    The Monte Carlo estimate ``(1 + exceedances) / (1 + draws)``, which never understates it
    (a p-value from it keeps its error rate); a draw equal to ``value`` up to rounding counts.
    """
    null = psi_null(tuple(int(c) for c in ref_counts), int(rows), draws, seed)
    exceeding = len(null) - np.searchsorted(null, value - 1e-12 * max(1.0, value), side="left")
    return float((1 + exceeding) / (1 + len(null)))


def psi_p_value(ref_counts: np.ndarray, cur_counts: np.ndarray, draws: int, seed: int) -> float:
    """PSI's p-value: the chance of a PSI at least the window's in a drift-free window of its size."""
    return psi_chance(ref_counts, int(cur_counts.sum()), psi(ref_counts, cur_counts), draws, seed)


def mass_shift_chance(ref_counts: np.ndarray, rows: int, bins: NumericBins) -> float:
    """The chance that a point mass moves by :data:`MASS_SHIFT_RATIO` or more in a drift-free window of ``rows``
    values (binomial, summed over the masses), as :func:`point_mass_shift` measures the move; nan without a mass."""
    ref_total = ref_counts[:-1].sum()
    if not len(bins.points) or not ref_total or not rows:
        return float("nan")
    shares = ref_counts[: len(bins.points)] / ref_total
    smaller = np.minimum(shares, 1 - shares)  # the side whose ratio is measured
    low = stats.binom.cdf(np.floor(rows * smaller / MASS_SHIFT_RATIO), rows, smaller)
    high = stats.binom.sf(np.ceil(rows * smaller * MASS_SHIFT_RATIO) - 1, rows, smaller)
    return float(min(1.0, np.sum(low + high)))


def null_draws(tests: int, fdr: float) -> int:
    """Draws of PSI's null that a family of ``tests`` p-values needs: 1 / (draws + 1) at most half of fdr / tests."""
    return int(min(MAX_NULL_DRAWS, max(MIN_NULL_DRAWS, np.ceil(2 * tests / fdr))))


def feature_drift(
    reference: pd.Series | ReferenceColumn,
    current: pd.Series,
    kind: str,
    draws: int = MIN_NULL_DRAWS,
    seed: int = 0,
    psi_alert: float | None = None,
) -> dict[str, float]:
    """PSI with its p-value at the window's size (:func:`psi_p_value`), the scipy statistic, and the point-mass shift.

    ``chance_large_psi`` and ``chance_large_mass``: the chance, in a drift-free window of this
    size, of a PSI of ``psi_alert`` or more (nan without it) and of a point mass moving by
    :data:`MASS_SHIFT_RATIO` (what :func:`false_alarms` bounds a drift-free window's alerts with).
    """
    ref = reference if isinstance(reference, ReferenceColumn) else ReferenceColumn.of(reference, kind)
    if kind == "numeric":
        numbers = pd.to_numeric(current, errors="coerce")
        ref_counts, cur_counts = ref.counts, binned_counts(numbers, kind, ref.bins)
        present = numbers.dropna()
        ks = stats.ks_2samp(ref.numbers, present, method="asymp") if len(ref.numbers) and len(present) else None
        statistic = float(ks.statistic) if ks else float("nan")  # a second view of the size of the shift
        ratio, mass_p = point_mass_shift(ref_counts, cur_counts, ref.bins)
        mass_chance = mass_shift_chance(ref_counts, len(present), ref.bins)
        test = "KS"
    else:
        categories = ref.categories(int(current.notna().sum()))
        ref_counts = category_counts(ref.seen, ref.missing, categories)
        cur_counts = binned_counts(current, kind, categories=categories)
        statistic = float(jensenshannon(_proportions(ref_counts), _proportions(cur_counts), base=2))
        ratio, mass_p, mass_chance, test = 1.0, float("nan"), float("nan"), "Jensen-Shannon"
    return {
        "psi": psi(ref_counts, cur_counts),
        "p_value": psi_p_value(ref_counts, cur_counts, draws, seed),
        "statistic": statistic,
        "test": test,
        "mass_shift": ratio,
        "mass_shift_p": mass_p,
        "chance_large_psi": (
            float("nan") if psi_alert is None else psi_chance(ref_counts, int(cur_counts.sum()), psi_alert, draws, seed)
        ),
        "chance_large_mass": mass_chance,
    }


def drift_tables(
    reference: pd.DataFrame,
    windows: list[pd.DataFrame],
    kinds: dict[str, str],
    psi_alert: float,
    psi_warning: float,
    fdr: float,
    seed: int = 0,
) -> list[pd.DataFrame]:
    """One table per window, one row per feature: PSI and its p-value, the point-mass shift, the status.

    The windows are one family: the false discoveries are controlled over every feature of
    every window (:func:`flag_drift`), and PSI's null is drawn finely enough for it
    (:func:`null_draws`). A column a window does not carry is skipped.
    """
    draws = null_draws(2 * len(kinds) * len(windows), fdr)
    columns = {c: ReferenceColumn.of(reference[c], kind) for c, kind in kinds.items()}
    tables = [
        pd.DataFrame(
            [
                {"feature": c, "kind": kinds[c], **feature_drift(ref, window[c], kinds[c], draws, seed, psi_alert)}
                for c, ref in columns.items()
                if c in window.columns
            ]
        )
        for window in windows
    ]
    return flag_drift(tables, fdr, psi_alert, psi_warning)


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    psi_alert: float,
    psi_warning: float = 0.1,
    fdr: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`drift_tables` of one window alone (its features are the family)."""
    return drift_tables(reference, [current], kinds, psi_alert, psi_warning, fdr, seed)[0]


def flag_drift(tables: list[pd.DataFrame], fdr: float, psi_alert: float, psi_warning: float) -> list[pd.DataFrame]:
    """The tables with their p-values adjusted over all of them (Benjamini-Hochberg) and each feature's status.

    Every PSI p-value and every point-mass p-value of every table is one test of the family;
    ``p_value_adjusted`` and ``mass_shift_p_adjusted`` are scipy's BH-adjusted p-values, and a test
    at or below ``fdr`` is a discovery: at most ``fdr`` of the discoveries are expected to be
    false, and when nothing drifted, the chance of any discovery is at most ``fdr``.

    A feature is ``alert`` when a discovery is also large: PSI at least ``psi_alert``, or a point
    mass whose share moved by :data:`MASS_SHIFT_RATIO` or more; ``warning`` when PSI is a
    discovery of at least ``psi_warning``; else ``ok``.
    """
    columns = ("p_value", "mass_shift_p")
    parts = [t[c].to_numpy(dtype=float) for t in tables if len(t) for c in columns]
    pooled = np.concatenate(parts) if parts else np.array([])
    tested = ~np.isnan(pooled)
    adjusted = np.full(len(pooled), np.nan)
    if tested.any():
        adjusted[tested] = stats.false_discovery_control(pooled[tested])
    out, at = [], 0
    for table in tables:
        table = table.copy()
        if len(table):
            for column in columns:
                table[f"{column}_adjusted"] = adjusted[at : at + len(table)]
                at += len(table)
        out.append(drift_status(table, fdr, psi_alert, psi_warning))
    return out


def drift_status(table: pd.DataFrame, fdr: float, psi_alert: float, psi_warning: float) -> pd.DataFrame:
    """``status`` of each feature from its adjusted p-values and its effect sizes (see :func:`flag_drift`)."""
    if table.empty:
        return table.assign(status=pd.Series(dtype=str))
    psi_found = table["p_value_adjusted"] <= fdr
    mass_found = table["mass_shift_p_adjusted"] <= fdr
    large_mass = np.abs(np.log(table["mass_shift"].astype(float))) >= np.log(MASS_SHIFT_RATIO)
    alert = (psi_found & (table["psi"] >= psi_alert)) | (mass_found & large_mass)
    warning = psi_found & (table["psi"] >= psi_warning)
    return table.assign(status=np.where(alert, "alert", np.where(warning, "warning", "ok")))


class FalseAlarms(NamedTuple):
    """What the false-discovery control of a run of windows promises (:func:`false_alarms`)."""

    tests: int  # p-values in the family
    discoveries: int  # of them at or below the fdr after adjustment
    cutoff: float  # the raw p-value at or below which a test was a discovery in this run
    per_window: float  # the largest chance, over the run's windows, that the window alerts had it not drifted
    windows: int


def false_alarms(tables: Iterable[pd.DataFrame], fdr: float) -> FalseAlarms:
    """The expected false-alarm rate of a run of windows judged together (:func:`drift_tables`).

    A test was a discovery at BH's cutoff ``fdr * max(discoveries, 1) / tests``. A drift-free
    window alerts when one of its tests is a discovery *and* its effect is large, so its chance
    of alerting is at most the sum over its tests of the smaller of the cutoff and the chance of
    so large an effect without drift at its size (``chance_large_psi``, ``chance_large_mass``):
    at 100 rows the cutoff binds, at 100,000 the effect. When no window drifted, the chance
    that any window of the run alerts is at most ``fdr``.
    """
    tables = [t for t in tables if len(t)]
    pairs = (("p_value_adjusted", "chance_large_psi"), ("mass_shift_p_adjusted", "chance_large_mass"))
    adjusted = np.concatenate([t[p].to_numpy(dtype=float) for t in tables for p, _ in pairs] or [np.array([])])
    adjusted = adjusted[~np.isnan(adjusted)]
    tests, found = len(adjusted), int(np.sum(adjusted <= fdr))
    cutoff = fdr * max(found, 1) / max(tests, 1)
    chances = [
        sum(np.minimum(cutoff, t.loc[t[p].notna(), c].fillna(1.0).to_numpy(dtype=float)).sum() for p, c in pairs)
        for t in tables
    ]
    return FalseAlarms(tests, found, cutoff, float(min(1.0, max(chances, default=0.0))), len(tables))


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
    """Cut held-out data into batches and inject the requested drifts; returns (name, batch, what was injected).

    The numeric shift lasts from ``shift_batch`` on, as a real change of the population does; the
    group mix and the label shift are one batch each, the noise a sustained-breach rule must not act on.
    """
    rng = np.random.default_rng(seed)
    shuffled = source.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    count = max(len(shuffled) // batch_size, 1)
    batches = []
    target = spec["target"]
    first = spec["sensitive_features"][0]
    for number in range(1, count + 1):
        batch = shuffled.iloc[(number - 1) * batch_size : number * batch_size].copy()
        injected = []
        if 0 < shift_batch <= number and shift_feature:
            if shift_feature not in batch.columns:
                raise ValueError(f"monitoring.drift_shift_feature: column {shift_feature!r} is not in the data")
            batch[shift_feature] = pd.to_numeric(batch[shift_feature], errors="coerce") * shift_scale
            injected.append(f"{shift_feature} × {shift_scale:g}")
        if number == group_mix_batch:
            groups = data.group_labels(batch[first], spec.get("sensitive_bins", {}).get(first))
            minority = groups.value_counts().index[-1] if groups.nunique() > 1 else groups.iloc[0]
            weights = np.where(groups == minority, 6.0, 1.0)
            batch = batch.sample(n=len(batch), replace=True, weights=weights, random_state=seed)
            injected.append(f"{first} mix: `{minority}` over-represented")
        if number == label_shift_batch and target in batch.columns:
            weights = np.where(batch[target] == 1, 3.0, 1.0)
            batch = batch.sample(n=len(batch), replace=True, weights=weights, random_state=int(rng.integers(1 << 31)))
            injected.append("positive label rate raised")
        batches.append((f"simulated_{number:03d}", batch.reset_index(drop=True), "; ".join(injected) or "none"))
    return batches


# ------------------------------------------------------------------ step 09: batches, judgement, status

Batch = tuple[str, pd.DataFrame, str]  # (name, rows, what was injected)


class Batches(NamedTuple):
    """The batches step 09 monitors, where they came from, and anything the reader should know."""

    batches: list[Batch]
    origin: str
    notes: list[str]
    served: dict[str, pd.DataFrame] = {}  # per batch of the prediction log: the decisions that were served
    source: str = "simulated"  # "prediction log", "files" (data.production_dir) or "simulated"
    newest: Any = None  # when the newest decision monitored was made (the prediction log's), else None


def production_batches(root: Path, spec: dict[str, Any], meta: dict[str, Any], cfg: Monitoring) -> Batches:
    """The prediction log's latest windows (see :mod:`.live`); when it has none, the files in
    ``cfg.production_dir``; when there are none either, batches simulated from held-out data."""
    from .live import log_batches

    logged = log_batches(root, spec, cfg)
    files = list_batches(root / cfg.production_dir)
    if logged is not None:
        if files:
            logged.notes.append(
                f"`{cfg.production_dir}` holds {len(files)} batch file(s) that are not monitored: the prediction log has "
                "decisions, and its windows come first. Move the files away, or monitor them in a project "
                "whose log is empty."
            )
        return logged
    if files:
        batches = [
            (f.name, prepare_batch(data.read_table(f, key=f"production batch {f.name}"), spec, f.name), "as received")
            for f in files
        ]
        return Batches(batches, f"{len(files)} files in `{cfg.production_dir}`", [], source="files")
    return simulated_batches(root, spec, meta, cfg)


def shift_feature(meta: dict[str, Any], requested: str) -> tuple[str | None, str]:
    """The numeric model input the drift is injected into (``requested`` if it is one) and a note if not."""
    numeric_inputs = [c for c in meta["feature_columns"] if meta["schema"].get(c, {}).get("kind") == "numeric"]
    chosen = requested if requested in numeric_inputs else (numeric_inputs[0] if numeric_inputs else None)
    if chosen == requested:
        return chosen, ""
    return chosen, (
        f"`monitoring.drift_shift_feature` = `{requested}` is not a numeric feature of the model; "
        + (f"the drift is injected into `{chosen}` instead." if chosen else "there is none, so no drift is injected.")
    )


def simulation_batch_rows(source_rows: int, cfg: Monitoring) -> int:
    """Rows per simulated batch: ``cfg.batch_size``, or fewer so that the batches with injected drift exist.

    Never below 100 rows (unless the source is smaller): the PSI of a smaller batch is mostly sampling noise.
    """
    wanted = max(cfg.drift_shift_batch, cfg.group_mix_batch, cfg.label_shift_batch) + 1
    if source_rows >= wanted * cfg.batch_size:
        return cfg.batch_size
    return max(source_rows // wanted, min(source_rows, 100))


TEST_SPLIT = "data/processed/test.parquet"


def simulation_source(
    root: Path, spec: dict[str, Any], meta: dict[str, Any], cfg: Monitoring
) -> tuple[str, pd.DataFrame, str]:
    """The held-out records batches are simulated from: ``cfg.simulation_source``, or the test split.

    A source that is another dataset altogether (it holds neither the target nor half of the
    model's inputs: the default Adult file, once ``data:`` points at other data) gives way to
    the test split, with a note saying so. A source of this data that lacks a column is an error.
    """
    from .scoring import required_columns

    source = prepare_batch(
        data.read_table(root / cfg.simulation_source, key="monitoring.simulation_source"), spec, cfg.simulation_source
    )
    needed = required_columns(meta)
    lacking = [c for c in needed if c not in source.columns]
    if not lacking:
        return cfg.simulation_source, source, ""
    other_data = spec["target"] not in source.columns and len(lacking) > len(needed) / 2
    if not other_data or cfg.simulation_source == TEST_SPLIT:
        raise data.DataContractError(
            f"monitoring.simulation_source: {cfg.simulation_source!r} lacks the training column {lacking[0]!r}; "
            f"with your own data, set it to held-out records of that data, or to {TEST_SPLIT}"
        )
    note = (
        f"`monitoring.simulation_source` (`{cfg.simulation_source}`) is other data (it has no `{spec['target']}` "
        f"and lacks {len(lacking)} of the model's {len(needed)} inputs): the batches are simulated from the test "
        f"split `{TEST_SPLIT}` instead. Set `monitoring.simulation_source` to held-out records of your own."
    )
    return TEST_SPLIT, prepare_batch(pd.read_parquet(root / TEST_SPLIT), spec, TEST_SPLIT), note


def simulated_batches(root: Path, spec: dict[str, Any], meta: dict[str, Any], cfg: Monitoring) -> Batches:
    """Batches cut from ``cfg.simulation_source`` (see :func:`simulation_source`), with the drifts of ``cfg`` injected."""
    source_name, source, fallback = simulation_source(root, spec, meta, cfg)
    feature, note = shift_feature(meta, cfg.drift_shift_feature)
    notes = [n for n in (fallback, note if cfg.drift_shift_batch else "") if n]
    rows = simulation_batch_rows(len(source), cfg)
    batches = simulate_batches(
        source,
        spec,
        rows,
        cfg.seed,
        cfg.drift_shift_batch,
        feature,
        cfg.drift_shift_scale,
        cfg.group_mix_batch,
        cfg.label_shift_batch,
    )
    injected = (cfg.drift_shift_batch, cfg.group_mix_batch, cfg.label_shift_batch)
    skipped = [n for n in injected if n > len(batches)]
    origin = (
        f"no files in `{cfg.production_dir}`: {len(batches)} batches of {rows:,} rows simulated from `{source_name}`"
    )
    if rows < cfg.batch_size:
        origin += f" ({len(source):,} rows: too few for batches of `monitoring.batch_size` = {cfg.batch_size:,})"
    if skipped:
        origin += (
            f"; batches {', '.join(map(str, skipped))} with injected drift do not exist, so that drift is not simulated"
        )
    return Batches(batches, origin, notes)


def batch_overview(batches: list[Batch], target: str) -> pd.DataFrame:
    """One row per batch: its size, whether it carries labels, what was injected."""
    return pd.DataFrame(
        [
            {"batch": n, "rows": len(b), "labelled": target in b.columns and b[target].notna().any(), "injected": i}
            for n, b, i in batches
        ]
    )


@dataclass(frozen=True)
class Reference:
    """What every batch is judged against: the model in service, its training data and scores, the gates."""

    bundle: dict[str, Any]
    frame: pd.DataFrame  # the inputs' reference (the training split)
    scores: pd.Series  # the model's scores on held-out rows: what the batch's scores are compared with
    spec: dict[str, Any]
    criteria: dict[str, Any]  # success_criteria.json
    costs: Costs
    production_schema: Any  # the step-05 schema with a 10% range margin (pandera)
    charter: dict[str, Any] | None = None  # step 01's charter (the baseline process's error rates)
    baseline: Any = None  # step 06's reference baseline: ``baseline(rows)`` gives its Scored on those rows

    @classmethod
    def build(
        cls,
        bundle: dict[str, Any],
        frame: pd.DataFrame,
        held_out: pd.DataFrame,
        spec: dict[str, Any],
        criteria: dict[str, Any],
        costs: Costs,
        cfg: Monitoring,
        charter: dict[str, Any] | None = None,
        baseline: Any = None,
    ) -> Reference:
        """The reference from the training split (inputs) and a held-out split (scores).

        The score reference is the model's scores on rows it was not fitted on (step 05's
        validation split): on its own training rows an overfit model scores differently from
        anywhere else, so production would look drifted when it is not.
        """
        from .schema import build_schema
        from .scoring import score

        sample = held_out.sample(n=min(len(held_out), 20000), random_state=cfg.seed)
        scores = score(bundle, sample, allow_extra=True, allow_unseen=True)["score"]
        schema = build_schema({"columns": bundle["metadata"]["schema"]}, range_margin=0.1)
        return cls(bundle, frame, scores, spec, criteria, costs, schema, charter, baseline)

    @property
    def meta(self) -> dict[str, Any]:
        return self.bundle["metadata"]

    @property
    def kinds(self) -> dict[str, str]:
        return {c: self.meta["schema"][c]["kind"] for c in self.meta["schema"]}

    @property
    def psi_alert(self) -> float:
        """Step 02's ``psi_alert``: the effect floor, the smallest PSI a discovery of drift must have to alert."""
        return float(self.criteria["criteria"]["psi_alert"])

    @property
    def gates(self) -> list[dict[str, Any]]:
        """What a window is judged on: step 02's monitoring gates (drift, staleness, fairness, and quality and
        cost against the reference baseline; the absolute bars and the leakage alarm are release gates)."""
        from .gates import gates_for

        return gates_for(self.criteria["gates"], "monitoring")


def score_drift(reference_scores: pd.Series, scores: pd.Series) -> float:
    """PSI of a batch's scores against the reference scores (bins from the reference, as for a feature)."""
    bins = numeric_bins(reference_scores)
    return psi(*(binned_counts(s, "numeric", bins) for s in (reference_scores, scores)))


def judge_batches(found: Batches, ref: Reference, cfg: Monitoring, age: float | None = None) -> list[dict[str, Any]]:
    """Every batch of ``found`` judged by :func:`judge_batch`, their drift tested as one family.

    The false discoveries of drift are controlled over every feature of every batch
    (:func:`drift_tables`), so that monitoring more windows does not raise more false alarms.
    """
    for name, batch, _ in found.batches:
        require_columns(name, batch, ref.meta)
    tables = drift_tables(
        ref.frame, [b for _, b, _ in found.batches], ref.kinds, ref.psi_alert, cfg.psi_warning, cfg.drift_fdr, cfg.seed
    )
    return [
        judge_batch(name, batch, injected, ref, cfg, found.served.get(name), drift, age)
        for (name, batch, injected), drift in zip(found.batches, tables, strict=True)
    ]


def require_columns(name: str, batch: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Stop when a batch lacks a column of the training schema: it cannot be scored or compared."""
    from .scoring import required_columns

    missing = [c for c in required_columns(meta) if c not in batch.columns]
    if missing:
        raise data.DataContractError(
            f"production batch {name}: column {missing[0]!r} of the training schema is missing; the batch cannot be monitored"
        )


def judge_batch(
    name: str,
    batch: pd.DataFrame,
    injected: str,
    ref: Reference,
    cfg: Monitoring,
    served: pd.DataFrame | None = None,
    drift: pd.DataFrame | None = None,
    age: float | None = None,
) -> dict[str, Any]:
    """One batch against the reference: schema, missing values, drift, and on labels quality and fairness.

    ``served``: the ``score`` and ``decision`` the service gave each row (a window of the
    prediction log); then quality, cost and fairness are those of the decisions that were served,
    whichever model served them. Without it the batch is scored by the model in service.
    ``drift``: the batch's table of :func:`drift_tables` when it was judged with others
    (:func:`judge_batches`); without it the batch's features alone are the family.
    Quality and fairness are judged only when the outcomes are complete enough (:func:`label_status`),
    by the one rule of every gate (:func:`.gates.evaluate` on intervals): a window alarms on a gate
    only when the evidence fails it (:func:`.gates.breaches`); an inconclusive window is reported.
    ``age``: the model in service's age in days (:func:`model_age`), None when unknown.

    Returns ``row`` (the batch's line of the report), ``drift`` (per-feature table), ``gates``
    (every gate's value, interval and verdict) and ``reasons`` (the breaches; empty when healthy).
    """
    from .gates import breaches, evaluate
    from .schema import violations
    from .scoring import InputError, score

    meta, target = ref.meta, ref.spec["target"]
    require_columns(name, batch, meta)
    schema_problems = violations(ref.production_schema, batch[list(meta["schema"])])
    if served is not None:
        scored = served[["score", "decision"]].reset_index(drop=True)
    else:
        try:
            scored = score(ref.bundle, batch, allow_extra=True, allow_unseen=True)
        except InputError as exc:  # e.g. text where training had numbers: the batch's schema differs
            raise data.DataContractError(f"production batch {name}: {exc}") from None
    if drift is None:
        drift = drift_table(ref.frame, batch, ref.kinds, ref.psi_alert, cfg.psi_warning, cfg.drift_fdr, cfg.seed)
    drifted = drift["status"] == "alert"
    observed = {"drifted_features": int(drifted.sum()), "model_age_days": age}
    row = {
        "batch": name,
        "injected": injected,
        "rows": len(batch),
        "schema_violations": int(schema_problems["rows"].sum()) if len(schema_problems) else 0,
        "missing_spikes": len(missing_spikes(ref.frame, batch, list(meta["schema"]))),
        "max_psi": float(drift["psi"].max()),
        "most_drifted": drift.loc[drift["psi"].idxmax(), "feature"],
        "drifted_features": observed["drifted_features"],
        "drifted": ", ".join(drift.loc[drifted, "feature"]),
        "score_psi": score_drift(ref.scores, scored["score"]),
        "positive_rate": float(scored["decision"].mean()),
    }
    outcomes = batch[target] if target in batch.columns else pd.Series(np.nan, index=batch.index)
    labels = label_status(outcomes, scored["decision"], cfg.min_label_completeness)
    row.update(label_completeness=labels.completeness, quality_judged=labels.judged, labels=labels.note)
    if labels.measured:
        labelled = outcomes.notna().to_numpy()
        outcome = labelled_outcome(batch.loc[labelled], scored[labelled], ref, cfg)
        row.update(outcome["row"])
        if labels.judged:
            observed.update(outcome["observed"])
    table = evaluate(ref.gates, observed, ref.criteria["criteria"].get("decide_on", "interval"))
    named = f" ({row['drifted']})" if row["drifted"] else ""
    reasons = [r + named if r.startswith("feature_drift:") else r for r in breaches(table)]
    row["inconclusive"] = ", ".join(table.loc[table["verdict"] == "inconclusive", "gate"])
    return {"row": row, "drift": drift, "gates": table, "reasons": reasons}


class Labels(NamedTuple):
    """How far a window's outcomes have arrived, and whether its quality and fairness are judged (:func:`label_status`)."""

    completeness: float  # share of the window's rows with an outcome
    by_decision: dict[int, float]  # the same per decision the rows received
    measured: bool  # quality and fairness are computed (and reported)
    judged: bool  # ... and held against the gates
    note: str  # why not, for the report ("" when judged)


def label_status(outcomes: pd.Series, decisions: pd.Series, min_completeness: float) -> Labels:
    """Whether a window's outcomes can judge its quality and fairness.

    Outcomes arrive late, and sometimes only for the rows acted on. The window is judged when,
    for every decision its rows received, at least ``min_completeness`` of them have an outcome
    (``monitoring.min_label_completeness``), and at least :data:`MIN_LABELLED` labelled rows hold
    both outcomes: quality measured on the outcomes that came first, or on one decision's rows,
    is not the quality of the decisions made. When the outcomes cover the rows of one decision
    only, the quality is still computed but reported as biased, not gated.
    """
    labelled = outcomes.notna().to_numpy()
    decided = np.asarray(decisions).astype(int)
    by_decision = {int(d): float(labelled[decided == d].mean()) for d in np.unique(decided)}
    completeness = float(labelled.mean()) if len(labelled) else 0.0
    enough = labelled.sum() >= MIN_LABELLED and outcomes[labelled].nunique() == 2
    covered = ", ".join(f"decided {d}: {share:.0%}" for d, share in by_decision.items())
    seen = [d for d, share in by_decision.items() if share > 0]
    if not labelled.any():
        return Labels(completeness, by_decision, False, False, "no outcomes yet: drift only")
    if len(by_decision) > 1 and len(seen) == 1:
        note = (
            f"outcomes only for rows decided {seen[0]} ({covered}): quality and fairness on them are biased "
            "(selective labels), reported but not gated"
        )
        return Labels(completeness, by_decision, bool(enough), False, note)
    if min(by_decision.values()) < min_completeness:
        note = (
            f"outcomes for {completeness:.0%} of the rows ({covered}), below monitoring.min_label_completeness "
            f"= {min_completeness:.0%} for a decision: quality and fairness not judged yet"
        )
        return Labels(completeness, by_decision, False, False, note)
    if not enough:
        note = f"fewer than {MIN_LABELLED} labelled rows of both outcomes: quality and fairness not judged"
        return Labels(completeness, by_decision, False, False, note)
    return Labels(completeness, by_decision, True, True, "")


def labelled_outcome(rows: pd.DataFrame, scored: pd.DataFrame, ref: Reference, cfg: Monitoring) -> dict[str, Any]:
    """Quality and fairness of the labelled rows of a batch: ``observed`` (estimates) for the gates, ``row`` for the report.

    The same estimates as a release's: quality and cost against step 06's reference baseline
    scored on the same rows (:func:`.modeling.quality_estimates`), fairness by :func:`.fairness.assess`.
    """
    from .fairness import FairnessRule, assess
    from .modeling import Scored, evaluate_served, quality_estimates

    y = rows[ref.spec["target"]].to_numpy().astype(int)
    served = Scored(scored["score"].to_numpy(), scored["decision"].to_numpy())
    point = evaluate_served(y, served.scores, served.decisions, *ref.costs)
    observed = dict(assess(y, served.decisions, rows, ref.spec, FairnessRule.of(ref.criteria)).estimates)
    if ref.baseline is not None:
        observed.update(
            quality_estimates(y, served, ref.baseline(rows), ref.costs, ref.criteria, ref.charter or {}, cfg.seed)
        )
    row = {"label_rate": float(y.mean()), "roc_auc": point["roc_auc"], "expected_cost": point["expected_cost"]}
    for name in ("quality_vs_baseline", "cost_reduction_vs_baseline"):
        if name in observed:
            row.update({name: observed[name].value, f"{name}_low": observed[name].low})
    for name, estimate in observed.items():
        if "_difference[" in name:
            row.update({name: estimate.value, f"{name}_high": estimate.high})
    return {"observed": observed, "row": row}


def model_age(state: dict[str, Any], bundle: dict[str, Any], newest: Any) -> tuple[float | None, str]:
    """The age in days of the model in service when the newest monitored decision was made, and where it came from.

    From when the registry installed it (:func:`.registry.model_age_days`), at the time of the
    newest decision of the prediction log: the same data give the same age. Simulated or file
    batches carry no decision time, and a model the registry has not installed has no install
    time: then the age is not measured (None), and the staleness gate says so.
    """
    from .registry import model_age_days

    champion = state.get("champion") or {}
    if newest is None:
        return None, "not measured: the batches carry no decision time (only the prediction log's do)"
    if champion.get("version") != bundle["metadata"].get("version"):
        return None, "not measured: the model in service is not installed in the registry yet"
    age = model_age_days(state, newest)
    if age is None:
        return None, "not measured: the registry did not record when the model was installed"
    installed = f"installed {champion.get('installed_at')}, newest decision {pd.Timestamp(newest).isoformat()}"
    return round(age, 2), installed


def report(judged: list[dict[str, Any]]) -> pd.DataFrame:
    """The report's table: one row per judged batch (columns a batch lacks, e.g. without labels, are empty)."""
    return pd.DataFrame([j["row"] for j in judged])


def sustained(breached: list[bool], k: int, n: int) -> bool:
    """Whether a breach is sustained: at least ``k`` of the last ``n`` windows breached, the latest among them."""
    return bool(breached) and breached[-1] and sum(breached[-n:]) >= k


def status(
    judged: list[dict[str, Any]],
    meta: dict[str, Any],
    cfg: Monitoring,
    source: str = "simulated",
    age: tuple[float | None, str] = (None, "not measured"),
) -> dict[str, Any]:
    """The machine-readable verdict step 10 acts on: ``retrain_recommended`` and ``reasons``.

    ``source`` (:attr:`Batches.source`) says where the batches came from; ``simulated`` is what
    the ML Test Score reads to tell online evidence from a rehearsal of the monitor.

    Every gate a window fails on evidence is a reason; retraining is recommended only when the
    breaches are sustained (:func:`sustained`), as a production retraining job triggers on
    k of the last n monitoring windows rather than on one noisy window. ``age`` is
    :func:`model_age`'s answer.
    """
    reasons = [f"{j['row']['batch']}: {reason}" for j in judged for reason in j["reasons"]]
    breached = [bool(j["reasons"]) for j in judged]
    recent = judged[-cfg.breach_windows :]
    return {
        "retrain_recommended": sustained(breached, cfg.sustained_breaches, cfg.breach_windows),
        "rule": f"{cfg.sustained_breaches} of the last {cfg.breach_windows} windows breach a gate, the latest among them",
        "recent_breaches": [j["row"]["batch"] for j in recent if j["reasons"]],
        "reasons": reasons,
        "source": source,
        "simulated": source == "simulated",
        "batches": report(judged).to_dict(orient="records"),
        "model_version": meta["version"],
        "model_age_days": age[0],
        "model_age": age[1],
    }


def keep_batches(batches: list[Batch], folder: Path) -> None:
    """The batches as seen, one Parquet file each, for step 10 to retrain from (the folder is replaced)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, batch, _ in batches:
        batch.to_parquet(folder / f"{name.split('.')[0]}.parquet", index=False)
