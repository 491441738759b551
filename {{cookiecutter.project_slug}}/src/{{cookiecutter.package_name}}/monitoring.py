"""Drift and health checks of production batches against the training reference. Adapt freely.

Step 09 gets its batches from :func:`production_batches`, judges each with
:func:`judge_batch` against a :class:`Reference`, and writes :func:`status`.

Population Stability Index (PSI) is the effect size used for alerts on every
feature and on the scores; the Kolmogorov-Smirnov statistic (numeric) and the
Jensen-Shannon distance with a chi-square test (categorical) come from scipy and
are reported beside it, so a reader sees how large a shift is, not only whether
it is significant.
"""

from __future__ import annotations

import shutil
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
# A point mass alerts when the smaller side's share changes by this factor (or its inverse), beyond
# sampling noise (binomial p-value below MASS_SHIFT_P): PSI cannot see a doubled 8% share (0.06 < 0.25).
MASS_SHIFT_RATIO = 1.5
MASS_SHIFT_P = 0.001
BATCH_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    share = counts / total if total else np.zeros_like(counts, dtype=float)
    return np.clip(share, EPSILON, None)


@dataclass(frozen=True)
class NumericBins:
    """PSI bins of a numeric column: each point mass of the reference on its own, quantile bins for the rest.

    A value that holds at least :data:`POINT_MASS_SHARE` of the reference (the zeros of an amount,
    the 40 of weekly hours) is a bin of its own; plain quantile bins would merge it with its
    neighbours, or, for a column of 92% zeros, collapse the whole column into one bin whose PSI
    stays near 0 whatever happens to it. The other values get quantile bins in proportion to
    their share (about 1/``bins`` of the reference each).
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
        parts = max(int(np.ceil(bins * len(rest) / len(values))), 1)
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
    text = values.astype("string")
    counts = [int((text == c).sum()) for c in categories]
    other = int(text.notna().sum()) - sum(counts)
    return np.array([*counts, other, int(text.isna().sum())], dtype=float)


def point_mass_shift(reference: pd.Series, current: pd.Series, bins: NumericBins) -> tuple[float, float]:
    """The largest change of a point mass's share: the ratio of the smaller side's shares, and its p-value.

    For a mass that holds share ``r`` of the reference and ``c`` of the batch, the smaller side is
    the mass itself when ``r <= 0.5`` (ratio ``c / r``), else the other values (``(1 - c) / (1 - r)``):
    a column of 92% zeros whose non-zero share doubles has ratio 2, although its PSI is only about
    0.06. The p-value is scipy's exact binomial test of the batch's count against the reference
    share. Returns (1.0, 1.0) when the column has no point mass.
    """
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    worst = (1.0, 1.0)
    if not len(ref) or not len(cur):
        return worst
    for point in bins.points:
        r, hits = float(np.mean(ref == point)), int(np.sum(cur == point))
        c = hits / len(cur)
        ratio = max(c, EPSILON) / max(r, EPSILON) if r <= 0.5 else max(1 - c, EPSILON) / max(1 - r, EPSILON)
        if abs(np.log(ratio)) > abs(np.log(worst[0])):
            worst = (float(ratio), float(stats.binomtest(hits, len(cur), r).pvalue))
    return worst


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population Stability Index: sum((cur - ref) * ln(cur / ref)) over bins."""
    ref, cur = _proportions(ref_counts), _proportions(cur_counts)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def feature_drift(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, float]:
    """PSI plus the matching scipy statistic for one feature."""
    if kind == "numeric":
        bins = numeric_bins(reference)
        ref_counts, cur_counts = binned_counts(reference, kind, bins), binned_counts(current, kind, bins)
        a = pd.to_numeric(reference, errors="coerce").dropna()
        b = pd.to_numeric(current, errors="coerce").dropna()
        ks = stats.ks_2samp(a, b) if len(a) and len(b) else None
        ratio, p_value = point_mass_shift(reference, current, bins)
        return {
            "psi": psi(ref_counts, cur_counts),
            "statistic": float(ks.statistic) if ks else float("nan"),
            "p_value": float(ks.pvalue) if ks else float("nan"),
            "test": "KS",
            "mass_shift": ratio,
            "mass_shift_p": p_value,
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
        "mass_shift": 1.0,
        "mass_shift_p": 1.0,
    }


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str], psi_warning: float, psi_alert: float
) -> pd.DataFrame:
    """One row per feature: PSI, the scipy statistic and p-value, the point-mass shift, and the status.

    A feature alerts when its PSI reaches ``psi_alert``, or when one of its point masses shifted
    (:func:`point_mass_shift` by :data:`MASS_SHIFT_RATIO` or more, p below :data:`MASS_SHIFT_P`).
    """
    rows = []
    for column, kind in kinds.items():
        if column not in current.columns:
            continue
        result = feature_drift(reference[column], current[column], kind)
        shifted = (
            abs(np.log(result["mass_shift"])) >= np.log(MASS_SHIFT_RATIO) and result["mass_shift_p"] < MASS_SHIFT_P
        )
        alert = result["psi"] >= psi_alert or shifted
        status = "alert" if alert else ("warning" if result["psi"] >= psi_warning else "ok")
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
        return cls(bundle, frame, scores, spec, criteria, costs, schema)

    @property
    def meta(self) -> dict[str, Any]:
        return self.bundle["metadata"]

    @property
    def kinds(self) -> dict[str, str]:
        return {c: self.meta["schema"][c]["kind"] for c in self.meta["schema"]}

    @property
    def psi_alert(self) -> float:
        return float(self.criteria["criteria"]["psi_alert"])

    @property
    def quality_gate(self) -> dict[str, Any]:
        from .gates import gates_for

        return gates_for(self.criteria["gates"], "modeling")[0]


