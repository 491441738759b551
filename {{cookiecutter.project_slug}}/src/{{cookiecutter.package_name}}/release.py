"""Step 08's release decision: which mitigation option is released, and whether it passes the gates.

Adapt freely: the rule that picks an option (:func:`choose`) and the gates the release
must pass (:func:`verdict`) are the project's policy.

Step 08 fits the mitigations (:func:`fit_options`), compares every option in one
trade-off table (:func:`tradeoff_table`), picks one (:func:`choose`), judges it
against the fairness and quality gates and step 07's verdict (:func:`verdict`) and
packs the artifact to serve (:func:`release_bundle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import gates
from .business import Costs, cost_reduction


@dataclass
class Option:
    """One way to release: ``model`` is None for the deployed model as it is (``"none"``)."""

    model: Any = None
    constraint: str | None = None
    curves: dict[str, Any] | None = None


def fit_options(
    pipeline: Any,
    spec: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    constraints: list[str],
    fairness_gates: list[dict[str, Any]],
    settings: Any,
    costs: Costs,
) -> tuple[dict[str, Option], list[str]]:
    """Fit each mitigation on ``frame`` (see :func:`.mitigation.mitigate_to_pass`).

    Returns the fitted options by name, and one sentence per mitigation that this data
    cannot support (the others may still be fitted).
    """
    from . import mitigation

    options, unavailable = {}, []
    for kind in ("threshold_optimizer", "exponentiated_gradient"):
        try:
            model, curves, constraint = mitigation.mitigate_to_pass(
                kind, pipeline, spec, frame, features, constraints, fairness_gates, settings, costs=costs
            )
        except mitigation.MitigationUnavailable as exc:
            unavailable.append(f"`{kind}` is not available on this data: {exc}.")
            continue
        options[kind] = Option(model, constraint, curves)
    return options, unavailable


def largest_gap(gaps: dict[str, float], name: str) -> float:
    """The largest ``name`` gap over the sensitive features (NaN when none was measured)."""
    return pd.Series([v for k, v in gaps.items() if k.startswith(name)], dtype=float).max()


def tradeoff_row(
    y: np.ndarray,
    scores: np.ndarray,
    decisions: np.ndarray,
    gaps: dict[str, float],
    fairness_gates: list[dict[str, Any]],
    costs: Costs,
) -> dict[str, Any]:
    """One option's decision metrics, whether it passes the fairness gates and its largest gaps."""
    from .modeling import evaluate_served

    metrics = evaluate_served(y, scores, decisions, *costs)
    return {
        "accuracy": metrics["accuracy"],
        "expected_cost": metrics["expected_cost"],
        "selection_rate": metrics["selection_rate"],
        "passes_fairness_gates": bool(gates.evaluate(fairness_gates, gaps)["passed"].all()),
        "max_dp_difference": largest_gap(gaps, "demographic_parity_difference"),
        "max_eo_difference": largest_gap(gaps, "equalized_odds_difference"),
    }


def tradeoff_table(
    options: dict[str, Option],
    decisions: dict[str, np.ndarray],
    gaps: dict[str, dict[str, float]],
    y: np.ndarray,
    scores: np.ndarray,
    fairness_gates: list[dict[str, Any]],
    costs: Costs,
) -> pd.DataFrame:
    """One row per option (index ``mitigation``): its constraint, cost, accuracy, gaps and gate result."""
    rows = [
        {"mitigation": name, "constraint": option.constraint}
        | tradeoff_row(y, scores, decisions[name], gaps[name], fairness_gates, costs)
        for name, option in options.items()
    ]
    return pd.DataFrame(rows).set_index("mitigation")


def choose(tradeoff: pd.DataFrame, mitigation: str) -> str:
    """The option to release.

    ``auto``: the cheapest option that passes every fairness gate; when none does, the one
    with the smallest largest parity gap (the gates then say why it is not released). A
    named option is released if it could be fitted, else the deployed model as it is.
    """
    if mitigation != "auto":
        return mitigation if mitigation in tradeoff.index else "none"
    passing = tradeoff[tradeoff["passes_fairness_gates"]]
    if len(passing):
        return str(passing["expected_cost"].idxmin())
    return str(tradeoff["max_dp_difference"].fillna(np.inf).idxmin())


def quality_gates(criteria: dict[str, Any], primary_value: float, expected_cost: float, baseline_cost: float):
    """Step 02's quality gates (the ones step 06 enforces) for the released decisions."""
    return gates.evaluate(
        gates.gates_for(criteria["gates"], "modeling"),
        {
            f"test_{criteria['criteria']['primary_metric']}": primary_value,
            "cost_reduction_vs_baseline": cost_reduction(expected_cost, baseline_cost),
        },
    )


def verdict(
    fairness_table: pd.DataFrame, quality_table: pd.DataFrame, deployment: dict[str, Any]
) -> tuple[pd.DataFrame, list[str]]:
    """Every gate of the release in one table, and the reasons it is not released (none: released).

    Step 07's verdict carries step 06's: a model that was not deployed is not released either.
    """
    table = pd.concat([fairness_table, quality_table], ignore_index=True)
    upstream = [] if deployment["deployed"] else [f"step 07: {r}" for r in deployment["reasons"] or ["not deployed"]]
    return table, gates.failures(table) + upstream


def release_bundle(
    bundle: dict[str, Any],
    chosen: str,
    option: Option,
    features: list[str],
    reasons: list[str],
    gaps: dict[str, float],
) -> dict[str, Any]:
    """The artifact to serve: the deployed bundle, or the mitigated model with the metadata its scorer needs."""
    from .scoring import make_bundle

    if chosen == "none":
        released = dict(bundle)
    else:
        released = make_bundle(
            option.model,
            bundle["threshold"],
            {
                **bundle["metadata"],
                "needs_sensitive_features": True,
                "mitigation": chosen,
                "mitigation_constraint": option.constraint,
                "mitigation_features": features,
            },
        )
    released["metadata"] = {**released["metadata"], "releasable": not reasons, "reasons": reasons, "fairness": gaps}
    return released


def decision_note(
    failed: list[str],
    unmeasured: list[str],
    chosen: str,
    constraint: str | None,
    features: list[str],
    tradeoff: pd.DataFrame,
    reasons: list[str],
) -> str:
    """The release decision in words, from the numbers of the trade-off table."""
    if failed:
        before = f"Fairness gates failed before mitigation ({'; '.join(failed)}). "
    elif unmeasured:
        before = "No measured fairness gate fails, so no mitigation. "
    else:
        before = "Every fairness gate passes without mitigation. "
    change = ""
    if chosen != "none":
        none, it = tradeoff.loc["none"], tradeoff.loc[chosen]
        on = ", ".join(f"`{f}`" for f in features)
        change = (
            f"Chosen mitigation: **{chosen}** ({constraint.replace('_', ' ')} constraint on {on}): "
            f"largest parity gap {none['max_dp_difference']:.3f} → **{it['max_dp_difference']:.3f}**, "
            f"accuracy {none['accuracy']:.3f} → **{it['accuracy']:.3f}**, expected cost "
            f"{none['expected_cost']:.3f} → **{it['expected_cost']:.3f}**. "
        )
    if reasons:
        return before + change + "**Not released**: " + "; ".join(reasons) + "."
    return before + change + "**Released**: `models/release.skops` passes every gate."
