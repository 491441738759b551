"""Fairness mitigation with fairlearn, packaged so the result deploys as a skops file. Adapt freely.

Two approaches are compared in step 08:

* post-processing with :class:`fairlearn.postprocessing.ThresholdOptimizer`, which
  chooses group-specific (randomised) thresholds on the deployed model's scores;
* the reduction :class:`fairlearn.reductions.ExponentiatedGradient`, which retrains
  a weighted ensemble under a fairness constraint.

Both need the sensitive features at decision time (the post-processor) or only at
training time (the reduction). :class:`MitigatedModel` gives the scorer one
interface, ``score(X)`` and ``decide(X, groups)``, whichever was chosen. A record's
decision is a function of the record: the post-processor's randomisation draws from
a hash of the record's values (:func:`record_uniforms`), not from a random stream
that depends on the batch.

:func:`mitigate_to_pass` fits each candidate (constraint, objective) on part of a
labelled split and chooses among them on the rest (:func:`split_for_choice`), so the
choice is judged on rows the fit did not see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .config import Mitigation
from .data import intersection_labels, sensitive_groups

CONSTRAINTS = {"demographic_parity": DemographicParity, "equalized_odds": EqualizedOdds}
POOLED_GROUP = "(small groups pooled)"
# ThresholdOptimizer maximises a fixed objective, not a business cost. Accuracy weighs a
# missed positive like a false alarm; balanced accuracy weighs them by the inverse class
# frequencies. With costs, both are fitted and the cheaper on the fitting data is kept.
POSTPROCESSING_OBJECTIVES = ("accuracy_score", "balanced_accuracy_score")
# Share of the labelled rows held out from the mitigation's fit to choose among the fits.
CHOICE_FRACTION = 0.5
DECISION_RULE = (
    "The post-processor's decisions are randomised between two thresholds per group, as "
    "fairlearn's ThresholdOptimizer prescribes; the draw comes from a hash of the record's "
    "validated feature values and the seed, so the same record always gets the same decision, "
    "alone or in any batch."
)


class MitigationUnavailable(ValueError):
    """A mitigation cannot be fitted on this data (the message says why); other options may still be."""


def group_key(groups: pd.DataFrame | pd.Series) -> np.ndarray:
    """One label per row combining the sensitive features the mitigation acts on."""
    if isinstance(groups, pd.Series):
        return groups.astype(str).to_numpy()
    return intersection_labels(groups).to_numpy()


def fittable_groups(key: np.ndarray, y: np.ndarray, min_group_size: int) -> tuple[dict[str, str], str]:
    """Which group each label is fitted as, and the group an unknown label falls back to.

    A post-processor needs both outcomes in every group it sets thresholds for. Groups
    with fewer than ``min_group_size`` rows or a single outcome (typical of small
    intersections) are pooled into one group; when the pool itself has a single
    outcome, it joins the largest group. Raises :class:`MitigationUnavailable` when no group qualifies.
    """
    frame = pd.DataFrame({"group": key, "y": y})
    stats = frame.groupby("group")["y"].agg(["size", "nunique"])
    fittable = stats[(stats["size"] >= min_group_size) & (stats["nunique"] == 2)]
    if fittable.empty:
        raise MitigationUnavailable(
            f"no sensitive group has {min_group_size} rows with both outcomes; "
            "a post-processor cannot set group thresholds on this data"
        )
    pooled = stats.index.difference(fittable.index)
    fallback = POOLED_GROUP
    if len(pooled) == 0 or frame.loc[frame["group"].isin(pooled), "y"].nunique() < 2:
        fallback = str(fittable["size"].idxmax())
    mapping = {str(g): str(g) for g in fittable.index} | {str(g): fallback for g in pooled}
    return mapping, fallback


def record_uniforms(x: pd.DataFrame, seed: int, numeric_columns: list[str] | None = None) -> np.ndarray:
    """One draw in (0, 1) per record, a function of the record's values and ``seed`` alone.

    Each record's values are written out canonically (columns by name; numbers as float64,
    so 5 and 5.0 agree, with one missing value and no negative zero; everything else as its
    text) and hashed with BLAKE2b keyed by the seed. The draw does not depend on the other
    records of the batch, their order or the environment. ``numeric_columns`` names the
    columns to read as numbers (by default, those of a numeric dtype), so that a scorer's
    validated frame and the raw data give the same draws.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if numeric_columns is None:
        numeric_columns = [c for c in x.columns if is_numeric_dtype(x[c]) and not is_bool_dtype(x[c])]
    tokens = []
    for column in sorted(x.columns):
        if column in numeric_columns:
            values = pd.to_numeric(x[column], errors="coerce").to_numpy(dtype=float) + 0.0  # -0.0 + 0.0 is 0.0
            tokens.append([f"{column}=n:{'' if v != v else repr(v)}" for v in values.tolist()])
        else:
            values = x[column].astype(object).to_numpy()
            missing = pd.isna(values)
            tokens.append([f"{column}=-" if m else f"{column}=s:{v}" for v, m in zip(values, missing, strict=True)])
    key = int(seed).to_bytes(16, "little", signed=True)
    draws = (
        [
            int.from_bytes(hashlib.blake2b("\x1f".join(row).encode(), digest_size=8, key=key).digest(), "little")
            for row in zip(*tokens, strict=True)
        ]
        if tokens
        else [0] * len(x)
    )
    return ((np.array(draws, dtype=np.uint64) >> np.uint64(11)).astype(float) + 0.5) / 2.0**53


