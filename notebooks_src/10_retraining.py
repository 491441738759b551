# %% [markdown]
# # 10 · Retraining
#
# **What this step decides:** whether to retrain, and whether the retrained model (the
# *challenger*) replaces the model in service (the *champion*). Retraining is triggered by
# monitoring, by a schedule (the model is older than the staleness gate) or by force. The
# challenger is trained with the same code as step 06 (`modeling.train_and_select`) on the
# training data plus the newly labelled production batches, and both models are compared on
# the same recent held-out batch. The challenger is promoted only if it passes every gate of
# step 02 that retraining enforces, and loses no more than `max_regression` ROC AUC against
# the champion: a *blessing*, in the spirit of TFX. When nothing triggers, nothing changes.
#
# **Inputs:** `reports/09_monitoring/monitoring_status.json`, `data/monitored/`, `data/processed/`,
# `models/release.skops`, the registry; `modeling.search_space` and the `retraining` section.
# **Outputs:** `reports/10_retraining/retraining_decision.json` (triggers, both models' metrics,
# each gate, promoted or not and why); `models/registry/` (champion, history, log). Roll back
# with `{{ cookiecutter.package_name }} rollback`.

# %% tags=["parameters"]
search_space = {
    "logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0]},
    "hist_gradient_boosting": {
        "learning_rate": [0.05, 0.1, 0.2],
        "max_leaf_nodes": [15, 31, 63],
        "min_samples_leaf": [20, 50],
    },
}
cv_folds = 3
search_iterations = 4
search_max_rows = 100000
mitigation_max_rows = 20000
trigger_on_monitoring = True
trigger_on_schedule = True
force = False
max_regression = 0.01
min_group_size = 30
challenger_models = ["logistic_regression", "hist_gradient_boosting"]
challenger_overrides = {}
seed = 42

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import artifacts, business, config, deployment, fairness, gates, modeling, scoring
from {{ cookiecutter.package_name }} import mitigation as mitigate
from {{ cookiecutter.package_name }}.notebook import show, start_step
from {{ cookiecutter.package_name }}.registry import Registry

cfg = config.Retraining.from_cell(globals())
step = start_step("retraining")
spec = step.read_report("data_selection", "dataset_spec.json")
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
plan = step.read_report("data_bias_plan", "bias_plan.json")
status = step.read_report("monitoring", "monitoring_status.json")
registry = Registry(step.root)
registry.ensure()
release = scoring.load_bundle(step.path("models/release.skops"), allow_unreleased=True)
synced = (
    registry.sync_release(step.path("models/release.skops"), release["metadata"]["version"])
    if release["metadata"]["releasable"]
    else None
)
target = spec["target"]
cost_fp, cost_fn = charter["cost_false_positive"], charter["cost_false_negative"]

# %% [markdown]
# ## Triggers

# %%
staleness = next(g for g in criteria["gates"] if g["name"] == "staleness")
triggers = {
    "monitoring": bool(trigger_on_monitoring and status["retrain_recommended"]),
    "schedule": bool(trigger_on_schedule and status["model_age_days"] > staleness["threshold"]),
    "forced": bool(force),
}
triggered = any(triggers.values())
has_champion = registry.champion.is_file()
show(
    (f"Registry: {synced}; champion is release `{release['metadata']['version']}`.\n\n" if synced else "")
    + "| trigger | enabled | fired |\n|---|---|---|\n"
    + f"| monitoring recommends retraining ({len(status['reasons'])} reasons) | {trigger_on_monitoring} | {triggers['monitoring']} |\n"
    + f"| model age {status['model_age_days']} days > {staleness['threshold']:g} | {trigger_on_schedule} | {triggers['schedule']} |\n"
    + f"| forced | {force} | {triggers['forced']} |"
)

# %% [markdown]
# ## Challenger against champion on the same recent data

# %%
decision = {"triggered": triggered, "triggers": triggers, "monitoring_reasons": status["reasons"], "promoted": False}
if triggered and not has_champion:
    decision["reasons"] = ["no champion in service: step 08 did not release a model, so there is nothing to challenge"]
