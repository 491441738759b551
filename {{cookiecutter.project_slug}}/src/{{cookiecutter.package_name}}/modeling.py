"""Candidate models, their tuning and evaluation: the one training code path. Adapt freely.

Step 06 trains the champion with :func:`train_and_select`; step 10 trains the
challenger with the very same function, so the two can only differ by their
data and parameters, never by a copy of the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    get_scorer,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import ParameterSampler, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from . import bias, compute, data, features
from .business import Costs, cost_of_predictions, process_row_costs, row_costs
from .config import Search
from .intervals import Estimate, bootstrap, delong, ratio_interval, reduction
from .profiling import feature_columns

BASELINES = ("majority_class", "shallow_tree")


class Scored(NamedTuple):
    """A model's scores and decisions on the rows being judged (the same rows for every model compared)."""

    scores: np.ndarray
    decisions: np.ndarray


def _majority_class(spec: dict[str, Any], seed: int) -> Pipeline:
    return Pipeline([("preprocess", features.build_preprocessor(spec)), ("model", DummyClassifier(strategy="prior"))])


def _shallow_tree(spec: dict[str, Any], seed: int) -> Pipeline:
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=50, random_state=seed)
    return Pipeline([("preprocess", features.build_preprocessor(spec)), ("model", tree)])


def _logistic_regression(spec: dict[str, Any], seed: int) -> Pipeline:
    return Pipeline([("preprocess", features.build_preprocessor(spec)), ("model", LogisticRegression(max_iter=2000))])


def _hist_gradient_boosting(spec: dict[str, Any], seed: int) -> Pipeline:
    model = HistGradientBoostingClassifier(
        categorical_features=features.categorical_mask(spec) or None,
        random_state=seed,
        early_stopping=False,
        max_iter=100,
    )
    return Pipeline(
        [("preprocess", features.build_preprocessor(spec, encoding="ordinal", max_categories=200)), ("model", model)]
    )


# ### ADD YOUR OWN MODELS HERE ###
# One entry per model: its name, and a function of the data spec and the seed that builds its
# scikit-learn Pipeline, a "preprocess" step (see features.build_preprocessor) and a "model" step
# (any estimator with predict_proba and fit(..., sample_weight=...)). Step 06 tunes every entry
# that is not a baseline with the search space under `modeling.search_space.<name>` in params.yaml
# (keys are the model's parameters; no entry: its defaults), and step 10 challenges with the names
# listed in `retraining.challenger_models`. For example:
#
#     from sklearn.ensemble import ExtraTreesClassifier
#     CANDIDATES["extra_trees"] = lambda spec, seed: Pipeline(
#         [("preprocess", features.build_preprocessor(spec)), ("model", ExtraTreesClassifier(random_state=seed))]
#     )
CANDIDATES: dict[str, Callable[[dict[str, Any], int], Pipeline]] = {
    "majority_class": _majority_class,
    "shallow_tree": _shallow_tree,
    "logistic_regression": _logistic_regression,
    "hist_gradient_boosting": _hist_gradient_boosting,
}


def candidate_pipelines(spec: dict[str, Any], seed: int) -> dict[str, Pipeline]:
    """Baselines and candidates (:data:`CANDIDATES`), each a full Pipeline: preprocessing travels with the model."""
    return {name: build(spec, seed) for name, build in CANDIDATES.items()}


