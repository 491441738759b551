# %% [markdown]
# # 05 · Data pipeline
#
# **What this step decides:** whether the selected data can be used, and how it is cleaned,
# split and turned into features. The data is validated against the schema step 03 inferred
# (types, allowed categories, ranges, nullability) with pandera; then it is split into
# train, validation and test sets, stratified by label and sensitive group, and the feature
# pipeline is fitted on the training split only. No row is dropped: every row's split is drawn
# from a hash of its content and `seed`, so identical rows (the same person twice, or people alike
# in every selected column) always land in the same split, and the split is a function of the
# rows alone, not of their order or of the files that hold them.
#
# **Inputs:** `data/interim/selected.parquet`, `reports/03_data_selection/dataset_spec.json`,
# the `data_pipeline` section of `params.yaml`.
# Data larger than memory (step 03 read a directory of Parquet files) stay partitioned: each
# partition is validated, and split by the same draws and cuts as the same rows in memory (the cuts
# counted over every partition), and every split is written as a directory of parts;
# the feature pipeline is fitted on a seeded sample of the training split (`max_rows`) and then
# transforms every training row.
#
# **Outputs:** `data/processed/{train,validation,test}.parquet` (DVC-versioned; directories of parts when partitioned),
# `models/feature_pipeline.skops`, `reports/05_data_pipeline/` (validation report, split report).

# %% tags=["parameters"]
validation_fraction = 0.2
test_fraction = 0.3
max_rows = 1000000
seed = 42

# %%
import matplotlib.pyplot as plt
import pandas as pd

from {{ cookiecutter.package_name }} import artifacts, bias, config, data, features, schema, tables
from {{ cookiecutter.package_name }}.notebook import markdown_table, show, start_step

cfg = config.DataPipeline.from_cell(globals())
step = start_step("data_pipeline", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
selected = tables.read(
    step.path("data/interim/selected.parquet"), "data/interim/selected.parquet", step.compute, step.root
)
target = spec["target"]

# %% [markdown]
# ## Validation against the schema

# %%
data_schema = schema.build_schema(spec)
problems = selected.violations(data_schema)  # partition by partition when partitioned
if problems.empty:
    show(f"All **{len(selected):,} rows** pass the schema's {len(spec['columns'])} column checks.")
else:
    show(f"**{len(problems)} schema checks fail** on the selected data:\n\n" + markdown_table(problems))
missing_columns = problems[problems["check"] == "column_in_dataframe"]["column"].tolist()
if missing_columns:
    raise data.DataContractError(
        f"column {missing_columns[0]!r} required by the schema is missing from the selected data"
    )
problems

# %% [markdown]
# ## Identical rows stay together
# A row and its exact copy on two sides of the split would let the model be judged on a row it was
# fitted on. Dropping the copies would instead change the population the model is judged on (the
# people who appear twice are not a random sample of the rows). So every row is kept, and identical
# rows are placed together.

# %%
splits = selected.split(spec, cfg, step.path("data/processed"))  # written: partitioned splits in one pass over the data
split_cells = {name: part.cells(spec) for name, part in splits.items()}
identical = features.identical_rows({name: part.row_hashes() for name, part in splits.items()})
rows_in = len(selected)
if identical["rows"] != rows_in:
    raise RuntimeError(f"the splits hold {identical['rows']:,} rows, the selected data {rows_in:,}")
show(
    f"All **{rows_in:,} rows** are kept. **{identical['repeats']:,}** of them ({identical['repeats'] / rows_in:.1%}) "
    f"repeat another row exactly; rows found in two splits: **{identical['in_two_splits']:,}** "
    "(counted on the written splits, by a 64-bit hash of each row)."
)

# %% [markdown]
# ## Split, stratified by label and sensitive group

# %%
sizes = pd.DataFrame(
    {
        name: {
            "rows": int(c["rows"].sum()),
            "share": int(c["rows"].sum()) / rows_in,
            "positive_rate": bias.overall_rate(c, target),
        }
        for name, c in split_cells.items()
    }
).T
sizes.round(4)

# %%
first = spec["sensitive_features"][0]
mix = pd.concat(
    {name: (lambda by: by / by.sum())(c.groupby(first)["rows"].sum()) for name, c in split_cells.items()}, axis=1
).fillna(0)
mix = mix.sort_values("train", ascending=False, kind="stable")  # largest group first
ax = mix.T.plot.bar(stacked=True, figsize=(7, 3.5), colormap="tab20")
ax.set_title(f"Group mix of `{spec['sensitive_features'][0]}` in every split")
ax.set_xlabel("split")
ax.set_ylabel("share of rows")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
step.save_figure(ax.figure, "split_group_mix.png")
plt.show()

# %%
largest_shift = float((mix.max(axis=1) - mix.min(axis=1)).max())
prevalence = bias.overall_rate(pd.concat(split_cells.values()), target)  # of all rows
show(
    f"Train / validation / test: **{' / '.join(f'{int(n):,}' for n in sizes['rows'])} rows**; "
    f"positive rates {', '.join(f'{p:.2%}' for p in sizes['positive_rate'])}, against **{prevalence:.2%}** "
    f"in all rows. The share of any "
    f"`{spec['sensitive_features'][0]}` group differs by at most **{largest_shift:.2%}** between splits."
)

# %% [markdown]
# ## Feature pipeline, fitted on the training split only

# %%
feature_cols = spec["numeric_features"] + spec["categorical_features"]
fit_rows = splits["train"].sample(max_rows, seed)  # every training row, unless there are more than max_rows
pipeline = features.build_preprocessor(spec).fit(fit_rows[feature_cols])
names = pipeline.get_feature_names_out()
show(
    f"{len(feature_cols)} input features become **{len(names)} model features** "
    f"({len(spec['numeric_features'])} numeric, imputed by the median and scaled; "
    f"{len(spec['categorical_features'])} categorical, imputed and one-hot encoded, rare and unseen categories grouped)."
)
if len(fit_rows) < sizes.loc["train", "rows"]:  # fitted on a sample: does it describe every training row?
    gap = (
        splits["train"].transform_means(pipeline, feature_cols)
        - pipeline.transform(fit_rows[feature_cols]).mean(axis=0)
    ).abs()
    show(
        f"Fitted on a seeded sample of **{len(fit_rows):,}** of {int(sizes.loc['train', 'rows']):,} training rows (`max_rows`). "
        f"Transforming every training row, partition by partition, the mean of a model feature differs from the "
        f"sample's by at most **{gap.max():.4f}** (`{gap.idxmax()}`)."
    )

# %%
artifacts.save(pipeline, step.path("models/feature_pipeline.skops"))
step.write_json(
    "data_pipeline.json",
    {
        "rows_in": rows_in,
        "identical_rows": identical["repeats"],  # rows repeating another, kept together in one split
        "rows_in_two_splits": identical["in_two_splits"],
        "prevalence": prevalence,
        "splits": sizes.to_dict(orient="index"),
        "group_mix": {k: v for k, v in mix.to_dict().items()},
        "schema_violations": problems.to_dict(orient="records"),
        "model_features": [str(n) for n in names],
    },
)

# %% [markdown]
# ## Summary
# The data passed validation (or the violations are listed above), every row was kept with its
# identical copies in one split, and the three splits keep the label and group mix. They are stored as Parquet under
# `data/processed/` and versioned by DVC; the fitted feature pipeline is in
# `models/feature_pipeline.skops`, and step 06 builds every candidate model on the same
# preprocessing definition.
