"""Fairness mitigation with fairlearn, packaged so the result deploys as a skops file. Adapt freely.

Two approaches are compared in step 08:

* post-processing with :class:`fairlearn.postprocessing.ThresholdOptimizer`, which
  chooses group-specific thresholds on the deployed model's scores. fairlearn's rule is
  randomised (between two thresholds per group); the release decides deterministically
  with one threshold per group that comes closest to fairlearn's operating point on the
  fitting rows (:func:`group_thresholds`), so no decision is a draw that a person could
  redraw by nudging a feature;
* the reduction :class:`fairlearn.reductions.ExponentiatedGradient`, which retrains
  the deployed model's own estimator as a weighted ensemble under a fairness constraint,
  minimising the business cost (fitted only when named: see ``NOT_IN_AUTO``).

Both need the sensitive features at decision time (the post-processor) or only at
training time (the reduction). :class:`MitigatedModel` gives the scorer one
interface, ``score(X)`` and ``decide(X, groups)``, whichever was chosen. A record's
decision is a function of the record alone, and a monotone one of its score within its group.

:func:`mitigate_to_pass` fits each candidate (constraint, objective) on part of a
labelled split and chooses among them on the rest (:func:`split_for_choice`), so the
choice is judged on rows the fit did not see.
"""

from __future__ import annotations

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
# ThresholdOptimizer maximises a fixed objective, not a business cost. Under equalized odds it
# maximises the business cost itself: accuracy on rows where each positive counts c_fn / c_fp
# times a negative (rows repeated, cost_weighted_rows) is the negative expected cost, and
# repeating rows within an outcome leaves every group's true and false positive rates, which
# the constraint equalises, unchanged. Under demographic parity repeating would change the
# selection rates it equalises: accuracy or balanced accuracy is fitted, whichever weighs the
# errors closer to the business costs (objective_for).
EXPECTED_COST = "expected_cost"
POSTPROCESSING_OBJECTIVES = (EXPECTED_COST, "accuracy_score", "balanced_accuracy_score")
COST_RATIO_DENOMINATOR = 10  # c_fn / c_fp as a fraction p / q with q at most this


def objective_for(costs: tuple[float, float], prevalence: float, constraint: str = "equalized_odds") -> str:
    """The post-processor's objective: the business cost under equalized odds; otherwise the objective
    whose weighing of errors is closest to the business costs.

    A missed positive costs ``c_fn / c_fp`` false alarms to the business; accuracy weighs them 1
    to 1, balanced accuracy ``(1 - prevalence) / prevalence`` to 1. The nearer on a log scale is
    fitted. Fitting both and keeping the one that passed on a few thousand held-out rows let noise
    pick accuracy at half again the cost when missed positives are dear (measured on the default
    data: 0.53 against 0.36 per decision). Balanced accuracy in turn cost up to 18 % more per
    decision than the deployed model where the business cost itself cost 2-10 % more.
    """
    if constraint == "equalized_odds":
        return EXPECTED_COST
    business = np.log(max(costs[1], 1e-12) / max(costs[0], 1e-12))
    balanced = np.log(max(1 - prevalence, 1e-12) / max(prevalence, 1e-12))
    return "balanced_accuracy_score" if abs(business - balanced) < abs(business) else "accuracy_score"


def cost_weighted_rows(y: np.ndarray, costs: tuple[float, float]) -> np.ndarray:
    """How many times each row is repeated so that accuracy on the repeated rows ranks decisions as the
    business cost does: a positive ``p`` times and a negative ``q`` times, with ``p / q`` the ratio
    ``c_fn / c_fp``, the larger cost over the smaller as a fraction whose denominator is at most
    :data:`COST_RATIO_DENOMINATOR`."""
    from fractions import Fraction

    if min(costs) <= 0:
        raise ValueError(f"the costs of a false positive and a false negative must be positive, got {costs}")
    fp, fn = float(costs[0]), float(costs[1])
    ratio = Fraction(max(fp, fn) / min(fp, fn)).limit_denominator(COST_RATIO_DENOMINATOR)
    p, q = (ratio.numerator, ratio.denominator) if fn >= fp else (ratio.denominator, ratio.numerator)
    return np.where(np.asarray(y).astype(int) == 1, p, q)


