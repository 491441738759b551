# %% [markdown]
# # 03 · Data selection
#
# **What this step decides:** which columns are available and useful enough to become
# features, and which must be kept out: identifiers (unique per row, so they memorise
# rather than generalise) and columns near-unique per person (names, codes), leakage (a column
# recorded after the outcome: it predicts the target far better than the current process can, or
# is present mostly for one outcome, or carries a model that is too good to be true),
# constants, empty columns, copies of another column, free text and dates.
#
# **Inputs:** the raw data named by `data.path` (a CSV or Parquet file, or a directory of Parquet
# files for data larger than memory, read partition by partition); the `data` and `data_selection`
# sections of `params.yaml`; the business case's baseline process (step 01's charter).
# **Outputs:** `data/interim/selected.parquet` (selected columns, target as 0/1),
# `reports/03_data_selection/dataset_spec.json` (the role and schema of every column, used
# by every later step), `data_dictionary.csv` and `datasheet.md`.

# %% tags=["parameters"]
path = "data/raw/adult.csv.gz"
target = "income"
positive_label = ">50K"
sensitive_features = ["sex", "race"]
id_columns = []
drop_columns = []
categorical_columns = []
keep_columns = []
production_dir = "data/production"
dataset_source = "UCI Adult (Census Income), extracted by Barry Becker from the 1994 US Census database; donated by Ronny Kohavi and Barry Becker (https://doi.org/10.24432/C5XW20)"
dataset_license = "CC BY 4.0"
leakage_auc = 0.95
leakage_error_share = 0.33
missing_odds_ratio = 10
rare_level_share = 0.25
max_plausible_auc = 0.97
screen_rows = 10000
identifier_unique_ratio = 0.95
max_categories = 200
max_rows = 1000000
seed = 42

# %%
import matplotlib.pyplot as plt
import pandas as pd

from {{ cookiecutter.package_name }} import config, datasheet, profiling, tables
from {{ cookiecutter.package_name }}.notebook import show, start_step

cfg = config.DataSelection.from_cell(globals())
step = start_step("data_selection", cfg)

# %% [markdown]
# ## Availability: load and check the data contract

# %%
raw = tables.read(step.path(cfg.path), compute=step.compute, root=step.root)
survey = raw.survey(cfg.contract)
labelled = raw.labelled(cfg.target, survey.positive_label)
frame = labelled.sample(cfg.max_rows, cfg.seed)  # every labelled row, unless there are more than max_rows
y = frame[cfg.target]
show(
    f"`{cfg.path}`: **{survey.rows:,} rows × {survey.columns} columns**"
    + (f" in {raw.frame.npartitions:,} partitions (read a few at a time)" if raw.partitioned else "")
    + f"; {survey.unlabelled:,} rows have no label. "
    f"Positive class `{cfg.positive_label}`: **{survey.prevalence:.1%}** of labelled rows. "
    f"{survey.duplicate_rows:,} rows are exact duplicates."
    + (
        f" Column types, usefulness and copies are profiled on a seeded sample of **{len(frame):,}** rows "
        "(`max_rows`); missing values, ranges and categories count every row."
        if len(frame) < survey.labelled
        else ""
    )
)

# %% [markdown]
# ## Profile of every column
# Single-feature AUC is measured out of fold (categories are replaced by their positive rate
# in the other fold), so 0.5 means useless and 1.0 means the column alone separates the classes.
# Text that reads as dates is a date column, measured on its timestamps: a date recorded after the
# outcome (a closing date, a last payment) leaks like any other column. Dates are then left out
# as features (a point in time does not carry over to future rows; derive what you need from
# them in `features.py`), and so are empty columns and exact copies of another column.
#
# The leakage screen looks at each column three ways. **Its values:** a column that alone ranks the
# target far better than the business case's baseline process does what the whole current process
# cannot, which a value recorded after the outcome does. **Whether it is missing:** a value present
# mostly for one outcome (a re-arrest date, a payout) is typically recorded after it; the values
# themselves may be fine, and `data.keep_columns` keeps such a column. **Its levels:** a categorical
# column whose rows sit mostly in levels seen once or twice (first and last names, free-text codes)
# names people rather than describing them, and is a proxy of who they are: it is left out, not
# grouped. Each decision is taken on a one-sided 95 % lower bound, so a column is excluded on clear
# evidence.

# %%
charter = step.read_report("business_case", "charter.json")
baseline_tpr, baseline_fpr = charter["baseline_true_positive_rate"], charter["baseline_false_positive_rate"]
ceiling = profiling.leakage_ceiling(cfg.leakage_auc, baseline_tpr, baseline_fpr, cfg.leakage_error_share)
show(
    f"The baseline process (*{charter['baseline_process']}*: true positive rate {baseline_tpr:.0%}, false positive "
    f"rate {baseline_fpr:.0%}) ranks with AUC **{(1 + baseline_tpr - baseline_fpr) / 2:.3f}**. A column that alone "
    f"makes fewer than {cfg.leakage_error_share:.0%} of its ranking errors (1 - AUC), or reaches `leakage_auc` "
    f"({cfg.leakage_auc}), is leakage: the ceiling is **AUC {ceiling:.3f}**, held against each column's one-sided "
    f"95 % lower bound. Whether a value is missing is leakage when its odds ratio with the target is at least "
    f"{cfg.missing_odds_ratio:g} (95 % lower bound); a categorical column with {cfg.rare_level_share:.0%} or more of "
    "its rows in levels seen at most twice is near-unique per person."
)

