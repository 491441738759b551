# %% [markdown]
# # 08 · Fairness assessment of the final solution
#
# **What this step decides:** whether the deployed model treats the groups of every sensitive
# feature fairly enough to release, and if not, which mitigation to apply and at what cost.
# Per-group selection rate, true and false positive rates and precision are measured on the
# test split with fairlearn's `MetricFrame`, with bootstrap confidence intervals; demographic
# parity and equalized odds gaps are checked against step 02's gates. Whether to mitigate and
# how is decided on the validation split alone: a post-processing mitigation
# (`ThresholdOptimizer`) and a reduction (`ExponentiatedGradient`) are fitted on part of it and
# compared on the rest. The test split then gives one verdict, on the scores and decisions of
# the artifact that would be served, and the release decision is recorded with the numbers
# behind it.
#
# **Inputs:** `models/model.skops`, `data/processed/`, the success criteria and the data spec;
# the `fairness_assessment` section of `params.yaml`.
# **Outputs:** `models/release.skops` (the artifact to serve: mitigated if needed),
# `reports/08_fairness_assessment/` (release decision, the model card of the release with its
# decision rule, per-group tables, figures),
# `reports/metrics/fairness_assessment.json`, `reports/plots/selection_rate.csv`.

# %% tags=["parameters"]
bootstrap_samples = 200
min_group_size = 30
mitigation = "auto"
mitigation_max_rows = 20000
seed = 42

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from sklearn.metrics import roc_curve

from {{ cookiecutter.package_name }} import artifacts, business, compute, config, data, fairness, gates, modeling, release, scoring
from {{ cookiecutter.package_name }} import mitigation as mitigate
from {{ cookiecutter.package_name }}.model_card import release_section
from {{ cookiecutter.package_name }}.notebook import show, start_step

