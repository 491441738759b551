# %% [markdown]
# # 05 · Data pipeline
#
# **What this step decides:** whether the selected data can be used, and how it is cleaned,
# split and turned into features. The data is validated against the schema step 03 inferred
# (types, allowed categories, ranges, nullability) with pandera; then it is split into
# train, validation and test sets, stratified by label and sensitive group with a fixed seed,
# and the feature pipeline is fitted on the training split only.
#
# **Inputs:** `data/interim/selected.parquet`, `reports/03_data_selection/dataset_spec.json`,
# the `data_pipeline` section of `params.yaml`.
# **Outputs:** `data/processed/{train,validation,test}.parquet` (DVC-versioned),
# `models/feature_pipeline.skops`, `reports/05_data_pipeline/` (validation report, split report).

# %% tags=["parameters"]
validation_fraction = 0.15
test_fraction = 0.15
drop_duplicates = True
seed = 42

# %%
import matplotlib.pyplot as plt
import pandas as pd

from {{ cookiecutter.package_name }} import artifacts, config, data, features, schema
from {{ cookiecutter.package_name }}.notebook import markdown_table, show, start_step

cfg = config.DataPipeline.from_cell(globals())
step = start_step("data_pipeline")
spec = step.read_report("data_selection", "dataset_spec.json")
selected = pd.read_parquet(step.path("data/interim/selected.parquet"))
target = spec["target"]

# %% [markdown]
# ## Validation against the schema

# %%
data_schema = schema.build_schema(spec)
problems = schema.violations(data_schema, selected)
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
# ## Cleaning

# %%
splits = features.split_selected(selected, spec, cfg)
before, kept = len(selected), sum(len(part) for part in splits.values())
show(
    f"Removed **{before - kept:,} duplicated rows** ({(before - kept) / before:.1%})."
    if drop_duplicates
    else "Duplicated rows kept (`data_pipeline.drop_duplicates: false`)."
)

# %% [markdown]
# ## Split, stratified by label and sensitive group

# %%
sizes = pd.DataFrame(
    {
        name: {"rows": len(part), "share": len(part) / kept, "positive_rate": part[target].mean()}
        for name, part in splits.items()
    }
).T
sizes.round(4)

# %%
mix = pd.concat(
    {
        name: data.sensitive_groups(part, spec)[spec["sensitive_features"][0]].value_counts(normalize=True)
        for name, part in splits.items()
    },
    axis=1,
).fillna(0)
ax = mix.T.plot.bar(stacked=True, figsize=(7, 3.5), colormap="tab20")
ax.set_title(f"Group mix of `{spec['sensitive_features'][0]}` in every split")
ax.set_xlabel("split")
ax.set_ylabel("share of rows")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
step.save_figure(ax.figure, "split_group_mix.png")
plt.show()

# %%
largest_shift = float((mix.max(axis=1) - mix.min(axis=1)).max())
show(
    f"Train / validation / test: **{len(splits['train']):,} / {len(splits['validation']):,} / {len(splits['test']):,} rows**; "
    f"positive rates {', '.join(f'{p:.1%}' for p in sizes['positive_rate'])}. The share of any "
    f"`{spec['sensitive_features'][0]}` group differs by at most **{largest_shift:.2%}** between splits."
)

# %% [markdown]
# ## Feature pipeline, fitted on the training split only

# %%
feature_cols = spec["numeric_features"] + spec["categorical_features"]
pipeline = features.build_preprocessor(spec)
encoded = pipeline.fit_transform(splits["train"][feature_cols])
names = pipeline.get_feature_names_out()
show(
    f"{len(feature_cols)} input features become **{encoded.shape[1]} model features** "
    f"({len(spec['numeric_features'])} numeric, imputed by the median and scaled; "
    f"{len(spec['categorical_features'])} categorical, imputed and one-hot encoded, rare and unseen categories grouped)."
)

# %%
step.path("data/processed").mkdir(parents=True, exist_ok=True)
for name, part in splits.items():
    part.to_parquet(step.path(f"data/processed/{name}.parquet"), index=False)
artifacts.save(pipeline, step.path("models/feature_pipeline.skops"))
step.write_json(
    "data_pipeline.json",
    {
        "rows_in": before,
        "duplicates_removed": before - kept,
        "splits": sizes.to_dict(orient="index"),
        "group_mix": {k: v for k, v in mix.to_dict().items()},
        "schema_violations": problems.to_dict(orient="records"),
        "model_features": [str(n) for n in names],
    },
)

# %% [markdown]
# ## Summary
# The data passed validation (or the violations are listed above), duplicates were handled,
# and the three splits keep the label and group mix. They are stored as Parquet under
# `data/processed/` and versioned by DVC; the fitted feature pipeline is in
# `models/feature_pipeline.skops`, and step 06 builds every candidate model on the same
# preprocessing definition.