def score_drift(reference_scores: pd.Series, scores: pd.Series) -> float:
    """PSI of a batch's scores against the reference scores (bins from the reference, as for a feature)."""
    bins = numeric_bins(reference_scores)
    return psi(*(binned_counts(s, "numeric", bins) for s in (reference_scores, scores)))


def judge_batch(
    name: str, batch: pd.DataFrame, injected: str, ref: Reference, cfg: Monitoring, served: pd.DataFrame | None = None
) -> dict[str, Any]:
    """One batch against the reference: schema, missing values, drift, and on labels quality and fairness.

    ``served``: the ``score`` and ``decision`` the service gave each row (a window of the
    prediction log); then quality, cost and fairness are those of the decisions that were served,
    whichever model served them. Without it the batch is scored by the model in service.

    Returns ``row`` (the batch's line of the report), ``drift`` (per-feature table) and
    ``reasons`` (the failed monitoring gates; empty when the batch is healthy).
    """
    from .gates import evaluate, failures, gates_for
    from .schema import violations
    from .scoring import InputError, required_columns, score

    meta, target = ref.meta, ref.spec["target"]
    missing = [c for c in required_columns(meta) if c not in batch.columns]
    if missing:
        raise data.DataContractError(
            f"production batch {name}: column {missing[0]!r} of the training schema is missing; the batch cannot be monitored"
        )
    schema_problems = violations(ref.production_schema, batch[list(meta["schema"])])
    if served is not None:
        scored = served[["score", "decision"]].reset_index(drop=True)
    else:
        try:
            scored = score(ref.bundle, batch, allow_extra=True, allow_unseen=True)
        except InputError as exc:  # e.g. text where training had numbers: the batch's schema differs
            raise data.DataContractError(f"production batch {name}: {exc}") from None
    drift = drift_table(ref.frame, batch, ref.kinds, cfg.psi_warning, ref.psi_alert)
    drifted = drift["status"] == "alert"
    observed = {"drifted_features": int(drifted.sum()), "model_age_days": cfg.model_age_days}
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
    labelled = batch[target].notna().to_numpy() if target in batch.columns else np.zeros(len(batch), bool)
    if labelled.sum() >= 50 and len(np.unique(batch.loc[labelled, target])) == 2:
        outcome = labelled_outcome(batch.loc[labelled], scored[labelled], ref, cfg)
        observed.update(outcome["observed"])
        row.update(outcome["row"])
    quality_gate = ref.quality_gate
    measurable = [
        g
        for g in gates_for(ref.criteria["gates"], "monitoring") + [quality_gate]
        if pd.notna(observed.get(g["metric"], np.nan))
    ]
    reasons = failures(evaluate(measurable, observed))
    named = f" ({row['drifted']})" if row["drifted"] else ""
    reasons = [r + named if r.startswith("feature_drift:") else r for r in reasons]
    return {"row": row, "drift": drift, "reasons": reasons}