def interpolated_positive(interpolation: Any, scores: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The probability of a positive decision per record, as fairlearn's fitted thresholder gives it.

    fairlearn's ``InterpolatedThresholder._pmf_predict`` (its second column), computed on
    scores already known and in numpy: fairlearn's own call reruns the model and spends about
    3 ms in pandas per call whatever the batch size, more than the rest of a one-record
    request outside the model. A unit test holds the two equal, bit for bit.
    """
    positive, key = np.zeros(len(scores), dtype=float), np.asarray(key)
    for group, rule in interpolation.items():
        mask = key == group
        if not mask.any():
            continue
        values = scores[mask]
        chance = rule["p0"] * rule["operation0"](values) + rule["p1"] * rule["operation1"](values)
        if "p_ignore" in rule:
            chance = rule["p_ignore"] * rule["prediction_constant"] + (1 - rule["p_ignore"]) * chance
        positive[mask] = chance
    return positive


class MitigatedModel:
    """A deployed model whose decisions depend on the sensitive groups.

    ``kind`` is ``"threshold_optimizer"`` (``postprocessor`` holds the fitted
    ThresholdOptimizer around ``pipeline``) or ``"exponentiated_gradient"``
    (``predictors`` and ``weights`` hold the ensemble; decisions are the weighted
    vote, derandomised so that the same record always gets the same decision).
    """

    def __init__(
        self,
        kind: str,
        pipeline: Pipeline,
        group_columns: list[str],
        postprocessor: Any = None,
        predictors: list | None = None,
        weights: np.ndarray | None = None,
        seed: int = 0,
        group_mapping: dict[str, str] | None = None,
        fallback_group: str | None = None,
        numeric_columns: list[str] | None = None,
    ):
        self.kind = kind
        self.pipeline = pipeline
        self.group_columns = list(group_columns)
        self.postprocessor = postprocessor
        self.predictors = predictors or []
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.seed = seed
        self.group_mapping = dict(group_mapping or {})
        self.fallback_group = fallback_group
        self.numeric_columns = None if numeric_columns is None else list(numeric_columns)

    def score(self, x: pd.DataFrame) -> np.ndarray:
        """Probability of the positive outcome from the underlying model (for ranking and monitoring)."""
        if self.kind == "exponentiated_gradient":
            return self._ensemble_probability(x)
        return np.asarray(self.pipeline.predict_proba(x))[:, 1]

    def decide(self, x: pd.DataFrame, groups: pd.DataFrame, scores: np.ndarray | None = None) -> np.ndarray:
        """0/1 decisions; ``groups`` holds the group labels of the sensitive features.

        Each record's decision depends on that record alone. The post-processor acts with
        its group's interpolation probability (fairlearn's ``_pmf_predict``, what its own
        ``predict`` compares a random draw against), against a draw from the record itself
        (:func:`record_uniforms`); the ensemble takes the weighted vote. ``scores``: this
        model's :meth:`score` of ``x`` when the caller has it already (scoring computes it
        once, not once more inside the post-processor).
        """
        if scores is not None and len(scores) != len(x):
            raise ValueError(f"{len(scores)} scores given for {len(x)} records")
        if self.kind == "threshold_optimizer":
            key = self.fitted_group(group_key(groups[self.group_columns]))
            known = self.score(x) if scores is None else np.asarray(scores, dtype=float)
            positive = interpolated_positive(
                self.postprocessor.interpolated_thresholder_.interpolation_dict, known, key
            )
            draws = record_uniforms(x, self.seed, getattr(self, "numeric_columns", None))
            return (positive >= draws).astype(int)
        return ((self._ensemble_probability(x) if scores is None else np.asarray(scores)) >= 0.5).astype(int)

    def fitted_group(self, key: np.ndarray) -> np.ndarray:
        """The group the post-processor knows for each label (pooled or unseen ones map to the fallback)."""
        if not self.group_mapping:
            return key
        return np.array([self.group_mapping.get(str(k), self.fallback_group) for k in key], dtype=object)

    @property
    def pooled_groups(self) -> list[str]:
        """Labels that were fitted as another group (too small or one outcome only)."""
        return sorted(g for g, fitted in self.group_mapping.items() if g != fitted)

    def _ensemble_probability(self, x: pd.DataFrame) -> np.ndarray:
        """The weighted share of the predictors that vote 1.

        Rounding can put a unanimous vote a hair above 1 (1.0000000000000002), which
        scikit-learn's probability metrics refuse: clipped into [0, 1].
        """
        votes = np.column_stack([np.asarray(p.predict(x)) for p in self.predictors])
        return np.clip(votes @ self.weights / self.weights.sum(), 0.0, 1.0)


def fit_threshold_optimizer(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: pd.DataFrame,
    constraint: str,
    seed: int,
    min_group_size: int = 30,
    objective: str = "accuracy_score",
    numeric_columns: list[str] | None = None,
) -> tuple[MitigatedModel, dict[str, Any]]:
    """Post-process a fitted pipeline; returns the model and the trade-off curve for plotting.

    Groups too small to fit are pooled (see :func:`fittable_groups`); the model's
    ``pooled_groups`` lists them so the report can say so. ``objective`` is one of
    ``POSTPROCESSING_OBJECTIVES``; :func:`mitigate_to_pass` tries both and keeps the
    cheaper on held-out rows. ``numeric_columns``: see :func:`record_uniforms`.
    """
    optimizer = ThresholdOptimizer(
        estimator=pipeline,
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
    )
    mapping, fallback = fittable_groups(group_key(groups), np.asarray(y), min_group_size)
    model = MitigatedModel(
        "threshold_optimizer",
        pipeline,
        list(groups.columns),
        postprocessor=optimizer,
        seed=seed,
        group_mapping=mapping,
        fallback_group=fallback,
        numeric_columns=numeric_columns,
    )
    optimizer.fit(x, y, sensitive_features=model.fitted_group(group_key(groups)))
    curves = {
        "x_metric": optimizer.x_metric_,
        "y_metric": optimizer.y_metric_,
        "objective": objective,
        "groups": {g: c[["x", "y"]].copy() for g, c in optimizer._tradeoff_curve.items()},
    }
    drop_plotting_attributes(optimizer)
    return model, curves


def drop_plotting_attributes(optimizer: ThresholdOptimizer) -> None:
    """Remove what ThresholdOptimizer keeps only for plotting (pandas objects skops cannot store).

    Prediction uses ``interpolated_thresholder_`` alone; the private trade-off curves
    (``_tradeoff_curve``, ``_overall_tradeoff_curve``, ``_y_min``) differ by constraint.
    """
    for name, value in list(vars(optimizer).items()):
        pandas_held = isinstance(value, (pd.DataFrame, pd.Series)) or (
            isinstance(value, dict) and any(isinstance(v, (pd.DataFrame, pd.Series)) for v in value.values())
        )
        if name.startswith("_") and pandas_held:
            delattr(optimizer, name)


def fit_exponentiated_gradient(
    base: Pipeline,
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: pd.DataFrame,
    constraint: str,
    seed: int,
    max_iter: int = 20,
) -> MitigatedModel:
    """Retrain ``base`` (an unfitted pipeline) under a fairness constraint: a weighted ensemble.

    The reduction refits ``base`` once per iteration, so a fast learner (the logistic
    regression candidate) keeps it affordable; ``pipeline`` still gives the scores.
    """
    reduction = ExponentiatedGradient(
        clone(base),
        CONSTRAINTS[constraint](),
        max_iter=max_iter,
        sample_weight_name="model__sample_weight",
    )
    reduction.fit(x, y, sensitive_features=group_key(groups))
    keep = reduction.weights_.to_numpy() > 0
    predictors = [p for p, k in zip(reduction.predictors_.tolist(), keep, strict=True) if k]
    return MitigatedModel(
        "exponentiated_gradient",
        pipeline,
        list(groups.columns),
        predictors=predictors,
        weights=reduction.weights_.to_numpy()[keep],
        seed=seed,
    )


def mitigate(
    kind: str,
    pipeline: Pipeline,
    spec: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    constraint: str,
    seed: int,
    min_group_size: int = 30,
    objective: str | None = None,
) -> tuple[MitigatedModel, dict[str, Any] | None]:
    """Fit mitigation ``kind`` for ``pipeline`` on ``frame`` (labelled rows, e.g. part of validation).

    ``objective`` is the post-processor's (accuracy by default); the reduction has none.
    Returns the model and, for the post-processor, its trade-off curves.
    """
    from .modeling import candidate_pipelines
    from .profiling import feature_columns

    if constraint not in CONSTRAINTS:
        raise ValueError(f"fairness constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    x, y = frame[feature_columns(spec)], frame[spec["target"]].to_numpy()
    groups = sensitive_groups(frame, spec)[list(features)]
    if kind == "threshold_optimizer":
        return fit_threshold_optimizer(
            pipeline,
            x,
            y,
            groups,
            constraint,
            seed,
            min_group_size,
            objective or "accuracy_score",
            spec["numeric_features"],
        )
    if kind == "exponentiated_gradient":
        base = candidate_pipelines(spec, seed)["logistic_regression"]
        return fit_exponentiated_gradient(base, pipeline, x, y, groups, constraint, seed), None
    raise ValueError(f"unknown mitigation {kind!r}; choose threshold_optimizer or exponentiated_gradient")


def failing_constraints(failures: list[str]) -> list[str]:
    """The constraints whose gates fail, from gate failure lines such as ``demographic_parity[sex]: ...``."""
    return sorted({line.split("[")[0] for line in failures if line.split("[")[0] in CONSTRAINTS})


def holdout_mask(strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which rows to hold out: a random ``fraction`` of every stratum (rounded down), the rest kept."""
    codes = pd.factorize(np.asarray(strata))[0]
    order = np.random.default_rng(seed).permutation(len(codes))
    shuffled = codes[order]
    rank = pd.Series(shuffled).groupby(shuffled).cumcount().to_numpy()  # place within its stratum, in random order
    held = np.zeros(len(codes), dtype=bool)
    held[order] = rank < np.floor(np.bincount(codes)[shuffled] * fraction)
    return held


