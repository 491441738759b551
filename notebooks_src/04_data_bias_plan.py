# %% [markdown]
# # 04 · Data bias remediation plan
#
# **What this step decides:** how to treat bias that is already in the data before a model
# learns it. For every sensitive feature we measure how each group is represented, how
# often its rows carry the positive label, and how well the *other* features reveal group
# membership (proxies: dropping the sensitive column does not remove what they encode).
# Then we try the candidate remediations on a quick model and choose one from the evidence.
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
# the `data_bias_plan` section of `params.yaml` (and `data_pipeline`'s split).
# **Outputs:** `reports/04_data_bias_plan/bias_plan.json` (the chosen remediation and the
# sample weights per group and label that step 06 applies), `representation.csv`, figures,
# and `reports/plots/base_rates.csv` for `dvc plots`. No row is dropped here.

# %% tags=["parameters"]
min_group_size = 30
remediation = "auto"
proxy_auc_alert = 0.8
max_rows = 50000
seed = 42

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import bias, config, data, features, tables
from {{ cookiecutter.package_name }}.notebook import pct, show, start_step
from {{ cookiecutter.package_name }}.project import load_params

cfg = config.DataBiasPlan.from_cell(globals())
step = start_step("data_bias_plan")
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
# ## Candidate remediations, measured
# Each candidate trains the same quick model (logistic regression on the step-05 style
# features) on 70% of the training split (of a sample of it, on large data) and is measured on
# the other 30%: accuracy, and the largest selection-rate gap (demographic parity difference)
# over the sensitive features. The reweighing weights come from the training split's groups.

# %%
weights_table = bias.reweighing_of_cells(training.cells(spec), spec)
fit_rows = training.sample(max_rows, seed)
effects = bias.remediation_effects(fit_rows, spec, weights_table, min_group_size, seed)
show(
    f"Measured on **{len(fit_rows):,}** of the {len(training):,} training rows "
    f"({len(selected) - len(training):,} validation and test rows, and duplicates, left out)."
)
effects.round(4)

# %%
fig, ax = plt.subplots()
ax.scatter(effects["max_parity_gap"], effects["accuracy"], s=60)
for name, row in effects.iterrows():
    ax.annotate(name, (row["max_parity_gap"], row["accuracy"]), textcoords="offset points", xytext=(6, 4))
ax.set_title("Remediation candidates: accuracy against fairness gap")
ax.set_xlabel("largest demographic parity difference (lower is fairer)")
ax.set_ylabel("hold-out accuracy")
step.save_figure(fig, "remediation_tradeoff.png")
plt.show()

# %% [markdown]
# ## The plan

# %%
chosen = bias.choose_remediation(effects) if remediation == "auto" else remediation
summary = bias.plan_summary(chosen, effects)
show(
    f"Chosen remediation: **{chosen}** ({'chosen from the evidence: smallest gap within 1 point of accuracy' if remediation == 'auto' else 'set in params.yaml'}). "
    f"On the quick model it moves the largest parity gap from **{summary['parity_gap_before']:.3f}** to "
    f"**{summary['parity_gap_after']:.3f}** and accuracy from {summary['accuracy_before']:.3f} to {summary['accuracy_after']:.3f}. "
    "Step 06 applies it as sample weights on the training split; step 08 checks what remains in the final model."
)
step.write_json(
    "bias_plan.json",
    {
        **summary,
        "requested": remediation,
        "group_columns": spec["sensitive_features"],
        "weights": weights_table[["group", "label", "rows", "weight"]].to_dict(orient="records"),
        "effects": effects.reset_index(names="remediation").to_dict(orient="records"),
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
# `bias_plan.json` records the chosen remediation with its measured effect and the weights
# step 06 applies; the final model's fairness is assessed, and if needed mitigated, in step 08.
