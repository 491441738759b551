"""Group fairness of decisions: per-group rates, gaps with their intervals, and which groups are gated. Adapt with care: steps 08, 09 and 10 judge fairness through :func:`assess`.

The gaps follow fairlearn's definitions (demographic parity difference: largest minus
smallest selection rate; equalized odds difference: the larger of the true and false
positive rate differences; the unit tests check them against fairlearn's own functions),
over the groups of each sensitive feature and of their intersection (``sex & race``).

One rule serves every step that judges fairness (:func:`assess`, with step 02's
:class:`FairnessRule`):

* **Which groups are gated** follows from power, not a fixed size: a group counts in a gap
  when, at its size, the gate would pass fair decisions and fail a gap of twice its threshold
  with ``power`` (0.8) over all the pairs compared, whatever the rates (:func:`_gated`,
  :func:`.intervals.required_rows` at the largest variance a rate has; for equalized odds, its
  positives and negatives). It depends on the rows alone, so every model judged on the same rows
  is judged on the same groups. Smaller groups are reported with the rows they lack; a gap with
  fewer than two groups large enough is *not assessed* (reported with what is missing), or blocks
  the release when the team sets ``success_criteria.block_unassessed``.
* **The gap's interval** covers every pair of gated groups at once (Newcombe intervals,
  Bonferroni over the pairs, :func:`.intervals.largest_gap`), so a gate that passes on the
  upper bound is wrong at most ``(1 - confidence) / 2`` of the time, however many groups there
  are. The point estimate of a max-minus-min gap is biased upward on small groups; the
  interval is not built around it, so it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score

from . import data, gates
from .gates import grouping_names
from .intervals import Estimate, combined_gap, largest_gap, required_rows, wilson, z_value

GROUP_METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "precision": lambda y, p: precision_score(y, p, zero_division=0),
}
GAPS = ("demographic_parity", "equalized_odds")
DEFAULT_GAP = 0.15  # how groups are sized for a gap that no gate names


def metric_frame(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series | pd.DataFrame) -> MetricFrame:
    return MetricFrame(
        metrics=GROUP_METRICS, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), sensitive_features=groups
    )


def group_metrics_table(
    y_true: np.ndarray, y_pred: np.ndarray, frame: pd.DataFrame, spec: dict[str, Any]
) -> pd.DataFrame:
    """Per-group metrics for every sensitive feature, stacked (feature, group)."""
    groups = data.sensitive_groups(frame, spec)
    parts = {f: metric_frame(y_true, y_pred, groups[f].to_numpy()).by_group for f in spec["sensitive_features"]}
    table = pd.concat(parts, names=["feature", "group"])
    table["count"] = table["count"].astype(int)
    return table


def groupings(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """One column of group labels per gated grouping: each sensitive feature, and their intersection."""
    groups = data.sensitive_groups(frame, spec)
    if len(spec["sensitive_features"]) > 1:
        groups[" & ".join(spec["sensitive_features"])] = data.intersection_labels(groups)
    return groups[grouping_names(spec["sensitive_features"])]


@dataclass(frozen=True)
class FairnessRule:
    """How every step judges fairness: the gates' thresholds, the intervals' confidence, the power that sizes groups."""

    thresholds: dict[str, float]  # "demographic_parity" / "equalized_odds" -> the largest gap allowed
    confidence: float = 0.95
    power: float = 0.8

    @classmethod
    def of(cls, criteria: dict[str, Any]) -> FairnessRule:
        """The rule of step 02's ``success_criteria.json``."""
        c = criteria["criteria"]
        chosen = {name: c.get(f"max_{name}_difference") for name in GAPS}
        # a gap the team does not gate is still measured and reported, its groups sized as the gated one's
        fallback = next((float(v) for v in chosen.values() if v is not None), DEFAULT_GAP)
        return cls(
            {name: fallback if v is None else float(v) for name, v in chosen.items()},
            float(c.get("confidence", 0.95)),
            float(c.get("fairness_power", 0.8)),
        )


