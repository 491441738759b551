"""Step 10's decisions: when to retrain, the challenger, and whether it replaces the champion. Adapt freely.

The notebook calls, in order: :func:`triggers` (monitoring, schedule, force), :func:`blocker`
(a reason not to challenge, or None), :func:`labelled_batches` and :func:`training_data`,
:func:`build_challenger` (step 06's training, step 08's mitigation when the champion had one),
:func:`compare` (both models on the same recent batch), :func:`promotion_gates` (step 02's
gates plus ``no_regression``), :func:`run_canary` (both served side by side) and :func:`decide`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import gates

if TYPE_CHECKING:
    from .business import Costs
    from .config import Retraining
    from .modeling import TrainingResult

MIN_LABELS = 50  # labelled rows a production batch needs to train or judge on
CANARY_BATCH_SIZE = 100  # records per request, as step 02's latency gate is defined
CANARY_MIN_AGREEMENT = 0.8  # share of the records on which the challenger must take the champion's decision


def staleness_limit(criteria: dict[str, Any]) -> float:
    """Days after which the model in service is stale (step 02's ``staleness`` gate)."""
    return next(g for g in criteria["gates"] if g["name"] == "staleness")["threshold"]


def triggers(cfg: Retraining, status: dict[str, Any], criteria: dict[str, Any]) -> dict[str, bool]:
    """Which triggers fired: monitoring's recommendation, the schedule (a stale model), or force."""
    return {
        "monitoring": bool(cfg.trigger_on_monitoring and status["retrain_recommended"]),
        "schedule": bool(cfg.trigger_on_schedule and status["model_age_days"] > staleness_limit(criteria)),
        "forced": bool(cfg.force),
    }


def labelled_batches(folder: Path, target: str, min_labels: int = MIN_LABELS) -> list[pd.DataFrame]:
    """The monitored batches (in time order) with at least ``min_labels`` labels of both classes."""
    batches = [pd.read_parquet(p) for p in sorted(Path(folder).glob("*.parquet"))]
    return [
        b for b in batches if target in b.columns and b[target].notna().sum() >= min_labels and b[target].nunique() == 2
    ]


def blocker(fired: dict[str, bool], has_champion: bool, labelled: list[pd.DataFrame]) -> str | None:
    """Why no challenger is trained (nothing fired, nothing to challenge, nothing to learn from), or None."""
    if not any(fired.values()):
        return "no trigger fired: nothing retrained, the champion is unchanged"
    if not has_champion:
        return "no champion in service: step 08 did not release a model, so there is nothing to challenge"
    if not labelled:
        return "no labelled production batch to train and compare on"
    return None


def training_data(
    reference: pd.DataFrame, labelled: list[pd.DataFrame], target: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The challenger's training rows (training split plus every labelled batch but the last) and the recent batch.

    The most recent labelled batch is held out: both models are judged on it, and neither trained on it.
    """
    recent = labelled[-1].dropna(subset=[target])
    newly_labelled = [b.dropna(subset=[target]).reindex(columns=reference.columns) for b in labelled[:-1]]
    return pd.concat([reference, *newly_labelled], ignore_index=True), recent


def challenger_version(champion_version: str, status_md5: str) -> str:
    """The champion's release with a ``+retrained.<monitoring status hash>`` local part."""
    return f"{champion_version.split('+')[0]}+retrained.{status_md5[:8]}"


@dataclass
class Challenge:
    """A challenger and what it is judged against: the champion, the rows it learnt from, the recent batch."""

    result: TrainingResult
    champion: dict[str, Any]
    challenger: dict[str, Any]
    treatment: str | None  # the champion's mitigation, given to the challenger too
    train: pd.DataFrame
    recent: pd.DataFrame


def build_challenger(
    result: TrainingResult,
    champion: dict[str, Any],
    data: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    spec: dict[str, Any],
    criteria: dict[str, Any],
    cfg: Retraining,
    costs: Costs,
    version: str,
) -> tuple[Challenge, list[str]]:
    """The challenger bundle from step 06's training ``result`` (``data``: train, validation, recent).

    When the champion was mitigated in step 08, the challenger gets the same treatment by the
    same procedure (one fit per constraint with a gate, kept if it passes on validation).
    Returns the challenge and the sentences the notebook shows.
    """
    from .mitigation import failing_constraints, mitigate_to_pass, sample_note
    from .scoring import make_bundle

    train, validation, recent = data
    meta = champion["metadata"]
    treatment = meta.get("mitigation")
    model, constraint, notes = result.model, meta.get("mitigation_constraint"), []
    if treatment:
        fair_gates = gates.gates_for(criteria["gates"], "fairness_assessment")
        if cfg.mitigation_max_rows is not None:
            notes.append(sample_note(len(validation), cfg.mitigation_max_rows, "the recent batch"))
        model, _, constraint = mitigate_to_pass(
            treatment,
            result.model,
            spec,
            validation,
            meta["mitigation_features"],
            failing_constraints([g["name"] for g in fair_gates]),
            fair_gates,
            cfg,
            costs=costs,
        )
    challenger = make_bundle(
        model,
        result.threshold,
        {
            **meta,
            "model_name": result.name,
            "params": result.params,
            "version": version,
            "train_rows": len(train),
            "mitigation_constraint": constraint,
        },
    )
    return Challenge(result, champion, challenger, treatment, train, recent), [n for n in notes if n]


def compare(
    challenge: Challenge, spec: dict[str, Any], charter: dict[str, Any], cfg: Retraining
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Both models on the same recent batch: quality, cost against the baseline, fairness gaps; and their scores."""
    from .business import Costs, cost_reduction
    from .fairness import gap_metrics
    from .modeling import evaluate_served
    from .scoring import score

    recent = challenge.recent
    y = recent[spec["target"]].to_numpy().astype(int)
    compared, scores = {}, {}
    for name, model in (("champion", challenge.champion), ("challenger", challenge.challenger)):
        scored = score(model, recent, allow_extra=True, allow_unseen=True)
        decided = scored["decision"].to_numpy()
        scores[name] = scored["score"].to_numpy()
        metrics = evaluate_served(y, scores[name], decided, *Costs.of(charter))
        metrics["cost_reduction_vs_baseline"] = cost_reduction(
            metrics["expected_cost"], charter["baseline_expected_cost"]
        )
        metrics.update(gap_metrics(y, decided, recent, spec, cfg.min_group_size))
        compared[name] = metrics
    return compared, scores


def promotion_gates(compared: dict[str, dict[str, float]], criteria: dict[str, Any], cfg: Retraining) -> pd.DataFrame:
    """The challenger against step 02's retraining gates (staleness aside) and the ``no_regression`` gate."""
    challenger = compared["challenger"]
    observed = {f"test_{k}": v for k, v in challenger.items()} | challenger
    offline = gates.evaluate(
        [g for g in gates.gates_for(criteria["gates"], "retraining") if g["name"] != "staleness"], observed
    )
    regression = compared["champion"]["roc_auc"] - challenger["roc_auc"]
    row = {
        "gate": "no_regression",
        "metric": "roc_auc loss vs champion",
        "rule": f"<= {cfg.max_regression:g}",
        "value": regression,
        "passed": bool(regression <= cfg.max_regression),
        "note": "",
    }
    return pd.concat([offline, pd.DataFrame([row])], ignore_index=True)


def run_canary(
    champion_path: Path,
    challenger_path: Path,
    challenge: Challenge,
    offline_scores: np.ndarray,
    criteria: dict[str, Any],
) -> dict[str, Any]:
    """Serve champion and challenger side by side on the recent batch's records (:func:`.deployment.canary`).

    Requests of :data:`CANARY_BATCH_SIZE` records; the challenger must agree with the champion's
    decisions on :data:`CANARY_MIN_AGREEMENT` of them and meet step 02's latency gate.
    """
    from .deployment import canary

    columns = [c for c in challenge.challenger["metadata"]["schema"] if c in challenge.recent.columns]
    return canary(
        champion_path,
        challenger_path,
        json.loads(challenge.recent[columns].to_json(orient="records")),
        offline_scores,
        batch_size=CANARY_BATCH_SIZE,
        max_latency_ms=criteria["criteria"]["max_batch_latency_ms"],
        min_agreement=CANARY_MIN_AGREEMENT,
    )


def with_canary(table: pd.DataFrame, canary: dict[str, Any] | None) -> pd.DataFrame:
    """The gate table with the canary's row (unchanged when no canary ran)."""
    if canary is None:
        return table
    row = {
        "gate": "canary",
        "metric": "failed canary checks",
        "rule": "== 0",
        "value": len(canary["failed_checks"]),
        "passed": canary["passed"],
        "note": canary["summary"],
    }
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def decide(
    challenge: Challenge, compared: dict[str, dict[str, float]], table: pd.DataFrame, canary: dict[str, Any] | None
) -> dict[str, Any]:
    """The decision record's challenge part: promoted only when every gate, the canary's included, passed.

    A challenger that passed offline but ran no canary is not promoted: the canary guards every promotion.
    """
    reasons = gates.failures(table) + (canary["failed_checks"] if canary else [])
    if canary is None and not reasons:
        reasons = ["canary: not run, and every promotion needs one"]
    return {
        "champion": compared["champion"],
        "challenger": compared["challenger"],
        "challenger_model": challenge.result.name,
        "challenger_params": challenge.result.params,
        "challenger_version": challenge.challenger["metadata"]["version"],
        "challenger_mitigation": challenge.treatment,
        "gates": table.to_dict(orient="records"),
        "canary": canary,
        "recent_batch_rows": len(challenge.recent),
        "training_rows": len(challenge.train),
        "promoted": not reasons,
        "reasons": reasons
        or ["the challenger passes every gate, does not regress against the champion, and passed its canary"],
    }


def install_reason(fired: dict[str, bool]) -> str:
    """The registry's reason for a promotion: which triggers fired."""
    return f"promoted by step 10 (trigger: {', '.join(name for name, on in fired.items() if on)})"