elif triggered:
    monitored = sorted(step.path("data/monitored").glob("*.parquet"))
    labelled = [pd.read_parquet(p) for p in monitored]
    labelled = [
        b for b in labelled if target in b.columns and b[target].notna().sum() >= 50 and b[target].nunique() == 2
    ]
    if not labelled:
        decision["reasons"] = ["no labelled production batch to train and compare on"]
    else:
        recent = labelled[-1].dropna(subset=[target])
        reference = pd.read_parquet(step.path("data/processed/train.parquet"))
        newly_labelled = [b.dropna(subset=[target]).reindex(columns=reference.columns) for b in labelled[:-1]]
        train = pd.concat([reference, *newly_labelled], ignore_index=True)
        validation = pd.read_parquet(step.path("data/processed/validation.parquet"))
        result = modeling.train_and_select(
            train, validation, spec, plan, business.Costs.of(charter), cfg.challenger_search, include=cfg.challenger_models
        )
        show(modeling.search_sample_note(result))
        champion = scoring.load_bundle(registry.champion)
        treatment = champion["metadata"].get("mitigation")
        challenger_model = result.model
        challenger_constraint = champion["metadata"].get("mitigation_constraint")
        if treatment:  # the champion was mitigated in step 08: the challenger gets the same treatment
            # the same procedure as step 08: one fit per constraint with a gate, kept if it passes on validation
            fair_gates = gates.gates_for(criteria["gates"], "fairness_assessment")
            sampled = mitigate.sample_note(len(validation), mitigation_max_rows, "the recent batch")
            if sampled:
                show(sampled)
            challenger_model, _, challenger_constraint = mitigate.mitigate_to_pass(
                treatment,
                result.model,
                spec,
                validation,
                champion["metadata"]["mitigation_features"],
                mitigate.failing_constraints([g["name"] for g in fair_gates]),
                fair_gates,
                cfg,
                costs=business.Costs.of(charter),
            )
        challenger = scoring.make_bundle(
            challenger_model,
            result.threshold,
            {
                **champion["metadata"],
                "model_name": result.name,
                "params": result.params,
                "version": f"{champion['metadata']['version'].split('+')[0]}+retrained.{scoring.file_md5(step.path('reports/09_monitoring/monitoring_status.json'))[:8]}",
                "train_rows": len(train),
                "mitigation_constraint": challenger_constraint,
            },
        )
        y_recent = recent[target].to_numpy().astype(int)
        compared, offline_scores = {}, {}
        for name, model in (("champion", champion), ("challenger", challenger)):
            scored = scoring.score(model, recent, allow_extra=True, allow_unseen=True)
            decided = scored["decision"].to_numpy()
            offline_scores[name] = scored["score"].to_numpy()
            metrics = modeling.evaluate_served(y_recent, scored["score"].to_numpy(), decided, cost_fp, cost_fn)
            metrics["cost_reduction_vs_baseline"] = (
                charter["baseline_expected_cost"] - metrics["expected_cost"]
            ) / charter["baseline_expected_cost"]
            metrics.update(fairness.gap_metrics(y_recent, decided, recent, spec, min_group_size))
            compared[name] = metrics
        comparison = pd.DataFrame(compared)
        display(comparison.round(4))
        observed = {f"test_{k}": v for k, v in compared["challenger"].items()} | compared["challenger"]
        blessing = gates.evaluate(
            [g for g in gates.gates_for(criteria["gates"], "retraining") if g["name"] != "staleness"], observed
        )
        regression = compared["champion"]["roc_auc"] - compared["challenger"]["roc_auc"]
        blessing = pd.concat(
            [
                blessing,
                pd.DataFrame(
                    [
                        {
                            "gate": "no_regression",
                            "metric": "roc_auc loss vs champion",
                            "rule": f"<= {max_regression:g}",
                            "value": regression,
                            "passed": bool(regression <= max_regression),
                            "note": "",
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
        reasons = gates.failures(blessing)
        canary = None
        with tempfile.TemporaryDirectory() as tmp:
            challenger_path = artifacts.save(challenger, Path(tmp) / "challenger.skops")
            if not reasons:
                # Canary: a challenger that passes offline is served beside the champion on the same
                # records (requests of 100, as the latency gate is defined) before it may replace it.
                columns = [c for c in challenger["metadata"]["schema"] if c in recent.columns]
                canary = deployment.canary(
                    registry.champion,
                    challenger_path,
                    json.loads(recent[columns].to_json(orient="records")),
                    offline_scores["challenger"],
                    batch_size=100,
                    max_latency_ms=criteria["criteria"]["max_batch_latency_ms"],
                )
                canary_row = {
                    "gate": "canary",
                    "metric": "failed canary checks",
                    "rule": "== 0",
                    "value": len(canary["failed_checks"]),
                    "passed": canary["passed"],
                    "note": canary["summary"],
                }
                blessing = pd.concat([blessing, pd.DataFrame([canary_row])], ignore_index=True)
                reasons = gates.failures(blessing) + canary["failed_checks"]
            display(blessing)
            decision.update(
                champion=compared["champion"],
                challenger=compared["challenger"],
                challenger_model=result.name,
                challenger_params=result.params,
                challenger_version=challenger["metadata"]["version"],
                challenger_mitigation=treatment,
                gates=blessing.to_dict(orient="records"),
                canary=canary,
                recent_batch_rows=len(recent),
                training_rows=len(train),
                promoted=not reasons,
                reasons=reasons
                or ["the challenger passes every gate, does not regress against the champion, and passed its canary"],
            )
            if decision["promoted"]:
                fired = ", ".join(name for name, on in triggers.items() if on)
                registry.install(
                    challenger_path,
                    challenger["metadata"]["version"],
                    f"promoted by step 10 (trigger: {fired})",
                    compared["challenger"],
                )
else:
    decision["reasons"] = ["no trigger fired: nothing retrained, the champion is unchanged"]

# %% [markdown]
# ## Champion and challenger against the gates

# %%
if "gates" in decision:
    rows = [g for g in decision["gates"] if g["metric"].removeprefix("test_") in decision["champion"]]
    positions = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.6))
    for offset, who in ((-0.2, "champion"), (0.2, "challenger")):
        values = [decision[who][g["metric"].removeprefix("test_")] for g in rows]
        ax.barh(positions + offset, values, height=0.4, label=who)
    limits = [float(g["rule"].split()[-1]) for g in rows]
    ax.scatter(limits, positions, marker="|", s=500, color="black", zorder=3, label="gate threshold")
    ax.set(
        yticks=positions,
        yticklabels=[g["gate"] for g in rows],
        xlabel="value on the most recent labelled batch",
        title="Champion and challenger against step 02's gates",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    step.save_figure(fig, "champion_vs_challenger.png")
    plt.show()
else:
    show("No challenger was trained, so there is nothing to compare: " + "; ".join(decision["reasons"]) + ".")

# %% [markdown]
# ## Decision

# %%
state = registry.state()
decision["champion_version"] = (state.get("champion") or {}).get("version")
decision["history"] = len(state.get("history", []))
step.write_json("retraining_decision.json", decision)
step.write_metrics(
    {
        "triggered": triggered,
        "promoted": decision["promoted"],
        **{
            f"{who}_{k}": decision[who][k]
            for who in ("champion", "challenger")
            if who in decision
            for k in ("roc_auc", "expected_cost")
        },
    }
)
show(
    (
        "**Promoted**: the challenger is now the champion (`models/registry/champion.skops`); the previous champion is kept "
        "in `models/registry/history/` and `{{ cookiecutter.package_name }} rollback` restores it."
        if decision["promoted"]
        else "**Not promoted**: "
        if triggered
        else "**Not triggered**: "
    )
    + ("" if decision["promoted"] else "; ".join(decision["reasons"]) + ".")
)

# %% [markdown]
# ## Summary
# `retraining_decision.json` records what triggered, both models' metrics on the same recent
# data, each gate's result, and whether the challenger was promoted and why. To queue
# challengers with other settings, use DVC experiments, e.g.
# `dvc exp run --queue -S 'retraining.challenger_models=[logistic_regression]' && dvc queue start`.
