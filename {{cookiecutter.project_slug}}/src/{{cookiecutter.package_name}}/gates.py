"""Machine-readable success criteria ("gates") and their evaluation. Adapt with care: steps 02 to 10 read its gates.

Step 02 writes the gates to ``reports/02_success_criteria/success_criteria.json``;
later steps read them from there (never from a copy) and evaluate the ones
they enforce with :func:`evaluate`, on estimates with their confidence intervals
(:mod:`.intervals`): one rule for every step, :func:`verdict`. A release or a promotion
needs every gate to pass; an alarm (step 09) needs a gate to fail on evidence (:func:`breaches`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .intervals import Estimate

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


def grouping_names(sensitive_features: Iterable[str]) -> list[str]:
    """The groupings whose fairness is gated: each sensitive feature, and their intersection when
    there are several (``sex & race``, as :func:`.data.intersection_labels` names it)."""
    features = list(sensitive_features)
    return features + ([" & ".join(features)] if len(features) > 1 else [])


def build_gates(criteria: dict[str, Any], sensitive_features: Iterable[str]) -> list[dict[str, Any]]:
    """Turn the ``success_criteria`` parameters into the list of gates later steps enforce.

    Quality gates are relative by default: to step 06's reference baseline (the baseline that
    decides at the lowest cost on the validation split), measured on the same rows as the model,
    so that they mean something on any data. Absolute ones (``min_primary_metric``, the cost
    against step 01's baseline process) are added only when their parameter is set.
    """
    c, primary = criteria, criteria["primary_metric"]
    # steps 06 and 08 release on these; step 09 alarms when a window fails them on evidence, and step 10 judges
    # the champion by them on recent rows (a challenger must match the champion: step 10's promotion gates)
    relative_stages = ["modeling", "monitoring"]
    gates = [
        gate(
            "model_quality",
            "quality_vs_baseline",
            ">=",
            -c["max_quality_loss_vs_baseline"],
            relative_stages,
            f"{primary} minus the reference baseline's on the same rows: the model may trail the simplest honest "
            f"model by at most {c['max_quality_loss_vs_baseline']:g} (relative)",
        ),
        gate(
            "cost_vs_baseline",
            "cost_reduction_vs_baseline",
            ">=",
            c["min_cost_reduction_vs_baseline"],
            relative_stages,
            "relative reduction of the expected cost per decision against the reference baseline's, on the same "
            "rows (relative)",
        ),
    ]
    if c.get("min_primary_metric") is not None:
        gates.append(
            gate(
                "model_quality_floor",
                f"test_{primary}",
                ">=",
                c["min_primary_metric"],
                ["modeling"],
                f"{primary} of at least this on the judged rows (absolute, set by the team)",
            )
        )
    if c.get("min_cost_reduction_vs_process") is not None:
        gates.append(
            gate(
                "cost_vs_process",
                "cost_reduction_vs_process",
                ">=",
                c["min_cost_reduction_vs_process"],
                ["modeling"],
                "relative reduction of the expected cost against step 01's baseline process, at the judged rows' "
                "prevalence (absolute: the process's error rates are the team's estimates)",
            )
        )
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
    for grouping in grouping_names(sensitive_features):
        for name, metric, key, what in (
            (
                "demographic_parity",
                "demographic_parity_difference",
                "max_demographic_parity_difference",
                "selection rate",
            ),
            (
                "equalized_odds",
                "equalized_odds_difference",
                "max_equalized_odds_difference",
                "true or false positive rate",
            ),
        ):
            if c.get(key) is None:  # a criterion the team did not choose is measured and reported, not gated
                continue
            gates.append(
                gate(
                    f"{name}[{grouping}]",
                    f"{metric}[{grouping}]",
                    "<=",
                    c[key],
                    ["fairness_assessment", "monitoring", "retraining"],
                    f"largest gap in {what} between the groups of {grouping} large enough to measure it",
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
            "number of features whose drift is a discovery (Benjamini-Hochberg at monitoring.drift_fdr over every "
            "feature of every monitored window; PSI tested against its null distribution at the window's size, a "
            f"point mass's share by Fisher's exact test) and large: PSI of at least {c['psi_alert']}, or a point "
            "mass whose share moved by x1.5 or more",
        ),
        gate(
            "staleness",
            "model_age_days",
            "<=",
            c["max_staleness_days"],
            ["monitoring", "retraining"],
            "days from when the registry installed the model in service to the newest decision monitored",
        ),
    ]
    return gates


def gates_for(gates: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """The gates a given stage enforces."""
    return [g for g in gates if stage in g["enforced_by"]]


PASS, FAIL, INCONCLUSIVE, NOT_MEASURED, NOT_REACHED = "pass", "fail", "inconclusive", "not measured", "not reached"
# A fairness gate whose groups are all too small to compare at this size: reported with the rows they lack, and
# no reason of its own (success_criteria.block_unassessed makes it one); a gate is still never passed by absence.
NOT_ASSESSED = "not assessed"
UNDECIDED = (NOT_REACHED, NOT_ASSESSED)
DECIDE_ON = ("interval", "point")


def verdict(g: dict[str, Any], estimate: Estimate, decide_on: str = "interval") -> str:
    """One gate's verdict on an estimate: pass, fail, inconclusive or not measured.

    ``interval`` (the default rule): a gate passes when the whole confidence interval is on the
    right side of the threshold (for ``<=``: its upper bound is at or under it), fails when the
    whole interval is on the wrong side, and is inconclusive when the interval holds the
    threshold: the rows judged cannot tell. ``point``: the point estimate alone decides (a
    team's choice, said in every report), and nothing is inconclusive.
    """
    if not estimate.measured:
        return NOT_MEASURED
    holds = OPERATORS[g["operator"]]
    if decide_on == "point" or not (np.isfinite(estimate.low) and np.isfinite(estimate.high)):
        return PASS if holds(estimate.value, g["threshold"]) else FAIL
    favourable, unfavourable = (estimate.high, estimate.low) if g["operator"] == "<=" else (estimate.low, estimate.high)
    if holds(favourable, g["threshold"]):
        return PASS
    return INCONCLUSIVE if holds(unfavourable, g["threshold"]) else FAIL


def as_estimate(value: Any) -> Estimate:
    """An observed value as an :class:`.intervals.Estimate` (a plain number is exact, None or NaN missing)."""
    if isinstance(value, Estimate):
        return value
    if value is None or pd.isna(value):
        return Estimate.missing()
    return Estimate.exact(float(value))


def evaluate(
    gates: list[dict[str, Any]],
    observed: dict[str, Any],
    decide_on: str = "interval",
    unreached: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per gate: the observed value of its metric, its interval, its verdict and whether it passes.

    ``observed`` maps a gate's metric to an :class:`.intervals.Estimate` (or a plain number, exact:
    a count, a latency). A gate whose metric was not observed fails: a gate is never passed by
    absence. ``unreached`` names the metrics not measured because an earlier gate already
    stopped the model (with why): their gates do not pass either, but are not a reason of
    their own (:func:`failures` leaves them out).
    """
    if decide_on not in DECIDE_ON:
        raise ValueError(f"success_criteria.decide_on must be one of {list(DECIDE_ON)}, got {decide_on!r}")
    unreached = unreached or {}
    rows = []
    for g in gates:
        estimate = as_estimate(observed.get(g["metric"]))
        found = verdict(g, estimate, decide_on)
        note = ""
        if found == NOT_MEASURED and g["metric"] in unreached:
            found, note = NOT_REACHED, unreached[g["metric"]]
        elif decide_on == "point" and found != NOT_MEASURED:
            note = "decided on the point estimate (success_criteria.decide_on)"
        rows.append(
            {
                "gate": g["name"],
                "metric": g["metric"],
                "rule": f"{g['operator']} {g['threshold']:g}",
                "value": estimate.value if estimate.measured else None,
                "low": estimate.low if estimate.measured else None,
                "high": estimate.high if estimate.measured else None,
                "verdict": found,
                "passed": found == PASS,
                "note": note or (found if found == NOT_MEASURED else ""),
            }
        )
    return pd.DataFrame(rows, columns=["gate", "metric", "rule", "value", "low", "high", "verdict", "passed", "note"])


def without_values(table: pd.DataFrame, metrics: Iterable[str], note: str) -> pd.DataFrame:
    """The table with the values of ``metrics`` left out and ``note`` in their place, verdicts kept.

    For figures that change from run to run (latencies): the verdict goes into the step's
    reproducible record, the figure into a file of measurements that no stage depends on.
    """
    volatile = table["metric"].isin(list(metrics))
    kept = {column: table[column].where(~volatile, None) for column in ("value", "low", "high")}
    return table.assign(**kept, note=table["note"].where(~volatile, note))


def _shown(row: Any) -> str:
    if row.value is None or pd.isna(row.value):
        return row.note or NOT_MEASURED
    interval = "" if row.low is None or pd.isna(row.low) or row.low == row.high else f" [{row.low:.4g}, {row.high:.4g}]"
    return f"{row.value:.4g}{interval}"


def failures(table: pd.DataFrame) -> list[str]:
    """Human-readable reasons for every gate that did not pass (a gate not reached is not a reason of its own)."""
    reasons = []
    for row in table[~table["passed"]].itertuples(index=False):
        found = getattr(row, "verdict", FAIL)
        if found in UNDECIDED:
            continue
        if found == INCONCLUSIVE:
            reasons.append(
                f"{row.gate}: inconclusive, {row.metric} = {_shown(row)} holds the threshold ({row.rule}): "
                "the rows judged cannot tell"
            )
        else:
            reasons.append(f"{row.gate}: {row.metric} = {_shown(row)}, required {row.rule}")
    return reasons


def breaches(table: pd.DataFrame) -> list[str]:
    """The reasons of the gates that fail on evidence (an alarm: inconclusive or unmeasured gates raise none)."""
    return failures(table[table["verdict"] == FAIL])


def overall(table: pd.DataFrame) -> str:
    """pass (every gate passes), fail (a gate fails or was not measured) or inconclusive (the rest); gates not
    reached or not assessed (:data:`UNDECIDED`) do not count."""
    verdicts = set(table["verdict"]) - set(UNDECIDED)
    if verdicts <= {PASS}:
        return PASS
    return INCONCLUSIVE if verdicts <= {PASS, INCONCLUSIVE} else FAIL
