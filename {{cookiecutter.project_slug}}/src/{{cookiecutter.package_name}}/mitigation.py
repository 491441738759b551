"""Fairness mitigation with fairlearn, packaged so the result deploys as a skops file.

Two approaches are compared in step 08:

* post-processing with :class:`fairlearn.postprocessing.ThresholdOptimizer`, which
  chooses group-specific (randomised) thresholds on the deployed model's scores;
* the reduction :class:`fairlearn.reductions.ExponentiatedGradient`, which retrains
  a weighted ensemble under a fairness constraint.

Both need the sensitive features at decision time (the post-processor) or only at
training time (the reduction). :class:`MitigatedModel` gives the scorer one
interface, ``score(X)`` and ``decide(X, groups)``, whichever was chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .config import Mitigation

CONSTRAINTS = {"demographic_parity": DemographicParity, "equalized_odds": EqualizedOdds}
POOLED_GROUP = "(small groups pooled)"
# ThresholdOptimizer maximises a fixed objective, not a business cost. Accuracy weighs a
# missed positive like a false alarm; balanced accuracy weighs them by the inverse class
# frequencies. With costs, both are fitted and the cheaper on the fitting data is kept.
POSTPROCESSING_OBJECTIVES = ("accuracy_score", "balanced_accuracy_score")


class MitigationUnavailable(ValueError):
    """A mitigation cannot be fitted on this data (the message says why); other options may still be."""


def group_key(groups: pd.DataFrame | pd.Series) -> np.ndarray:
    """One label per row combining the sensitive features the mitigation acts on."""
    if isinstance(groups, pd.Series):
        return groups.astype(str).to_numpy()
    from .data import intersection_labels

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

    def score(self, x: pd.DataFrame) -> np.ndarray:
        """Probability of the positive outcome from the underlying model (for ranking and monitoring)."""
        if self.kind == "exponentiated_gradient":
            return self._ensemble_probability(x)
        return np.asarray(self.pipeline.predict_proba(x))[:, 1]

    def decide(self, x: pd.DataFrame, groups: pd.DataFrame) -> np.ndarray:
        """0/1 decisions; ``groups`` holds the group labels of the sensitive features."""
        if self.kind == "threshold_optimizer":
            key = self.fitted_group(group_key(groups[self.group_columns]))
            return np.asarray(self.postprocessor.predict(x, sensitive_features=key, random_state=self.seed)).astype(int)
        return (self._ensemble_probability(x) >= 0.5).astype(int)

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
    costs: tuple[float, float] | None = None,
) -> tuple[MitigatedModel, dict[str, Any]]:
    """Post-process a fitted pipeline; returns the model and the trade-off curve for plotting.

    Groups too small to fit are pooled (see :func:`fittable_groups`); the model's
    ``pooled_groups`` lists them so the report can say so. ``costs`` (false positive,
    false negative) choose the objective (see ``POSTPROCESSING_OBJECTIVES``); without
    them the objective is accuracy.
    """
    if costs is None:
        return _fit_threshold_optimizer(pipeline, x, y, groups, constraint, seed, min_group_size, "accuracy_score")
    from .business import cost_of_predictions

    fitted = [
        _fit_threshold_optimizer(pipeline, x, y, groups, constraint, seed, min_group_size, objective)
        for objective in POSTPROCESSING_OBJECTIVES
    ]
    return min(fitted, key=lambda fit: cost_of_predictions(np.asarray(y), fit[0].decide(x, groups), *costs))


def _fit_threshold_optimizer(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: pd.DataFrame,
    constraint: str,
    seed: int,
    min_group_size: int,
    objective: str,
) -> tuple[MitigatedModel, dict[str, Any]]:
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
    costs: tuple[float, float] | None = None,
) -> tuple[MitigatedModel, dict[str, Any] | None]:
    """Fit mitigation ``kind`` for ``pipeline`` on ``frame`` (a labelled split, e.g. validation).

    Step 08 calls this to choose a mitigation, step 10 to give a challenger the same
    treatment as the champion. ``costs`` (false positive, false negative) let the
    post-processor pick the objective closest to the business cost. Returns the model
    and, for the post-processor, its trade-off curves.
    """
    from .data import sensitive_groups
    from .modeling import candidate_pipelines
    from .profiling import feature_columns

    if constraint not in CONSTRAINTS:
        raise ValueError(f"fairness constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    x, y = frame[feature_columns(spec)], frame[spec["target"]].to_numpy()
    groups = sensitive_groups(frame, spec)[list(features)]
    if kind == "threshold_optimizer":
        return fit_threshold_optimizer(pipeline, x, y, groups, constraint, seed, min_group_size, costs)
    if kind == "exponentiated_gradient":
        base = candidate_pipelines(spec, seed)["logistic_regression"]
        return fit_exponentiated_gradient(base, pipeline, x, y, groups, constraint, seed), None
    raise ValueError(f"unknown mitigation {kind!r}; choose threshold_optimizer or exponentiated_gradient")


def failing_constraints(failures: list[str]) -> list[str]:
    """The constraints whose gates fail, from gate failure lines such as ``demographic_parity[sex]: ...``."""
    return sorted({line.split("[")[0] for line in failures if line.split("[")[0] in CONSTRAINTS})


def sample_note(rows: int, max_rows: int, assessed_on: str) -> str:
    """The notebook's sentence when :func:`mitigate_to_pass` fits on a sample of ``rows`` (empty otherwise)."""
    if rows <= max_rows:
        return ""
    return (
        f"The mitigations are fitted and chosen on a random sample of {max_rows:,} of the "
        f"{rows:,} validation rows (`mitigation_max_rows`), then assessed on {assessed_on}."
    )


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
    """Fit ``kind`` once per constraint on ``frame``; keep the fit that passes the gates there at the lowest cost.

    ``settings`` are step 08's mitigation parameters (seed, ``min_group_size``,
    ``mitigation_max_rows``); step 10 passes the same for its challenger.
    With ``mitigation_max_rows``, fitting and choosing use a random sample of at most that many rows of
    ``frame``: the reduction refits its learner about twenty times per constraint, which on a
    large validation split costs minutes per fit.

    ThresholdOptimizer and the reductions enforce one constraint at a time, and a fit under
    one (equalized odds) may leave the other (demographic parity) above its gate. Step 08
    chooses this way, and step 10 gives a challenger the same procedure. When no fit
    passes, the cheapest is kept and the gates downstream say why. Returns the model,
    its trade-off curves (post-processor only) and the constraint.
    """
    from .bias import sample_positions
    from .business import cost_of_predictions
    from .data import sensitive_groups
    from .fairness import gap_metrics
    from .gates import evaluate
    from .profiling import feature_columns

    if not constraints:
        raise ValueError("no fairness constraint to mitigate for: pass the constraints whose gates fail")
    seed, min_group_size, max_rows = settings.seed, settings.min_group_size, settings.mitigation_max_rows
    if max_rows is not None:
        frame = frame.iloc[sample_positions(len(frame), max_rows, seed)]
    x, y = frame[feature_columns(spec)], frame[spec["target"]].to_numpy()
    groups = sensitive_groups(frame, spec)
    fits = []
    for constraint in constraints:
        model, curves = mitigate(kind, pipeline, spec, frame, features, constraint, seed, min_group_size, costs)
        decided = model.decide(x, groups)
        passes = bool(evaluate(fairness_gates, gap_metrics(y, decided, frame, spec, min_group_size))["passed"].all())
        fits.append((not passes, cost_of_predictions(y, decided, *costs), constraint, model, curves))
    fails, _, constraint, model, curves = min(fits, key=lambda fit: fit[:2])
    return model, curves, constraint