def fitting_rows(rows: int) -> int:
    """About how many of ``rows`` labelled rows are left to fit on once the choice's share is held out."""
    return rows - int(rows * CHOICE_FRACTION)


def split_for_choice(
    frame: pd.DataFrame, spec: dict[str, Any], settings: Mitigation
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows to fit the mitigations on, and the rows held out to choose among the fits.

    ``CHOICE_FRACTION`` of every (sensitive group, outcome) stratum is held out, so small
    groups appear on both sides. With ``mitigation_max_rows``, the fit uses a random sample
    of at most that many of its rows: the reduction refits its learner about twenty times per
    constraint, which on a large validation split costs minutes per fit.
    """
    from .bias import sample_positions

    groups = sensitive_groups(frame, spec)[spec["sensitive_features"]]
    strata = pd.Series(group_key(groups), index=frame.index) + " | " + frame[spec["target"]].astype(str)
    held = holdout_mask(strata.to_numpy(), CHOICE_FRACTION, settings.seed)
    fit, choice = frame[~held], frame[held]
    max_rows = settings.mitigation_max_rows
    if max_rows is not None and fitting_rows(len(frame)) > max_rows:
        fit = fit.iloc[sample_positions(len(fit), max_rows, settings.seed)]
    return fit, choice


def sample_note(rows: int, max_rows: int | None, assessed_on: str) -> str:
    """The notebook's sentence when :func:`split_for_choice` fits on a sample (empty otherwise)."""
    if max_rows is None or fitting_rows(rows) <= max_rows:
        return ""
    return (
        f"The mitigations are fitted on a random sample of {max_rows:,} rows (`mitigation_max_rows`) of the "
        f"{rows:,} validation rows' fitting half, chosen on the other half, then assessed on {assessed_on}."
    )


@dataclass
class Choice:
    """A mitigation chosen on held-out rows (all None: the deployed model as it is, no mitigation).

    ``tried`` has one row per fit compared: its constraint, objective, whether it passes the
    fairness gates and its expected cost on the held-out rows.
    """

    model: MitigatedModel | None = None
    constraint: str | None = None
    objective: str | None = None
    curves: dict[str, Any] | None = None
    tried: pd.DataFrame | None = None


def choose_fit(
    kind: str,
    pipeline: Pipeline,
    spec: dict[str, Any],
    fit_frame: pd.DataFrame,
    choice_frame: pd.DataFrame,
    features: list[str],
    constraints: list[str],
    fairness_gates: list[dict[str, Any]],
    settings: Mitigation,
    costs: tuple[float, float],
) -> Choice:
    """Fit ``kind`` on ``fit_frame`` once per constraint (and objective, for the post-processor);
    keep the fit that passes the gates on ``choice_frame`` at the lowest cost there.

    ThresholdOptimizer and the reductions enforce one constraint at a time, and a fit under
    one (equalized odds) may leave the other (demographic parity) above its gate. When no fit
    passes, the cheapest is kept and the gates downstream say why.
    """
    from . import compute
    from .business import cost_of_predictions
    from .fairness import gap_metrics
    from .gates import evaluate
    from .profiling import feature_columns

    if not constraints:
        raise ValueError("no fairness constraint to mitigate for: pass the constraints whose gates fail")
    x, y = choice_frame[feature_columns(spec)], choice_frame[spec["target"]].to_numpy()
    groups = sensitive_groups(choice_frame, spec)
    objectives = POSTPROCESSING_OBJECTIVES if kind == "threshold_optimizer" else (None,)
    # the fits are independent (each seeded): in this process, or on the cluster's workers (compute.parallel)
    combos = [(constraint, objective) for constraint in constraints for objective in objectives]
    calls = [
        (kind, pipeline, spec, fit_frame, features, c, settings.seed, settings.min_group_size, o) for c, o in combos
    ]
    fits, rows = [], []
    for (constraint, objective), (model, curves) in zip(combos, compute.run(mitigate, calls), strict=True):
        decided = model.decide(x, groups)
        gaps = gap_metrics(y, decided, choice_frame, spec, settings.min_group_size)
        passes, cost = bool(evaluate(fairness_gates, gaps)["passed"].all()), cost_of_predictions(y, decided, *costs)
        fits.append(Choice(model, constraint, objective, curves))
        rows.append(
            {
                "constraint": constraint,
                "objective": objective,
                "passes_fairness_gates": passes,
                "expected_cost": cost,
            }
        )
    tried = pd.DataFrame(rows)
    best = min(
        range(len(fits)), key=lambda i: (not tried.loc[i, "passes_fairness_gates"], tried.loc[i, "expected_cost"])
    )
    fits[best].tried = tried
    return fits[best]


def mitigate_to_pass(
    kind: str,
    pipeline: Pipeline,
    spec: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    constraints: list[str],
    fairness_gates: list[dict[str, Any]],
    settings: Mitigation,
    costs: tuple[float, float] = (1.0, 1.0),
) -> tuple[MitigatedModel, dict[str, Any] | None, str]:
    """Fit ``kind`` on part of ``frame`` and choose its constraint and objective on the rest.

    :func:`split_for_choice` holds out the rows to choose on; :func:`choose_fit` fits and
    chooses. ``settings`` are step 08's mitigation parameters (seed, ``min_group_size``,
    ``mitigation_max_rows``); step 10 gives a challenger the same procedure. Returns the
    model, its trade-off curves (post-processor only) and the constraint.
    """
    fit, choice = split_for_choice(frame, spec, settings)
    chosen = choose_fit(kind, pipeline, spec, fit, choice, features, constraints, fairness_gates, settings, costs)
    return chosen.model, chosen.curves, chosen.constraint
