"""Step 10's decisions: when to retrain, the challenger, and whether it replaces the champion. Adapt freely.

The notebook calls, in order: :func:`triggers` (monitoring, schedule, force), :func:`labelled_batches`
and :func:`pool` (the newest labelled windows pooled up to ``min_labelled_rows`` to judge on, the
older ones to learn from, test-split rows never learnt), :func:`blocker` (a reason not to
challenge, or None), :func:`training_data`, :func:`build_challenger` (step 06's training, step
08's mitigation when the champion had one), :func:`compare` (both models on the same pooled rows,
by the same gates, and the challenger's paired differences from the champion, judged by
:func:`promotion_gates`: non-inferiority in quality and cost, and a gain when asked), :func:`run_canary`
(both served side by side) and :func:`decide`. Every gate judges an interval (:func:`.gates.evaluate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import gates
from .intervals import Estimate
from .modeling import Scored

if TYPE_CHECKING:
    from .business import Costs
    from .config import Retraining
    from .modeling import TrainingResult

MIN_LABELS = 50  # labelled rows a production batch needs to count as labelled
CANARY_BATCH_SIZE = 100  # records per request, as step 02's latency gate is defined
CANARY_MIN_AGREEMENT = 0.8  # share of the records on which the challenger must take the champion's decision
CANARY_MAX_RECORDS = 2000  # the newest judged records served side by side (the offline gates judged them all)


def staleness_limit(criteria: dict[str, Any]) -> float:
    """Days after which the model in service is stale (step 02's ``staleness`` gate)."""
    return next(g for g in criteria["gates"] if g["name"] == "staleness")["threshold"]


def triggers(cfg: Retraining, status: dict[str, Any], criteria: dict[str, Any]) -> dict[str, bool]:
    """Which triggers fired: monitoring's recommendation, the schedule (a stale model), or force."""
    age = status.get("model_age_days")
    return {
        "monitoring": bool(cfg.trigger_on_monitoring and status["retrain_recommended"]),
        "schedule": bool(cfg.trigger_on_schedule and age is not None and age > staleness_limit(criteria)),
        "forced": bool(cfg.force),
    }


def labelled_batches(folder: Path, target: str, min_labels: int = MIN_LABELS) -> list[pd.DataFrame]:
    """The monitored batches (in time order) with at least ``min_labels`` labels of both classes, their labelled rows only."""
    batches = [pd.read_parquet(p) for p in sorted(Path(folder).glob("*.parquet"))]
    return [
        b.dropna(subset=[target]).reset_index(drop=True)
        for b in batches
        if target in b.columns and b[target].notna().sum() >= min_labels and b[target].nunique() == 2
    ]


def row_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's ``columns`` (inputs and outcome): how a row is recognised in another table."""
    present = [c for c in columns if c in frame.columns]
    return pd.util.hash_pandas_object(frame[present].astype(str), index=False).to_numpy()


@dataclass
class Pool:
    """The labelled production rows step 10 judges on, and the ones it may learn from."""

    judged: pd.DataFrame  # the newest labelled windows, pooled up to ``min_labelled_rows``: both models are judged here
    windows: int  # how many windows the judged rows come from
    learn: list[pd.DataFrame]  # the older windows, without test-split rows: the challenger may train on them
    test_rows: int  # monitored rows that are test-split rows, kept out of training (judged, if in the pool)
    labelled: int  # labelled rows in all monitored windows


def pool(labelled: list[pd.DataFrame], test: pd.DataFrame, columns: list[str], min_rows: int) -> Pool:
    """Pool the newest labelled windows until ``min_rows`` rows; the older ones may train the challenger.

    Rows of the test split never reach a training set (when step 09 simulated its batches from
    the test split, the windows are test rows): they are recognised by :func:`row_keys` and
    dropped from the windows the challenger learns from.
    """
    taken, rows = 0, 0
    while taken < len(labelled) and rows < min_rows:
        taken += 1
        rows += len(labelled[-taken])
    judged = labelled[len(labelled) - taken :]
    known = set(row_keys(test, columns).tolist())
    learn, test_rows = [], 0
    for window in labelled[: len(labelled) - taken]:
        is_test = np.isin(row_keys(window, columns), list(known))
        test_rows += int(is_test.sum())
        learn.append(window[~is_test])
    for window in judged:
        test_rows += int(np.isin(row_keys(window, columns), list(known)).sum())
    frame = pd.concat(judged, ignore_index=True) if judged else pd.DataFrame()
    return Pool(frame, taken, learn, test_rows, sum(len(b) for b in labelled))


def blocker(fired: dict[str, bool], has_champion: bool, found: Pool | None, min_rows: int) -> str | None:
    """Why no challenger is trained (nothing fired, nothing to challenge, too few outcomes to judge), or None."""
    if not any(fired.values()):
        return "no trigger fired: nothing retrained, the champion is unchanged"
    if not has_champion:
        return "no champion in service: step 08 did not release a model, so there is nothing to challenge"
    if found is None or found.labelled == 0:
        return "no labelled production batch to train and compare on"
    if len(found.judged) < min_rows:
        return (
            f"too few outcomes to judge: {found.labelled:,} labelled production rows, and champion and challenger "
            f"are compared on at least {min_rows:,} (`retraining.min_labelled_rows`): wait for more outcomes (`label`)"
        )
    return None


def training_data(reference: pd.DataFrame, found: Pool) -> pd.DataFrame:
    """The challenger's training rows: the training split plus the older labelled windows (never a judged or test row)."""
    newly_labelled = [b.reindex(columns=reference.columns) for b in found.learn if len(b)]
    return pd.concat([reference, *newly_labelled], ignore_index=True)


def challenger_version(champion_version: str, status_md5: str) -> str:
    """The champion's release with a ``+retrained.<monitoring status hash>`` local part."""
    return f"{champion_version.split('+')[0]}+retrained.{status_md5[:8]}"


@dataclass
class Challenge:
    """A challenger and what it is judged against: the champion, the rows it learnt from, the judged pool."""

    result: TrainingResult
    champion: dict[str, Any]
    challenger: dict[str, Any]
    treatment: str | None  # the champion's mitigation, given to the challenger too
    train: pd.DataFrame
    recent: pd.DataFrame  # the pooled recent labelled rows both models are judged on


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
            notes.append(sample_note(len(validation), cfg.mitigation_max_rows, "the judged rows"))
        model, _, constraint = mitigate_to_pass(
            treatment,
            result.model,
            spec,
            validation,
            meta["mitigation_features"],
            failing_constraints([g["name"] for g in fair_gates]),
            criteria,
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


@dataclass
class Comparison:
    """Champion and challenger on the same judged rows: each one's gates, and the paired comparison."""

    # per model: point metrics (quality, cost, gaps) for the report
    metrics: dict[str, dict[str, float]]
    # per model: every gate's estimate; the challenger's also against the champion
    estimates: dict[str, dict[str, Estimate]]
    scores: dict[str, np.ndarray]
    # per model: its gates (step 02's retraining gates; the challenger's plus the promotion's)
    tables: dict[str, pd.DataFrame]


def compare(
    challenge: Challenge,
    spec: dict[str, Any],
    charter: dict[str, Any],
    criteria: dict[str, Any],
    baseline: Scored,
    cfg: Retraining,
) -> Comparison:
    """Both models scored on the same judged rows and judged by the same gates, one rule (:func:`.gates.evaluate`).

    Each model gets step 02's retraining gates (the leakage alarm; fairness by :func:`.fairness.assess`).
    The challenger must also match the champion on the promotion gates of :func:`promotion_gates`,
    on its paired differences from the champion (DeLong or a paired bootstrap for the primary
    metric, the ratio of mean costs for the cost). The champion is also judged, as step 09 judges
    it, on quality and cost against step 06's reference baseline (``baseline``, scored on the same
    rows): its failures on evidence are reported whatever the challenger does. The estimates of
    both against the baseline are recorded either way.
    """
    from .business import Costs
    from .fairness import gate_table
    from .modeling import evaluate_served, paired_estimates, quality_estimates
    from .scoring import score

    recent, costs = challenge.recent, Costs.of(charter)
    c = criteria["criteria"]
    y = recent[spec["target"]].to_numpy().astype(int)
    own_gates = {
        # the challenger: step 02's retraining gates (leakage; fairness below), then the promotion gates
        "challenger": [g for g in gates.gates_for(criteria["gates"], "retraining") if not g["metric"].endswith("]")],
        # the champion: also quality and cost against the reference baseline, as step 09 alarms on them
        "champion": [
            g
            for g in gates.gates_for(criteria["gates"], "retraining") + gates.gates_for(criteria["gates"], "monitoring")
            if not g["metric"].endswith("]") and g["name"] not in ("feature_drift",)
        ],
    }
    metrics, estimates, scores, tables, served = {}, {}, {}, {}, {}
    for name, model in (("champion", challenge.champion), ("challenger", challenge.challenger)):
        scored = score(model, recent, allow_extra=True, allow_unseen=True)
        served[name] = Scored(scored["score"].to_numpy(), scored["decision"].to_numpy())
        scores[name] = served[name].scores
        fairness, assessment = gate_table(y, served[name].decisions, recent, spec, criteria)
        estimates[name] = quality_estimates(y, served[name], baseline, costs, criteria, charter, cfg.seed)
        estimates[name].update(assessment.estimates)
        listed = [g for g in own_gates[name] if g["name"] != "staleness"]
        quality = gates.evaluate(list({g["name"]: g for g in listed}.values()), estimates[name], c["decide_on"])
        tables[name] = pd.concat([quality, fairness], ignore_index=True)
        metrics[name] = evaluate_served(y, served[name].scores, served[name].decisions, *costs) | {
            k: e.value for k, e in estimates[name].items()
        }
    paired = paired_estimates(
        y,
        served["challenger"],
        served["champion"],
        "champion",
        c["primary_metric"],
        costs,
        float(c["confidence"]),
        cfg.seed,
    )
    estimates["challenger"].update(paired)
    tables["challenger"] = pd.concat(
        [tables["challenger"], promotion_gates(paired, cfg, c["decide_on"])], ignore_index=True
    )
    return Comparison(metrics, estimates, scores, tables)


def promotion_gates(paired: dict[str, Estimate], cfg: Retraining, decide_on: str = "interval") -> pd.DataFrame:
    """The challenger against the champion, on their paired differences: non-inferior in quality and cost,
    and better by ``min_gain`` when the team asks for a gain."""
    rules = [
        gates.gate(
            "no_regression",
            "quality_vs_champion",
            ">=",
            -cfg.max_regression,
            ["retraining"],
            "the primary metric may trail the champion's by at most this",
        ),
        gates.gate(
            "no_cost_increase",
            "cost_reduction_vs_champion",
            ">=",
            -cfg.max_cost_increase,
            ["retraining"],
            "the expected cost may exceed the champion's by at most this share",
        ),
    ]
    if cfg.min_gain > 0:
        rules.append(
            gates.gate("gain", "quality_vs_champion", ">=", cfg.min_gain, ["retraining"], "the gain the team asks for")
        )
    return gates.evaluate(rules, paired, decide_on)


def power_note(paired: dict[str, Estimate], rows: int, cfg: Retraining, confidence: float, power: float = 0.8) -> str:
    """What the judged pool can tell, for each non-inferiority gate: the paired interval's half-width, the
    chance that a challenger exactly as good as the champion passes (``Phi(margin / se - z)``, normal
    approximation from the interval), and the smallest margin that ``power`` would need at this size."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    parts = []
    for metric, margin, parameter in (
        ("quality_vs_champion", cfg.max_regression, "max_regression"),
        ("cost_reduction_vs_champion", cfg.max_cost_increase, "max_cost_increase"),
    ):
        e = paired.get(metric)
        if e is None or not (np.isfinite(e.low) and np.isfinite(e.high)):
            parts.append(f"`{metric}` has no interval (the judged rows hold one class only)")
            continue
        se = (e.high - e.low) / (2 * z)
        chance = float(stats.norm.cdf(margin / se - z)) if se > 0 else 1.0
        needed = (z + stats.norm.ppf(power)) * se
        parts.append(
            f"`{metric}` is known to ±{(e.high - e.low) / 2:.4f}: an equally good challenger passes "
            f"`{parameter}` = {margin:g} with probability {chance:.0%} (power {power:.0%} would need a margin of "
            f"{needed:.3g})"
        )
    return (
        f"On {rows:,} judged rows ({confidence:.0%} paired intervals): "
        + "; ".join(parts)
        + ". Below that power a promotion often waits as *inconclusive*: pool more outcomes "
        "(`retraining.min_labelled_rows`) or widen the margin the team accepts."
    )


def run_canary(
    champion_path: Path,
    challenger_path: Path,
    challenge: Challenge,
    offline_scores: np.ndarray,
    criteria: dict[str, Any],
) -> dict[str, Any]:
    """Serve champion and challenger side by side on the newest judged records (:func:`.deployment.canary`).

    Requests of :data:`CANARY_BATCH_SIZE` records, at most :data:`CANARY_MAX_RECORDS` of them (the
    offline gates judged every row; the canary checks serving); the challenger must agree with the
    champion's decisions on :data:`CANARY_MIN_AGREEMENT` of them and meet step 02's latency gate.
    """
    from .deployment import canary

    columns = [c for c in challenge.challenger["metadata"]["schema"] if c in challenge.recent.columns]
    served = challenge.recent[columns].tail(CANARY_MAX_RECORDS)
    return canary(
        champion_path,
        challenger_path,
        json.loads(served.to_json(orient="records")),
        np.asarray(offline_scores)[len(challenge.recent) - len(served) :],
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
        "low": None,
        "high": None,
        "verdict": gates.PASS if canary["passed"] else gates.FAIL,
        "passed": canary["passed"],
        "note": canary["summary"],
    }
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def decide(challenge: Challenge, comparison: Comparison, canary: dict[str, Any] | None) -> dict[str, Any]:
    """The decision record's challenge part: the challenger passes when every gate, the canary's included, passes.

    A challenger that passed offline but ran no canary does not pass: the canary guards every
    promotion. ``evidence`` says whether a refusal rests on a failed gate or on inconclusive evidence.
    The champion's own gate table says whether the model in service still passes on recent data.
    """
    table = with_canary(comparison.tables["challenger"], canary)
    reasons = gates.failures(table) + (canary["failed_checks"] if canary else [])
    if canary is None and not reasons:
        reasons = ["canary: not run, and every promotion needs one"]
    champion = comparison.tables["champion"]
    return {
        "champion": comparison.metrics["champion"],
        "challenger": comparison.metrics["challenger"],
        "estimates": {who: {k: e.as_dict() for k, e in est.items()} for who, est in comparison.estimates.items()},
        "challenger_model": challenge.result.name,
        "challenger_params": challenge.result.params,
        "challenger_version": challenge.challenger["metadata"]["version"],
        "challenger_mitigation": challenge.treatment,
        "gates": table.to_dict(orient="records"),
        "evidence": gates.overall(table),
        "champion_gates": champion.to_dict(orient="records"),
        "champion_failing": gates.breaches(champion),
        # the canary's latencies differ from run to run: the notebook writes them to reports/metrics
        "canary": None if canary is None else {k: v for k, v in canary.items() if k != "latency"},
        "judged_rows": len(challenge.recent),
        "training_rows": len(challenge.train),
        "passed_gates": not reasons,
        "reasons": reasons
        or ["the challenger passes every gate, is not worse than the champion, and passed its canary"],
    }


def install_reason(fired: dict[str, bool]) -> str:
    """The registry's reason for a promotion: which triggers fired."""
    return f"promoted by step 10 (trigger: {', '.join(name for name, on in fired.items() if on)})"
