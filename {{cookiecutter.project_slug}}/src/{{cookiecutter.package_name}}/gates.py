"""Machine-readable success criteria ("gates") and their evaluation. Adapt with care: steps 02 to 10 read its gates.

Step 02 writes the gates to ``reports/02_success_criteria/success_criteria.json``;
later steps read them from there (never from a copy) and evaluate the ones
they enforce with :func:`evaluate`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import pandas as pd

OPERATORS = {">=": operator.ge, "<=": operator.le}


def gate(name: str, metric: str, op: str, threshold: float, enforced_by: Iterable[str], why: str) -> dict[str, Any]:
    if op not in OPERATORS:
        raise ValueError(f"gate {name!r}: operator must be one of {list(OPERATORS)}, got {op!r}")
    return {
        "name": name,
        "metric": metric,
        "operator": op,
        "threshold": float(threshold),
        "enforced_by": list(enforced_by),
        "why": why,
    }


def build_gates(criteria: dict[str, Any], sensitive_features: Iterable[str]) -> list[dict[str, Any]]:
    """Turn the ``success_criteria`` parameters into the list of gates later steps enforce."""
    c = criteria
    gates = [
        gate(
            "model_quality",
            f"test_{c['primary_metric']}",
            ">=",
            c["min_primary_metric"],
            ["modeling", "retraining"],
            f"the model must reach {c['primary_metric']} of at least this on the test split",
        ),
        gate(
            "cost_vs_baseline",
            "cost_reduction_vs_baseline",
            ">=",
            c["min_cost_reduction_vs_baseline"],
            ["modeling", "retraining"],
            "relative reduction of the expected cost per decision against the baseline process",
        ),
    ]
    if c.get("max_plausible_roc_auc") is not None:
        gates.append(
            gate(
                "leakage_alarm",
                "test_roc_auc",
                "<=",
                c["max_plausible_roc_auc"],
                ["modeling", "retraining"],
                "a model this good is more often a leak (a column recorded after the outcome) than a breakthrough",
            )
        )
    for feature in sensitive_features:
        gates.append(
            gate(
                f"demographic_parity[{feature}]",
                f"demographic_parity_difference[{feature}]",
                "<=",
                c["max_demographic_parity_difference"],
                ["fairness_assessment", "monitoring", "retraining"],
                f"largest gap in selection rate between groups of {feature}",
            )
        )
        gates.append(
            gate(
                f"equalized_odds[{feature}]",
                f"equalized_odds_difference[{feature}]",
                "<=",
                c["max_equalized_odds_difference"],
                ["fairness_assessment", "monitoring", "retraining"],
                f"largest gap in true or false positive rate between groups of {feature}",
            )
        )
    gates += [
        gate(
            "latency",
            "p99_latency_ms",
            "<=",
            c["max_batch_latency_ms"],
            ["deployment"],
            "99th percentile latency of one scoring request of a batch of records",
        ),
        gate(
            "feature_drift",
            "drifted_features",
            "<=",
            c["max_drifted_features"],
            ["monitoring"],
            f"number of features that alert against the training data: PSI above {c['psi_alert']}, or a point mass "
            "whose share moved by x1.5 or more (p < 0.001)",
        ),
        gate(
            "staleness",
            "model_age_days",
            "<=",
            c["max_staleness_days"],
            ["monitoring", "retraining"],
            "days since the deployed model was trained",
        ),
    ]
    return gates


def gates_for(gates: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """The gates a given stage enforces."""
    return [g for g in gates if stage in g["enforced_by"]]


def evaluate(gates: list[dict[str, Any]], observed: dict[str, float]) -> pd.DataFrame:
    """One row per gate: the observed value of its metric and whether it passes.

    A gate whose metric was not observed fails: a gate is never passed by absence.
    """
    rows = []
    for g in gates:
        value = observed.get(g["metric"])
        missing = value is None or pd.isna(value)
        passed = (not missing) and bool(OPERATORS[g["operator"]](float(value), g["threshold"]))
        rows.append(
            {
                "gate": g["name"],
                "metric": g["metric"],
                "rule": f"{g['operator']} {g['threshold']:g}",
                "value": None if missing else float(value),
                "passed": passed,
                "note": "not measured" if missing else "",
            }
        )
    return pd.DataFrame(rows, columns=["gate", "metric", "rule", "value", "passed", "note"])


def without_values(table: pd.DataFrame, metrics: Iterable[str], note: str) -> pd.DataFrame:
    """The table with the values of ``metrics`` left out and ``note`` in their place, verdicts kept.

    For figures that change from run to run (latencies): the verdict goes into the step's
    reproducible record, the figure into a file of measurements that no stage depends on.
    """
    volatile = table["metric"].isin(list(metrics))
    return table.assign(value=table["value"].where(~volatile, None), note=table["note"].where(~volatile, note))


def failures(table: pd.DataFrame) -> list[str]:
    """Human-readable reasons for every failed gate in an :func:`evaluate` table."""
    reasons = []
    for row in table[~table["passed"]].itertuples(index=False):
        shown = (row.note or "not measured") if row.value is None or pd.isna(row.value) else f"{row.value:.4g}"
        reasons.append(f"{row.gate}: {row.metric} = {shown}, required {row.rule}")
    return reasons
