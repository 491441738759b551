# %% [markdown]
# # 04 · Data bias remediation plan
#
# **What this step decides:** how to treat bias that is already in the data before a model
# learns it. For every sensitive feature we measure how each group is represented, how
# often its rows carry the positive label, and how well the *other* features reveal group
# membership (proxies: dropping the sensitive column does not remove what they encode).
# Then we try the candidate remediations on a quick model, deciding as step 06 will (at the
# threshold that minimises step 01's business cost), and adopt one only on evidence: a fairness
# gap that step 02 gates shown smaller, at a cost per decision not shown to rise by more than a
# stated margin.
#
# The tables describe every row. What is fitted or chosen here, the remediation and its
# weights, sees only the rows step 05 will train on: this step makes step 05's split itself
# (`features.split_selected` with the `data_pipeline` parameters, which DVC tracks for this
# stage too), so no validation or test row shapes training.
#
# Partitioned data (a directory of Parquet files, see step 03) are never held whole: the tables are
# counted partition by partition, and the split is step 05's partitioned one.
#
# **Inputs:** `data/interim/selected.parquet`, `reports/03_data_selection/dataset_spec.json`,
# the charter (`reports/01_business_case/charter.json`: the costs of errors), the success
# criteria (`reports/02_success_criteria/success_criteria.json`: the fairness gates and their
# confidence), the `data_bias_plan` section of `params.yaml` (and `data_pipeline`'s split).
# **Outputs:** `reports/04_data_bias_plan/bias_plan.json` (the chosen remediation and the
# sample weights per group and label that step 06 applies), `representation.csv`, figures,
# and `reports/plots/base_rates.csv` for `dvc plots`. No row is dropped here.

# %% tags=["parameters"]
min_group_size = 30
remediation = "auto"
max_cost_increase = 0.1
proxy_auc_alert = 0.8
max_rows = 50000
seed = 42

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import bias, business, config, data, features, tables
from {{ cookiecutter.package_name }}.notebook import pct, show, start_step
from {{ cookiecutter.package_name }}.project import load_params

