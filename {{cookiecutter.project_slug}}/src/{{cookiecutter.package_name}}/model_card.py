"""A model card in the sections of Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019). Adapt freely."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .notebook import markdown_table


def model_card_markdown(card: dict[str, Any]) -> str:
    """Render the card; every number comes from the computed results passed in ``card``."""
    m = card["metrics"]
    metrics = pd.DataFrame(
        [(k, v) for k, v in m.items() if isinstance(v, float)], columns=["metric (test split)", "value"]
    )
    shown = ["gate", "rule", "value", "low", "high", "verdict"]
    gates = pd.DataFrame(card["gates"]).reindex(columns=shown) if card["gates"] else pd.DataFrame()
    groups = card.get("group_metrics")
    group_table = markdown_table(groups) if groups is not None and len(groups) else "_not computed_"
    return f"""# Model card: {card["model_name"]} {card["version"]}

Sections follow Mitchell et al., *Model Cards for Model Reporting* (FAT* 2019).

## Model details
- **Developed by:** {card["owner"]}
- **Model:** scikit-learn pipeline `{card["model_name"]}` with parameters `{card["params"]}`; decision threshold **{card["threshold"]:.3f}** (chosen to minimise the business cost).
- **Artifact:** `{card["artifact"]}` (skops), training data MD5 `{card["training_data_md5"]}`.
- **Status:** {"releasable" if card["releasable"] else "NOT releasable: " + "; ".join(card["reasons"])}

## Intended use
- **Primary use:** {card["decision"]}, acted on by {card["decision_maker"]}.
- **Out of scope:** decisions about individuals outside this purpose; use without the fairness gate of step 08.

## Factors
- **Groups assessed:** {", ".join(f"`{f}`" for f in card["sensitive_features"])} (not used as model inputs), and their intersection in step 08.

## Metrics
- Ranking: ROC AUC and average precision; decisions: accuracy, F1, precision, recall at the threshold;
  calibration: Brier score; business: expected cost per decision (FP cost {card["cost_false_positive"]:g}, FN cost {card["cost_false_negative"]:g}).
- Every gate judges its value's 95 % interval: it passes when the whole interval is on the right side of its threshold.
- {calibration_line(card.get("calibration"))}

## Evaluation data
- Test split of `data/processed/` ({card["test_rows"]:,} rows), held out from training and model selection.

## Training data
- Training split ({card["train_rows"]:,} rows) of the data selected in step 03; remediation from step 04: `{card["remediation"]}`.

## Quantitative analyses
{markdown_table(metrics, floatfmt=".4f")}

### Per-group results (test split)
{group_table}

### Gates
{markdown_table(gates) if len(gates) else "_none_"}