def training_weights(
    train: pd.DataFrame, spec: dict[str, Any], plan: dict[str, Any], seed: int
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Apply step 04's remediation to the training rows: their sample weights (None: no remediation).

    Reweighing gives each row its group's weight. Resampling draws rows with those weights and
    gives each row the number of times it was drawn: the resampled set, without its copies, so
    that cross-validation never puts a row in the fold it is judged on and its copy in the
    folds it is fitted on (copies on both sides inflated the CV score).
    """
    remediation = plan.get("remediation", "none")
    if remediation == "none":
        return train, None
    groups = data.intersection_labels(data.sensitive_groups(train, spec))
    weights = bias.row_weights(groups, train[spec["target"]], pd.DataFrame(plan["weights"]))
    if remediation == "reweighing":
        return train, weights
    if remediation == "resampling":
        return train, np.bincount(bias.resample_indices(weights, seed), minlength=len(train)).astype(float)
    raise ValueError(f"data_bias_plan.remediation: step 06 cannot apply {remediation!r}")


def probabilities(model: Any, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(x))[:, 1]


def scored(model: Any, x: pd.DataFrame, threshold: float) -> Scored:
    """A fitted pipeline's scores on ``x`` and its decisions at ``threshold`` (act when the score reaches it)."""
    p = probabilities(model, x)
    return Scored(p, (p >= threshold).astype(int))


def cost_threshold(y: np.ndarray, scores: np.ndarray, cost_fp: float, cost_fn: float) -> tuple[float, float]:
    """The threshold (act when score >= t) minimising the business cost, and that cost."""
    candidates = np.unique(np.concatenate([np.quantile(scores, np.linspace(0, 1, 201)), [0.5, 1.01]]))
    costs = [cost_of_predictions(y, scores >= t, cost_fp, cost_fn) for t in candidates]
    best = int(np.argmin(costs))
    return float(candidates[best]), float(costs[best])


def evaluate(y: np.ndarray, scores: np.ndarray, threshold: float, cost_fp: float, cost_fn: float) -> dict[str, float]:
    """Ranking, decision and calibration metrics at a given threshold."""
    return evaluate_served(y, scores, (np.asarray(scores) >= threshold).astype(int), cost_fp, cost_fn)


def evaluate_served(
    y: np.ndarray, scores: np.ndarray, decisions: np.ndarray, cost_fp: float, cost_fn: float
) -> dict[str, float]:
    """Metrics of the decisions a model actually made, with ranking and calibration from its scores.

    A mitigated model's decisions depend on the group as well as the score, so its cost
    and decision metrics must come from ``decisions``, not from one threshold on ``scores``.
    """
    y = np.asarray(y).astype(int)
    decisions = np.asarray(decisions).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, scores)) if both else float("nan"),
        "accuracy": float(accuracy_score(y, decisions)),
        "f1": float(f1_score(y, decisions, zero_division=0)),
        "precision": float(precision_score(y, decisions, zero_division=0)),
        "recall": float(recall_score(y, decisions, zero_division=0)),
        "brier": float(brier_score_loss(y, scores)),
        "selection_rate": float(decisions.mean()),
        "expected_cost": cost_of_predictions(y, decisions, cost_fp, cost_fn),
    }


# metric -> (its scikit-learn function, whether it reads the scores rather than the decisions)
METRIC_FUNCTIONS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "roc_auc": (roc_auc_score, True),
    "average_precision": (average_precision_score, True),
    "accuracy": (accuracy_score, False),
    "f1": (lambda y, p: f1_score(y, p, zero_division=0), False),
    "precision": (lambda y, p: precision_score(y, p, zero_division=0), False),
    "recall": (lambda y, p: recall_score(y, p, zero_division=0), False),
}
BOOTSTRAP_SAMPLES = 400  # resamples of a metric without a closed-form interval (seeded: the same interval every run)


def metric_estimate(
    metric: str, y: np.ndarray, judged: Scored, confidence: float, seed: int, against: Scored | None = None
) -> Estimate:
    """A quality metric with its interval, or with ``against`` the paired difference ``judged - against``.

    ROC AUC by DeLong's method (exact variance, one pass); the other metrics by a seeded paired
    bootstrap of :data:`BOOTSTRAP_SAMPLES` resamples (:func:`.intervals.bootstrap`).
    """
    if metric == "roc_auc":
        return delong(y, judged.scores, confidence, None if against is None else against.scores)
    function, on_scores = METRIC_FUNCTIONS[metric]
    pick = (lambda s: s.scores) if on_scores else (lambda s: s.decisions)
    other = None if against is None else pick(against)
    return bootstrap(function, y, pick(judged), confidence, BOOTSTRAP_SAMPLES, seed, against=other)


