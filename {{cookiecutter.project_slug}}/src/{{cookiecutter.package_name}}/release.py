"""Step 08's release decision: which mitigation option is released, and whether it passes the gates. Adapt freely.

What to adapt: the rule that picks an option (:func:`choose`) and the gates the release
must pass (:func:`judge`) are the project's policy.

The choice and the verdict use different rows. :func:`choose_mitigation` works on the
validation split alone: it holds out part of it (:func:`.mitigation.split_for_choice`),
fits the mitigations on the rest, and compares every option, the deployed model as it is
included, on the held-out rows (:func:`tradeoff_table`, :func:`choose`). :func:`judge`
then scores the test split with the artifact that would be served, once, and evaluates
the fairness and quality gates on its own scores and decisions, with step 07's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import gates
from .business import Costs, cost_reduction
from .mitigation import Choice

KINDS = ("threshold_optimizer", "exponentiated_gradient")


@dataclass
class Selection:
    """What :func:`choose_mitigation` found on the validation split."""

    fit_rows: int  # validation rows the mitigations were fitted on
    choice_rows: int  # validation rows held out from the fit, on which every option is compared
    failed: list[str]  # fairness gates the deployed model fails on the held-out rows (measured ones)
    features: list[str]  # the sensitive features whose gates fail: what the mitigations act on
    constraints: list[str]  # the fairness constraints whose gates fail
    options: dict[str, Choice]  # "none" (the deployed model as it is) and each mitigation fitted
    tradeoff: pd.DataFrame  # one row per option, on the held-out rows
    chosen: str
    notes: list[str] = field(default_factory=list)  # what could not be fitted, and sampling


def choose_mitigation(
    bundle: dict[str, Any],
    spec: dict[str, Any],
    validation: pd.DataFrame,
    fairness_gates: list[dict[str, Any]],
    settings: Any,
    costs: Costs,
) -> Selection:
    """Decide on the validation split whether to mitigate, how, and which option to release.

    ``settings`` is step 08's :class:`.config.FairnessAssessment` (``mitigation``, seed,
    ``min_group_size``, ``mitigation_max_rows``). The test split is not an argument: the
    choice cannot see the rows the verdict is given on.
    """
    from . import mitigation
    from .profiling import feature_columns

    fit, choice = mitigation.split_for_choice(validation, spec, settings)
    y, x = choice[spec["target"]].to_numpy(), choice[feature_columns(spec)]
    groups = mitigation.sensitive_groups(choice, spec)
    scores, decisions = _scored(bundle, choice)
    deployed = gates.evaluate(fairness_gates, _gaps(y, decisions, choice, spec, settings))
    failed = gates.failures(deployed[deployed["note"] != "not measured"])  # unmeasured gates cannot be mitigated
    features = [f for f in spec["sensitive_features"] if any(f"[{f}]" in r for r in failed)]
    constraints = mitigation.failing_constraints(failed)
    options, notes = (
        {"none": Choice()},
        [mitigation.sample_note(len(validation), settings.mitigation_max_rows, "the test split")],
    )
    if failed and settings.mitigation != "none":
        for kind in KINDS:
            try:
                options[kind] = mitigation.choose_fit(
                    kind, bundle["model"], spec, fit, choice, features, constraints, fairness_gates, settings, costs
                )
            except mitigation.MitigationUnavailable as exc:
                notes.append(f"`{kind}` is not available on this data: {exc}.")
    decided = {name: decisions if o.model is None else o.model.decide(x, groups) for name, o in options.items()}
    gaps = {name: _gaps(y, d, choice, spec, settings) for name, d in decided.items()}
    tradeoff = tradeoff_table(options, decided, gaps, y, scores, fairness_gates, costs)
    notes = [n for n in notes if n]
    chosen = choose(tradeoff, settings.mitigation)
    return Selection(len(fit), len(choice), failed, features, constraints, options, tradeoff, chosen, notes)


def _scored(bundle: dict[str, Any], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from .scoring import score

    result = score(bundle, frame, allow_extra=True, allow_unseen=True)
    return result["score"].to_numpy(), result["decision"].to_numpy()


def _gaps(y: np.ndarray, decisions: np.ndarray, frame: pd.DataFrame, spec: dict[str, Any], settings: Any):
    from .fairness import gap_metrics

    return gap_metrics(y, decisions, frame, spec, settings.min_group_size)


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
    options: dict[str, Choice],
    decisions: dict[str, np.ndarray],
    gaps: dict[str, dict[str, float]],
    y: np.ndarray,
    scores: np.ndarray,
    fairness_gates: list[dict[str, Any]],
    costs: Costs,
) -> pd.DataFrame:
    """One row per option (index ``mitigation``): its constraint, objective, cost, accuracy, gaps and gate result."""
    rows = [
        {"mitigation": name, "constraint": option.constraint, "objective": option.objective}
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


def release_bundle(bundle: dict[str, Any], chosen: str, option: Choice, features: list[str]) -> dict[str, Any]:
    """The artifact to serve: the deployed bundle, or the mitigated model with the metadata its scorer needs."""
    from .mitigation import DECISION_RULE
    from .scoring import make_bundle

    if chosen == "none":
        return dict(bundle)
    return make_bundle(
        option.model,
        bundle["threshold"],
        {
            **bundle["metadata"],
            "needs_sensitive_features": True,
            "mitigation": chosen,
            "mitigation_constraint": option.constraint,
            "mitigation_objective": option.objective,
            "mitigation_features": features,
            **({"decision_rule": DECISION_RULE} if chosen == "threshold_optimizer" else {}),
        },
    )


@dataclass
class Verdict:
    """The release judged on the test split by its own scores and decisions."""

    scores: np.ndarray
    decisions: np.ndarray
    gaps: dict[str, float]
    metrics: dict[str, float]  # :func:`.modeling.evaluate_served` of the released scores and decisions
    gates: pd.DataFrame  # every gate of the release
    reasons: list[str]  # why it is not released (empty: released)

    @property
    def released(self) -> bool:
        return not self.reasons


def quality_gates(criteria: dict[str, Any], metrics: dict[str, float], baseline_cost: float) -> pd.DataFrame:
    """Step 02's quality gates (the ones step 06 enforces) for the released scores and decisions."""
    return gates.evaluate(
        gates.gates_for(criteria["gates"], "modeling"),
        {
            f"test_{criteria['criteria']['primary_metric']}": metrics[criteria["criteria"]["primary_metric"]],
            "cost_reduction_vs_baseline": cost_reduction(metrics["expected_cost"], baseline_cost),
        },
    )


