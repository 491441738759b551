# %% [markdown]
# # 08 · Fairness assessment of the final solution
#
# **What this step decides:** whether the deployed model treats the groups of every sensitive
# feature fairly enough to release, and if not, which mitigation to apply and at what cost.
# Per-group selection rate and true and false positive rates are measured on the test split,
# each with its 95 % Wilson interval; demographic parity and equalized odds gaps, for every
# sensitive feature and their intersection, are judged against step 02's gates on their
# simultaneous confidence intervals (`fairness.assess`): a gate passes only when the gap's upper
# bound is under its threshold. Which groups a gap compares follows from power: a group is gated
# when a gap of the gate's size would be seen at its size; smaller groups are reported with the
# rows they lack. Whether to mitigate and how is decided on the validation split alone: a
# post-processing mitigation (fairlearn's `ThresholdOptimizer`, made deterministic: one threshold
# per group) is fitted on part of it and compared with the deployed model on the rest (the
# reduction `ExponentiatedGradient` only when named: `mitigation: exponentiated_gradient`). The
# test split then gives one verdict, on the scores and decisions of the artifact that would be
# served, and the release decision is recorded with the numbers behind it.
#
# **Inputs:** `models/model.skops`, `models/baseline.skops` (step 06's reference baseline, which
# the release's quality is judged against), `data/processed/`, the success criteria and the data spec;
# the `fairness_assessment` section of `params.yaml`.
# **Outputs:** `models/release.skops` (the artifact to serve: mitigated if needed),
# `reports/08_fairness_assessment/` (release decision, the model card of the release with its
# decision rule, per-group tables, figures),
# `reports/metrics/fairness_assessment.json`, `reports/plots/selection_rate.csv`.

# %% tags=["parameters"]
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

from {{ cookiecutter.package_name }} import artifacts, business, compute, config, fairness, gates, modeling, release, scoring
from {{ cookiecutter.package_name }} import mitigation as mitigate
from {{ cookiecutter.package_name }}.model_card import release_section
from {{ cookiecutter.package_name }}.notebook import show, start_step

cfg = config.FairnessAssessment.from_cell(globals())
step = start_step("fairness_assessment", cfg)
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
groups = fairness.groupings(test, spec)
baseline = modeling.reference_scored(step.root, test, spec)

# %% [markdown]
# ## Per-group metrics with their confidence intervals
# The deployed model's decisions on the test split, per group of every sensitive feature and of
# their intersection: each rate with its 95 % Wilson interval, and whether the group is large
# enough to be gated (`gated_*`) or only reported (`rows_needed_*`: about how many more rows it
# would take).

# %%
gate_before, before = fairness.gate_table(y_test, decisions, test, spec, criteria)
gated_gaps = [gap for gap in fairness.GAPS if criteria["criteria"].get(f"max_{gap}_difference") is not None]
gated_gap = "equalized_odds" if "equalized_odds" in gated_gaps else "demographic_parity"  # the one plotted
tables = {grouping: fairness.group_table(before, grouping) for grouping in groups.columns}
shown_columns = [
    "rows", "positives", "selection_rate", "selection_rate_low", "selection_rate_high", "true_positive_rate",
    "true_positive_rate_low", "true_positive_rate_high", "false_positive_rate", "gated_demographic_parity",
    "gated_equalized_odds", "rows_needed_demographic_parity", "rows_needed_equalized_odds",
]  # fmt: skip
tables[groups.columns[-1]][shown_columns].round(3)

# %%
fig, axes = plt.subplots(len(groups.columns), 1, figsize=(10, 3.4 * len(groups.columns)), squeeze=False)
for ax, grouping in zip(axes[:, 0], groups.columns, strict=True):
    table = tables[grouping]
    positions = np.arange(len(table))
    for offset, metric in zip(
        (-0.27, 0, 0.27), ("selection_rate", "true_positive_rate", "false_positive_rate"), strict=True
    ):
        values = table[metric].to_numpy(dtype=float)
        errors = np.abs(np.vstack([values - table[f"{metric}_low"], table[f"{metric}_high"] - values]).astype(float))
        ax.bar(positions + offset, values, width=0.27, yerr=errors, capsize=3, label=metric.replace("_", " "))
    ax.set_xticks(
        positions,
        [f"{g}{'' if gated else ' (reported)'}" for g, gated in table[f"gated_{gated_gap}"].items()],
        rotation=20,
        ha="right",
    )
    ax.set_title(f"Decisions by {grouping} (test split, 95% Wilson intervals)")
    ax.set_ylabel("rate")
    ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
