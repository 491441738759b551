"""The business case in numbers: costs of errors and the baseline's expected cost. Adapt freely."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Costs(NamedTuple):
    """The cost of each kind of error, from step 01's charter (``evaluate(y, p, t, *costs)``)."""

    false_positive: float
    false_negative: float

    @classmethod
    def of(cls, charter: dict[str, Any]) -> Costs:
        return cls(float(charter["cost_false_positive"]), float(charter["cost_false_negative"]))


def cost_reduction(cost: float, baseline_cost: float) -> float:
    """Relative saving of ``cost`` against the baseline's expected cost (the gate ``cost_vs_baseline``)."""
    return (baseline_cost - cost) / baseline_cost


def expected_cost(prevalence: float, tpr: float, fpr: float, cost_fp: float, cost_fn: float) -> float:
    """Expected cost per decision of a process with the given error rates.

    A positive case is missed with probability 1 - TPR (cost ``cost_fn``), a
    negative one is wrongly acted on with probability FPR (cost ``cost_fp``).
    """
    for name, rate in (("prevalence", prevalence), ("true positive rate", tpr), ("false positive rate", fpr)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {rate}")
    if cost_fp < 0 or cost_fn < 0:
        raise ValueError(f"costs must be non-negative, got FP={cost_fp}, FN={cost_fn}")
    return prevalence * (1.0 - tpr) * cost_fn + (1.0 - prevalence) * fpr * cost_fp


def row_costs(y_true: np.ndarray, y_pred: np.ndarray, cost_fp: float, cost_fn: float) -> np.ndarray:
    """The cost of each actual 0/1 decision against the truth (what intervals of a cost are computed from)."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    return np.where((y_pred == 1) & (y_true == 0), cost_fp, 0.0) + np.where((y_pred == 0) & (y_true == 1), cost_fn, 0.0)


def cost_of_predictions(y_true: np.ndarray, y_pred: np.ndarray, cost_fp: float, cost_fn: float) -> float:
    """Mean cost per decision of actual 0/1 decisions against the truth."""
    return float(row_costs(y_true, y_pred, cost_fp, cost_fn).mean()) if len(y_true) else 0.0


def process_row_costs(y_true: np.ndarray, charter: dict[str, Any]) -> np.ndarray:
    """The baseline process's expected cost on each row, given its outcome (step 01's error rates).

    A positive row is missed with probability 1 - TPR, a negative one acted on with probability
    FPR: their mean is :func:`expected_cost` at the rows' own prevalence, so a model and the
    process are always compared at one prevalence, the judged rows'.
    """
    y = np.asarray(y_true).astype(int)
    missed = (1.0 - float(charter["baseline_true_positive_rate"])) * float(charter["cost_false_negative"])
    wrongly = float(charter["baseline_false_positive_rate"]) * float(charter["cost_false_positive"])
    return np.where(y == 1, missed, wrongly)


def cost_optimal_threshold(cost_fp: float, cost_fn: float) -> float:
    """Bayes-optimal threshold on a calibrated probability: act when p > c_fp / (c_fp + c_fn)."""
    return cost_fp / (cost_fp + cost_fn)


def trivial_policies(prevalence: float, cost_fp: float, cost_fn: float) -> dict[str, float]:
    """Expected cost of acting on nobody and on everybody, the two policies any model must beat."""
    return {
        "act on nobody": expected_cost(prevalence, 0.0, 0.0, cost_fp, cost_fn),
        "act on everybody": expected_cost(prevalence, 1.0, 1.0, cost_fp, cost_fn),
    }


def charter_markdown(charter: dict[str, Any]) -> str:
    """The project charter, in the sections of the Team Data Science Process charter."""
    b = charter
    stakeholders = "\n".join(f"- {s}" for s in b["stakeholders"])
    policies = "\n".join(f"| {name} | {cost:.3f} |" for name, cost in b["alternative_policies"].items())
    return f"""# Project charter: {b["project_name"]}

## Business background
{b["problem"]}

## Scope
- **Decision supported:** {b["decision"]}
- **Who acts on it:** {b["decision_maker"]}
- **Positive outcome (target = `{b["positive_label"]}` in column `{b["target"]}`):** {b["positive_outcome"]}
- **Data:** `{b["data_path"]}` ({b["rows"]:,} rows, {b["prevalence"]:.1%} positive)

## Stakeholders
{stakeholders}

## Metrics
- **Cost of a false positive:** {b["cost_false_positive"]:g} (acting when we should not)
- **Cost of a false negative:** {b["cost_false_negative"]:g} (not acting when we should)
- **Cost-optimal score threshold for a calibrated model:** {b["cost_optimal_threshold"]:.3f}
- The model is judged by its expected cost per decision against the baseline; the
  quality, fairness, latency and drift gates are set in step 02.

## Baseline
**{b["baseline_process"]}**: true positive rate {b["baseline_true_positive_rate"]:.0%},
false positive rate {b["baseline_false_positive_rate"]:.0%}, so an expected cost of
**{b["baseline_expected_cost"]:.3f} per decision** at this prevalence.

| policy | expected cost per decision |
|---|---|
| baseline: {b["baseline_process"]} | {b["baseline_expected_cost"]:.3f} |
{policies}

## Risks
- Historical labels may encode past bias; the groups in `{", ".join(b["sensitive_features"]) or "the sensitive features"}`
  are assessed in steps 04 and 08 before release.
- The data is a snapshot: drift is monitored in step 09 and retraining is gated in step 10.
- A model that does not beat the baseline's cost is not released (gates of step 02).
"""