cfg = config.DataBiasPlan.from_cell(globals())
step = start_step("data_bias_plan", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
selected = tables.read(
    step.path("data/interim/selected.parquet"), "data/interim/selected.parquet", step.compute, step.root
)
cells = selected.cells(spec)  # rows per (sensitive groups, label), counted over every row
overall = bias.overall_rate(cells, spec["target"])
split = config.DataPipeline.checked(load_params(step.root)["data_pipeline"])
training = selected.split(spec, split)["train"]  # the rows step 05 trains on

# %% [markdown]
# ## Representation and base rates by group

# %%
by_feature = {
    f: bias.representation_of_cells(cells, [f], spec["target"], min_group_size) for f in spec["sensitive_features"]
}
for feature, table in by_feature.items():
    gap, hi, lo = bias.base_rate_gap(table)
    small = table.index[~table["assessable"]].tolist()
    show(
        f"**`{feature}`**: {len(table)} groups. Positive rate ranges from **{pct(table.loc[lo, 'positive_rate'])}** "
        f"(`{lo}`) to **{pct(table.loc[hi, 'positive_rate'])}** (`{hi}`), a gap of **{pct(gap)}** "
        f"(overall {pct(overall)}). Largest group `{table.index[0]}` holds {pct(table['share'].iloc[0])} of rows."
        + (f" Too small to assess (< {min_group_size} rows): {', '.join(f'`{g}`' for g in small)}." if small else "")
    )
    display(table.round(3))

# %%
fig, axes = plt.subplots(1, len(by_feature), figsize=(6 * len(by_feature), 3.5), squeeze=False)
for ax, (feature, table) in zip(axes[0], by_feature.items(), strict=True):
    shown = table.sort_values("positive_rate")
    ax.barh(shown.index.astype(str), shown["positive_rate"], color=np.where(shown["assessable"], "#4c72b0", "#bbbbbb"))
    ax.axvline(overall, color="#c44e52", linestyle="--", linewidth=1, label="overall")
    ax.set_title(f"Positive base rate by {feature}")
    ax.set_xlabel(f"share of rows with {spec['target']} = {spec['positive_label']}")
    ax.legend(loc="lower right")
step.save_figure(fig, "base_rates.png")
plt.show()

# %% [markdown]
# ## Intersectional groups
# Combinations of sensitive features can hide gaps that each feature alone does not show.

# %%
inter = bias.representation_of_cells(cells, spec["sensitive_features"], spec["target"], min_group_size)
assessable = inter[inter["assessable"]]
gap, hi, lo = bias.base_rate_gap(inter)
show(
    f"{len(inter)} intersectional groups, **{len(assessable)}** with at least {min_group_size} rows "
    f"(covering {pct(assessable['share'].sum())} of rows). Base rates range from {pct(inter.loc[lo, 'positive_rate'])} "
    f"(`{lo}`) to {pct(inter.loc[hi, 'positive_rate'])} (`{hi}`)."
)
inter.head(15).round(3)

# %% [markdown]
# ## Proxy scan
# How well each feature alone predicts membership in each group (one-vs-rest AUC, out of fold,
# weighted by group size), and all features together. The scan and the remediation comparison
# below fit models, so on large data they use a random sample of `max_rows` rows (the group
# mix is kept in expectation); the tables above use every row. The scan is descriptive too:
# nothing downstream is fitted on it.

# %%
scan = selected.sample(max_rows, seed)  # every row when there are at most max_rows
scan_groups = data.sensitive_groups(scan, spec)
if len(scan) < len(selected):
    show(
        f"Proxy scan and remediation comparison on a random sample of **{len(scan):,}** of {len(selected):,} rows (`max_rows`)."
    )
feature_cols = spec["numeric_features"] + spec["categorical_features"]
kinds = {c: spec["columns"][c]["kind"] for c in feature_cols}
preprocessor = features.build_preprocessor(spec)
encoded = preprocessor.fit_transform(scan[feature_cols])
proxies = pd.DataFrame(
    {
        f: bias.proxy_scan(scan[feature_cols], scan_groups[f], kinds, min_group_size, seed)
        for f in spec["sensitive_features"]
    }
)
joint = {f: bias.joint_proxy_auc(encoded, scan_groups[f], min_group_size, seed) for f in spec["sensitive_features"]}
proxies.round(3)

# %%
strong = {f: proxies[f][proxies[f] >= proxy_auc_alert].index.tolist() for f in proxies}
show(
    "\n".join(
        f"- **`{f}`**: all features together predict it with AUC **{joint[f]:.3f}**; strongest single proxy "
        f"`{proxies[f].idxmax()}` (AUC {proxies[f].max():.3f})"
        + (f"; above the {proxy_auc_alert} alert: {', '.join(f'`{c}`' for c in strong[f])}." if strong[f] else ".")
        for f in proxies
    )
    + "\n\nDropping the sensitive columns alone would not make the model blind to them."
)

# %% [markdown]
# ## Candidate remediations, measured at step 06's decision rule
# Each candidate (no remediation, reweighing, resampling) trains the same quick model, a logistic
# regression on the step-05 features. The training split (a sample of it, on large data) is cut in
# two halves: each model is fitted on one and judges the other, and the other way round, so every
# row is judged by a model that never saw it, and the three candidates are judged on the same rows.
# Decisions follow step 06's rule: act when the score reaches the threshold that minimises the
# business cost, chosen on other held-out rows of the same model, never on the row decided. Each
# candidate is then measured as steps 06 and 08 will judge the final model: its expected cost per
# decision, the ratio of that cost to no remediation's on the same rows (paired), and step 02's
# fairness gaps with their intervals (`fairness.assess`, the rule of steps 08 to 10). The
# reweighing weights come from the training split's groups.

# %%
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
weights_table = bias.reweighing_of_cells(training.cells(spec), spec)
fit_rows = training.sample(max_rows, seed)
effects = bias.remediation_effects(fit_rows, spec, weights_table, business.Costs.of(charter), criteria, seed)
show(
    f"Measured on **{len(fit_rows):,}** of the {len(training):,} training rows "
    f"({len(selected) - len(training):,} validation and test rows left out), at the costs of step 01 "
    f"(false positive {charter['cost_false_positive']:g}, false negative {charter['cost_false_negative']:g}): "
    f"the cost-minimising thresholds ranged from {effects.costs['threshold_min'].min():.3f} to "
    f"{effects.costs['threshold_max'].max():.3f}, not 0.5. Cost ratios to no remediation with their "
    f"{(1 + effects.confidence) / 2:.1%} intervals (the two ratios hold together at {effects.confidence:.0%})."
)
effects.costs.round(4)

# %%
judged = ", ".join(f"`{m}`" for m in effects.judged)
show(
    f"Judged gaps: {judged} ("
    + (
        "the fairness gates of step 02"
        if effects.gaps["judged"].sum() < len(effects.gaps)
        else "step 02 gates none: every gap"
    )
    + f"); the others are reported. Every judged gap's interval, and every reduction's, holds at once with "
    f"{effects.confidence:.0%} confidence (Bonferroni over the judged gaps of the three models), so a "
    "reduction whose interval lies above zero is shown. A gap is measured over the groups large enough "
    "to judge it (step 02's power rule); `NaN`: fewer than two such groups."
)
effects.gaps.round(3)

# %%
judged_gaps = effects.gaps[effects.gaps["judged"]].dropna(subset=["gap"])
shown_metrics = list(dict.fromkeys(judged_gaps.index.get_level_values("metric")))
fig, axes = plt.subplots(1, max(len(shown_metrics), 1), figsize=(5 * max(len(shown_metrics), 1), 3.8), squeeze=False)
for ax, metric in zip(axes[0], shown_metrics, strict=False):
    for name, row in judged_gaps.xs(metric, level="metric").iterrows():
        cost = effects.costs.loc[name]
        ax.errorbar(
            row["gap"],
            cost["expected_cost"],
            xerr=[[row["gap"] - row["gap_low"]], [row["gap_high"] - row["gap"]]],
            yerr=[
                [cost["expected_cost"] - cost["expected_cost_low"]],
                [cost["expected_cost_high"] - cost["expected_cost"]],
            ],
            fmt="o",
            capsize=3,
            label=name,
        )
    ax.set(title=metric, xlabel="gap (lower is fairer), with its interval", ylabel="expected cost per decision")
    ax.legend(loc="best")
fig.tight_layout()
step.save_figure(fig, "remediation_tradeoff.png")
plt.show()

# %% [markdown]
# ## The plan
# A remediation is adopted only on evidence: its reduction of a judged gap is shown (the
# reduction's interval lies above zero), no judged gap is shown to widen, and its cost per
# decision is not shown to exceed no remediation's by more than the margin (the cost ratio's
# upper bound is at most 1 + `max_cost_increase`). Otherwise the data is left as it is.
# Reweighing comes before resampling when both qualify: resampling draws rows with the same
# weights, so it has the same effect in expectation plus the noise of one draw.

# %%
verdicts = bias.remediation_verdicts(effects, cfg.max_cost_increase)
chosen = bias.choose_remediation(verdicts) if remediation == "auto" else remediation
summary = bias.plan_summary(chosen, effects)
display(verdicts[["adopted", "why", "reduction_room", "cost_room"]].round(2))
lines = [
    f"- **{name}** ({'adopted' if row.adopted else 'not adopted'}: {row.why}): {row.evidence}."
    for name, row in verdicts.iterrows()
]
if remediation == "auto":
    how = (
        f"adopted on evidence: {verdicts.loc[chosen, 'why']}"
        if chosen != "none"
        else "no candidate earned its place on the evidence, so the data is left as it is"
    )
    room = bias.choice_room(verdicts, chosen)
    stability = (
        "No judged gap could be measured, so no bound decides the choice."
        if pd.isna(room)
        else (
            f"How firm the choice is: the bound that decides it lies **{room:.2f}** half-widths of its interval from its line "
            "(a reduction's lower bound from zero, a cost ratio's upper bound from the margin). "
            + (
                "Under one half-width, another seed (another split of the same rows) may well change the choice."
                if room < 1
                else "Another seed (another split of the same rows) would rarely change it."
            )
        )
    )
else:
    how, stability = "set in params.yaml (`data_bias_plan.remediation`), whatever the evidence below", ""
show(
    f"Chosen remediation: **{chosen}**, {how}.\n\n" + "\n".join(lines) + "\n\n" + stability + "\n\n"
    f"Expected cost per decision of the quick model: {summary['expected_cost_before']:.3f} without remediation, "
    f"{summary['expected_cost_after']:.3f} with `{chosen}`. Step 06 applies it as sample weights on the training "
    "split; step 08 checks what remains in the final model, on the test split."
)
step.write_json(
    "bias_plan.json",
    {
        **summary,
        "requested": remediation,
        "cost_margin": cfg.max_cost_increase,
        "group_columns": spec["sensitive_features"],
        "weights": weights_table[["group", "label", "rows", "weight"]].to_dict(orient="records"),
        "effects": effects.costs.reset_index().to_dict(orient="records"),
        "gaps": effects.gaps.reset_index().to_dict(orient="records"),
        "verdicts": verdicts.reset_index().to_dict(orient="records"),
        "joint_proxy_auc": joint,
        "strong_proxies": strong,
    },
)
pd.concat({f: t for f, t in by_feature.items()}, names=["feature"]).to_csv(step.out / "representation.csv")
plot_rows = [
    {"group": f"{f}={g}", "positive_rate": round(float(r), 4)}
    for f, t in by_feature.items()
    for g, r in t["positive_rate"].items()
]
step.write_plot_data("base_rates.csv", pd.DataFrame(plot_rows))

# %% [markdown]
# ## Summary
# The representation tables and base-rate gaps above are the bias present in the data. The
# proxy scan shows how much of the sensitive information the remaining features still carry.
# `bias_plan.json` records the chosen remediation with its measured effect (costs and gaps with
# their intervals, the verdict on each candidate) and the weights step 06 applies; the final
# model's fairness is assessed, and if needed mitigated, in step 08.