step.save_figure(fig, "group_metrics.png")
plt.show()

# %%
features_to_plot = spec["sensitive_features"]
fig, axes = plt.subplots(1, len(features_to_plot), figsize=(5.5 * len(features_to_plot), 4.2), squeeze=False)
for ax, feature in zip(axes[0], features_to_plot, strict=True):
    gated = tables[feature]["gated_equalized_odds"]
    for group, idx in groups.groupby(feature).groups.items():
        rows = groups.index.get_indexer(idx)
        if gated.get(str(group), False):
            fpr, tpr, _ = roc_curve(y_test[rows], scores[rows])
            ax.plot(fpr, tpr, label=f"{group} (n={len(rows)})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(title=f"ROC by {feature}", xlabel="false positive rate", ylabel="true positive rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.3, "no group large enough\nto gate its error rates", ha="center")
step.save_figure(fig, "roc_by_group.png")
plt.show()

# %% [markdown]
# ## Gaps against the gates
# The deployed model's gaps on the test split with their simultaneous 95 % intervals, for
# comparison with the release's below. They do not choose anything: whether and how to mitigate
# is decided on the validation split.

# %%
deployed_metrics = modeling.evaluate_served(y_test, scores, decisions, *costs)
display(gate_before.round(4))
show(
    "\n".join(
        f"- **`{row.gate}`**: {row.metric.split('[')[0].replace('_', ' ')} "
        + (
            f"**{row.value:.3f}** (95 % interval {row.low:.3f} to {row.high:.3f}): **{row.verdict}** against {row.rule}"
            if row.verdict not in (gates.NOT_MEASURED, gates.NOT_ASSESSED)
            else f"{row.verdict}: {row.note}"
        )
        for row in gate_before.itertuples(index=False)
    )
)
for gap in gated_gaps:
    short = before.small_groups(gap)
    if len(short):
        show(
            f"Reported but not gated for {gap.replace('_', ' ')}, too small to tell a gap of the gate's size with "
            f"{criteria['criteria']['fairness_power']:.0%} power: "
            + "; ".join(
                f"`{grouping}` = `{group}` ({int(r.rows)} rows, ~{int(r[f'rows_needed_{gap}']):,} more needed)"
                for (grouping, group), r in short.iterrows()
            )
            + ". A gate with fewer than two groups this large is *not assessed*: it does not pass, and the release "
            "says so (it refuses only with `success_criteria.block_unassessed`); more rows would assess it: "
            "raise `data_pipeline.test_fraction` or bring more data."
        )

# %% [markdown]
# ## Mitigation, chosen on the validation split
# Half of every (group, outcome) stratum of the validation split is held out; the mitigations
# are fitted on the other half, once per failing constraint (the post-processor minimising
# step 01's business cost under equalized odds), and every option (the deployed model as it is among them) is compared on the
# held-out rows (`release.choose_mitigation`), each judged by the gates' interval rule. A
# held-out half rather than cross-fitting: what is compared is exactly what is released (a
# cross-fitted choice is refitted on all rows afterwards, a model nobody compared), at one fit
# per candidate instead of one per fold. The price: the mitigations learn from half of the
# validation rows. The test split is not used until the verdict.

# %%
with compute.parallel(step.compute, step.root):  # the mitigation fits: on the cluster when compute.scheduler is set
    selection = release.choose_mitigation(bundle, spec, validation, criteria, cfg, costs)
show(
    f"Of the {len(validation):,} validation rows, {selection.fit_rows:,} fit the mitigations and "
    f"{selection.choice_rows:,} are held out to choose among the options. "
    + (
        f"Fairness gates the deployed model does not pass on the validation split: {'; '.join(selection.failed)}."
        if selection.failed
        else "The deployed model passes every assessed fairness gate on the validation split, so no mitigation is fitted."
    )
)
for note in selection.notes:
    show(note)