def paired_estimates(
    y: np.ndarray, judged: Scored, other: Scored, name: str, primary: str, costs: Costs, confidence: float, seed: int
) -> dict[str, Estimate]:
    """``judged`` against ``other`` on the same rows: ``quality_vs_<name>`` (the primary metric's paired
    difference) and ``cost_reduction_vs_<name>`` (1 - the ratio of their mean costs), with intervals."""
    own, theirs = row_costs(y, judged.decisions, *costs), row_costs(y, other.decisions, *costs)
    return {
        f"quality_vs_{name}": metric_estimate(primary, y, judged, confidence, seed, against=other),
        f"cost_reduction_vs_{name}": reduction(ratio_interval(own, theirs, confidence)),
    }


def quality_estimates(
    y: np.ndarray,
    judged: Scored,
    baseline: Scored,
    costs: Costs,
    criteria: dict[str, Any],
    charter: dict[str, Any],
    seed: int,
) -> dict[str, Estimate]:
    """Every quality gate's estimate for ``judged`` on labelled rows (steps 06, 08, 10 call this one function).

    Against the reference baseline scored on the same rows (``quality_vs_baseline``,
    ``cost_reduction_vs_baseline``), against step 01's process at these rows' prevalence
    (``cost_reduction_vs_process``), the primary metric itself and ROC AUC for the leakage alarm.
    """
    c = criteria["criteria"]
    confidence, primary = float(c.get("confidence", 0.95)), c["primary_metric"]
    own = row_costs(y, judged.decisions, *costs)
    return {
        **paired_estimates(y, judged, baseline, "baseline", primary, costs, confidence, seed),
        "cost_reduction_vs_process": reduction(ratio_interval(own, process_row_costs(y, charter), confidence)),
        f"test_{primary}": metric_estimate(primary, y, judged, confidence, seed),
        "test_roc_auc": delong(y, judged.scores, confidence),
    }


BASELINE_FILE = "models/baseline.skops"


def reference_scored(root: Path, frame: pd.DataFrame, spec: dict[str, Any]) -> Scored:
    """Step 06's reference baseline (``models/baseline.skops``, at its own threshold) on ``frame``'s rows:
    what steps 08 and 10 judge a model against, on the same rows."""
    from .artifacts import load
    from .project import read_json, report_dir

    record = read_json(report_dir(root, "modeling") / "modeling.json")["reference_baseline"]
    return scored(load(root / BASELINE_FILE), frame[feature_columns(spec)], record["threshold"])


def reference_baseline(candidates: pd.DataFrame) -> str:
    """The baseline every model is judged against: the one deciding at the lowest cost on validation."""
    baselines = candidates[candidates["baseline"]]
    return str(
        baselines.sort_values(["validation_expected_cost", "validation_roc_auc"], ascending=[True, False]).index[0]
    )


@dataclass
class TrainingResult:
    """What :func:`train_and_select` produces."""

    name: str
    model: Pipeline
    threshold: float
    params: dict[str, Any]
    candidates: pd.DataFrame
    validation_scores: np.ndarray
    models: dict[str, Pipeline] = field(repr=False, default_factory=dict)
    training_rows: int = 0  # rows every model is fitted on
    search_rows: int = 0  # rows the hyperparameter search compared settings on
    available_rows: int = 0  # rows of the training split (more than training_rows when fit_max_rows caps them)


def tune(
    pipeline: Pipeline,
    space: dict[str, list],
    x: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray | None,
    folds: int,
    iterations: int,
    seed: int,
) -> tuple[dict[str, Any], float]:
    """Random search with stratified cross-validation on the training split; returns best params and CV AUC.

    Every (setting, fold) fit is one independent call of :func:`.compute.run`: one after another
    in this process, or spread over the workers inside a :func:`.compute.parallel` block, with
    the same scores either way (each fit is seeded, and the folds are drawn here, once).
    """
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    settings = (
        list(ParameterSampler(space, n_iter=min(iterations, _space_size(space)), random_state=seed)) if space else [{}]
    )
    splits = list(cv.split(x, y))
    calls = [(pipeline, setting, x, y, weights, train, test) for setting in settings for train, test in splits]
    fold_scores = np.asarray(compute.run(fold_score, calls)).reshape(len(settings), len(splits))
    best, best_score = {}, -np.inf
    for setting, scores in zip(settings, fold_scores, strict=True):
        score = float(np.mean(scores))
        if score > best_score:
            best, best_score = setting, score
    return best, best_score