# Share of the labelled rows held out from the mitigation's fit to choose among the fits.
CHOICE_FRACTION = 0.5
DECISION_RULE = (
    "The post-processor decides deterministically: each group has one threshold on the model's score, "
    "and a record is selected when its score reaches its group's threshold. The thresholds come from "
    "fairlearn's ThresholdOptimizer, whose own rule randomises between two thresholds per group: each "
    "group's threshold is the one that comes closest, on the fitting rows, to the optimizer's selection "
    "rate (demographic parity) or to its true and false positive rates (equalized odds). No decision is "
    "randomised: the same record gets the same decision alone or in any batch, and a change to a record "
    "changes its decision only when it moves the score across its group's threshold."
)
DECISION_RULES = {
    "threshold_optimizer": DECISION_RULE,
    "exponentiated_gradient": (
        "The reduction's ensemble decides deterministically: a record is selected when the weighted mean of its "
        "predictors' probabilities reaches one half, the predictors having been fitted to the business cost. "
        "No decision is randomised (fairlearn's own predict draws one predictor per record)."
    ),
}
# The mitigations fitted under `mitigation: auto`, and why the others are fitted only when named.
# ExponentiatedGradient refits the deployed model's estimator about twenty times per failing constraint.
# Measured on the default data (gradient boosting; one thread), per failing constraint: 20 CPU s on the
# 2,188 validation rows a mitigation fits on (the post-processor: 0.2 s), for an expected cost of 0.33-0.36
# on the held-out rows where the post-processor's cheapest fit cost 0.27; 82 CPU s on 20,000 training rows
# (cost 0.30). Step 08 took 121 s with it, 19 s without, on a busy 2-core machine.
AUTO_KINDS = ("threshold_optimizer",)
NOT_IN_AUTO = {
    "exponentiated_gradient": (
        "`exponentiated_gradient` is not fitted under `mitigation: auto` (name it to fit it): it refits the "
        "deployed model's estimator about twenty times per failing constraint, and on the template's default "
        "data that took a hundred times the post-processor's time for a higher cost on the held-out rows"
    )
}


class MitigationUnavailable(ValueError):
    """A mitigation cannot be fitted on this data (the message says why); other options may still be."""


def group_key(groups: pd.DataFrame | pd.Series) -> np.ndarray:
    """One label per row combining the sensitive features the mitigation acts on."""
    if isinstance(groups, pd.Series):
        return groups.astype(str).to_numpy()
    return intersection_labels(groups).to_numpy()


def fittable_groups(key: np.ndarray, y: np.ndarray, min_group_size: int) -> tuple[dict[str, str], str]:
    """Which group each label is fitted as, and the group an unknown label falls back to.

    A post-processor sets a group's thresholds from the group's ROC curve, whose steps are one
    positive and one negative wide: with a handful of positives the curve, and the thresholds
    it gives, are noise (a retrained challenger fitted on nine positives of one intersection
    chose thresholds near 0.03 and cost 16 % more than its champion). Groups with fewer than
    ``min_group_size`` rows *of either outcome* (typical of small intersections) are pooled into
    one group; when the pool itself is short of either outcome, it joins the largest group. Raises
    :class:`MitigationUnavailable` when no group qualifies.
    """
    frame = pd.DataFrame({"group": key, "y": np.asarray(y).astype(int)})
    stats = frame.groupby("group")["y"].agg(size="size", positives="sum")
    stats["negatives"] = stats["size"] - stats["positives"]
    fittable = stats[(stats["positives"] >= min_group_size) & (stats["negatives"] >= min_group_size)]
    if fittable.empty:
        raise MitigationUnavailable(
            f"no sensitive group has {min_group_size} rows of each outcome; "
            "a post-processor cannot set group thresholds on this data"
        )
    pooled = stats.index.difference(fittable.index)
    fallback = POOLED_GROUP
    pool = stats.loc[pooled, ["positives", "negatives"]].sum()
    if len(pooled) == 0 or pool.min() < min_group_size:
        fallback = str(fittable["size"].idxmax())
    mapping = {str(g): str(g) for g in fittable.index} | {str(g): fallback for g in pooled}
    return mapping, fallback