def _counts(y: np.ndarray, decisions: np.ndarray, labels: pd.Series) -> pd.DataFrame:
    codes, uniques = pd.factorize(labels.astype(str).to_numpy(), sort=True)
    n = len(uniques)
    rows = np.bincount(codes, minlength=n).astype(float)
    positives = np.bincount(codes, weights=y, minlength=n)
    selected = np.bincount(codes, weights=decisions, minlength=n)
    hits = np.bincount(codes, weights=y * decisions, minlength=n)
    table = pd.DataFrame(
        {
            "rows": rows,
            "positives": positives,
            "negatives": rows - positives,
            "selected": selected,
            "true_positives": hits,
            "false_positives": selected - hits,
        },
        index=pd.Index(uniques, name="group"),
    )
    return table[table["rows"] > 0]


def _gated(available: pd.Series, threshold: float, rule: FairnessRule, per_pair: int = 1):
    """Which groups are gated, and how many of ``available`` (rows, positives or negatives) a group needs to join them.

    Groups join largest first. With ``k`` groups the gap compares ``k (k - 1) / 2`` pairs (times
    ``per_pair`` rates each), so each pair's interval is at a Bonferroni level, and each group
    needs the power ``1 - (1 - power) / (k - 1)``, so that a gate whose groups are all fair passes
    with at least ``power`` (the union bound over the pairs with the largest group). The next
    group joins only when it is large enough for the larger set; every smaller one is reported
    with the size it would need to join.
    """
    order = available[available > 0].sort_values(ascending=False)
    gated, need = 0, float("inf")
    for k in range(2, len(order) + 1):
        pairs = k * (k - 1) // 2 * per_pair
        power = 1 - (1 - rule.power) / (k - 1)
        confidence = 1 - (1 - rule.confidence) / pairs
        need = required_rows(0.5, threshold, float(order.iloc[0]), confidence, power)  # any rate: its largest variance
        if not np.isfinite(need):  # even the largest group is too small: what each would need beside an equal one
            need = 2 * required_rows(0.5, threshold, float("inf"), confidence, power)
        if order.iloc[k - 1] < need:
            break
        gated = k
    members = set(order.index[:gated]) if gated >= 2 else set()
    mask = pd.Series(available.index.isin(list(members)), index=available.index)
    return mask, pd.Series(np.where(mask, 0.0, need), index=available.index)


def _one_grouping(y: np.ndarray, decisions: np.ndarray, labels: pd.Series, rule: FairnessRule, fixed=None):
    counts = _counts(y, decisions, labels)
    z = z_value(rule.confidence)
    table = counts.copy()
    for name, hits, trials in (
        ("selection_rate", "selected", "rows"),
        ("true_positive_rate", "true_positives", "positives"),
        ("false_positive_rate", "false_positives", "negatives"),
    ):
        with np.errstate(invalid="ignore", divide="ignore"):
            table[name] = counts[hits] / counts[trials]
        table[f"{name}_low"], table[f"{name}_high"] = wilson(counts[hits], counts[trials], z)
    # which groups are gated depends on the rows alone (the largest variance a rate can have), never on the
    # decisions: every model and option judged on the same rows is judged on the same groups
    dp_gated, need_rows = _gated(counts["rows"], rule.thresholds["demographic_parity"], rule)
    pos_gated, need_pos = _gated(counts["positives"], rule.thresholds["equalized_odds"], rule, per_pair=2)
    neg_gated, need_neg = _gated(counts["negatives"], rule.thresholds["equalized_odds"], rule, per_pair=2)
    table["gated_demographic_parity"] = dp_gated
    table["gated_equalized_odds"] = pos_gated & neg_gated
    prevalence = (counts["positives"] / counts["rows"]).clip(0.01, 0.99)
    short_eo = np.maximum(
        np.where(pos_gated, 0.0, (need_pos - counts["positives"]) / prevalence),
        np.where(neg_gated, 0.0, (need_neg - counts["negatives"]) / (1 - prevalence)),
    )
    table["rows_needed_demographic_parity"] = np.ceil(np.maximum(need_rows - counts["rows"], 0)).where(~dp_gated, 0)
    table["rows_needed_equalized_odds"] = np.where(table["gated_equalized_odds"], 0, np.ceil(np.maximum(short_eo, 0)))
    if fixed is not None:  # the groups gated on other rows (e.g. a whole split, judged here on part of it)
        for gap in GAPS:
            table[f"gated_{gap}"] = fixed[f"gated_{gap}"].reindex(table.index, fill_value=False).astype(bool)
    dp = table[table["gated_demographic_parity"]]
    eo = table[table["gated_equalized_odds"]]
    estimates = {
        "demographic_parity": largest_gap(dp["selected"], dp["rows"], rule.confidence),
        "equalized_odds": combined_gap(
            [
                largest_gap(eo["true_positives"], eo["positives"], rule.confidence, extra_comparisons=2),
                largest_gap(eo["false_positives"], eo["negatives"], rule.confidence, extra_comparisons=2),
            ]
        ),
    }
    return estimates, table.sort_values("rows", ascending=False)