def labelled_outcome(rows: pd.DataFrame, scored: pd.DataFrame, ref: Reference, cfg: Monitoring) -> dict[str, Any]:
    """Quality and fairness of the labelled rows of a batch: ``observed`` for the gates, ``row`` for the report.

    Fairness gates judge the bootstrap lower bound of each gap: a small batch's noise alone raises no alarm.
    """
    from .fairness import gap_lower_bounds, gap_metrics
    from .modeling import evaluate_served

    y = rows[ref.spec["target"]].to_numpy().astype(int)
    decided = scored["decision"].to_numpy()
    quality = evaluate_served(y, scored["score"].to_numpy(), decided, *ref.costs)
    metric = ref.quality_gate["metric"]
    observed = {metric: quality[metric.removeprefix("test_")]}
    observed.update(
        gap_lower_bounds(y, decided, rows, ref.spec, cfg.min_group_size, cfg.fairness_bootstrap_samples, cfg.seed)
    )
    point = gap_metrics(y, decided, rows, ref.spec, cfg.min_group_size)
    row = {
        "label_rate": float(y.mean()),
        "roc_auc": quality["roc_auc"],
        "expected_cost": quality["expected_cost"],
        **{k: v for k, v in point.items() if k.startswith("demographic_parity_difference")},
    }
    return {"observed": observed, "row": row}


def report(judged: list[dict[str, Any]]) -> pd.DataFrame:
    """The report's table: one row per judged batch (columns a batch lacks, e.g. without labels, are empty)."""
    return pd.DataFrame([j["row"] for j in judged])


def sustained(breached: list[bool], k: int, n: int) -> bool:
    """Whether a breach is sustained: at least ``k`` of the last ``n`` windows breached, the latest among them."""
    return bool(breached) and breached[-1] and sum(breached[-n:]) >= k


def status(
    judged: list[dict[str, Any]], meta: dict[str, Any], cfg: Monitoring, source: str = "simulated"
) -> dict[str, Any]:
    """The machine-readable verdict step 10 acts on: ``retrain_recommended`` and ``reasons``.

    ``source`` (:attr:`Batches.source`) says where the batches came from; ``simulated`` is what
    the ML Test Score reads to tell online evidence from a rehearsal of the monitor.

    Every failed gate of every window is a reason; retraining is recommended only when the
    breaches are sustained (:func:`sustained`), as a production retraining job triggers on
    k of the last n monitoring windows rather than on one noisy window.
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
        "model_age_days": whole(cfg.model_age_days),
    }


def whole(value: float) -> float | int:
    """A whole number as an int (a model age of 30 days is written ``30``, as params.yaml gives it)."""
    return int(value) if float(value).is_integer() else value


def keep_batches(batches: list[Batch], folder: Path) -> None:
    """The batches as seen, one Parquet file each, for step 10 to retrain from (the folder is replaced)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, batch, _ in batches:
        batch.to_parquet(folder / f"{name.split('.')[0]}.parquet", index=False)
