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
# batch scores), `reports/metrics/deployment.json`.

# %% tags=["parameters"]
latency_requests = 50
batch_size = 100
seed = 42

# %%
import json
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import __version__, artifacts, deployment, fairness, gates, scoring
from {{ cookiecutter.package_name }}.model_card import model_card_markdown
from {{ cookiecutter.package_name }}.notebook import show, start_step
from {{ cookiecutter.package_name }}.profiling import feature_columns, input_columns

step = start_step("deployment")
spec = step.read_report("data_selection", "dataset_spec.json")
modeling = step.read_report("modeling", "modeling.json")
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
test = pd.read_parquet(step.path("data/processed/test.parquet"))
train_path = step.path("data/processed/train.parquet")
model_path = step.path("models/model.skops")

# %% [markdown]
# ## One deployable artifact

# %%
pipeline = artifacts.load(step.path("models/trained_pipeline.skops"))
training_md5 = scoring.file_md5(train_path)
metadata = {
    "model_name": modeling["model"],
    "version": f"{__version__}+{training_md5[:8]}",
    "params": modeling["params"],
    "schema": {c: spec["columns"][c] for c in input_columns(spec)},
    "feature_columns": feature_columns(spec),
    "sensitive_features": spec["sensitive_features"],
    "sensitive_bins": spec["sensitive_bins"],
    "positive_label": spec["positive_label"],
    "negative_label": spec["negative_label"],
    "training_data_md5": training_md5,
    "train_rows": len(pd.read_parquet(train_path, columns=[spec["target"]])),
    "metrics": modeling["test_metrics"],
    "releasable": modeling["releasable"],
    "reasons": modeling["reasons"],
    "needs_sensitive_features": False,
}
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
check = subprocess.run(
    [
        sys.executable,
        "-c",
        "import sys, pandas as pd; from {{ cookiecutter.package_name }}.scoring import load_bundle, score; "
        "b = load_bundle(sys.argv[1], allow_unreleased=True); "
        "print(score(b, pd.read_parquet(sys.argv[2]), allow_extra=True, allow_unseen=True)['score'].to_json(orient='values', double_precision=15))",
        str(model_path),
        str(step.path("data/processed/test.parquet")),
    ],
    capture_output=True,
    text=True,
    check=True,
)
fresh_scores = np.array(json.loads(check.stdout))
in_process = scoring.score(bundle, test, allow_extra=True, allow_unseen=True)
max_difference = float(np.max(np.abs(fresh_scores - in_process["score"].to_numpy())))
show(
    f"Scores of all {len(test):,} test records from a fresh process differ from in-memory scores by at most **{max_difference:.2e}**."
)
assert max_difference < 1e-9, "the saved artifact does not reproduce the in-memory model"

# %% [markdown]
# ## Batch scoring with the console command

# %%
scores_path = step.out / "test_scores.parquet"
if modeling["releasable"]:
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "{{ cookiecutter.package_name }}.cli",
            "predict",
            str(step.path("data/processed/test.parquet")),
            str(scores_path),
            "--model",
            str(model_path),
            "--allow-extra",
            "--allow-unseen",
        ],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    batch = pd.read_parquet(scores_path)
    batch_matches = bool(
        np.allclose(batch["score"], in_process["score"])
        and (batch["decision"].to_numpy() == in_process["decision"].to_numpy()).all()
    )
    show(
        f"`{{ cookiecutter.package_name }} predict` scored **{len(batch):,} records**; matches in-process predictions: **{batch_matches}**. "
        f"{int(batch['decision'].sum()):,} positive decisions ({batch['decision'].mean():.1%})."
    )
else:
    batch_matches = None
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
    xlabel="score (probability of the positive outcome)",
    ylabel="records",
)
ax.legend()
step.save_figure(fig, "score_distribution.png")
plt.show()

# %% [markdown]
# ## The HTTP service on loopback

# %%
records = json.loads(test[input_columns(spec)].head(2000).to_json(orient="records"))
service = {}
if modeling["releasable"]:
    with deployment.running_service(model_path) as url:
        status, health, _ = deployment.request(f"{url}/health")
        status_one, one, _ = deployment.request(f"{url}/predict", json.dumps(records[0]).encode())
        status_many, many, _ = deployment.request(f"{url}/predict", json.dumps(records[:batch_size]).encode())
        bad_json, _, _ = deployment.request(f"{url}/predict", b"{not json")
        missing = {k: v for k, v in records[0].items() if k != feature_columns(spec)[0]}
        bad_schema, bad_body, _ = deployment.request(f"{url}/predict", json.dumps([missing]).encode())
        latency = deployment.latency_profile(url, records, batch_size, latency_requests, seed)
    served = np.array([p["score"] for p in many["predictions"]])
    service = {
        "health": health,
        "single_status": status_one,
        "batch_status": status_many,
        "matches_in_process": bool(np.allclose(served, in_process["score"].to_numpy()[:batch_size])),
        "malformed_json_status": bad_json,
        "missing_column_status": bad_schema,
        "missing_column_reason": bad_body["error"],
        **latency,
    }
    display(pd.Series(service).to_frame("value"))
    show(
        f"`/health` answered {status}; `/predict` answered {status_one} for one record and {status_many} for {batch_size}, "
        f"with scores equal to in-process predictions: **{service['matches_in_process']}**. Malformed JSON got {bad_json}, "
        f'a record without `{feature_columns(spec)[0]}` got {bad_schema} ("{bad_body["error"]}"). Latency for {batch_size} '
        f"records per request over {latency_requests} requests: p50 **{latency['p50_latency_ms']:.1f} ms**, p99 **{latency['p99_latency_ms']:.1f} ms**."
    )

# %% [markdown]
# ## Gates and model card

# %%
gate_table = gates.evaluate(gates.gates_for(criteria["gates"], "deployment"), service)
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
    "group_metrics": fairness.group_metrics_table(test[spec["target"]].to_numpy(), decisions, test, spec)
    .reset_index()
    .round(3),
}
step.write_text("model_card.md", model_card_markdown(card))
deployed = bool(modeling["releasable"] and gate_table["passed"].all())
reasons = modeling["reasons"] + gates.failures(gate_table)
step.write_json(
    "deployment.json",
    {
        "deployed": deployed,
        "reasons": reasons,
        "artifact": "models/model.skops",
        "version": metadata["version"],
        "batch_scoring_matches": batch_matches,
        "service": service,
        "gates": gate_table.to_dict(orient="records"),
    },
)
step.write_metrics({"deployed": deployed, **{k: v for k, v in service.items() if k.endswith("_ms")}})

# %% [markdown]
# ## Summary

# %%
show(
    (
        f"**Deployed** `{metadata['model_name']}` version `{metadata['version']}` as `models/model.skops`: batch scoring and the "
        f"HTTP service both reproduce in-process predictions, and the latency gate passes. The model card is in "
        f"`reports/07_deployment/model_card.md`. Step 08 decides the release after the fairness assessment."
    )
    if deployed
    else "**Not deployed:** "
    + "; ".join(reasons)
    + ". The artifact is kept with this verdict in its metadata; the service refuses it."
)
