# %% [markdown]
# # 10 · Retraining
#
# **What this step decides:** whether to retrain, and whether the retrained model (the
# *challenger*) replaces the model in service (the *champion*). Retraining is triggered by
# monitoring, by a schedule (the model is older than the staleness gate) or by force. The
# challenger is trained with the same code as step 06 (`modeling.train_and_select`) on the
# training data plus the older labelled production windows. The newest labelled windows are
# pooled until `min_labelled_rows` outcomes, and both models are judged on those same rows by
# the same gates: step 02's retraining gates (quality and cost against step 06's reference
# baseline, leakage, fairness), each on its confidence interval. The challenger must also be
# non-inferior to the champion on the paired differences (the primary metric at most
# `max_regression` worse, the cost at most `max_cost_increase` higher, on the bounds of their
# intervals; better by `min_gain` when the team asks for a gain), then pass a canary: a
# *blessing*, in the spirit of TFX. The champion is judged too: when the model in service fails
# a gate on recent data, the report says so, whatever the challenger does. Rows of the test
# split never reach a training set. When nothing triggers, nothing changes.
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
fit_max_rows = 1000000
mitigation_max_rows = 20000
trigger_on_monitoring = True
trigger_on_schedule = True
force = False
min_labelled_rows = 10000
max_regression = 0.01
max_cost_increase = 0.02
min_gain = 0.0
require_approval = True
min_group_size = 30
challenger_models = ["logistic_regression", "hist_gradient_boosting"]
challenger_overrides = {}
seed = 42

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import artifacts, business, compute, config, gates, live, modeling, retraining, scoring, tables
from {{ cookiecutter.package_name }}.notebook import show, start_step
from {{ cookiecutter.package_name }}.profiling import input_columns
from {{ cookiecutter.package_name }}.project import file_md5
from {{ cookiecutter.package_name }}.registry import Registry, approval_command

