"""Bias in the data: representation, base rates, proxies, and remediations. Adapt freely.

Reweighing follows Kamiran & Calders (2012): each (group, label) cell gets the
weight P(group) P(label) / P(group, label), so that group and label are
independent in the weighted data. Group-aware resampling draws rows with the
same ratios. Nothing here drops rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .business import row_costs
from .intervals import Estimate, mean_interval, ratio_interval
from .profiling import single_feature_auc

WEIGHT_BOUNDS = (0.1, 10.0)


def representation(groups: pd.Series, y: pd.Series, min_group_size: int) -> pd.DataFrame:
    """Per group: rows, share of the whole, positive base rate, and whether it is large enough to assess."""
    cells = pd.DataFrame({"group": groups.to_numpy(), "y": np.asarray(y)}).value_counts(sort=False)
    return _representation(cells.rename("rows").reset_index(), min_group_size)


def representation_of_cells(cells: pd.DataFrame, features: list[str], target: str, min_group_size: int) -> pd.DataFrame:
    """:func:`representation` from counted cells (:meth:`.tables.MemoryTable.cells`): by one sensitive
    feature, or by the intersection of several."""
    from .data import intersection_labels

    group = cells[features[0]] if len(features) == 1 else intersection_labels(cells[features])
    return _representation(pd.DataFrame({"group": group, "y": cells[target], "rows": cells["rows"]}), min_group_size)


def _representation(cells: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """The representation table of cells ``group, y (0/1), rows``."""
    cells = cells.assign(positives=cells["rows"] * cells["y"])
    table = cells.groupby("group")[["rows", "positives"]].sum()
    table["positive_rate"] = table["positives"] / table["rows"]
    table["share"] = table["rows"] / table["rows"].sum()
    table["positive_rate_vs_overall"] = table["positive_rate"] - overall_rate(cells)
    table["assessable"] = table["rows"] >= min_group_size
    table.index.name = "group"
    return table.sort_values("rows", ascending=False)[
        ["rows", "share", "positive_rate", "positive_rate_vs_overall", "assessable"]
    ]


def overall_rate(cells: pd.DataFrame, target: str = "y") -> float:
    """The positive rate of all rows of counted cells."""
    return float((cells["rows"] * cells[target]).sum() / cells["rows"].sum())


def base_rate_gap(table: pd.DataFrame) -> tuple[float, str, str]:
    """Largest difference in positive rate between assessable groups, and which two groups."""
    ok = table[table["assessable"]]
    if len(ok) < 2:
        return float("nan"), "", ""
    hi, lo = ok["positive_rate"].idxmax(), ok["positive_rate"].idxmin()
    return float(ok.loc[hi, "positive_rate"] - ok.loc[lo, "positive_rate"]), str(hi), str(lo)


def sample_positions(rows: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted positions of a random sample of ``max_rows`` of ``rows`` rows (all of them when fewer)."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be a positive number of rows, got {max_rows}")
    if rows <= max_rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))


def proxy_scan(
    features: pd.DataFrame, groups: pd.Series, kinds: dict[str, str], min_group_size: int, seed: int
) -> pd.Series:
    """How well each feature alone predicts group membership (size-weighted one-vs-rest AUC, out of fold)."""
    counts = groups.value_counts()
    assessable = counts[counts >= min_group_size]
    scores = {}
    for column in features.columns:
        aucs, weights = [], []
        for group, size in assessable.items():
            member = (groups == group).astype(int)
            if member.nunique() < 2:
                continue
            aucs.append(single_feature_auc(features[column], member, kinds.get(column, "categorical"), seed=seed))
            weights.append(size)
        scores[column] = float(np.average(aucs, weights=weights)) if aucs else float("nan")
    return pd.Series(scores, name="proxy_auc").sort_values(ascending=False)


def joint_proxy_auc(
    encoded: np.ndarray, groups: pd.Series, min_group_size: int, seed: int, max_rows: int = 20000
) -> float:
    """How well all features together predict group membership (weighted one-vs-rest AUC, 3-fold)."""
    counts = groups.value_counts()
    keep = groups.isin(counts[counts >= max(min_group_size, 3)].index).to_numpy()
    x, g = encoded[keep], groups[keep].to_numpy()
    if len(np.unique(g)) < 2:
        return float("nan")
    if len(g) > max_rows:
        idx = np.random.default_rng(seed).choice(len(g), max_rows, replace=False)
        x, g = x[idx], g[idx]
    model = HistGradientBoostingClassifier(max_iter=60, random_state=seed)
    proba = cross_val_predict(
        model, x, g, cv=StratifiedKFold(3, shuffle=True, random_state=seed), method="predict_proba"
    )
    classes = np.unique(g)
    if len(classes) == 2:
        return float(roc_auc_score(g == classes[1], proba[:, 1]))
    return float(roc_auc_score(g, proba, multi_class="ovr", average="weighted", labels=classes))


def reweighing_table(groups: pd.Series, y: pd.Series) -> pd.DataFrame:
    """Kamiran & Calders weights per (group, label) cell, clipped to avoid exploding weights."""
    frame = pd.DataFrame({"group": groups.to_numpy(), "label": np.asarray(y).astype(int)})
    return _reweighing(frame.value_counts(["group", "label"]).rename("rows").reset_index())


def reweighing_of_cells(cells: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """:func:`reweighing_table` by intersectional group, from counted cells (:meth:`.tables.MemoryTable.cells`)."""
    from .data import intersection_labels

    labels = intersection_labels(cells[spec["sensitive_features"]])
    frame = pd.DataFrame({"group": labels, "label": cells[spec["target"]].astype(int), "rows": cells["rows"]})
    return _reweighing(frame.groupby(["group", "label"], sort=False)["rows"].sum().reset_index())


def _reweighing(cells: pd.DataFrame) -> pd.DataFrame:
    n = cells["rows"].sum()
    p_group = cells.groupby("group")["rows"].sum() / n
    p_label = cells.groupby("label")["rows"].sum() / n
    cells = cells.copy()
    cells["expected"] = cells["group"].map(p_group) * cells["label"].map(p_label) * n
    cells["weight"] = (cells["expected"] / cells["rows"]).clip(*WEIGHT_BOUNDS)
    return cells.sort_values(["group", "label"]).reset_index(drop=True)


def row_weights(groups: pd.Series, y: pd.Series, table: pd.DataFrame) -> np.ndarray:
    """The weight of every row from a :func:`reweighing_table` (1.0 for cells it does not know)."""
    lookup = {(str(g), int(lbl)): w for g, lbl, w in table[["group", "label", "weight"]].itertuples(index=False)}
    return np.array(
        [lookup.get((str(g), int(lbl)), 1.0) for g, lbl in zip(groups, np.asarray(y).astype(int), strict=True)]
    )


def resample_indices(weights: np.ndarray, seed: int) -> np.ndarray:
    """Group-aware resampling: draw as many rows as there are, with probability proportional to the weights."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())


