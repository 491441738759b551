# %% [markdown]
# # 09 · Monitoring
#
# **What this step decides:** whether the solution in production still behaves as it did when
# it was released, and whether to recommend retraining. Every production batch is compared
# with the training data: schema violations and missing-value spikes (the schema of step 05),
# drift of every input feature (PSI, with the Kolmogorov-Smirnov statistic for numeric and the
# Jensen-Shannon distance and chi-square test for categorical features), drift of the scores,
# and where labels have arrived, model quality and per-group fairness against step 02's gates,
# plus the model's age.
#
# Batches are the files in `data.production_dir` (CSV or Parquet, with or without labels).
# When there are none, a sequence is simulated from held-out data, with drift injected into
# chosen batches so the report shows what catching it looks like.
#
# **Inputs:** `models/release.skops`, `data/processed/train.parquet` (the reference), the
# production batches, the success criteria; `data.production_dir` and the `monitoring` section.
# **Outputs:** `reports/09_monitoring/monitoring_status.json` (`retrain_recommended` and
# `reasons`), per-batch tables and time-series figures, `reports/plots/drift.csv`,
# `data/monitored/` (the batches as seen, for retraining).

# %% tags=["parameters"]
production_dir = "data/production"
simulation_source = "data/external/adult_test.csv.gz"
batch_size = 2000
drift_shift_batch = 3
drift_shift_feature = "hours_per_week"
drift_shift_scale = 1.3
group_mix_batch = 4
label_shift_batch = 5
psi_warning = 0.1
min_group_size = 100
fairness_bootstrap_samples = 100
model_age_days = 30
seed = 42

# %%
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import data, fairness, gates, modeling, monitoring, schema, scoring
from {{ cookiecutter.package_name }}.notebook import show, start_step

