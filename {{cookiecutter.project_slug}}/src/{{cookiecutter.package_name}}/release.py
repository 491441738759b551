"""Step 08's release decision: which mitigation option is released, and whether it passes the gates. Adapt freely.

What to adapt: the rule that picks an option (:func:`choose`) and the gates the release
must pass (:func:`judge`) are the project's policy.

The choice and the verdict use different rows. :func:`choose_mitigation` works on the
validation split alone: it holds out part of it (:func:`.mitigation.split_for_choice`),
fits the mitigations on the rest, and compares every option, the deployed model as it is
included, on the held-out rows (:func:`tradeoff_table`, :func:`choose`). :func:`judge`
then scores the test split with the artifact that would be served, once, and evaluates
the fairness and quality gates on its own scores and decisions, with step 07's verdict.
Every gate judges an interval (:func:`.gates.evaluate`): the release needs each to pass on
its bound, and the record says whether a refusal is a failure or inconclusive evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import gates
from .business import Costs
from .fairness import Assessment, gate_table
from .intervals import Estimate
from .mitigation import Choice
from .modeling import Scored
from .profiling import feature_columns

KINDS = ("threshold_optimizer", "exponentiated_gradient")


@dataclass
class Selection:
    """What :func:`choose_mitigation` found on the validation split."""

    fit_rows: int  # validation rows the mitigations were fitted on
    choice_rows: int  # validation rows held out from the fit, on which every option is compared
    failed: list[str]  # fairness gates the deployed model does not pass on the held-out rows (measured ones)
    features: list[str]  # the sensitive features of those gates' groupings: what the mitigations act on
    constraints: list[str]  # the fairness constraints of those gates
    options: dict[str, Choice]  # "none" (the deployed model as it is) and each mitigation fitted
    tradeoff: pd.DataFrame  # one row per option, on the held-out rows
    chosen: str
    notes: list[str] = field(default_factory=list)  # what could not be fitted, and sampling


def grouping_features(failed: list[str], spec: dict[str, Any]) -> list[str]:
    """The sensitive features in the groupings of failed gates (``equalized_odds[sex & race]: ...`` -> sex, race)."""
    named = {f for line in failed for f in line.split("[", 1)[1].split("]", 1)[0].split(" & ")}
    return [f for f in spec["sensitive_features"] if f in named]


def choose_mitigation(
    bundle: dict[str, Any],
    spec: dict[str, Any],
    validation: pd.DataFrame,
    criteria: dict[str, Any],
    settings: Any,
    costs: Costs,
) -> Selection:
    """Decide on the validation split whether to mitigate, how, and which option to release.

    ``settings`` is step 08's :class:`.config.FairnessAssessment` (``mitigation``, seed,
    ``mitigation_max_rows``). The test split is not an argument: the choice cannot see the rows
    the verdict is given on. The deployed model is mitigated for every fairness gate it does not
    pass on the validation split, inconclusive ones included: the release will need them to pass.
    The options are compared on the held-out half, on the groups sized on the whole split.
    """
    from . import mitigation

    fit, choice = mitigation.split_for_choice(validation, spec, settings)
    # whether to mitigate: the deployed model on every validation row (it was fitted on none of them); the
    # groups sized there are the ones every option is then compared on, on the held-out half
    _, whole_decisions = _scored(bundle, validation)
    deployed, whole = gate_table(validation[spec["target"]].to_numpy(), whole_decisions, validation, spec, criteria)
    failed = gates.failures(deployed[deployed["verdict"].isin([gates.FAIL, gates.INCONCLUSIVE])])
    y = choice[spec["target"]].to_numpy()
    x, groups = choice[feature_columns(spec)], mitigation.sensitive_groups(choice, spec)
    scores, decisions = _scored(bundle, choice)
    features = grouping_features(failed, spec)
    constraints = mitigation.failing_constraints(failed)
    options, notes = (
        {"none": Choice()},
        [mitigation.sample_note(len(validation), settings.mitigation_max_rows, "the test split")],
    )
    if failed and settings.mitigation != "none":
        kinds = mitigation.AUTO_KINDS if settings.mitigation == "auto" else (settings.mitigation,)
        notes += [mitigation.NOT_IN_AUTO[kind] + "." for kind in KINDS if kind not in kinds]
        for kind in kinds:
            try:
                options[kind] = mitigation.choose_fit(
                    kind,
                    bundle["model"],
                    spec,
                    fit,
                    choice,
                    features,
                    constraints,
                    criteria,
                    settings,
                    costs,
                    whole.groups,
                )
            except mitigation.MitigationUnavailable as exc:
                notes.append(f"`{kind}` is not available on this data: {exc}.")
    decided = {name: decisions if o.model is None else o.model.decide(x, groups) for name, o in options.items()}
    tables = {name: gate_table(y, d, choice, spec, criteria, whole.groups)[0] for name, d in decided.items()}
    tradeoff = tradeoff_table(options, decided, tables, y, scores, costs)
    notes = [n for n in notes if n]
    chosen = choose(tradeoff, settings.mitigation)
    return Selection(len(fit), len(choice), failed, features, constraints, options, tradeoff, chosen, notes)


def _scored(bundle: dict[str, Any], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from .scoring import score

    result = score(bundle, frame, allow_extra=True, allow_unseen=True)
    return result["score"].to_numpy(), result["decision"].to_numpy()


def largest_gap(table: pd.DataFrame, name: str, bound: str = "value") -> float:
    """The largest ``name`` gap (its ``value``, or a bound: ``high``) over the groupings gated (NaN when none was measured)."""
    rows = table[table["metric"].str.startswith(f"{name}_difference[")]
    return pd.to_numeric(rows[bound], errors="coerce").max()


def tradeoff_row(
    y: np.ndarray, scores: np.ndarray, decisions: np.ndarray, fairness: pd.DataFrame, costs: Costs
) -> dict[str, Any]:
    """One option's decision metrics, whether it passes the fairness gates, and its largest gaps with their upper bounds."""
    from .modeling import evaluate_served

    metrics = evaluate_served(y, scores, decisions, *costs)
    return {
        "accuracy": metrics["accuracy"],
        "expected_cost": metrics["expected_cost"],
        "selection_rate": metrics["selection_rate"],
        "passes_fairness_gates": not gates.failures(fairness),  # a gate not assessed is no reason of its own
        "max_dp_difference": largest_gap(fairness, "demographic_parity"),
        "max_dp_upper": largest_gap(fairness, "demographic_parity", "high"),
        "max_eo_difference": largest_gap(fairness, "equalized_odds"),
        "max_eo_upper": largest_gap(fairness, "equalized_odds", "high"),
    }