cfg = config.FairnessAssessment.from_cell(globals())
step = start_step("fairness_assessment")
spec = step.read_report("data_selection", "dataset_spec.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
charter = step.read_report("business_case", "charter.json")
deployment = step.read_report("deployment", "deployment.json")
costs = business.Costs.of(charter)
bundle = scoring.load_bundle(step.path("models/model.skops"), allow_unreleased=True)
meta, target = bundle["metadata"], spec["target"]
test = pd.read_parquet(step.path("data/processed/test.parquet"))
validation = pd.read_parquet(step.path("data/processed/validation.parquet"))
y_test = test[target].to_numpy()
result = scoring.score(bundle, test, allow_extra=True, allow_unseen=True)
scores, decisions = result["score"].to_numpy(), result["decision"].to_numpy()
groups = data.sensitive_groups(test, spec)
groups["intersection"] = data.intersection_labels(groups[spec["sensitive_features"]])
fair_gates = gates.gates_for(criteria["gates"], "fairness_assessment")

# %% [markdown]
# ## Per-group metrics with bootstrap confidence intervals

# %%
with compute.parallel(step.compute, step.root):  # each group's bootstrap: on the cluster when compute.scheduler is set
    tables = {
        column: fairness.group_table(y_test, decisions, groups[column], cfg.bootstrap_samples, cfg.seed)
        for column in groups.columns
    }
tables[spec["sensitive_features"][0]].round(3)

# %%
features_to_plot = spec["sensitive_features"]
fig, axes = plt.subplots(len(features_to_plot), 1, figsize=(9, 3.3 * len(features_to_plot)), squeeze=False)
for ax, feature in zip(axes[:, 0], features_to_plot, strict=True):
    table = tables[feature][tables[feature]["count"] >= min_group_size]
    positions = np.arange(len(table))
    for offset, metric in zip(
        (-0.27, 0, 0.27), ("selection_rate", "true_positive_rate", "false_positive_rate"), strict=True
    ):
        values = table[metric].to_numpy(dtype=float)
        errors = np.abs(np.vstack([values - table[f"{metric}_low"], table[f"{metric}_high"] - values]).astype(float))
        ax.bar(positions + offset, values, width=0.27, yerr=errors, capsize=3, label=metric.replace("_", " "))
    ax.set_xticks(positions, table.index.astype(str), rotation=20, ha="right")
    ax.set_title(f"Decisions by {feature} (test split, 95% bootstrap intervals)")
    ax.set_xlabel(feature)
    ax.set_ylabel("rate")
    ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
step.save_figure(fig, "group_metrics.png")
plt.show()

# %%
fig, axes = plt.subplots(1, len(features_to_plot), figsize=(5.5 * len(features_to_plot), 4.2), squeeze=False)
for ax, feature in zip(axes[0], features_to_plot, strict=True):
    for group, idx in groups.groupby(feature).groups.items():
        rows = groups.index.get_indexer(idx)
        if len(rows) >= min_group_size and len(np.unique(y_test[rows])) == 2:
            fpr, tpr, _ = roc_curve(y_test[rows], scores[rows])
            ax.plot(fpr, tpr, label=f"{group} (n={len(rows)})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(title=f"ROC by {feature}", xlabel="false positive rate", ylabel="true positive rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.3, f"no group with {min_group_size} rows\nand both classes", ha="center")
step.save_figure(fig, "roc_by_group.png")
plt.show()

# %% [markdown]
# ## Gaps against the gates
# The deployed model's gaps on the test split, for comparison with the release's below. They
# do not choose anything: whether and how to mitigate is decided on the validation split.


# %%
before = fairness.gap_metrics(y_test, decisions, test, spec, min_group_size)
deployed_metrics = modeling.evaluate_served(y_test, scores, decisions, *costs)
gate_before = gates.evaluate(fair_gates, before)
display(gate_before)
small = {f: tables[f].index[tables[f]["count"] < min_group_size].tolist() for f in spec["sensitive_features"]}
show(
    "\n".join(
        f"- **`{f}`**: demographic parity difference **{before[f'demographic_parity_difference[{f}]']:.3f}** "
        f"(ratio {before[f'demographic_parity_ratio[{f}]']:.2f}), equalized odds difference "
        f"**{before[f'equalized_odds_difference[{f}]']:.3f}**"
        + (
            f"; groups too small for the gates (< {min_group_size} rows, reported above): {', '.join(map(str, small[f]))}"
            if small[f]
            else ""
        )
        for f in spec["sensitive_features"]
    )
)

# %%
unmeasured = gate_before.loc[gate_before["note"] == "not measured", "gate"].tolist()
if unmeasured:
    needs = {
        "demographic_parity": f"{min_group_size} rows",
        "equalized_odds": f"{min_group_size} rows with at least {fairness.MIN_CLASS_COUNT} positive and {fairness.MIN_CLASS_COUNT} negative cases",
    }
    show(
        "**Not measurable on the test split:**\n"
        + "".join(f"\n- `{g}`: fewer than two groups have {needs[g.split('[')[0]]}" for g in unmeasured)
        + "\n\nA gate is never passed by absence, so these block the release: raise `data_pipeline.test_fraction`, "
        "bring more data, or lower `fairness_assessment.min_group_size`."
    )

# %% [markdown]
# ## Mitigation, chosen on the validation split
# Half of every (group, outcome) stratum of the validation split is held out; the mitigations
# are fitted on the other half, once per failing constraint (and, for the post-processor, per
# objective), and every option (the deployed model as it is among them) is compared on the
# held-out rows (`release.choose_mitigation`). A held-out half rather than cross-fitting: what
# is compared is exactly what is released (a cross-fitted choice is refitted on all rows
# afterwards, a model nobody compared), at one fit per candidate instead of one per fold (the
# reduction refits its learner about twenty times per fit). The price: the mitigations learn
# from half of the validation rows. The test split is not used until the verdict.

# %%
with compute.parallel(step.compute, step.root):  # the mitigation fits: on the cluster when compute.scheduler is set
    selection = release.choose_mitigation(bundle, spec, validation, fair_gates, cfg, costs)
show(
    f"Of the {len(validation):,} validation rows, {selection.fit_rows:,} fit the mitigations and "
    f"{selection.choice_rows:,} are held out to choose among the options. "
    + (
        f"Fairness gates the deployed model fails there: {'; '.join(selection.failed)}."
        if selection.failed
        else "The deployed model passes every measured fairness gate there, so no mitigation is fitted."
    )
)
for note in selection.notes:
    show(note)

# %%
post = selection.options.get("threshold_optimizer")
if post is not None:
    pooled = post.model.pooled_groups
    show(
        f"The post-processor maximises `{post.objective}` under `{post.constraint}`: of the "
        f"{len(post.tried)} fits tried (constraints {', '.join(selection.constraints)}, objectives "
        f"{', '.join(mitigate.POSTPROCESSING_OBJECTIVES)}), the one that passes the gates on the held-out rows "
        "at the lowest business cost there"
        + (
            f"; groups with fewer than {min_group_size} fitting rows or one outcome only share one "
            f"threshold: {', '.join(pooled)}."
            if pooled
            else "."
        )
        + " "
        + mitigate.DECISION_RULE
    )
    display(post.tried.round(4))

# %%
tradeoff = selection.tradeoff
tradeoff.round(4)

# %%
curves = next((o.curves for o in selection.options.values() if o.curves), None)
fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 6.5, 4.2), squeeze=False)
ax = axes[0, 0]
for name, row in tradeoff.iterrows():
    ax.scatter(row["max_dp_difference"], row["accuracy"], s=70, label=name, zorder=3)