step = start_step("monitoring")
spec = step.read_report("data_selection", "dataset_spec.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
charter = step.read_report("business_case", "charter.json")
bundle = scoring.load_bundle(step.path("models/release.skops"), allow_unreleased=True)
meta, target = bundle["metadata"], spec["target"]
reference = pd.read_parquet(step.path("data/processed/train.parquet"))
kinds = {c: meta["schema"][c]["kind"] for c in meta["schema"]}
psi_alert = criteria["criteria"]["psi_alert"]
monitor_gates = gates.gates_for(criteria["gates"], "monitoring")
quality_gate = gates.gates_for(criteria["gates"], "modeling")[0]

# %% [markdown]
# ## The production batches

# %%
files = monitoring.list_batches(step.path(production_dir))
if files:
    batches = [
        (
            f.name,
            monitoring.prepare_batch(data.read_table(f, key=f"production batch {f.name}"), spec, f.name),
            "as received",
        )
        for f in files
    ]
    origin = f"{len(files)} files in `{production_dir}`"
else:
    source = monitoring.prepare_batch(
        data.read_table(step.path(simulation_source), key="monitoring.simulation_source"), spec, simulation_source
    )
    lacking = [c for c in scoring.required_columns(meta) if c not in source.columns]
    if lacking:
        raise data.DataContractError(
            f"monitoring.simulation_source: {simulation_source!r} lacks the training column {lacking[0]!r}; "
            "with your own data, set it to data/processed/test.parquet"
        )
    # The drift to inject needs a numeric model input; another numeric feature stands in for one the data lacks.
    numeric_inputs = [c for c in meta["feature_columns"] if kinds.get(c) == "numeric"]
    shift_feature = (
        drift_shift_feature
        if drift_shift_feature in numeric_inputs
        else (numeric_inputs[0] if numeric_inputs else None)
    )
    if drift_shift_batch and shift_feature != drift_shift_feature:
        show(
            f"`monitoring.drift_shift_feature` = `{drift_shift_feature}` is not a numeric feature of the model; "
            + (
                f"the drift is injected into `{shift_feature}` instead."
                if shift_feature
                else "there is none, so no drift is injected."
            )
        )
    # A small source is cut into smaller batches so that the injected ones exist, but not below 100 rows:
    # the PSI of a smaller batch is mostly sampling noise.
    wanted = max(drift_shift_batch, group_mix_batch, label_shift_batch) + 1
    rows_per_batch = (
        batch_size if len(source) >= wanted * batch_size else max(len(source) // wanted, min(len(source), 100))
    )
    batches = monitoring.simulate_batches(
        source,
        spec,
        rows_per_batch,
        seed,
        drift_shift_batch,
        shift_feature,
        drift_shift_scale,
        group_mix_batch,
        label_shift_batch,
    )
    skipped = [n for n in (drift_shift_batch, group_mix_batch, label_shift_batch) if n > len(batches)]
    origin = (
        f"no files in `{production_dir}`: {len(batches)} batches of {rows_per_batch:,} rows simulated from `{simulation_source}`"
        + (
            f" ({len(source):,} rows: too few for batches of `monitoring.batch_size` = {batch_size:,})"
            if rows_per_batch < batch_size
            else ""
        )
        + (
            f"; batches {', '.join(map(str, skipped))} with injected drift do not exist, so that drift is not simulated"
            if skipped
            else ""
        )
    )
show(f"Monitoring **{len(batches)} batches** ({origin}).")
pd.DataFrame(
    [
        {"batch": n, "rows": len(b), "labelled": target in b.columns and b[target].notna().any(), "injected": i}
        for n, b, i in batches
    ]
)

# %% [markdown]
# ## Checks per batch

# %%
production_schema = schema.build_schema({"columns": meta["schema"]}, range_margin=0.1)
reference_scores = scoring.score(
    bundle, reference.sample(n=min(len(reference), 20000), random_state=seed), allow_extra=True, allow_unseen=True
)["score"]
rows, drift_tables = [], {}
for name, batch, injected in batches:
    missing = [c for c in scoring.required_columns(meta) if c not in batch.columns]
    if missing:
        raise data.DataContractError(
            f"production batch {name}: column {missing[0]!r} of the training schema is missing; the batch cannot be monitored"
        )
    violations = schema.violations(production_schema, batch[list(meta["schema"])])
    spikes = monitoring.missing_spikes(reference, batch, list(meta["schema"]))
    try:
        scored = scoring.score(bundle, batch, allow_extra=True, allow_unseen=True)
    except scoring.InputError as exc:  # e.g. text where training had numbers: the batch's schema differs
        raise data.DataContractError(f"production batch {name}: {exc}") from None
    drift = monitoring.drift_table(reference, batch, kinds, psi_warning, psi_alert)
    drift_tables[name] = drift
    score_psi = monitoring.psi(
        *(
            monitoring.binned_counts(s, "numeric", monitoring.numeric_bin_edges(reference_scores))
            for s in (reference_scores, scored["score"])
        )
    )
    observed = {"drifted_features": int((drift["psi"] >= psi_alert).sum()), "model_age_days": model_age_days}
    row = {
        "batch": name,
        "injected": injected,
        "rows": len(batch),
        "schema_violations": int(violations["rows"].sum()) if len(violations) else 0,
        "missing_spikes": len(spikes),
        "max_psi": float(drift["psi"].max()),
        "most_drifted": drift.loc[drift["psi"].idxmax(), "feature"],
        "drifted_features": observed["drifted_features"],
        "drifted": ", ".join(drift.loc[drift["psi"] >= psi_alert, "feature"]),
        "score_psi": score_psi,
        "positive_rate": float(scored["decision"].mean()),
    }
    labelled = batch[target].notna().to_numpy() if target in batch.columns else np.zeros(len(batch), bool)
    if labelled.sum() >= 50 and len(np.unique(batch.loc[labelled, target])) == 2:
        y = batch.loc[labelled, target].to_numpy().astype(int)
        decided = scored["decision"].to_numpy()[labelled]
        quality = modeling.evaluate_served(
            y,
            scored["score"].to_numpy()[labelled],
            decided,
            charter["cost_false_positive"],
            charter["cost_false_negative"],
        )
        observed[quality_gate["metric"]] = quality[quality_gate["metric"].removeprefix("test_")]
        # Fairness gates judge the bootstrap lower bound of each gap: a small batch's noise alone raises no alarm.
        observed.update(
            fairness.gap_lower_bounds(
                y, decided, batch.loc[labelled], spec, min_group_size, fairness_bootstrap_samples, seed
            )
        )
        point = fairness.gap_metrics(y, decided, batch.loc[labelled], spec, min_group_size)
        row.update(
            label_rate=float(y.mean()),
            roc_auc=quality["roc_auc"],
            expected_cost=quality["expected_cost"],
            **{k: v for k, v in point.items() if k.startswith("demographic_parity_difference")},
        )
    measurable = [g for g in monitor_gates + [quality_gate] if pd.notna(observed.get(g["metric"], np.nan))]
    checks = gates.evaluate(measurable, observed)
    row["failed_gates"] = gates.failures(checks)
    rows.append(row)
report = pd.DataFrame(rows)
report.drop(columns=["failed_gates"]).round(3)

# %% [markdown]
# ## Over time

# %%
fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
axes[0].plot(report["batch"], report["max_psi"], marker="o", label="largest feature PSI")
axes[0].plot(report["batch"], report["score_psi"], marker="s", label="score PSI")
axes[0].axhline(psi_alert, color="#c44e52", linestyle=":", label=f"alert ({psi_alert})")
axes[0].axhline(psi_warning, color="#dd8452", linestyle=":", label=f"warning ({psi_warning})")
axes[0].set(title="Drift per batch", ylabel="PSI")
axes[0].legend(fontsize=8)
if "roc_auc" in report:
    axes[1].plot(report["batch"], report["roc_auc"], marker="o", label="ROC AUC")
    axes[1].axhline(quality_gate["threshold"], color="#c44e52", linestyle=":", label="quality gate")
    axes[1].legend(fontsize=8)
axes[1].set(title="Model quality on labelled batches", ylabel="ROC AUC")
for column in [c for c in report.columns if c.startswith("demographic_parity_difference")]:
    axes[2].plot(report["batch"], report[column], marker="o", label=column)
axes[2].axhline(
    criteria["criteria"]["max_demographic_parity_difference"], color="#c44e52", linestyle=":", label="fairness gate"
)
axes[2].set(title="Selection-rate gap by batch", xlabel="batch", ylabel="demographic parity difference")
axes[2].legend(fontsize=8)
plt.setp(axes[2].get_xticklabels(), rotation=30, ha="right")
fig.tight_layout()
step.save_figure(fig, "monitoring_over_time.png")
plt.show()

# %%
worst = max(drift_tables, key=lambda n: drift_tables[n]["psi"].max())
display(drift_tables[worst].sort_values("psi", ascending=False).head(8).round(4))
show(
    f"Per-feature drift of the most drifted batch, **{worst}**: the statistic is KS for numeric features and the "
    "Jensen-Shannon distance for categorical ones; PSI is the effect size the alerts use."
)

# %% [markdown]
# ## Status

# %%
reasons = [f"{r['batch']}: {reason}" for r in rows for reason in r["failed_gates"]]
retrain_recommended = bool(reasons)
status = {
    "retrain_recommended": retrain_recommended,
    "reasons": reasons,
    "batches": report.drop(columns=["failed_gates"]).to_dict(orient="records"),
    "model_version": meta["version"],
    "model_age_days": model_age_days,
}
step.write_json("monitoring_status.json", status)
report.drop(columns=["failed_gates"]).round(5).to_csv(step.out / "monitoring_report.csv", index=False)
step.write_plot_data("drift.csv", report[["batch", "max_psi", "score_psi"]].round(5))
step.write_metrics(
    {
        "batches": len(rows),
        "retrain_recommended": retrain_recommended,
        "alerts": len(reasons),
        "max_psi": float(report["max_psi"].max()),
    }
)
monitored = step.path("data/monitored")
shutil.rmtree(monitored, ignore_errors=True)
monitored.mkdir(parents=True)
for name, batch, _ in batches:
    batch.to_parquet(monitored / f"{name.split('.')[0]}.parquet", index=False)
show(
    ("**Retraining recommended.** " + "".join(f"\n- {r}" for r in reasons))
    if retrain_recommended
    else f"**No action needed:** all {len(rows)} batches pass every monitoring gate (largest PSI {report['max_psi'].max():.3f})."
)

# %% [markdown]
# ## Summary
# The table and figures above give each batch's health; `monitoring_status.json` carries the
# machine-readable verdict (`retrain_recommended`, `reasons`) that step 10 acts on.