def tradeoff_table(
    options: dict[str, Choice],
    decisions: dict[str, np.ndarray],
    fairness: dict[str, pd.DataFrame],
    y: np.ndarray,
    scores: np.ndarray,
    costs: Costs,
) -> pd.DataFrame:
    """One row per option (index ``mitigation``): its constraint, objective, cost, accuracy, gaps and gate result."""
    rows = [
        {"mitigation": name, "constraint": option.constraint, "objective": option.objective}
        | tradeoff_row(y, scores, decisions[name], fairness[name], costs)
        for name, option in options.items()
    ]
    return pd.DataFrame(rows).set_index("mitigation")


def choose(tradeoff: pd.DataFrame, mitigation: str) -> str:
    """The option to release.

    ``auto``: the cheapest option that passes every fairness gate; when none does, the one
    whose largest gap's upper bound is smallest (the gates then say why it is not released). A
    named option is released if it could be fitted, else the deployed model as it is.
    """
    if mitigation != "auto":
        return mitigation if mitigation in tradeoff.index else "none"
    passing = tradeoff[tradeoff["passes_fairness_gates"]]
    if len(passing):
        return str(passing["expected_cost"].idxmin())
    worst = tradeoff[["max_dp_upper", "max_eo_upper"]].max(axis=1).fillna(np.inf)
    return str(worst.idxmin())


def release_bundle(bundle: dict[str, Any], chosen: str, option: Choice, features: list[str]) -> dict[str, Any]:
    """The artifact to serve: the deployed bundle, or the mitigated model with the metadata its scorer needs."""
    from .mitigation import DECISION_RULES
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
            "decision_rule": DECISION_RULES[chosen],
        },
    )


@dataclass
class Verdict:
    """The release judged on the test split by its own scores and decisions."""

    scores: np.ndarray
    decisions: np.ndarray
    gaps: dict[str, Estimate]  # the fairness gates' estimates
    assessment: Assessment  # per-group rates, which groups are gated, the rows the others lack
    metrics: dict[str, float]  # :func:`.modeling.evaluate_served` of the released scores and decisions
    gates: pd.DataFrame  # every gate of the release, with its interval and verdict
    reasons: list[str]  # why it is not released (empty: released)

    @property
    def released(self) -> bool:
        return not self.reasons

    @property
    def evidence(self) -> str:
        """pass, fail, or inconclusive (no gate fails on evidence, but some cannot tell): :func:`.gates.overall`."""
        return gates.overall(self.gates)