def judge(
    candidate: dict[str, Any],
    test: pd.DataFrame,
    spec: dict[str, Any],
    criteria: dict[str, Any],
    charter: dict[str, Any],
    settings: Any,
    deployment: dict[str, Any],
) -> Verdict:
    """Score ``test`` with the artifact to release, as the service would, and judge every gate on that.

    Quality comes from the artifact's own scores and decisions (a reduction scores
    differently from the model it came from), never from the deployed model's metadata.
    Step 07's verdict carries step 06's: a model that was not deployed is not released either.
    """
    from .modeling import evaluate_served

    y = test[spec["target"]].to_numpy()
    scores, decisions = _scored(candidate, test)
    gaps = _gaps(y, decisions, test, spec, settings)
    metrics = evaluate_served(y, scores, decisions, *Costs.of(charter))
    fairness_gates = gates.gates_for(criteria["gates"], "fairness_assessment")
    table = pd.concat(
        [gates.evaluate(fairness_gates, gaps), quality_gates(criteria, metrics, charter["baseline_expected_cost"])],
        ignore_index=True,
    )
    upstream = [] if deployment["deployed"] else [f"step 07: {r}" for r in deployment["reasons"] or ["not deployed"]]
    return Verdict(scores, decisions, gaps, metrics, table, gates.failures(table) + upstream)


def finalize(candidate: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The artifact with its verdict recorded (``releasable``, ``reasons``, the test split's gaps)."""
    meta = {**candidate["metadata"], "releasable": verdict.released, "reasons": verdict.reasons}
    return {**candidate, "metadata": meta | {"fairness": verdict.gaps}}


def decision_note(
    selection: Selection, before_gaps: dict[str, float], before: dict[str, float], verdict: Verdict
) -> str:
    """The release decision in words: the choice (validation) and the verdict (test), from the numbers."""
    chosen = selection.chosen
    if selection.failed:
        text = (
            f"Without mitigation, fairness gates fail on the held-out validation rows ({'; '.join(selection.failed)}). "
        )
    else:
        text = "Every measured fairness gate passes on the held-out validation rows without mitigation, so none is applied. "
    if chosen != "none":
        option = selection.options[chosen]
        on = ", ".join(f"`{f}`" for f in selection.features)
        how = option.constraint.replace("_", " ") + " constraint on " + on
        text += f"Chosen there: **{chosen}** ({how}{f', objective `{option.objective}`' if option.objective else ''}). "
    after = verdict.gaps
    text += (
        f"On the test split, from the deployed model's decisions to the released ones: largest parity gap "
        f"{largest_gap(before_gaps, 'demographic_parity_difference'):.3f} → "
        f"**{largest_gap(after, 'demographic_parity_difference'):.3f}**, largest equalized odds gap "
        f"{largest_gap(before_gaps, 'equalized_odds_difference'):.3f} → "
        f"**{largest_gap(after, 'equalized_odds_difference'):.3f}**, accuracy {before['accuracy']:.3f} → "
        f"**{verdict.metrics['accuracy']:.3f}**, expected cost {before['expected_cost']:.3f} → "
        f"**{verdict.metrics['expected_cost']:.3f}**. "
    )
    if verdict.reasons:
        return text + "**Not released**: " + "; ".join(verdict.reasons) + "."
    return text + "**Released**: `models/release.skops` passes every gate."