## Ethical considerations
- Historical outcomes may carry past discrimination; step 08 measures demographic parity and equalized odds and mitigates if a gate fails.
- Proxies of the sensitive features remain in the inputs (see step 04's proxy scan).

{prediction_log_section(serving_settings(card), card["sensitive_features"])}
## Caveats and recommendations
- Monitor drift (step 09) and retrain through the gated process (step 10); do not use the scores outside the population of the training data.
"""


def calibration_line(rows: list[dict[str, Any]] | None) -> str:
    """What the score means, from step 06's calibration table of the model as trained (``calibration.json``)."""
    if not rows:
        return "**The score** ranks records for the decision; its calibration was not measured."
    table = pd.DataFrame(rows)
    groups = table[table["grouping"] != "all"]
    off = groups[groups["miscalibrated"]]
    if off.empty:
        return (
            f"**The score** is calibrated on the test split: in none of its {len(groups)} groups does the mean score "
            "differ from the observed rate on evidence, so it can be read as a probability."
        )
    worst = off.loc[off["gap"].abs().idxmax()]
    return (
        f"**The score** ranks records for the decision; it is not each group's probability: in {len(off)} of "
        f"{len(groups)} groups of the test split the mean score differs from the observed rate on evidence (largest: "
        f"`{worst['grouping']}` = `{worst['group']}`, {worst['predicted']:.3f} against {worst['observed']:.3f})."
    )


def serving_settings(card: dict[str, Any]) -> Any:
    """The ``serving:`` settings the card reports: ``card["serving"]``, else the enclosing project's params.yaml."""
    from .config import Serving
    from .project import find_project_root, load_params

    if "serving" in card:
        return Serving.from_params({"serving": card["serving"]})
    try:
        return Serving.from_params(load_params(find_project_root()))
    except FileNotFoundError:
        return Serving()


def prediction_log_section(serving: Any, sensitive_features: list[str]) -> str:
    """What the prediction log keeps of each decision, and what its privacy setting keeps out of it."""
    from .prediction_log import KEY_ENV, URL_ENV

    hashed, dropped = list(serving.log_hash_columns), list(serving.log_drop_columns)
    kept = [f for f in sensitive_features if f not in hashed + dropped]
    lines = [
        "## Prediction log",
        "- `serve` and `predict` log every decision (request id, time, model version, the validated record, score, "
        "decision, the contract's id columns) in the database of `serving.prediction_log` (or the environment variable "
        f"`{URL_ENV}`); `label` attaches outcomes. Refused requests are not logged.",
    ]
    privacy = [f"`{c}` hashed (HMAC-SHA256 when `{KEY_ENV}` is set)" for c in hashed]
    privacy += [f"`{c}` dropped" for c in dropped]
    lines.append(
        "- **Kept out of the log** (`serving.log_hash_columns`, `serving.log_drop_columns`): "
        + ("; ".join(privacy) if privacy else "nothing")
        + "."
    )
    if kept:
        lines.append(
            f"- **Sensitive features logged as given:** {', '.join(f'`{c}`' for c in kept)}, so that the fairness of "
            "the decisions served can be monitored by group; access to the log is to be restricted like the raw data."
        )
    return "\n".join(lines) + "\n"


def release_section(decision: dict[str, Any]) -> str:
    """What step 08 released, for the model card of the model in service: mitigation, decision rule, verdict."""
    released = "yes" if decision["released"] else "no: " + "; ".join(decision["reasons"])
    lines = ["## Release (step 08)", "", f"- **Released:** {released}"]
    if decision.get("evidence"):
        rule = (
            "their point estimates (`success_criteria.decide_on: point`)"
            if decision.get("decided_on") == "point"
            else f"their {decision.get('confidence', 0.95):.0%} intervals"
        )
        lines.append(f"- **Evidence:** {decision['evidence']}, every gate judged on {rule} on the test split.")
    reported = (decision.get("groups") or {}).get("equalized_odds", {}).get("reported") or {}
    if reported:
        lines.append(
            "- **Groups too small to gate** (reported, with the rows each lacks): "
            + ", ".join(f"`{g}` (~{n:,})" for g, n in list(reported.items())[:8] if n)
            + "."
        )
    if decision.get("mitigation") in (None, "none"):
        lines.append("- **Mitigation:** none; decisions are the deployed model's, at its threshold.")
    else:
        chosen = decision.get("chosen_on") or {}
        lines.append(
            f"- **Mitigation:** `{decision['mitigation']}` under `{decision.get('constraint')}`"
            + (f", objective `{decision['objective']}`" if decision.get("objective") else "")
            + f"; chosen on {chosen.get('held_out_rows', '?'):,} validation rows held out from its fit"
            f" ({chosen.get('fit_rows', '?'):,} rows), judged once on the test split."
        )
    if decision.get("decision_rule"):
        lines.append(f"- **How a decision is made:** {decision['decision_rule']}")
    lines.append(randomised_line(decision.get("randomised_decisions", 0)))
    if decision["released"]:
        lines.append(
            "- **Into service:** a release of step 08 is installed in the registry as it is (a project's first model "
            "goes into service without a person's approval); a challenger that step 10 retrains replaces it only "
            "once a person approves it, when `retraining.require_approval` is on (`{{ cookiecutter.package_name }} approve`)."
        )
    return "\n".join(lines) + "\n"


def randomised_line(randomised: int) -> str:
    """How many of the test split's decisions were drawn at random (``randomised_decisions``; none unless stated)."""
    if not randomised:
        return (
            "- **Randomised decisions:** 0. Every decision is the record's score against a threshold (its group's, "
            "when the release decides by group): the same record always gets the same decision, and a change to "
            "the record changes it only by moving the score across that threshold."
        )
    return f"- **Randomised decisions:** {randomised:,} of the test split's decisions are drawn at random."