def judge(
    candidate: dict[str, Any],
    test: pd.DataFrame,
    spec: dict[str, Any],
    criteria: dict[str, Any],
    charter: dict[str, Any],
    baseline: Scored,
    deployment: dict[str, Any],
    seed: int,
) -> Verdict:
    """Score ``test`` with the artifact to release, as the service would, and judge every gate on that.

    Quality comes from the artifact's own scores and decisions (a reduction scores
    differently from the model it came from), never from the deployed model's metadata,
    against step 06's reference baseline (``baseline``: its scores and decisions on the same
    rows). Step 07's verdict carries step 06's: a model that was not deployed is not released either.
    """
    from .modeling import evaluate_served, quality_estimates

    y = test[spec["target"]].to_numpy()
    scores, decisions = _scored(candidate, test)
    fairness, assessment = gate_table(y, decisions, test, spec, criteria)
    costs = Costs.of(charter)
    metrics = evaluate_served(y, scores, decisions, *costs)
    quality = quality_estimates(y, Scored(scores, decisions), baseline, costs, criteria, charter, seed)
    table = pd.concat(
        [
            fairness,
            gates.evaluate(gates.gates_for(criteria["gates"], "modeling"), quality, criteria["criteria"]["decide_on"]),
        ],
        ignore_index=True,
    )
    reasons = gates.failures(table)
    if not deployment["deployed"]:  # step 07's own reasons: the gates of the table are judged again above
        judged = set(table["gate"])
        own = [r for r in deployment["reasons"] if r.split(":")[0] not in judged]
        reasons += [f"step 07: {r}" for r in own] or ([] if reasons else ["step 07: not deployed"])
    return Verdict(scores, decisions, assessment.estimates, assessment, metrics, table, reasons)


def finalize(candidate: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The artifact with its verdict recorded (``releasable``, ``reasons``, the test split's gaps and their intervals)."""
    meta = {**candidate["metadata"], "releasable": verdict.released, "reasons": verdict.reasons}
    return {**candidate, "metadata": meta | {"fairness": {k: e.as_dict() for k, e in verdict.gaps.items()}}}


def _gap_words(table: pd.DataFrame, name: str) -> str:
    value, high = largest_gap(table, name), largest_gap(table, name, "high")
    return f"{value:.3f} (upper bound {high:.3f})" if pd.notna(value) else "not measured"


def decision_note(
    selection: Selection, before: pd.DataFrame, before_metrics: dict[str, float], verdict: Verdict
) -> str:
    """The release decision in words: the choice (validation) and the verdict (test), from the numbers."""
    chosen = selection.chosen
    if selection.failed:
        text = (
            f"Without mitigation, fairness gates do not pass on the validation split ({'; '.join(selection.failed)}). "
        )
    else:
        text = "Every assessed fairness gate passes on the validation split without mitigation, so none is applied. "
    if chosen != "none":
        option = selection.options[chosen]
        on = ", ".join(f"`{f}`" for f in selection.features)
        how = option.constraint.replace("_", " ") + " constraint on " + on
        text += f"Chosen there: **{chosen}** ({how}{f', objective `{option.objective}`' if option.objective else ''}). "
    after = verdict.gates
    text += (
        f"On the test split, from the deployed model's decisions to the released ones: largest parity gap "
        f"{_gap_words(before, 'demographic_parity')} → **{_gap_words(after, 'demographic_parity')}**, largest "
        f"equalized odds gap {_gap_words(before, 'equalized_odds')} → **{_gap_words(after, 'equalized_odds')}**, "
        f"accuracy {before_metrics['accuracy']:.3f} → **{verdict.metrics['accuracy']:.3f}**, expected cost "
        f"{before_metrics['expected_cost']:.3f} → **{verdict.metrics['expected_cost']:.3f}**. "
    )
    unassessed = verdict.gates[verdict.gates["verdict"] == gates.NOT_ASSESSED]
    if len(unassessed):
        text += (
            "Not assessed, too few rows to compare groups: "
            + "; ".join(f"`{row.gate}` ({row.note})" for row in unassessed.itertuples(index=False))
            + ". "
        )
    if verdict.reasons:
        label = "the evidence is inconclusive" if verdict.evidence == gates.INCONCLUSIVE else "a gate fails"
        return text + f"**Not released** ({label}): " + "; ".join(verdict.reasons) + "."
    return text + "**Released**: `models/release.skops` passes every gate it could assess, on its interval."
