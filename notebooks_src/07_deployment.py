# %% [markdown]
# # 07 · Deployment
#
# **What this step decides:** whether the model goes out, and in what form. The fitted
# pipeline, its decision threshold and its metadata (input schema, version, training-data
# hash, metrics) become **one** deployable skops file that loads only with an explicit list of
# trusted types. It is then exercised the two ways it will be used: batch scoring through
# the package's console command, and the HTTP service started for real on loopback, whose
# answers must equal in-process predictions and whose latency is checked against step 02.
# A model that step 06 did not mark releasable is packaged with that verdict and not served.
#
# **Inputs:** `models/trained_pipeline.skops`, `reports/06_modeling/modeling.json`, the data spec,
# the test split, the success criteria; the `deployment` section of `params.yaml`.
# **Outputs:** `models/model.skops`, `reports/07_deployment/` (model card, deployment record,
# batch scores), `reports/metrics/deployment.json`; the latencies measured on this run in
# `reports/metrics/latency.json` (they differ from run to run, so no other file holds them and
# no stage depends on them: the latency gate's verdict is recorded, its figure is not).

# %% tags=["parameters"]
latency_requests = 50
batch_size = 100
seed = 42

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import __version__, artifacts, config, deployment, fairness, gates, scoring
from {{ cookiecutter.package_name }}.model_card import model_card_markdown
from {{ cookiecutter.package_name }}.notebook import show, start_step
from {{ cookiecutter.package_name }}.profiling import feature_columns, input_columns