ax.axvline(
    criteria["criteria"]["max_demographic_parity_difference"], color="#c44e52", linestyle=":", label="parity gate"
)
ax.set(
    title="Accuracy against fairness gap (held-out validation rows)",
    xlabel="largest demographic parity difference",
    ylabel="accuracy",
)
ax.legend(fontsize=8, loc="lower right")
if curves:
    for group, curve in curves["groups"].items():
        axes[0, 1].plot(curve["x"], curve["y"], label=str(group))
    axes[0, 1].set(
        title="ThresholdOptimizer's trade-off curve per group (fitting rows)",
        xlabel=curves["x_metric"].replace("_", " "),
        ylabel=curves["y_metric"].replace("_", " "),
    )
    axes[0, 1].legend(fontsize=7, loc="lower right")
fig.tight_layout()
step.save_figure(fig, "mitigation_tradeoff.png")
plt.show()

# %% [markdown]
# ## Release decision
# The cheapest option that passes every fairness gate on the held-out validation rows is
# chosen (`mitigation: auto`; a named mitigation is chosen as asked; `release.choose`). The
# artifact it makes then scores the test split as the service would, once, and is released only
# if its own scores and decisions pass the fairness and quality gates there and step 07 deployed
# the model (`release.judge`).

# %%
chosen = selection.chosen
candidate = release.release_bundle(bundle, chosen, selection.options[chosen], selection.features)
verdict = release.judge(candidate, test, spec, criteria, charter, cfg, deployment)
released, reasons, after = verdict.released, verdict.reasons, verdict.gaps
artifacts.save(release.finalize(candidate, verdict), step.path("models/release.skops"))
display(verdict.gates)
show(release.decision_note(selection, before, deployed_metrics, verdict))

# %%
released_tables = {c: fairness.metric_frame(y_test, verdict.decisions, groups[c]).by_group for c in tables}
rates = pd.concat({f: released_tables[f]["selection_rate"] for f in spec["sensitive_features"]})
step.write_plot_data(
    "selection_rate.csv",
    pd.DataFrame({"group": [f"{f}={g}" for f, g in rates.index], "selection_rate": rates.round(4).to_numpy()}),
)
# Per-group metrics of the deployed model's decisions (with intervals), and of the released decisions.
for column, table in tables.items():
    table.round(4).to_csv(step.out / f"group_metrics_{column}.csv")
    released_tables[column].round(4).to_csv(step.out / f"group_metrics_released_{column}.csv")

# %%
option = selection.options[chosen]
record = {
    "released": released,
    "reasons": reasons,
    "mitigation": chosen,
    "constraint": option.constraint,
    "objective": option.objective,
    "decision_rule": candidate["metadata"].get("decision_rule"),
    "chosen_on": {
        "split": "validation",
        "fit_rows": selection.fit_rows,
        "held_out_rows": selection.choice_rows,
        "failed": selection.failed,
    },
    "gaps_before": before,
    "gaps_after": after,
    "tradeoff": tradeoff.reset_index().to_dict(orient="records"),
    "gates": verdict.gates.to_dict(orient="records"),
}
step.write_json("release_decision.json", record)

# %%
# the model card of what is released: step 07's card, and how the release decides
card = step.report("deployment", "model_card.md").read_text(encoding="utf-8")
step.write_text("model_card.md", card.rstrip() + "\n\n" + release_section(record))
step.write_metrics(
    {
        "released": released,
        "mitigation": chosen,
        **{f"before_{k}": v for k, v in before.items() if "difference" in k},
        **{f"after_{k}": v for k, v in after.items() if "difference" in k},
    }
)

# %% [markdown]
# ## Summary
# The tables and figures above show how the model's decisions differ by group, with their
# uncertainty. The release decision, with every gate's value, is in `release_decision.json`;
# `models/release.skops` is what `{{ cookiecutter.package_name }} serve` and `predict` use by default,
# and what step 09 monitors.