def fold_score(
    pipeline: Pipeline,
    setting: dict[str, Any],
    x: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray | None,
    train: np.ndarray,
    test: np.ndarray,
) -> float:
    """ROC AUC on fold ``test`` of a copy of ``pipeline`` with ``setting``, fitted on ``train`` (as ``cross_val_score``)."""
    model = clone(pipeline).set_params(**{f"model__{k}": v for k, v in setting.items()})
    fit_params = {"model__sample_weight": weights[train]} if weights is not None else {}
    model.fit(x.iloc[train], y[train], **fit_params)
    return float(get_scorer("roc_auc")(model, x.iloc[test], y[test]))


def search_rows(y: np.ndarray, max_rows: int | None, seed: int, key: str = "search_max_rows") -> np.ndarray:
    """Positions of the rows the search (or the fits) use: all of them, or a sample of ``max_rows`` stratified by label."""
    y = np.asarray(y)
    if max_rows is None or len(y) <= max_rows:
        return np.arange(len(y))
    if max_rows < 2 * len(np.unique(y)):
        raise ValueError(f"{key} must be at least {2 * len(np.unique(y))} (one row per label in each part)")
    rows, _ = train_test_split(np.arange(len(y)), train_size=max_rows, stratify=y, random_state=seed)
    return np.sort(rows)


def search_sample_note(result: TrainingResult) -> str:
    """What the search and the fits of :func:`train_and_select` used, for the notebook."""
    if result.available_rows > result.training_rows:
        return (
            f"Every model was fitted on a stratified sample of {result.training_rows:,} of the "
            f"{result.available_rows:,} training rows (`fit_max_rows`), the search compared settings on "
            f"{result.search_rows:,} of them (`search_max_rows`)."
        )
    if result.search_rows < result.training_rows:
        return (
            f"The search compared settings on a stratified sample of {result.search_rows:,} of the "
            f"{result.training_rows:,} training rows (`search_max_rows`); every model was then fitted on all of them."
        )
    return f"The search and the fits used all {result.training_rows:,} training rows."


def _space_size(space: dict[str, list]) -> int:
    return int(np.prod([len(v) for v in space.values()])) if space else 1


def train_and_select(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    spec: dict[str, Any],
    plan: dict[str, Any],
    costs: Costs,
    search: Search,
    include: list[str] | None = None,
    available_rows: int | None = None,
) -> TrainingResult:
    """Tune every candidate on train (CV), compare all on validation, pick by validation cost then AUC.

    ``search`` is step 06's ``modeling`` parameters (step 10 passes its challenger's): the
    search space, folds, iterations, seed, and ``search_max_rows``, which caps the rows of the
    search (a label-stratified sample, see :func:`search_rows`); every model is fitted on all
    rows, or on a label-stratified sample of ``fit_max_rows`` of them. ``include`` limits the
    contenders (the baselines are always trained, for comparison). ``available_rows``: the training
    split's rows when ``train`` is already a sample of it (drawn from its partitions).
    """
    search_space, folds, iterations, seed = search.search_space, search.cv_folds, search.search_iterations, search.seed
    cost_fp, cost_fn = costs
    search_max_rows = search.search_max_rows
    known = candidate_pipelines(spec, seed)
    for name in [*search_space, *(include or [])]:
        if name not in known:
            raise ValueError(f"unknown model {name!r} in the search space or model list; known: {', '.join(known)}")
    contenders_wanted = set(include or known) | set(BASELINES)
    target, cols = spec["target"], feature_columns(spec)
    fit_frame, weights = training_weights(train, spec, plan, seed)
    fitted = search_rows(fit_frame[target].to_numpy(), search.fit_max_rows, seed, "fit_max_rows")
    if len(fitted) < len(fit_frame):  # every model is fitted on these rows; the search on some of them
        fit_frame = fit_frame.iloc[fitted]
        weights = weights[fitted] if weights is not None else None
    x, y = fit_frame[cols], fit_frame[target].to_numpy()
    x_val, y_val = validation[cols], validation[target].to_numpy()
    # the search compares settings on these rows; every model is then fitted on all of them
    searched = search_rows(y, search_max_rows, seed)
    x_search, y_search = x.iloc[searched], y[searched]
    w_search = weights[searched] if weights is not None else None
    rows, models, scores = [], {}, {}
    for name, pipeline in known.items():
        if name not in contenders_wanted:
            continue
        space = search_space.get(name, {})
        if name in BASELINES:
            params, cv_auc = {}, float("nan")
        else:
            params, cv_auc = tune(pipeline, space, x_search, y_search, w_search, folds, iterations, seed)
            pipeline.set_params(**{f"model__{k}": v for k, v in params.items()})
        pipeline.fit(x, y, **({"model__sample_weight": weights} if weights is not None else {}))
        p_val = probabilities(pipeline, x_val)
        threshold, _ = cost_threshold(y_val, p_val, cost_fp, cost_fn)
        metrics = evaluate(y_val, p_val, threshold, cost_fp, cost_fn)
        rows.append(
            {
                "model": name,
                "baseline": name in BASELINES,
                "cv_roc_auc": cv_auc,
                "threshold": threshold,
                "params": params,
                **{f"validation_{k}": v for k, v in metrics.items()},
            }
        )
        models[name], scores[name] = pipeline, p_val
    table = pd.DataFrame(rows).set_index("model")
    contenders = table[~table["baseline"]]
    best = contenders.sort_values(["validation_expected_cost", "validation_roc_auc"], ascending=[True, False]).index[0]
    return TrainingResult(
        name=best,
        model=models[best],
        threshold=float(table.loc[best, "threshold"]),
        params=table.loc[best, "params"],
        candidates=table,
        validation_scores=scores[best],
        models=models,
        training_rows=len(y),
        search_rows=len(searched),
        available_rows=max(available_rows or 0, len(train)),  # the fits' rows are some of train's
    )