COST_MARGIN = 0.1  # default of data_bias_plan.max_cost_increase: a remediation may cost this much more per decision
REMEDIATIONS = ("none", "reweighing", "resampling")


@dataclass
class RemediationEffects:
    """Each remediation's quick model at step 06's decision rule, on the same held-out training rows.

    Every gap interval and every reduction interval holds at once with probability ``confidence``
    (Bonferroni over the judged gaps of the three models); each cost ratio's interval at
    ``confidence`` over the two remediations compared with none.
    """

    costs: pd.DataFrame  # index remediation: thresholds, expected_cost (low, high), cost_ratio vs none (low, high)
    gaps: pd.DataFrame  # index (remediation, metric): value, low, high, reduction vs none (low, high), judged
    judged: list[str]  # the gap metrics the choice judges: step 02's gated ones (every gap when none is gated)
    rows: int  # training rows, each judged once by the model fitted on the other half
    confidence: float


def judged_metrics(criteria: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The fairness gaps a remediation is judged on: those step 02 gates (``equalized_odds_difference[sex]``, ...).

    When step 02 gates no fairness criterion, every gap it reports (both, for every grouping): a
    remediation is then adopted only for a gap it shows reduced on one of them.
    """
    from .fairness import GAPS
    from .gates import gates_for, grouping_names

    gated = [g["metric"] for g in gates_for(criteria["gates"], "fairness_assessment") if "_difference[" in g["metric"]]
    return gated or [f"{gap}_difference[{g}]" for gap in GAPS for g in grouping_names(spec["sensitive_features"])]


def cross_fitted_decisions(
    y: np.ndarray, scores: np.ndarray, costs: tuple[float, float], seed: int
) -> tuple[np.ndarray, list[float]]:
    """Step 06's decision rule on held-out rows: act when the score reaches the cost-minimising threshold.

    Step 06 chooses that threshold on the validation split and is judged on the test split; here
    the held-out rows play both parts in turn: the threshold of each half is chosen on the other
    half (:func:`.modeling.cost_threshold`), so no row's decision comes from a threshold fitted on
    it, and every row is judged. The halves are the same for every model (stratified, seeded).
    """
    from .modeling import cost_threshold

    decisions, thresholds = np.zeros(len(y), dtype=int), []
    for chosen_on, applied_to in StratifiedKFold(2, shuffle=True, random_state=seed).split(scores, y):
        threshold, _ = cost_threshold(y[chosen_on], scores[chosen_on], *costs)
        decisions[applied_to] = scores[applied_to] >= threshold
        thresholds.append(threshold)
    return decisions, thresholds


def remediation_effects(
    rows: pd.DataFrame,
    spec: dict[str, Any],
    weights_table: pd.DataFrame,
    costs: tuple[float, float],
    criteria: dict[str, Any],
    seed: int,
) -> RemediationEffects:
    """Each remediation's expected cost and fairness gaps at step 06's decision rule, paired against none.

    ``rows`` are training rows (step 05's training split, or a sample of it). Under each
    remediation (none, reweighing, resampling) the quick model (logistic regression on the
    step-05 features) is fitted on one half of them and judges the other, and the other way
    round (two stratified folds, the same for every remediation), so every row is judged, by a
    model that never saw it, and all three are judged on the same rows: decisions at the
    cost-minimising threshold chosen on the model's other held-out rows
    (:func:`cross_fitted_decisions`, step 01's costs), their cost per
    decision (:func:`.business.row_costs`, its ratio to none's by :func:`.intervals.ratio_interval`)
    and step 02's fairness gaps (:func:`.fairness.assess`). The choice never sees a validation or test row.
    """
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression

    from .data import intersection_labels, sensitive_groups
    from .fairness import FairnessRule, assess
    from .features import build_preprocessor

    columns = spec["numeric_features"] + spec["categorical_features"]
    y = rows[spec["target"]].to_numpy().astype(int)
    x, labels = rows[columns], intersection_labels(sensitive_groups(rows, spec))
    judged = judged_metrics(criteria, spec)
    rule = FairnessRule.of(criteria)
    # every judged gap of the three models covered at once: a reduction is then shown wrongly at most 1 - confidence
    joint = replace(rule, confidence=1 - (1 - rule.confidence) / (len(REMEDIATIONS) * len(judged)))
    ratio_confidence = 1 - (1 - rule.confidence) / (len(REMEDIATIONS) - 1)
    decided = {name: np.zeros(len(rows), dtype=int) for name in REMEDIATIONS}
    thresholds: dict[str, list[float]] = {name: [] for name in REMEDIATIONS}
    for fit, judge in StratifiedKFold(2, shuffle=True, random_state=seed).split(x, y):
        encode = build_preprocessor(spec).fit(x.iloc[fit])  # the same features for the three models of a fold
        fitted, judged_x, y_fit = encode.transform(x.iloc[fit]), encode.transform(x.iloc[judge]), y[fit]
        weights = row_weights(labels.iloc[fit], y_fit, weights_table)
        drawn = resample_indices(weights, seed)
        for name, model_x, model_y, sample_weight in (
            ("none", fitted, y_fit, None),
            ("reweighing", fitted, y_fit, weights),
            ("resampling", fitted[drawn], y_fit[drawn], None),
        ):
            # Newton-Cholesky: a few exact steps on these few dense columns, where lbfgs takes about a hundred
            model = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(model_x, model_y, sample_weight)
            scores = model.predict_proba(judged_x)[:, 1]
            decided[name][judge], chosen = cross_fitted_decisions(y[judge], scores, costs, seed)
            thresholds[name] += chosen
    estimates = {name: assess(y, decided[name], rows, spec, joint).estimates for name in REMEDIATIONS}
    cost_rows, gap_rows = {}, {}
    none_costs = row_costs(y, decided["none"], *costs)
    for name in REMEDIATIONS:
        own = row_costs(y, decided[name], *costs)
        cost, ratio = mean_interval(own, rule.confidence), ratio_interval(own, none_costs, ratio_confidence)
        cost_rows[name] = {
            "threshold_min": min(thresholds[name]),  # of the four (two per fold: each chosen on the other half)
            "threshold_max": max(thresholds[name]),
            "selection_rate": float(decided[name].mean()),
            **_prefixed("expected_cost", cost),
            **_prefixed("cost_ratio", ratio),
        }
        for metric, estimate in estimates[name].items():
            reduction = Estimate.missing() if name == "none" else _reduction(estimates["none"][metric], estimate)
            gap_rows[(name, metric)] = {
                **_prefixed("gap", estimate),
                **_prefixed("reduction", reduction),
                "judged": metric in judged,
            }
    return RemediationEffects(
        pd.DataFrame.from_dict(cost_rows, orient="index").rename_axis("remediation"),
        pd.DataFrame.from_dict(gap_rows, orient="index").rename_axis(["remediation", "metric"]),
        judged,
        len(rows),
        confidence=rule.confidence,
    )


def _prefixed(name: str, estimate: Estimate) -> dict[str, float]:
    return {name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high}


def _reduction(before: Estimate, after: Estimate) -> Estimate:
    """How much smaller ``after``'s gap is than ``before``'s, with the interval their two intervals allow.

    When both intervals cover their gaps (at once, by the Bonferroni level of
    :func:`remediation_effects`), the difference lies between before's lower bound minus
    after's upper bound and before's upper bound minus after's lower bound: conservative (the
    two models' decisions on the same rows are correlated), never optimistic.
    """
    return Estimate(before.value - after.value, before.low - after.high, before.high - after.low)


def remediation_verdicts(effects: RemediationEffects, margin: float = COST_MARGIN) -> pd.DataFrame:
    """Whether each remediation is adopted, and why, in numbers.

    A remediation is adopted only on evidence: its reduction of a judged gap is shown (the
    reduction's interval lies above zero), no judged gap is shown to widen, and its cost per
    decision is not shown to exceed none's by more than ``margin`` (the upper bound of the cost
    ratio is at most ``1 + margin``). With the intervals of :func:`remediation_effects`, a
    remediation that reduces no gap is adopted at most ``(1 - confidence) / 2`` of the time.
    """
    verdicts = {}
    for name in effects.costs.index.drop("none"):
        judged = effects.gaps.loc[name]
        judged = judged[judged["judged"]].dropna(subset=["reduction_low"])
        shown = judged.index[judged["reduction_low"] > 0].tolist()
        worse = judged.index[judged["reduction_high"] < 0].tolist()
        cost = effects.costs.loc[name]
        affordable = bool(cost["cost_ratio_high"] <= 1 + margin)
        reasons = [
            f"`{metric}` {effects.gaps.loc[('none', metric), 'gap']:.3f} → {row.gap:.3f}, reduction "
            f"{row.reduction:+.3f} [{row.reduction_low:+.3f}, {row.reduction_high:+.3f}]"
            for metric, row in judged.iterrows()
        ]
        reasons.append(
            f"cost ratio to none {cost['cost_ratio']:.3f} [{cost['cost_ratio_low']:.3f}, {cost['cost_ratio_high']:.3f}]"
            f" (margin {1 + margin:.2f})"
        )
        verdicts[name] = {
            "reduction_shown_on": shown,
            "increase_shown_on": worse,
            "measured": len(judged),
            "cost_within_margin": affordable,
            "adopted": bool(shown) and not worse and affordable,
            # how far the deciding bounds are from their lines (negative: on the wrong side), in half-widths
            # of their intervals: the judged gap whose reduction is best shown, and the cost ratio
            "reduction_room": _room(judged["reduction_low"], judged["reduction_high"], 0.0),
            "cost_room": _room(1 + margin - cost["cost_ratio_high"], cost["cost_ratio_high"] - cost["cost_ratio_low"]),
            "evidence": "; ".join(reasons),
            "why": _why(shown, worse, affordable, len(judged), margin),
        }
    return pd.DataFrame.from_dict(verdicts, orient="index").rename_axis("remediation")


def _room(low: Any, high: Any, line: float | None = None) -> float:
    """A bound's distance from its line in half-widths of its interval: ``(low - line) / half-width`` of the
    interval ``[low, high]`` whose lower bound is furthest above ``line`` (one or several intervals); with
    ``line`` None, ``low`` is already the distance and ``high`` the interval's width."""
    if line is None:
        return float(low / (high / 2)) if high > 0 else float("nan")
    rooms = (np.asarray(low, float) - line) / ((np.asarray(high, float) - np.asarray(low, float)) / 2)
    return float(np.max(rooms)) if len(rooms) else float("nan")


def choice_room(verdicts: pd.DataFrame, chosen: str) -> float:
    """How near the automatic choice came to going the other way, in half-widths of the deciding interval.

    The candidates that decide it are the chosen one and those before it in :data:`REMEDIATIONS`
    (all of them when none is adopted). An adopted one would flip when either of its bounds
    crosses its line (the nearer counts); a rejected one only when every bound on the wrong side
    crosses back (the farther counts; a widening shown is not expected to). Under about one
    half-width, another seed, another split of the same rows, may well change the choice.
    """
    order = [n for n in REMEDIATIONS if n in verdicts.index]
    considered = order[: order.index(chosen) + 1] if chosen in order else order
    distances = []
    for name in considered:
        row = verdicts.loc[name]
        rooms = pd.Series({"reduction": row["reduction_room"], "cost": row["cost_room"]}).dropna()
        if row["adopted"]:
            distances.append(float(rooms.min()))
        elif not row["increase_shown_on"] and len(rooms):
            distances.append(float(rooms[rooms <= 0].abs().max()) if (rooms <= 0).any() else 0.0)
    return min(distances) if distances else float("nan")


def _why(shown: list[str], worse: list[str], affordable: bool, measured: int, margin: float) -> str:
    if not measured:
        return "no judged gap could be measured on the held-out rows (too few rows per group)"
    if worse:
        return "shown to widen " + ", ".join(f"`{m}`" for m in worse)
    if not shown:
        return "no gap reduction shown (every reduction interval holds zero)"
    if not affordable:
        return f"its cost per decision may exceed none's by more than {margin:.0%}"
    return "reduction shown on " + ", ".join(f"`{m}`" for m in shown) + f", cost within {margin:.0%} of none's"


def choose_remediation(verdicts: pd.DataFrame) -> str:
    """The first adopted remediation in the order of :data:`REMEDIATIONS` (:func:`remediation_verdicts`), else "none".

    Reweighing comes before resampling when both are adopted: resampling draws rows with the
    reweighing weights, so it has the same effect in expectation plus the noise of one draw, and
    a difference between the two on one set of held-out rows is not evidence for either.
    """
    adopted = [name for name in REMEDIATIONS if name in verdicts.index and verdicts.loc[name, "adopted"]]
    return adopted[0] if adopted else "none"


def plan_summary(choice: str, effects: RemediationEffects) -> dict[str, Any]:
    """The plan's figures for ``bias_plan.json``: the chosen remediation's judged gaps and cost against none's."""
    gaps, cost = effects.gaps, effects.costs
    parity = gaps["gap"].where(gaps.index.get_level_values("metric").str.startswith("demographic_parity"))
    return {
        "remediation": choice,
        "judged": effects.judged,
        "judged_gaps_before": gaps.loc["none"].loc[effects.judged, ["gap", "gap_low", "gap_high"]].to_dict("index"),
        "judged_gaps_after": gaps.loc[choice].loc[effects.judged, ["gap", "gap_low", "gap_high"]].to_dict("index"),
        "parity_gap_before": float(parity.loc["none"].max()),
        "parity_gap_after": float(parity.loc[choice].max()),
        "expected_cost_before": float(cost.loc["none", "expected_cost"]),
        "expected_cost_after": float(cost.loc[choice, "expected_cost"]),
        "cost_ratio": {k: float(cost.loc[choice, k]) for k in ("cost_ratio", "cost_ratio_low", "cost_ratio_high")},
        "confidence": effects.confidence,
        "judged_rows": effects.rows,
    }
