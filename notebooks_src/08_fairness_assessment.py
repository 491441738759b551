# %% [markdown]
# # 08 · Fairness assessment of the final solution
#
# **What this step decides:** whether the deployed model treats the groups of every sensitive
# feature fairly enough to release, and if not, which mitigation to apply and at what cost.
# Per-group selection rate, true and false positive rates and precision are measured on the
# test split with fairlearn's `MetricFrame`, with bootstrap confidence intervals; demographic
# parity and equalized odds gaps are checked against step 02's gates. If a gate fails, a
# post-processing mitigation (`ThresholdOptimizer`) and a reduction (`ExponentiatedGradient`)
# are fitted on the validation split and compared on the test split, and the release decision
# is recorded with the numbers behind it.
#
# **Inputs:** `models/model.skops`, `data/processed/`, the success criteria and the data spec;
# the `fairness_assessment` section of `params.yaml`.
# **Outputs:** `models/release.skops` (the artifact to serve: mitigated if needed),
# `reports/08_fairness_assessment/` (release decision, per-group tables, figures),
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

from {{ cookiecutter.package_name }} import artifacts, business, config, data, fairness, gates, release, scoring
from {{ cookiecutter.package_name }} import mitigation as mitigate
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


# %%
def assess(decided: np.ndarray) -> dict[str, float]:
    return fairness.gap_metrics(y_test, decided, test, spec, min_group_size)


before = assess(decisions)
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

# %% [markdown]
# ## Mitigation, if a gate fails

# %%
measured = gate_before["note"] != "not measured"
failed = gates.failures(gate_before[measured])  # mitigation acts on measured gaps; unmeasured gates still block release
unmeasured = gate_before.loc[~measured, "gate"].tolist()
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

# %%
failing_features = [f for f in spec["sensitive_features"] if any(f"[{f}]" in r for r in failed)]
constraints = mitigate.failing_constraints(failed)
options = {"none": release.Option()}
if failed and mitigation != "none":
    fitted, unavailable = release.fit_options(
        bundle["model"], spec, validation, failing_features, constraints, fair_gates, cfg, costs
    )
    options |= fitted
    for note in [mitigate.sample_note(len(validation), mitigation_max_rows, "the whole test split"), *unavailable]:
        if note:
            show(note)
decided = {
    name: decisions if option.model is None else option.model.decide(test[meta["feature_columns"]], groups)
    for name, option in options.items()
}
if "threshold_optimizer" in options:
    post, pooled = options["threshold_optimizer"], options["threshold_optimizer"].model.pooled_groups
    show(
        f"The post-processor maximises `{post.curves['objective']}` under `{post.constraint}` "
        f"(of the constraints tried, {', '.join(constraints)}, and of the objectives, the one that passes "
        "on the validation split at the lower business cost)"
        + (
            f"; groups with fewer than {min_group_size} validation rows or one outcome only share one "
            f"threshold: {', '.join(pooled)}."
            if pooled
            else "."
        )
    )

# %%
gaps = {name: assess(d) for name, d in decided.items()}
tradeoff = release.tradeoff_table(options, decided, gaps, y_test, scores, fair_gates, costs)
tradeoff.round(4)

# %%
curves = next((o.curves for o in options.values() if o.curves), None)
fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 6.5, 4.2), squeeze=False)
ax = axes[0, 0]
for name, row in tradeoff.iterrows():
    ax.scatter(row["max_dp_difference"], row["accuracy"], s=70, label=name, zorder=3)
ax.axvline(
    criteria["criteria"]["max_demographic_parity_difference"], color="#c44e52", linestyle=":", label="parity gate"
)
ax.set(
    title="Accuracy against fairness gap (test split)",
    xlabel="largest demographic parity difference",
    ylabel="accuracy",
)
ax.legend(fontsize=8, loc="lower right")
if curves:
    for group, curve in curves["groups"].items():
        axes[0, 1].plot(curve["x"], curve["y"], label=str(group))
    axes[0, 1].set(
        title="ThresholdOptimizer's trade-off curve per group (validation)",
        xlabel=curves["x_metric"].replace("_", " "),
        ylabel=curves["y_metric"].replace("_", " "),
    )
    axes[0, 1].legend(fontsize=7, loc="lower right")
fig.tight_layout()
step.save_figure(fig, "mitigation_tradeoff.png")
plt.show()

# %% [markdown]
# ## Release decision
# The cheapest option that passes every fairness gate is released (`mitigation: auto`; a named
# mitigation is released as asked), if it also passes step 02's quality gates and step 07
# deployed the model (`release.choose` and `release.verdict`).

# %%
chosen = release.choose(tradeoff, mitigation)
constraint, after = options[chosen].constraint, gaps[chosen]
quality = release.quality_gates(
    criteria,
    meta["metrics"][criteria["criteria"]["primary_metric"]],
    float(tradeoff.loc[chosen, "expected_cost"]),
    charter["baseline_expected_cost"],
)
all_gates, reasons = release.verdict(gates.evaluate(fair_gates, after), quality, deployment)
released = not reasons
display(all_gates)
release_bundle = release.release_bundle(bundle, chosen, options[chosen], failing_features, reasons, after)
artifacts.save(release_bundle, step.path("models/release.skops"))
show(release.decision_note(failed, unmeasured, chosen, constraint, failing_features, tradeoff, reasons))

# %%
released_tables = {column: fairness.metric_frame(y_test, decided[chosen], groups[column]).by_group for column in tables}
selection = pd.concat({f: released_tables[f]["selection_rate"] for f in spec["sensitive_features"]})
step.write_plot_data(
    "selection_rate.csv",
    pd.DataFrame({"group": [f"{f}={g}" for f, g in selection.index], "selection_rate": selection.round(4).to_numpy()}),
)
# Per-group metrics of the deployed model's decisions (with intervals), and of the released decisions.
for column, table in tables.items():
    table.round(4).to_csv(step.out / f"group_metrics_{column}.csv")
    released_tables[column].round(4).to_csv(step.out / f"group_metrics_released_{column}.csv")

# %%
step.write_json(
    "release_decision.json",
    {
        "released": released,
        "reasons": reasons,
        "mitigation": chosen,
        "constraint": constraint if chosen != "none" else None,
        "gaps_before": before,
        "gaps_after": after,
        "tradeoff": tradeoff.reset_index().to_dict(orient="records"),
        "gates": all_gates.to_dict(orient="records"),
    },
)
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