def leakage_suspects(gate_table: pd.DataFrame, importance: pd.Series, share: float = 0.5, most: int = 5) -> str:
    """When the leakage alarm fails, the features that carry the score (else ""): what to check first.

    The fewest features, by permutation importance, that hold ``share`` of the total drop in
    score (at most ``most``), each with its drop: a column recorded after the outcome shows
    up here long before anything else does.
    """
    alarm = gate_table[(gate_table["gate"] == "leakage_alarm") & ~gate_table["passed"]]
    positive = importance[importance > 0].sort_values(ascending=False)
    if alarm.empty or positive.empty:
        return ""
    held = positive.cumsum() / positive.sum()
    chosen = positive.iloc[: min(int((held < share).sum()) + 1, most)]
    return ", ".join(f"`{name}` (drop {drop:.3f} in ROC AUC without it)" for name, drop in chosen.items())


CALIBRATION_METHOD = "sigmoid"  # Platt's two parameters; isotonic overfits a validation split of a few thousand rows


def calibrate(model: Any, x: pd.DataFrame, y: np.ndarray, method: str = CALIBRATION_METHOD) -> Any:
    """The fitted ``model`` with a map from its scores to probabilities, fitted on held-out rows ``x, y``.

    scikit-learn's ``CalibratedClassifierCV`` around a ``FrozenEstimator``: the model itself is
    not refitted, only the map is (``sigmoid``: Platt scaling of the model's decision function;
    ``isotonic``: a monotone step function), on all of ``x``; they must be rows the model never
    saw (step 06: the validation split). The map is monotone, so it ranks as the model does.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(x, np.asarray(y))


def uncalibrated(model: Any) -> Any:
    """The fitted model inside a :func:`calibrate` result (``model`` itself otherwise).

    What a refit must start from: a clone of a calibrated model keeps the frozen model and
    refits only the map, so a reduction that retrains the model with its own weights (step 08's
    exponentiated gradient) has to clone this one instead.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    inner = getattr(model, "estimator", None) if isinstance(model, CalibratedClassifierCV) else None
    return inner.estimator if isinstance(inner, FrozenEstimator) else model