def interpolated_positive(interpolation: Any, scores: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The probability of a positive decision per record under fairlearn's fitted (randomised) rule.

    fairlearn's ``InterpolatedThresholder._pmf_predict`` (its second column), computed on
    scores already known and in numpy (fairlearn's own call reruns the model). A unit test
    holds the two equal, bit for bit. :func:`fit_threshold_optimizer` reads the operating
    point of the optimizer's rule from it; the release does not decide with it.
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


def group_thresholds(
    scores: np.ndarray, y: np.ndarray, key: np.ndarray, positive: np.ndarray, constraint: str
) -> dict[str, float]:
    """One threshold per group: the deterministic rule closest to a randomised one on the same rows.

    ``positive`` is the randomised rule's probability of a positive decision per row
    (:func:`interpolated_positive`); its expected selection, true and false positive rates per
    group are the operating point fairlearn chose. Of the group's thresholds (sklearn's
    ``roc_curve``: a row is selected when its score reaches the threshold), the one kept is the
    nearest to that point in what ``constraint`` equalises: the selection rate (demographic
    parity), or the larger of the true and false positive rate differences (equalized odds,
    measured as its gap is). Where two are as near, the higher threshold is kept.
    """
    from sklearn.metrics import roc_curve

    key, y, thresholds = np.asarray(key), np.asarray(y), {}
    for group in pd.unique(key):
        rows = key == group
        outcome, chance = y[rows], positive[rows]
        fpr, tpr, cut = roc_curve(outcome, scores[rows], drop_intermediate=False)
        tpr, fpr = tpr - chance[outcome == 1].mean(), fpr - chance[outcome == 0].mean()  # from the target
        if constraint == "demographic_parity":
            distance = np.abs(outcome.mean() * tpr + (1 - outcome.mean()) * fpr)  # of the selection rate
        else:
            distance = np.maximum(np.abs(tpr), np.abs(fpr))
        thresholds[str(group)] = float(cut[np.argmin(distance)])
    return thresholds


class MitigatedModel:
    """A deployed model whose decisions depend on the sensitive groups.

    ``kind`` is ``"threshold_optimizer"`` (``thresholds`` holds one threshold per fitted
    group on ``pipeline``'s score) or ``"exponentiated_gradient"`` (``predictors`` and
    ``weights`` hold the ensemble, fitted to the business cost, which selects a record when
    its weighted probability reaches one half). Neither draws at random: the same record
    always gets the same decision, whatever else is in the batch.
    """

    def __init__(
        self,
        kind: str,
        pipeline: Pipeline,
        group_columns: list[str],
        thresholds: dict[str, float] | None = None,
        predictors: list | None = None,
        weights: np.ndarray | None = None,
        group_mapping: dict[str, str] | None = None,
        fallback_group: str | None = None,
    ):
        self.kind = kind
        self.pipeline = pipeline
        self.group_columns = list(group_columns)
        self.thresholds = dict(thresholds or {})
        self.predictors = predictors or []
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.group_mapping = dict(group_mapping or {})
        self.fallback_group = fallback_group

    def score(self, x: pd.DataFrame) -> np.ndarray:
        """Probability of the positive outcome (the ensemble's own, for the reduction), for ranking and monitoring."""
        if self.kind == "exponentiated_gradient":
            return self._ensemble_probability(x)
        return np.asarray(self.pipeline.predict_proba(x))[:, 1]

    def decide(self, x: pd.DataFrame, groups: pd.DataFrame, scores: np.ndarray | None = None) -> np.ndarray:
        """0/1 decisions: the score against the record's group threshold (post-processor) or the ensemble's.

        ``groups`` holds the group labels of the sensitive features. ``scores``: this model's
        :meth:`score` of ``x`` when the caller has it already (scoring computes it once).
        """
        if scores is not None and len(scores) != len(x):
            raise ValueError(f"{len(scores)} scores given for {len(x)} records")
        known = self.score(x) if scores is None else np.asarray(scores, dtype=float)
        if self.kind == "threshold_optimizer":
            return (known >= self.group_threshold(groups)).astype(int)
        return (known >= 0.5).astype(int)  # the business cost is in the ensemble's fit (its objective)

    def group_threshold(self, groups: pd.DataFrame) -> np.ndarray:
        """The threshold each record's score is held against: its fitted group's (see :meth:`fitted_group`)."""
        if not getattr(self, "thresholds", None):  # a file saved before the thresholds existed lacks the attribute
            raise ValueError(
                "this post-processed model has no group thresholds (an artifact of the randomised rule, "
                "before release decisions were deterministic): run step 08 again"
            )
        return np.array([self.thresholds[k] for k in self.fitted_group(group_key(groups[self.group_columns]))], float)

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
        """The weighted mean of the predictors' probabilities of the positive outcome.

        Rounding can put a unanimous 1 a hair above 1 (1.0000000000000002), which
        scikit-learn's probability metrics refuse: clipped into [0, 1].
        """
        probabilities = np.column_stack([np.asarray(p.predict_proba(x))[:, 1] for p in self.predictors])
        return np.clip(probabilities @ self.weights / self.weights.sum(), 0.0, 1.0)


def fit_threshold_optimizer(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: pd.DataFrame,
    constraint: str,
    min_group_size: int = 30,
    objective: str = "accuracy_score",
    costs: tuple[float, float] = (1.0, 1.0),
) -> tuple[MitigatedModel, dict[str, Any]]:
    """Post-process a fitted pipeline; returns the model and the trade-off curve for plotting.

    fairlearn fits its randomised rule; :func:`group_thresholds` turns it into one threshold
    per group on the same rows. Groups too small to fit are pooled (see
    :func:`fittable_groups`); the model's ``pooled_groups`` lists them so the report can say
    so. ``objective`` is one of ``POSTPROCESSING_OBJECTIVES`` (:func:`objective_for`); with
    :data:`EXPECTED_COST` (equalized odds only) fairlearn maximises accuracy on the rows
    repeated by :func:`cost_weighted_rows` for ``costs`` (false positive, false negative).
    """
    if objective == EXPECTED_COST and constraint != "equalized_odds":
        raise ValueError("the expected-cost objective keeps the rates equalized odds equalises, not selection rates")
    optimizer = ThresholdOptimizer(
        estimator=pipeline,
        constraints=constraint,
        objective="accuracy_score" if objective == EXPECTED_COST else objective,
        prefit=True,
        predict_method="predict_proba",
    )
    y = np.asarray(y)
    mapping, fallback = fittable_groups(group_key(groups), y, min_group_size)
    model = MitigatedModel(
        "threshold_optimizer", pipeline, list(groups.columns), group_mapping=mapping, fallback_group=fallback
    )
    key = model.fitted_group(group_key(groups))
    if objective == EXPECTED_COST:
        repeated = np.repeat(np.arange(len(y)), cost_weighted_rows(y, costs))
        optimizer.fit(x.iloc[repeated], y[repeated], sensitive_features=key[repeated])
    else:
        optimizer.fit(x, y, sensitive_features=key)
    scores = model.score(x)
    positive = interpolated_positive(optimizer.interpolated_thresholder_.interpolation_dict, scores, key)
    model.thresholds = group_thresholds(scores, y, key, positive, constraint)
    curves = {
        "x_metric": optimizer.x_metric_,
        "y_metric": optimizer.y_metric_,
        "objective": objective,
        "groups": {g: c[["x", "y"]].copy() for g, c in optimizer._tradeoff_curve.items()},
    }
    return model, curves


def fit_exponentiated_gradient(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    groups: pd.DataFrame,
    constraint: str,
    costs: tuple[float, float] = (1.0, 1.0),
    max_iter: int = 20,
) -> MitigatedModel:
    """Retrain the deployed model's own estimator under a fairness constraint: a weighted ensemble.

    ``pipeline`` is the deployed model; the reduction refits a clone of it (same tuned
    settings; the reduction's weights go to its final step as ``model__sample_weight``) once
    per iteration, minimising the business cost (``costs``: false positive, false negative)
    rather than the error rate: the costs weigh the rows each predictor is fitted on, so a
    predictor's own half-way cut is already the cost-sensitive one. The release decides with
    the ensemble's weighted mean probability against one half (:class:`MitigatedModel`):
    deterministic, where fairlearn's ``predict`` draws one predictor per record.
    """
    from fairlearn.reductions import ErrorRate

    cost_fp, cost_fn = costs
    reduction = ExponentiatedGradient(
        clone(pipeline),
        CONSTRAINTS[constraint](),
        objective=ErrorRate(costs={"fp": cost_fp, "fn": cost_fn}),
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
    )


def mitigate(
    kind: str,
    pipeline: Pipeline,
    spec: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    constraint: str,
    min_group_size: int = 30,
    objective: str | None = None,
    costs: tuple[float, float] = (1.0, 1.0),
) -> tuple[MitigatedModel, dict[str, Any] | None]:
    """Fit mitigation ``kind`` for ``pipeline`` (the deployed model) on ``frame`` (labelled rows, e.g. part of validation).

    ``objective`` is the post-processor's (accuracy by default); the reduction minimises the
    business cost (``costs``: false positive, false negative). Neither draws at random, so
    no seed is needed. Returns the model and, for the post-processor, its trade-off curves.
    """
    from .profiling import feature_columns

    if constraint not in CONSTRAINTS:
        raise ValueError(f"fairness constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    x, y = frame[feature_columns(spec)], frame[spec["target"]].to_numpy()
    groups = sensitive_groups(frame, spec)[list(features)]
    if kind == "threshold_optimizer":
        return fit_threshold_optimizer(
            pipeline, x, y, groups, constraint, min_group_size, objective or "accuracy_score", costs
        )
    if kind == "exponentiated_gradient":
        return fit_exponentiated_gradient(pipeline, x, y, groups, constraint, costs), None
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
    criteria: dict[str, Any],
    settings: Mitigation,
    costs: tuple[float, float],
    gated: pd.DataFrame | None = None,
) -> Choice:
    """Fit ``kind`` on ``fit_frame`` once per constraint (the post-processor with the objective of :func:`objective_for`);
    keep the fit that passes the gates on ``choice_frame`` at the lowest cost there.

    ThresholdOptimizer and the reductions enforce one constraint at a time, and a fit under
    one (equalized odds) may leave the other (demographic parity) above its gate. When no fit
    passes, the cheapest is kept and the gates downstream say why.
    """
    from . import compute
    from .business import cost_of_predictions
    from .fairness import gate_table
    from .gates import failures
    from .profiling import feature_columns

    if not constraints:
        raise ValueError("no fairness constraint to mitigate for: pass the constraints whose gates fail")
    x, y = choice_frame[feature_columns(spec)], choice_frame[spec["target"]].to_numpy()
    groups = sensitive_groups(choice_frame, spec)
    prevalence = float(np.mean(fit_frame[spec["target"]]))
    # the fits are independent (and deterministic): in this process, or on the cluster's workers (compute.parallel)
    combos = [
        (constraint, objective_for(costs, prevalence, constraint) if kind == "threshold_optimizer" else None)
        for constraint in constraints
    ]
    calls = [(kind, pipeline, spec, fit_frame, features, c, settings.min_group_size, o, costs) for c, o in combos]
    fits, rows = [], []
    for (constraint, objective), (model, curves) in zip(combos, compute.run(mitigate, calls), strict=True):
        decided = model.decide(x, groups)
        judged = gate_table(y, decided, choice_frame, spec, criteria, gated)[0]  # the one fairness rule of 08-10
        passes, cost = not failures(judged), cost_of_predictions(y, decided, *costs)
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
    criteria: dict[str, Any],
    settings: Mitigation,
    costs: tuple[float, float] = (1.0, 1.0),
) -> tuple[MitigatedModel, dict[str, Any] | None, str]:
    """Fit ``kind`` on part of ``frame`` and choose its constraint and objective on the rest.

    :func:`split_for_choice` holds out the rows to choose on; :func:`choose_fit` fits and
    chooses. ``settings`` are step 08's mitigation parameters (seed, ``min_group_size``,
    ``mitigation_max_rows``); step 10 gives a challenger the same procedure. Returns the
    model, its trade-off curves (post-processor only) and the constraint.
    """
    from .fairness import gate_table

    fit, choice = split_for_choice(frame, spec, settings)
    # the groups are sized on every labelled row of ``frame`` (the half held out alone would assess fewer)
    gated = gate_table(frame[spec["target"]].to_numpy(), np.zeros(len(frame)), frame, spec, criteria)[1].groups
    chosen = choose_fit(kind, pipeline, spec, fit, choice, features, constraints, criteria, settings, costs, gated)
    return chosen.model, chosen.curves, chosen.constraint