@dataclass
class Assessment:
    """Fairness of a set of decisions: the gates' estimates, and the per-group table behind them."""

    estimates: dict[str, Estimate]  # named as the gates' metrics, e.g. ``equalized_odds_difference[sex & race]``
    groups: pd.DataFrame  # index (grouping, group): counts, rates with Wilson intervals, gated, rows needed

    def unmeasured(self, grouping: str, gap: str) -> str:
        """Why a gap could not be measured: the groups short of rows, with how many more they need."""
        table = self.groups.loc[grouping]
        needed = table[f"rows_needed_{gap}"]
        short = needed[needed > 0].head(4)
        needs = ", ".join(f"`{g}` ~{int(n):,} more rows" for g, n in short.items())
        return f"fewer than two groups of `{grouping}` large enough to compare" + (f"; {needs}" if needs else "")

    def small_groups(self, gap: str) -> pd.DataFrame:
        """The groups reported but not gated for ``gap``, with the rows each would need."""
        short = self.groups[~self.groups[f"gated_{gap}"]]
        return short[["rows", "positives", f"rows_needed_{gap}"]]


def assess(
    y_true: np.ndarray,
    decisions: np.ndarray,
    frame: pd.DataFrame,
    spec: dict[str, Any],
    rule: FairnessRule,
    gated: pd.DataFrame | None = None,
) -> Assessment:
    """The fairness gates' estimates for ``decisions`` on the rows of ``frame``: the one rule of steps 08, 09 and 10.

    ``gated``: an :attr:`Assessment.groups` table of other rows whose gated groups are used here
    (step 08 sizes groups on the whole validation split and compares its options on half of it).
    """
    y, d = np.asarray(y_true, float), np.asarray(decisions, float)
    estimates, tables = {}, {}
    for grouping, labels in groupings(frame, spec).items():
        fixed = None if gated is None else gated.loc[grouping]
        found, tables[grouping] = _one_grouping(y, d, labels, rule, fixed)
        for gap, estimate in found.items():
            estimates[f"{gap}_difference[{grouping}]"] = estimate
    return Assessment(estimates, pd.concat(tables, names=["grouping", "group"]))


def group_table(assessment: Assessment, grouping: str) -> pd.DataFrame:
    """One grouping's per-group rates with their 95 % Wilson intervals and whether each group is gated."""
    return assessment.groups.loc[grouping]


def gate_table(
    y_true: np.ndarray,
    decisions: np.ndarray,
    frame: pd.DataFrame,
    spec: dict[str, Any],
    criteria: dict[str, Any],
    gated: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Assessment]:
    """Step 02's fairness gates judged on ``decisions`` (:func:`assess`, :func:`.gates.evaluate`), and the assessment.

    An unmeasured gate's note names the groups that lack rows and how many more each needs.
    """
    assessment = assess(y_true, decisions, frame, spec, FairnessRule.of(criteria), gated)
    table = gates.evaluate(
        gates.gates_for(criteria["gates"], "fairness_assessment"),
        assessment.estimates,
        criteria["criteria"]["decide_on"],
    )
    blocks = bool(criteria["criteria"].get("block_unassessed", False))
    table = table.copy()
    for i, row in table.iterrows():
        if row["verdict"] == gates.NOT_MEASURED:
            gap, grouping = row["metric"].removesuffix("]").split("_difference[")
            table.loc[i, "note"] = assessment.unmeasured(grouping, gap)
            table.loc[i, "verdict"] = gates.NOT_MEASURED if blocks else gates.NOT_ASSESSED
    return table, assessment