cfg = config.Deployment.from_cell(globals())
step = start_step("deployment", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
modeling = step.read_report("modeling", "modeling.json")
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
test_path = step.path("data/processed/test.parquet")
test = pd.read_parquet(test_path)
model_path = step.path("models/model.skops")

# %% [markdown]
# ## One deployable artifact

# %%
pipeline = artifacts.load(step.path("models/trained_pipeline.skops"))
metadata = deployment.bundle_metadata(modeling, spec, step.path("data/processed/train.parquet"), __version__)
bundle = scoring.make_bundle(pipeline, modeling["threshold"], metadata)
artifacts.save(bundle, model_path)
info = artifacts.describe(model_path)
show(
    f"`models/model.skops`: **{info['bytes'] / 1024:.0f} KiB**, version `{metadata['version']}`; it loads only with "
    f"skops' safe defaults plus these explicitly trusted types: {', '.join(f'`{t}`' for t in artifacts.trusted_types_in(model_path)) or 'none'}."
)

# %% [markdown]
# ## The artifact in a fresh process equals the one in memory

# %%
fresh_scores = deployment.fresh_process_scores(model_path, test_path)
in_process = scoring.score(bundle, test, allow_extra=True, allow_unseen=True)
max_difference = float(np.max(np.abs(fresh_scores - in_process["score"].to_numpy())))
show(
    f"Scores of all {len(test):,} test records from a fresh process differ from in-memory scores by at most **{max_difference:.2e}**."
)
assert max_difference < 1e-9, "the saved artifact does not reproduce the in-memory model"

# %% [markdown]
# ## Batch scoring with the console command

# %%
batch_matches = None
if modeling["releasable"]:
    batch = deployment.predict_with_cli(model_path, test_path, step.out / "test_scores.parquet")
    batch_matches = bool(
        np.allclose(batch["score"], in_process["score"])
        and (batch["decision"].to_numpy() == in_process["decision"].to_numpy()).all()
    )
    show(
        f"`{{ cookiecutter.package_name }} predict` scored **{len(batch):,} records**; matches in-process predictions: **{batch_matches}**. "
        f"{int(batch['decision'].sum()):,} positive decisions ({batch['decision'].mean():.1%})."
    )
else:
    show("**Not deployed:** step 06 marked the model not releasable: " + "; ".join(modeling["reasons"]) + ".")

# %% [markdown]
# ## What the deployed decision looks like
# Scores of the test records by their actual outcome, and the threshold step 06 chose for
# the business cost: records right of the line get the positive decision.

# %%
actual = test[spec["target"]].to_numpy()
fig, ax = plt.subplots(figsize=(8, 3.8))
bins = np.linspace(0, 1, 41)
for label, name in ((0, spec["negative_label"]), (1, spec["positive_label"])):
    ax.hist(in_process["score"].to_numpy()[actual == label], bins=bins, alpha=0.6, label=f"actual: {name}")
ax.axvline(modeling["threshold"], color="black", linestyle="--", label=f"threshold {modeling['threshold']:.3f}")
ax.set(
    title="Deployed model's scores on the test split, by actual outcome",
    xlabel="score for the positive outcome",
    ylabel="records",
)
ax.legend()
step.save_figure(fig, "score_distribution.png")
plt.show()

# %% [markdown]
# ## The HTTP service on loopback
# Started as `{{ cookiecutter.package_name }} serve` would be, it must answer good requests with the
# in-process scores and bad ones with a 4xx that says why. Its latency is measured too; the
# figures go to `reports/metrics/latency.json`, and this report shows only the gate's verdict,
# so that a rerun writes the same report.

# %%
service, latency = {}, {}
if modeling["releasable"]:
    records = json.loads(test[input_columns(spec)].head(2000).to_json(orient="records"))
    missing = feature_columns(spec)[0]
    answers, latency = deployment.exercise_service(
        model_path, records, missing, cfg.batch_size, cfg.latency_requests, cfg.seed
    )
    served = np.array(answers.pop("batch_scores"))
    service = {
        **answers,
        "matches_in_process": bool(np.allclose(served, in_process["score"].to_numpy()[: cfg.batch_size])),
    }
    display(pd.Series(service).to_frame("value"))
    show(
        f"`/predict` answered {service['single_status']} for one record and {service['batch_status']} for {cfg.batch_size}, "
        f"with scores equal to in-process predictions: **{service['matches_in_process']}**. Malformed JSON got "
        f"{service['malformed_json_status']}, a record without `{missing}` got {service['missing_column_status']} "
        f'("{service["missing_column_reason"]}").'
    )
step.write_measurements("latency", latency)

# %% [markdown]
# ## Gates and model card

# %%
skipped = {} if modeling["releasable"] else {"p99_latency_ms": "not measured: step 06 found the model not releasable"}
measured = gates.evaluate(gates.gates_for(criteria["gates"], "deployment"), {**service, **latency}, unreached=skipped)
gate_table = gates.without_values(measured, latency, "measured each run: reports/metrics/latency.json")
display(gate_table)
decisions = in_process["decision"].to_numpy()
card = {
    **metadata,
    "owner": "{{ cookiecutter.author_name }}",
    "threshold": modeling["threshold"],
    "artifact": "models/model.skops",
    "decision": charter["decision"],
    "decision_maker": charter["decision_maker"],
    "cost_false_positive": charter["cost_false_positive"],
    "cost_false_negative": charter["cost_false_negative"],
    "test_rows": len(test),
    "remediation": modeling["remediation"],
    "gates": modeling["gates"] + gate_table.to_dict(orient="records"),
    "group_metrics": fairness.group_metrics_table(actual, decisions, test, spec).reset_index().round(3),
    "calibration": step.read_report("modeling", "calibration.json")["tables"]["as trained"],
}
step.write_text("model_card.md", model_card_markdown(card))

# %%
deployed = bool(modeling["releasable"] and gate_table["passed"].all())
reasons = modeling["reasons"] + gates.failures(gate_table)
record = {
    "deployed": deployed,
    "reasons": reasons,
    "artifact": "models/model.skops",
    "version": metadata["version"],
    "batch_scoring_matches": batch_matches,
    "service": service,
    "gates": gate_table.to_dict(orient="records"),
}
step.write_json("deployment.json", record)
step.write_metrics({"deployed": deployed})

# %% [markdown]
# ## Summary

# %%
show(
    (
        f"**Deployed** `{metadata['model_name']}` version `{metadata['version']}` as `models/model.skops`: batch scoring and the "
        f"HTTP service both reproduce in-process predictions, and the latency gate passes (figures in "
        f"`reports/metrics/latency.json`). The model card is in `reports/07_deployment/model_card.md`. "
        f"Step 08 decides the release after the fairness assessment."
    )
    if deployed
    else "**Not deployed:** "
    + "; ".join(reasons)
    + ". The artifact is kept with this verdict in its metadata; the service refuses it."
)