# %%
post = selection.options.get("threshold_optimizer")
if post is not None:
    pooled = post.model.pooled_groups
    show(
        f"The post-processor optimises `{post.objective}` under `{post.constraint}` (under equalized odds step 01's "
        "business cost itself; under demographic parity the fairlearn objective whose weighing of a missed positive "
        f"against a false alarm is closest to it): of the "
        f"{len(post.tried)} fits tried (constraints {', '.join(selection.constraints)}), the one that passes the "
        "gates on the held-out rows at the lowest business cost there"
        + (
            f"; groups with fewer than {min_group_size} fitting rows of either outcome share one "
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
short_name = {"equalized_odds": "eo", "demographic_parity": "dp"}[gated_gap]
for name, row in tradeoff.iterrows():
    ax.scatter(row[f"max_{short_name}_upper"], row["expected_cost"], s=70, label=name, zorder=3)
if criteria["criteria"][f"max_{gated_gap}_difference"] is not None:
    ax.axvline(criteria["criteria"][f"max_{gated_gap}_difference"], color="#c44e52", linestyle=":", label="gate")
ax.set(
    title="Cost against fairness (held-out validation rows)",
    xlabel=f"largest {gated_gap.replace('_', ' ')} gap, upper 95% bound",
    ylabel="expected cost per decision",
)
ax.legend(fontsize=8, loc="upper right")
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
# if its own scores and decisions pass every fairness and quality gate there on its interval
# (quality and cost against step 06's reference baseline on the same rows) and step 07 deployed
# the model (`release.judge`). A gate whose interval holds its threshold is *inconclusive*: the
# release waits for more evidence, and the record says so.

# %%
chosen = selection.chosen
candidate = release.release_bundle(bundle, chosen, selection.options[chosen], selection.features)
verdict = release.judge(candidate, test, spec, criteria, charter, baseline, deployment, cfg.seed)
released, reasons = verdict.released, verdict.reasons
artifacts.save(release.finalize(candidate, verdict), step.path("models/release.skops"))
display(verdict.gates.round(4))
show(release.decision_note(selection, gate_before, deployed_metrics, verdict))

# %%
released_tables = {c: fairness.group_table(verdict.assessment, c) for c in tables}
rates = pd.concat({f: released_tables[f]["selection_rate"] for f in spec["sensitive_features"]})
step.write_plot_data(
    "selection_rate.csv",
    pd.DataFrame({"group": [f"{f}={g}" for f, g in rates.index], "selection_rate": rates.round(4).to_numpy()}),
)
# Per-group metrics of the deployed model's decisions and of the released ones, with their intervals.
for column, table in tables.items():
    name = column.replace(" & ", "_x_")
    table.round(4).to_csv(step.out / f"group_metrics_{name}.csv")
    released_tables[column].round(4).to_csv(step.out / f"group_metrics_released_{name}.csv")

# %%
option = selection.options[chosen]
gated = verdict.assessment.groups
record = {
    "released": released,
    "evidence": verdict.evidence,
    "reasons": reasons,
    "decided_on": criteria["criteria"]["decide_on"],
    "confidence": criteria["criteria"]["confidence"],
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
    "gaps_before": {k: e.as_dict() for k, e in before.estimates.items()},
    "gaps_after": {k: e.as_dict() for k, e in verdict.gaps.items()},
    "groups": {
        gap: {
            "gated": [f"{g}={v}" for g, v in gated.index[gated[f"gated_{gap}"]]],
            "reported": {
                f"{g}={v}": int(n) for (g, v), n in gated.loc[~gated[f"gated_{gap}"], f"rows_needed_{gap}"].items()
            },
        }
        for gap in fairness.GAPS
    },
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
        **{f"before_{k}": e.value for k, e in before.estimates.items()},
        **{f"after_{k}": e.value for k, e in verdict.gaps.items()},
        **{f"after_{k}_upper": e.high for k, e in verdict.gaps.items()},
    }
)

# %% [markdown]
# ## Summary
# The tables and figures above show how the model's decisions differ by group, with their
# uncertainty. The release decision, with every gate's value, interval and verdict, the groups
# gated and the rows the others lack, is in `release_decision.json`;
# `models/release.skops` is what `{{ cookiecutter.package_name }} serve` and `predict` use by default,
# and what step 09 monitors.