cfg = config.Retraining.from_cell(globals())
step = start_step("retraining", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
plan = step.read_report("data_bias_plan", "bias_plan.json")
status = step.read_report("monitoring", "monitoring_status.json")
registry = Registry(step.root)
registry.ensure()
release = scoring.load_bundle(step.path("models/release.skops"), allow_unreleased=True)
if release["metadata"]["releasable"]:  # a new release of step 08 becomes the champion before it is challenged
    registry.sync_release(step.path("models/release.skops"), release["metadata"]["version"])
target, costs = spec["target"], business.Costs.of(charter)

# %% [markdown]
# ## Triggers

# %%
triggers = retraining.triggers(cfg, status, criteria)
labelled = retraining.labelled_batches(step.path("data/monitored"), target)
test = pd.read_parquet(step.path("data/processed/test.parquet"))
found = retraining.pool(labelled, test, [*input_columns(spec), target], cfg.min_labelled_rows)
blocked = retraining.blocker(triggers, registry.champion.is_file(), found, cfg.min_labelled_rows)
decision = {
    "triggered": any(triggers.values()),
    "triggers": triggers,
    "monitoring_reasons": status["reasons"],
    "promoted": False,
    "awaiting_approval": None,
    "judged_on": {
        "windows": found.windows,
        "rows": len(found.judged),
        "labelled_rows": found.labelled,
        "test_split_rows_kept_out_of_training": found.test_rows,
    },
}
show(
    # the registry's state, not this run's event: a rerun on the same state writes the same report
    (
        f"Registry: champion `{installed['version']}` ({installed['reason']}).\n\n"
        if (installed := registry.state()["champion"])
        else ""
    )
    + "| trigger | enabled | fired |\n|---|---|---|\n"
    + f"| monitoring recommends retraining ({len(status['reasons'])} reasons) | {cfg.trigger_on_monitoring} | {triggers['monitoring']} |\n"
    + f"| model age {status['model_age_days']} days > {retraining.staleness_limit(criteria):g} | {cfg.trigger_on_schedule} | {triggers['schedule']} |\n"
    + f"| forced | {cfg.force} | {triggers['forced']} |"
)

# %% [markdown]
# ## Challenger against champion on the same recent data
#
# The challenger is trained by step 06's code on the training split plus the labelled production
# windows older than the judged pool; both models are then judged on the pool. When the champion
# was mitigated in step 08, the challenger is mitigated by the same procedure.

# %%
show(
    f"{found.labelled:,} labelled rows in {len(labelled)} monitored windows. Judged on the newest {found.windows} "
    f"window(s), **{len(found.judged):,} rows** (`min_labelled_rows` = {cfg.min_labelled_rows:,}); the challenger may "
    f"learn from {sum(len(b) for b in found.learn):,} rows of the older windows."
    + (
        f" {found.test_rows:,} monitored rows are rows of the test split (step 09 simulated its batches from it): "
        "they never reach a training set."
        if found.test_rows
        else ""
    )
)
if blocked:
    decision["reasons"] = [blocked]
else:
    split, split_rows = tables.read_rows(  # whole, or a sample drawn from its partitions (fit_max_rows)
        step.path("data/processed/train.parquet"), cfg.fit_max_rows, cfg.seed, step.compute, step.root
    )
    train, recent = retraining.training_data(split, found), found.judged
    validation = pd.read_parquet(step.path("data/processed/validation.parquet"))
    with compute.parallel(step.compute, step.root):  # the search's fits: on the cluster when compute.scheduler is set
        result = modeling.train_and_select(
            train,
            validation,
            spec,
            plan,
            costs,
            cfg.challenger_search,
            include=cfg.challenger_models,
            available_rows=split_rows + len(train) - len(split),
        )
    show(modeling.search_sample_note(result))
    champion = scoring.load_bundle(registry.champion)
    version = retraining.challenger_version(
        champion["metadata"]["version"], file_md5(step.report("monitoring", "monitoring_status.json"))
    )
    challenge, notes = retraining.build_challenger(
        result, champion, (train, validation, recent), spec, criteria, cfg, costs, version
    )
    for note in notes:
        show(note)
    baseline = modeling.reference_scored(step.root, recent, spec)
    comparison = retraining.compare(challenge, spec, charter, criteria, baseline, cfg)
    paired = {k: v for k, v in comparison.estimates["challenger"].items() if k.endswith("_vs_champion")}
    display(pd.DataFrame(comparison.metrics).round(4))
    rule = criteria["criteria"]  # one confidence and one power for every gate
    show(retraining.power_note(paired, len(recent), cfg, rule["confidence"], rule["fairness_power"]))

# %% [markdown]
# ## The model in service, judged again
# The champion against step 02's gates on the same recent rows: a model in service that now
# fails a gate on evidence is reported here (and in the record's `champion_failing`), whatever
# the challenger does.

# %%
if not blocked:
    champion_table = comparison.tables["champion"]
    display(champion_table.round(4))
    failing = gates.breaches(champion_table)
    show(
        "**The champion fails on recent data:** " + "; ".join(failing) + "."
        if failing
        else f"The champion fails no gate on evidence on the recent rows ({gates.overall(champion_table)} overall)."
    )

# %% [markdown]
# ## The promotion gates and the canary
#
# The challenger must pass every gate of step 02 that retraining enforces on its interval, and
# be non-inferior to the champion on the paired differences. Only then comes the canary: champion
# and challenger are served at the same time, and every request of the newest judged records (up
# to 2,000) goes to both. The challenger must serve records (serving nothing fails, whatever the
# champion did), reject no request the champion accepted, serve its offline scores, take the
# champion's decision on at least 80% of the records, and meet the latency gate; the score
# difference and both latencies are recorded beside. It goes forward only if the canary passes
# too: into service, or, when `require_approval` is on, staged for a person to approve.

# %%
canary = None
if not blocked:
    blessing = comparison.tables["challenger"]
    with tempfile.TemporaryDirectory() as tmp:
        challenger_path = artifacts.save(challenge.challenger, Path(tmp) / "challenger.skops")
        if not gates.failures(blessing):  # every gate passes (or, small groups, is not assessed)
            canary = retraining.run_canary(
                registry.champion, challenger_path, challenge, comparison.scores["challenger"], criteria
            )
        decision.update(retraining.decide(challenge, comparison, canary))
        if decision["passed_gates"] and cfg.require_approval:  # a person signs: `approve` installs it
            registry.stage(
                challenger_path,
                decision["challenger_version"],
                retraining.install_reason(triggers),
                comparison.metrics["challenger"],
                report="reports/10_retraining/retraining_decision.json",
            )
            decision["awaiting_approval"] = approval_command(decision["challenger_version"])
        elif decision["passed_gates"]:
            registry.install(
                challenger_path,
                decision["challenger_version"],
                retraining.install_reason(triggers),
                comparison.metrics["challenger"],
            )
            decision["promoted"] = True
    display(pd.DataFrame(decision["gates"]).round(4))
    show(f"Canary: {canary['summary']}." if canary else "No canary: the challenger did not pass the offline gates.")
# the canary's latencies differ every run: they go to a file of their own, as step 07's do
step.write_measurements("canary_latency", canary["latency"] if canary else {"note": "no canary ran"})

# %% [markdown]
# ## Champion and challenger against the gates

# %%
if "gates" in decision:
    rows = [g for g in decision["gates"] if g["metric"] in decision["estimates"]["champion"]]
    positions = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8.5, 0.6 * len(rows) + 1.6))
    for offset, who, colour in ((-0.2, "champion", "#4c72b0"), (0.2, "challenger", "#dd8452")):
        found_values = [decision["estimates"][who][g["metric"]] for g in rows]
        values = np.array([e["value"] for e in found_values], dtype=float)
        errors = np.abs(
            np.array([[e["value"] - e["low"], e["high"] - e["value"]] for e in found_values], dtype=float).T
        )
        ax.barh(positions + offset, values, height=0.4, xerr=np.nan_to_num(errors), capsize=2, label=who, color=colour)
    limits = [float(g["rule"].split()[-1]) for g in rows]
    ax.scatter(limits, positions, marker="|", s=500, color="black", zorder=3, label="gate threshold")
    ax.set(
        yticks=positions,
        yticklabels=[g["gate"] for g in rows],
        xlabel="value on the judged rows, with its 95% interval",
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
triggered = decision["triggered"]
state = registry.state()
decision["champion_version"] = (state.get("champion") or {}).get("version")
decision["history"] = len(state.get("history", []))
step.write_json("retraining_decision.json", decision)
sent = live.champion_alert(decision, project=step.root.name)
if sent is not None:  # the model in service fails on recent data: said to the team, whatever the challenger does
    step.write_json("alert.json", {k: v for k, v in sent.items() if k != "body"})
    show(f"Alert on the champion: {'posted to the webhook' if sent['sent'] else 'not sent: ' + sent['why']}.")
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
        "champion_failing_gates": len(decision.get("champion_failing", [])),
    }
)
if decision["promoted"]:
    verdict = (
        "**Promoted**: the challenger is now the champion (`models/registry/champion.skops`); the previous champion is "
        "kept in `models/registry/history/` and `{{ cookiecutter.package_name }} rollback` restores it."
    )
elif decision.get("awaiting_approval"):
    verdict = (
        f"**Awaiting approval**: the challenger `{decision['challenger_version']}` passes every gate and its canary, "
        "and is staged in the registry (`retraining.require_approval`). The champion stays in service until a person "
        f"who has read this report installs it: `{decision['awaiting_approval']}`."
    )
else:
    evidence = " (the evidence is inconclusive)" if decision.get("evidence") == gates.INCONCLUSIVE else ""
    verdict = (
        ("**Not promoted**" + evidence if triggered else "**Not triggered**")
        + ": "
        + "; ".join(decision["reasons"])
        + "."
    )
show(verdict)

# %% [markdown]
# ## Summary
# `retraining_decision.json` records what triggered, both models' metrics on the same judged
# rows with their intervals, each gate's value, interval and verdict (the champion's too), and
# whether the challenger was promoted, staged for approval, or neither, and why. To queue
# challengers with other settings, use DVC experiments, e.g.
# `dvc exp run --queue -S 'retraining.challenger_models=[logistic_regression]' && dvc queue start`.
