# %% [markdown]
# # 09 · Monitoring
#
# **What this step decides:** whether the solution in production still behaves as it did when
# it was released, and whether to recommend retraining. Every production batch is compared
# with the training data: schema violations and missing-value spikes (the schema of step 05),
# drift of every input feature (PSI, with the Kolmogorov-Smirnov statistic for numeric and the
# Jensen-Shannon distance for categorical features), drift of the scores against the model's
# scores on held-out rows (the validation split, which it was not fitted on), and where
# outcomes have arrived, model quality and per-group fairness against step 02's gates, plus
# the model's age.
#
# **A drift alarm has a known error rate at the window's size.** PSI grows with sampling noise
# as a window shrinks: at 100 rows a PSI of 0.25 happens without any drift. So each feature's
# PSI gets a p-value from its null distribution for a window of that many rows (simulated from
# the training bins, seeded), and a numeric value that holds 5% or more of the training rows
# (the zeros of an amount, the 40 of weekly hours) is a bin of its own whose share is tested
# too (Fisher's exact test): a column of 92% zeros whose non-zero share doubles has a PSI of
# only about 0.06. Benjamini-Hochberg controls the false discoveries over every feature of
# every window (`monitoring.drift_fdr`). A discovery alerts only when it is also large:
# PSI of at least step 02's `psi_alert`, or a point mass whose share moved by half or more, so
# that a window of a million rows does not alert on a trivial shift. The values outside the
# point masses (the non-zero amounts) get quantile bins of their own, several however small
# their share.
#
# **Quality is judged on complete outcomes.** Outcomes arrive late, and sometimes only for the
# people acted on. A window's quality and fairness are held against the gates only when at
# least `monitoring.min_label_completeness` of each decision's rows have their outcome; the
# report gives every window's completeness, and says when the outcomes of one decision alone
# make the figures biased.
#
# Batches are the windows of the prediction log (every decision `serve` and `predict` made,
# with the outcomes `label` attached since; `monitoring.window` is a day, a week or a number of
# decisions), judged on the decisions that were served. Without logged decisions they are the
# files in `data.production_dir` (CSV or Parquet, with or without labels); without those, a
# sequence simulated from held-out data, with a lasting drift injected from one batch on and two
# one-batch disturbances, so the report shows what catching it looks like.
#
# Retraining is recommended only on a sustained breach: `monitoring.sustained_breaches` of the
# last `monitoring.breach_windows` windows fail a gate, the latest among them. One noisy window
# is reported, not acted on. When an alert is due, it is posted to the webhook in the
# environment variable `{{ cookiecutter.package_name | upper }}_ALERT_WEBHOOK`.
#
# The model judged is the model in service (`scoring.default_model_path`, the one the service
# and `predict` use): the registry's champion, or a release of step 08 that step 10 has not
# installed yet. DVC tracks the release; the registry is the production loop's state, changed
# by step 10 and `rollback`, so it is read, not declared.
#
# **Inputs:** the model in service, `data/processed/train.parquet` (the inputs' reference),
# `data/processed/validation.parquet` (the scores' reference), `data/production_log/` (the
# log's latest windows, written by the `production_log` stage), the production batches, the
# success criteria; `data.production_dir` and the `monitoring` section.
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
drift_fdr = 0.05
min_label_completeness = 0.8
window = "day"
windows = 8
sustained_breaches = 2
breach_windows = 3
reference_max_rows = 1000000
seed = 42

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from {{ cookiecutter.package_name }} import business, config, live, modeling, monitoring, scoring, tables
from {{ cookiecutter.package_name }}.notebook import show, start_step
from {{ cookiecutter.package_name }}.registry import NoModelInService, Registry