def calibrated(
    result: TrainingResult,
    validation: pd.DataFrame,
    spec: dict[str, Any],
    costs: Costs,
    method: str = CALIBRATION_METHOD,
) -> TrainingResult:
    """``result`` with its chosen model calibrated on ``validation`` (:func:`calibrate`), deciding at the Bayes threshold.

    :func:`train_and_select` is left as it is (step 10 trains with it too); this wraps its result.
    With calibrated scores the cost-minimising rule is to act when the probability reaches
    ``c_fp / (c_fp + c_fn)`` (:func:`.business.cost_optimal_threshold`): it follows from step 01's
    costs alone, where the empirical minimum of :func:`cost_threshold` follows the noise of the
    validation rows. The chosen model's row of ``candidates`` gets that threshold and its
    validation metrics at it (in-sample for the map's parameters); the baselines keep theirs.
    """
    from dataclasses import replace

    from .business import cost_optimal_threshold

    cols, y = feature_columns(spec), validation[spec["target"]].to_numpy()
    model = calibrate(result.model, validation[cols], y, method)
    scores, threshold = probabilities(model, validation[cols]), cost_optimal_threshold(*costs)
    candidates = result.candidates.copy()
    candidates.loc[result.name, "threshold"] = threshold
    for metric, value in evaluate(y, scores, threshold, *costs).items():
        candidates.loc[result.name, f"validation_{metric}"] = value
    return replace(
        result,
        model=model,
        threshold=threshold,
        candidates=candidates,
        validation_scores=scores,
        models={**result.models, result.name: model},
    )


def calibration_table(
    y: np.ndarray, scores: np.ndarray, frame: pd.DataFrame, spec: dict[str, Any], confidence: float = 0.95
) -> pd.DataFrame:
    """Calibration in the large, overall and per group of each sensitive feature and of their intersection.

    Index (grouping, group), the first row ``("all", "all")``. Per group: its rows, the mean score
    (``predicted``), the positive rate (``observed``) with its Wilson interval, and the ``gap``
    ``predicted - observed`` with the t interval of the mean of ``score - outcome`` over its rows
    (:func:`.intervals.mean_interval`: the score's and the outcome's noise together). A score
    served as a probability should predict each group's rate: a gap interval that excludes zero
    is miscalibration shown. The intervals of one grouping's groups hold together at
    ``confidence`` (Bonferroni over its groups), as a gate on its largest gap would need.
    """
    from .fairness import groupings
    from .intervals import mean_interval, wilson, z_value

    y, scores = np.asarray(y, float), np.asarray(scores, float)
    labels = {"all": np.full(len(y), "all")} | {g: s.astype(str).to_numpy() for g, s in groupings(frame, spec).items()}
    rows = []
    for grouping, series in labels.items():
        members = pd.Series(np.arange(len(y))).groupby(series).indices
        level = 1 - (1 - confidence) / len(members)
        for group, at in sorted(members.items(), key=lambda item: -len(item[1])):
            low, high = wilson(y[at].sum(), len(at), z_value(level))
            gap = mean_interval(scores[at] - y[at], level)
            rows.append(
                {
                    "grouping": grouping,
                    "group": group,
                    "rows": len(at),
                    "predicted": float(scores[at].mean()),
                    "observed": float(y[at].mean()),
                    "observed_low": float(low),
                    "observed_high": float(high),
                    "gap": gap.value,
                    "gap_low": gap.low,
                    "gap_high": gap.high,
                    "miscalibrated": bool(gap.low > 0 or gap.high < 0),
                }
            )
    return pd.DataFrame(rows).set_index(["grouping", "group"])


def calibration_note(table: pd.DataFrame, most: int = 4) -> str:
    """A :func:`calibration_table` in words: overall, and the groups miscalibrated on evidence (largest gap first)."""
    overall = table.loc[("all", "all")]
    words = f"overall {overall['predicted']:.3f} predicted against {overall['observed']:.3f} observed; "
    shown = table[table["miscalibrated"]].drop(index="all", level="grouping", errors="ignore")
    if shown.empty:
        return words + f"the gap interval of every one of the {len(table) - 1} groups holds zero"
    shown = shown.reindex(shown["gap"].abs().sort_values(ascending=False).index)
    return (
        words
        + f"{len(shown)} of {len(table) - 1} groups miscalibrated on evidence: "
        + ", ".join(
            f"`{group}` {row['predicted']:.3f} against {row['observed']:.3f} [{row['observed_low']:.3f}, "
            f"{row['observed_high']:.3f}]"
            for (_, group), row in shown.head(most).iterrows()
        )
    )