# %%
features = frame.drop(columns=[cfg.target])
prof = profiling.profile(features, y, categorical=cfg.categorical_columns, seed=cfg.seed)
duplicates = profiling.duplicate_columns(features)
prof = profiling.flag_columns(
    prof,
    ceiling,
    cfg.identifier_unique_ratio,
    cfg.max_categories,
    len(frame),
    duplicates,
    missing_odds_ratio=cfg.missing_odds_ratio,
    rare_level_share=cfg.rare_level_share,
)
prof, screen = profiling.combined_screen(
    features, y, prof, cfg.contract, cfg.max_plausible_auc, cfg.screen_rows, cfg.seed
)
prof = profiling.with_stats(prof, labelled.column_stats(list(features.columns)))  # over every row
prof[profiling.PROFILE_SHOWN].round(3)

# %%
ranked = prof.dropna(subset=["auc"]).sort_values("auc")
fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 1.2))
colors = ["#c44e52" if ex else "#4c72b0" for ex in ranked["exclude"]]
ax.barh(ranked["column"], ranked["auc"], color=colors)
ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
ax.axvline(ceiling, color="#c44e52", linestyle=":", linewidth=1)
ax.set_xlim(0.45, 1.0)
ax.set_title("Usefulness of each column on its own (red: excluded)")
ax.set_xlabel("single-feature ROC AUC, out of fold")
step.save_figure(fig, "column_usefulness.png")
plt.show()

# %% [markdown]
# ## The columns together
# Columns that each pass alone can still leak together. A quick gradient-boosting model of the
# candidate features (missing values left for it to use, out of fold on a stratified sample) says
# how well they rank the target jointly, and which columns carry it: the AUC lost when one column
# is shuffled. A model better than `max_plausible_auc` (lower bound of its 95 % interval) is more
# likely carried by values recorded after the outcome than by a breakthrough: its top contributor
# is excluded and the model fitted again, until it is plausible.

# %%
show(profiling.screen_summary(screen))

# %% [markdown]
# ## Selection

# %%
target_values = pd.Series([survey.positive_label, survey.negative_label], name=cfg.target)
spec = profiling.dataset_spec(frame, prof, cfg.contract, cfg.max_categories, target_values, labelled.column_schema)
flagged = prof[prof["flags"] != ""]
best = ranked.iloc[::-1].head(3)
show(
    f"**{len(spec['numeric_features'])} numeric** and **{len(spec['categorical_features'])} categorical** features selected; "
    f"**{len(spec['excluded_columns'])}** columns excluded"
    + ("".join(f"\n- `{c}`: {why}" for c, why in spec["excluded_columns"].items()) or ".")
    + "\n\nMost useful on their own: "
    + ", ".join(f"`{r.column}` (AUC {r.auc:.3f})" for r in best.itertuples())
    + "."
    + (
        "\n\nFlagged but kept: "
        + ", ".join(f"`{r.column}` ({r.flags})" for r in flagged[~flagged["exclude"]].itertuples())
        if (~flagged["exclude"]).any()
        else ""
    )
)
if spec["sensitive_bins"]:
    show(
        "Numeric sensitive features are grouped by quantile bins: "
        + "; ".join(f"`{f}`: {', '.join(f'{e:g}' for e in edges)}" for f, edges in spec["sensitive_bins"].items())
    )

# %%
selected = labelled.select([*profiling.input_columns(spec), cfg.target])
selected.write(step.path("data/interim/selected.parquet"))  # a directory of parts when the data are partitioned
step.write_json("dataset_spec.json", spec)
dictionary = profiling.data_dictionary(prof, spec, survey.target_dtype, survey.target_missing_rate)
dictionary.round(4).to_csv(step.out / "data_dictionary.csv", index=False)
facts = {
    "path": cfg.path,
    "source": cfg.dataset_source,
    "license": cfg.dataset_license,
    "rows": survey.rows,
    "columns": survey.columns,
    "prevalence": survey.prevalence,
    "unlabelled_rows": survey.unlabelled,
    "duplicate_rows": survey.duplicate_rows,
    "production_dir": cfg.production_dir,
    **{k: v for k, v in charter.items() if k in ("problem", "decision")},
}
step.write_text("datasheet.md", datasheet.datasheet_markdown(facts, prof, spec, screen))

# %% [markdown]
# ## Summary

# %%
show(
    f"Selected **{survey.labelled:,} labelled rows** and **{len(profiling.feature_columns(spec))} features** "
    f"(plus sensitive {', '.join(f'`{f}`' for f in cfg.sensitive_features)}, kept for fairness analysis, not as features) "
    f"into `data/interim/selected.parquet`. The datasheet (`datasheet.md`) and data dictionary "
    f"(`data_dictionary.csv`) document what was kept and why; `dataset_spec.json` carries the inferred schema "
    f"that step 05 validates against."
)