cfg = config.Monitoring.from_cell(globals())
step = start_step("monitoring", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
charter = step.read_report("business_case", "charter.json")
try:
    in_service, rehearsal = scoring.default_model_path(step.root), ""
except NoModelInService as exc:  # step 08 released nothing and no champion serves: a rehearsal on the candidate
    in_service, rehearsal = step.path("models/release.skops"), str(exc)
bundle = scoring.load_bundle(in_service, allow_unreleased=True)
meta, target = bundle["metadata"], spec["target"]
show(
    f"Judging the model in service: version `{meta['version']}`."
    if not rehearsal
    else f"**No model is in service** ({rehearsal}). Step 08's unreleased candidate, version `{meta['version']}`, is "
    "monitored as a rehearsal: nothing below is evidence about production."
)
reference = monitoring.Reference.build(
    bundle,
    tables.sample_of(
        step.path("data/processed/train.parquet"), cfg.reference_max_rows, cfg.seed, step.compute, step.root
    ),
    pd.read_parquet(step.path("data/processed/validation.parquet")),
    spec,
    criteria,
    business.Costs.of(charter),
    cfg,
    charter,
    baseline=lambda rows: modeling.reference_scored(step.root, rows, spec),  # step 06's, on each window's rows
)
psi_alert = reference.psi_alert

# %% [markdown]
# ## The production batches

# %%
found = monitoring.production_batches(step.root, spec, meta, cfg)
for note in found.notes:
    show(note)
age = monitoring.model_age(Registry(step.root).state(), bundle, found.newest)
show(
    f"Monitoring **{len(found.batches)} batches** ({found.origin}). Model age: "
    + (f"**{age[0]:g} days** ({age[1]})." if age[0] is not None else f"{age[1]}.")
)
monitoring.batch_overview(found.batches, target)

# %% [markdown]
# ## Checks per batch
#
# Each batch is judged by `monitoring.judge_batches`: schema violations and missing-value spikes,
# the drift of every feature (PSI and its p-value at the batch's size, and the shift of each
# point mass; all batches one family for the false-discovery control) and of the scores, and,
# where enough outcomes have arrived, the model's quality and cost against step 06's reference
# baseline on the same rows and each fairness gap, each with its interval, against the gates of
# step 02 by the rule every step uses: a window alarms on a gate only when the evidence fails it
# (the whole interval on the wrong side); a window whose interval holds the threshold is
# reported as inconclusive, not acted on.

# %%
judged = monitoring.judge_batches(found, reference, cfg, age[0])
report = monitoring.report(judged)
drift_tables = {j["row"]["batch"]: j["drift"] for j in judged}
report.round(3)

# %%
alarms = monitoring.false_alarms(drift_tables.values(), cfg.drift_fdr)
show(
    f"**Expected false alarms.** {alarms.tests} drift tests over {alarms.windows} batches, "
    f"{alarms.discoveries} discoveries at a false-discovery rate of {cfg.drift_fdr:.0%}: a test was a discovery "
    f"at p ≤ {alarms.cutoff:.2g}. An alert also needs PSI ≥ {psi_alert} or a point mass moved by half, so a "
    f"batch of these sizes that did not drift alerts with probability at most {alarms.per_window:.2%} (per test, "
    "the cutoff or the chance of so large an effect without drift at the batch's size, whichever is smaller). "
    f"Had no batch drifted, the chance of any drift alert in the {alarms.windows} batches would be at most "
    f"{cfg.drift_fdr:.0%}; of the discoveries, at most {cfg.drift_fdr:.0%} are expected to be false."
)

# %% [markdown]
# ## Over time

# %%
fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
axes[0].plot(report["batch"], report["max_psi"], marker="o", label="largest feature PSI")
axes[0].plot(report["batch"], report["score_psi"], marker="s", label="score PSI")
drifting = report[report["drifted_features"] > 0]
axes[0].scatter(drifting["batch"], drifting["max_psi"], s=120, facecolors="none", edgecolors="#c44e52", label="alert")
axes[0].axhline(psi_alert, color="#c44e52", linestyle=":", label=f"alert floor ({psi_alert}), if significant")
axes[0].axhline(cfg.psi_warning, color="#dd8452", linestyle=":", label=f"warning ({cfg.psi_warning})")
axes[0].set(title="Drift per batch", ylabel="PSI")
axes[0].legend(fontsize=8)
quality_gate = next(g for g in reference.gates if g["name"] == "model_quality")
if "quality_vs_baseline" in report:
    judged_quality = report[report["quality_judged"]]
    low = judged_quality["quality_vs_baseline_low"]
    axes[1].errorbar(
        judged_quality["batch"], judged_quality["quality_vs_baseline"],
        yerr=[judged_quality["quality_vs_baseline"] - low, judged_quality["quality_vs_baseline"] - low],
        marker="o", capsize=3, label=f"{criteria['criteria']['primary_metric']} minus the reference baseline's",
    )  # fmt: skip
    axes[1].axhline(quality_gate["threshold"], color="#c44e52", linestyle=":", label="quality gate")
    axes[1].legend(fontsize=8)
axes[1].set(title="Model quality on judged batches (95% intervals)", ylabel="gain over the baseline")
fair_gates = [g for g in reference.gates if g["metric"].endswith("]")]
for g in fair_gates:
    if f"{g['metric']}_high" in report:
        axes[2].plot(report["batch"], report[f"{g['metric']}_high"], marker="o", label=f"{g['name']} (upper bound)")
if fair_gates:
    axes[2].axhline(fair_gates[0]["threshold"], color="#c44e52", linestyle=":", label="fairness gate")
axes[2].set(title="Fairness gaps by batch (upper 95% bounds)", xlabel="batch", ylabel="gap")
if axes[2].get_legend_handles_labels()[0]:
    axes[2].legend(fontsize=7)
plt.setp(axes[2].get_xticklabels(), rotation=30, ha="right")
fig.tight_layout()
step.save_figure(fig, "monitoring_over_time.png")
plt.show()

# %%
worst = max(drift_tables, key=lambda n: drift_tables[n]["psi"].max())
display(drift_tables[worst].sort_values("psi", ascending=False).head(8).round(4))
show(
    f"Per-feature drift of the most drifted batch, **{worst}**: PSI is the effect size, `p_value` its chance at this "
    "batch's size without drift and `p_value_adjusted` after the false-discovery control; `mass_shift` is the ratio "
    "of a point mass's smaller side (batch over training, for numeric values that hold 5% of the rows or more) with "
    "its Fisher test; the statistic is KS for numeric features and the Jensen-Shannon distance for categorical ones."
)
alerted = report.loc[report["drifted"] != "", ["batch", "drifted"]]
show(
    "Features that alerted: " + "; ".join(f"**{b}**: {d}" for b, d in alerted.itertuples(index=False)) + "."
    if len(alerted)
    else "No feature alerted in any batch."
)

# %% [markdown]
# ## Outcomes: how complete each batch's are

# %%
labels = report[["batch", "rows", "label_completeness", "quality_judged", "labels"]]
display(labels.round(3))
waiting = labels[~labels["quality_judged"]]
show(
    f"Quality and fairness judged on {int(labels['quality_judged'].sum())} of {len(labels)} batches (rule: at least "
    f"{cfg.min_label_completeness:.0%} of each decision's rows with an outcome)"
    + (
        "; not on " + "; ".join(f"**{b}** ({note})" for b, note in waiting[["batch", "labels"]].itertuples(index=False))
        if len(waiting)
        else ""
    )
    + "."
)

# %% [markdown]
# ## Online against offline
#
# On the windows of the prediction log whose outcomes have arrived: the quality and cost of
# the decisions that were served, beside step 06's figures on the test split.

# %%
modeling_record = step.read_report("modeling", "modeling.json")
online = (
    live.online_vs_offline(report[report["quality_judged"]], modeling_record["test_metrics"])
    if found.source == "prediction log"
    else pd.DataFrame()
)
if online.empty:
    show("No window of the prediction log has outcomes yet: the online figures wait for `label`.")
else:
    display(online.round(4))
    show(
        f"Over {len(online)} windows with outcomes the served decisions' ROC AUC is "
        f"{online['online_roc_auc'].mean():.3f} on average against {online['offline_roc_auc'].iloc[0]:.3f} offline "
        f"(largest drop {-online['roc_auc_change'].min():.3f}); expected cost {online['online_expected_cost'].mean():.3f} "
        f"against {online['offline_expected_cost'].iloc[0]:.3f}."
    )

# %% [markdown]
# ## Status

# %%
status = monitoring.status(judged, meta, cfg, found.source, age)
status["in_service"] = not rehearsal
step.write_json("monitoring_status.json", status)
report.round(5).to_csv(step.out / "monitoring_report.csv", index=False)
step.write_plot_data("drift.csv", report[["batch", "max_psi", "score_psi"]].round(5))
step.write_metrics(
    {
        "batches": len(judged),
        "retrain_recommended": status["retrain_recommended"],
        "alerts": len(status["reasons"]),
        "max_psi": float(report["max_psi"].max()),
    }
)
monitoring.keep_batches(found.batches, step.path("data/monitored"))
if status["retrain_recommended"]:
    verdict = f"**Retraining recommended** ({status['rule']}: {', '.join(status['recent_breaches'])})."
elif status["reasons"]:
    verdict = f"**Breaches not sustained, no retraining** (the rule: {status['rule']})."
else:
    verdict = f"**No action needed:** all {len(judged)} batches pass every monitoring gate (largest PSI {report['max_psi'].max():.3f})."
show(verdict + "".join(f"\n- {r}" for r in status["reasons"]))

# %%
sent = live.alert(status, live=found.source == "prediction log", project=step.root.name)
if sent is not None:
    step.write_json("alert.json", {k: v for k, v in sent.items() if k != "body"})
    show(f"Alert: {'posted to the webhook' if sent['sent'] else 'not sent: ' + sent['why']}.")

# %% [markdown]
# ## Summary
# The table and figures above give each batch's health; `monitoring_status.json` carries the
# machine-readable verdict (`retrain_recommended`, `reasons`) that step 10 acts on.
