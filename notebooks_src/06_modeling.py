# %% [markdown]
# # 06 · Modeling
#
# **What this step decides:** which model, with which settings and which decision threshold,
# goes forward, and whether it has earned release. Two baselines (the majority class and a
# shallow decision tree a person can read) set the floor; two stronger candidates (logistic
# regression and histogram gradient boosting) are tuned by cross-validation on the training
# split, with step 04's remediation applied. The model is chosen on the validation split, its
# threshold set to minimise step 01's business cost, and only then evaluated, once, on the test
# split against step 02's gates.
#
# **Inputs:** `data/processed/`, the charter (costs), the success criteria (gates), the data
# spec and the bias plan; the `modeling` section of `params.yaml`.
# **Outputs:** `models/trained_pipeline.skops`, `models/baseline.skops` (the reference baseline
# steps 08 and 10 judge against), `reports/06_modeling/modeling.json` (metrics with intervals,
# threshold, gate table, releasable or not and why), `reports/metrics/modeling.json` (DVC
# metrics), ROC and precision-recall curves for `dvc plots`, and figures.

# %% tags=["parameters"]
cv_folds = 3
search_iterations = 4
search_max_rows = 100000
fit_max_rows = 1000000
search_space = {
    "logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0]},
    "hist_gradient_boosting": {
        "learning_rate": [0.05, 0.1, 0.2],
        "max_leaf_nodes": [15, 31, 63],
        "min_samples_leaf": [20, 50],
    },
}
seed = 42

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_curve, roc_curve

from {{ cookiecutter.package_name }} import artifacts, business, compute, config, fairness, gates, modeling, tables
from {{ cookiecutter.package_name }}.notebook import show, start_step, thin_curve
from {{ cookiecutter.package_name }}.profiling import feature_columns

cfg = config.Modeling.from_cell(globals())
step = start_step("modeling", cfg)
spec = step.read_report("data_selection", "dataset_spec.json")
charter = step.read_report("business_case", "charter.json")
criteria = step.read_report("success_criteria", "success_criteria.json")
plan = step.read_report("data_bias_plan", "bias_plan.json")
# the training split whole, or (partitioned) a sample of it drawn from its partitions: every model fits on fit_max_rows
train, train_rows = tables.read_rows(
    step.path("data/processed/train.parquet"), cfg.fit_max_rows, cfg.seed, step.compute, step.root
)
splits = {"train": train} | {
    name: pd.read_parquet(step.path(f"data/processed/{name}.parquet")) for name in ("validation", "test")
}
target, cols = spec["target"], feature_columns(spec)
costs = business.Costs.of(charter)

# %% [markdown]
# ## Train, tune and compare on validation

# %%
with compute.parallel(step.compute, step.root):  # the search's fits: on the cluster when compute.scheduler is set
    result = modeling.train_and_select(
        splits["train"], splits["validation"], spec, plan, costs, cfg, available_rows=train_rows
    )
table = result.candidates.drop(columns=["params"])
table.round(4)

# %%
reference = modeling.reference_baseline(result.candidates)
show(
    f"Chosen on validation: **{result.name}** with {result.params or 'default settings'}; validation ROC AUC "
    f"**{table.loc[result.name, 'validation_roc_auc']:.3f}** and expected cost **{table.loc[result.name, 'validation_expected_cost']:.3f}** "
    f"per decision at threshold {result.threshold:.3f}, against {table.loc[reference, 'validation_expected_cost']:.3f} for "
    f"the reference baseline `{reference}`, the baseline that decides cheapest on validation: every quality gate "
    f"judges the model against it on the same rows (remediation from step 04: `{plan['remediation']}`). "
    + modeling.search_sample_note(result)
)

# %% [markdown]
# ## One evaluation on the test split
# Each figure below comes with its 95 % interval: ROC AUC by DeLong's method, costs and cost
# ratios by the normal interval of their per-row mean (paired: the model and the baseline
# decide on the same rows), other metrics by a seeded paired bootstrap (`modeling.quality_estimates`).

# %%
test = splits["test"]
y_test = test[target].to_numpy()
scored = {
    name: modeling.scored(result.models[name], test[cols], result.candidates.loc[name, "threshold"])
    for name in (result.name, *modeling.BASELINES)
}
p_test = scored[result.name].scores
metrics = modeling.evaluate(y_test, p_test, result.threshold, *costs)
estimates = modeling.quality_estimates(
    y_test, scored[result.name], scored[reference], costs, criteria, charter, cfg.seed
)
metrics["cost_reduction_vs_baseline"] = estimates["cost_reduction_vs_baseline"].value
metrics["cost_reduction_vs_process"] = estimates["cost_reduction_vs_process"].value
baselines = {
    name: modeling.evaluate(y_test, scored[name].scores, result.candidates.loc[name, "threshold"], *costs)
    for name in modeling.BASELINES
}
process_cost = float(business.process_row_costs(y_test, charter).mean())
comparison = pd.DataFrame({result.name: metrics, **baselines}).T
comparison.loc[f"process: {charter['baseline_process']}", "expected_cost"] = process_cost
comparison.round(4)

# %%
show(
    "\n".join(
        f"- **{label}**: {e.value:.3f} (95 % interval {e.low:.3f} to {e.high:.3f})"
        for label, e in (
            (
                f"test {criteria['criteria']['primary_metric']}",
                estimates[f"test_{criteria['criteria']['primary_metric']}"],
            ),
            (f"{criteria['criteria']['primary_metric']} minus `{reference}`'s", estimates["quality_vs_baseline"]),
            (f"cost saving against `{reference}`", estimates["cost_reduction_vs_baseline"]),
            (
                f"cost saving against the process ({charter['baseline_process']}, at the test prevalence {y_test.mean():.3f})",
                estimates["cost_reduction_vs_process"],
            ),
        )
    )
)

# %%
fpr, tpr, _ = roc_curve(y_test, p_test)
precision, recall, _ = precision_recall_curve(y_test, p_test)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
axes[0].plot(fpr, tpr, label=f"{result.name} (AUC {metrics['roc_auc']:.3f})")
axes[0].plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
axes[0].scatter(
    [charter["baseline_false_positive_rate"]],
    [charter["baseline_true_positive_rate"]],
    color="#c44e52",
    zorder=3,
    label="current process (assumed)",
)
axes[0].set(title="ROC curve, test split", xlabel="false positive rate", ylabel="true positive rate")
axes[0].legend(loc="lower right")
axes[1].plot(recall, precision, label=f"AP {metrics['average_precision']:.3f}")
axes[1].axhline(y_test.mean(), linestyle="--", color="grey", label="prevalence")
axes[1].set(title="Precision-recall curve, test split", xlabel="recall", ylabel="precision")
axes[1].legend(loc="upper right")
step.save_figure(fig, "roc_pr.png")
plt.show()

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
ConfusionMatrixDisplay.from_predictions(
    y_test,
    scored[result.name].decisions,
    ax=axes[0],
    colorbar=False,
    display_labels=["negative", f"{spec['positive_label']}"],
)
axes[0].set(title=f"Confusion matrix at threshold {result.threshold:.3f}", xlabel="predicted", ylabel="actual")
prob_true, prob_pred = calibration_curve(y_test, p_test, n_bins=10, strategy="quantile")
axes[1].plot(prob_pred, prob_true, marker="o", label=result.name)
axes[1].plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
axes[1].set(
    title=f"Calibration (Brier {metrics['brier']:.3f})",
    xlabel="mean predicted probability",
    ylabel="observed positive rate",
)
axes[1].legend(loc="upper left")
step.save_figure(fig, "confusion_calibration.png")
plt.show()

# %% [markdown]
# ## Are the scores probabilities? Calibration by group
# The service returns each score as the probability of the positive outcome. A probability
# should match the rate observed, overall and in every group: below, each group's mean score on
# the test split against its observed positive rate (Wilson interval) and the gap between them
# (interval of the mean of score minus outcome: narrower than the rate's, as the score accounts
# for part of the outcomes' variation), for every sensitive feature and their
# intersection; the intervals of a grouping's groups hold together at step 02's confidence. Then
# the same for the chosen model calibrated on the validation split (`modeling.calibrate`: Platt's
# sigmoid fitted on the frozen model's scores of rows it never saw; isotonic regression
# overfits a validation split of this size). The model that goes forward is not changed here.

# %%
import numpy as np

from {{ cookiecutter.package_name }} import intervals

confidence = float(criteria["criteria"].get("confidence", 0.95))
validation = splits["validation"]
calibrated_model = modeling.calibrate(result.model, validation[cols], validation[target].to_numpy())
p_calibrated = modeling.probabilities(calibrated_model, test[cols])
calibration = {
    "as trained": modeling.calibration_table(y_test, p_test, test, spec, confidence),
    "calibrated on validation": modeling.calibration_table(y_test, p_calibrated, test, spec, confidence),
}
shown_columns = ["rows", "predicted", "observed", "observed_low", "observed_high", "gap", "gap_low", "gap_high"]
pd.concat({name: calib[shown_columns] for name, calib in calibration.items()}, axis=1).round(3)

# %%
bayes = business.cost_optimal_threshold(*costs)
served_costs = business.row_costs(y_test, scored[result.name].decisions, *costs)
bayes_costs = business.row_costs(y_test, (p_calibrated >= bayes).astype(int), *costs)
bayes_ratio = intervals.ratio_interval(bayes_costs, served_costs, confidence)
reweighed = plan["remediation"] != "none" and calibration["calibrated on validation"]["miscalibrated"].any()
show(
    "\n".join(f"- **{name}**: {modeling.calibration_note(calib)}." for name, calib in calibration.items())
    + (
        f"\n\nThe model was trained with step 04's `{plan['remediation']}`, which makes group and outcome "
        "independent in the training rows: its scores are moved toward equal rates between groups on purpose, and a "
        "map of the score alone (calibration) cannot undo a shift by group. Such a score ranks and decides; it is not "
        "each group's probability."
        if reweighed
        else ""
    )
    + f"\n\nWith calibrated scores the cost-minimising rule is to act from c_fp / (c_fp + c_fn) = **{bayes:.3f}** "
    f"(step 01's costs alone, nothing fitted to the validation rows), where the model goes forward at "
    f"{result.threshold:.3f}, chosen on validation: on the test split the calibrated model at {bayes:.3f} would cost "
    f"**{bayes_costs.mean():.4f}** per decision against {served_costs.mean():.4f}, a ratio of {bayes_ratio.value:.3f} "
    f"({confidence:.0%} interval {bayes_ratio.low:.3f} to {bayes_ratio.high:.3f})."
)
step.write_json(
    "calibration.json",
    {
        "method": modeling.CALIBRATION_METHOD,
        "confidence": confidence,
        "tables": {name: calib.reset_index().to_dict(orient="records") for name, calib in calibration.items()},
        "bayes_threshold": bayes,
        "bayes_cost_ratio": bayes_ratio.as_dict(),
    },
)

# %%
groups = calibration["as trained"].drop(index="all", level="grouping")
fig, axes = plt.subplots(1, 2, figsize=(13, 0.28 * len(groups) + 2.2), width_ratios=[1, 1.2])
positions = np.arange(len(groups))[::-1]
for (name, calib), scores, marker, shift in zip(
    calibration.items(), (p_test, p_calibrated), ("o", "s"), (0.15, -0.15), strict=True
):
    prob_true, prob_pred = calibration_curve(y_test, scores, n_bins=10, strategy="quantile")
    axes[0].plot(prob_pred, prob_true, marker=marker, label=name)
    gaps = calib.loc[groups.index]
    axes[1].errorbar(
        gaps["gap"],
        positions + shift,
        xerr=[gaps["gap"] - gaps["gap_low"], gaps["gap_high"] - gaps["gap"]],
        fmt=marker,
        capsize=2,
        label=name,
    )
axes[0].plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
axes[0].set(
    title="Reliability, test split (deciles of score)",
    xlabel="mean predicted probability",
    ylabel="observed positive rate",
)
axes[0].legend(loc="upper left")
axes[1].axvline(0, linestyle="--", color="grey")
axes[1].set_yticks(positions, [f"{group} ({rows:,})" for (_, group), rows in groups["rows"].items()], fontsize=8)
axes[1].set(title="Each group: mean score minus observed rate", xlabel="gap, with its interval (0: calibrated)")
axes[1].legend(loc="best")
fig.tight_layout()
step.save_figure(fig, "calibration_by_group.png")
plt.show()

# %% [markdown]
# ## What drives the model: permutation importance on the test split

# %%
sample = test.sample(n=min(len(test), 3000), random_state=cfg.seed)
importance = permutation_importance(
    result.model, sample[cols], sample[target], scoring="roc_auc", n_repeats=3, random_state=cfg.seed
)
ranked = pd.Series(importance.importances_mean, index=cols).sort_values()
fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 1.2))
ax.barh(
    ranked.index, ranked.values, xerr=pd.Series(importance.importances_std, index=cols)[ranked.index], color="#4c72b0"
)
ax.set(title="Permutation feature importance", xlabel="drop in test ROC AUC when the feature is shuffled")
step.save_figure(fig, "permutation_importance.png")
plt.show()

# %% [markdown]
# ## Per-group metrics on the sensitive slices

# %%
decisions = scored[result.name].decisions
slices = fairness.group_metrics_table(y_test, decisions, test, spec)
slices.round(3)

# %% [markdown]
# ## Gates of step 02

# %%
gate_list = gates.gates_for(criteria["gates"], "modeling")
gate_table = gates.evaluate(gate_list, estimates, criteria["criteria"]["decide_on"])
reasons = gates.failures(gate_table)
suspects = modeling.leakage_suspects(gate_table, ranked)
if suspects:  # too good to be true: say which features carry it
    reasons = [r + f"; carried by {suspects}" if r.startswith("leakage_alarm") else r for r in reasons]
releasable = not reasons
display(gate_table.round(4))
show(
    f"Test ROC AUC **{metrics['roc_auc']:.3f}**, expected cost **{metrics['expected_cost']:.3f}** per decision against "
    f"{comparison.loc[reference, 'expected_cost']:.3f} for `{reference}` "
    f"(**{estimates['cost_reduction_vs_baseline'].value:.1%}** cheaper, at least {estimates['cost_reduction_vs_baseline'].low:.1%} "
    f"at 95 % confidence) and {process_cost:.3f} for the baseline process. "
    + (
        "**Releasable:** every quality gate passes on its interval."
        if releasable
        else f"**Not releasable ({gates.overall(gate_table)}):** " + "; ".join(reasons) + "."
    )
)

# %%
artifacts.save(result.model, step.path("models/trained_pipeline.skops"))
artifacts.save(result.models[reference], step.path("models/baseline.skops"))
step.write_json(
    "modeling.json",
    {
        "model": result.name,
        "params": result.params,
        "threshold": result.threshold,
        "remediation": plan["remediation"],
        "reference_baseline": {"name": reference, "threshold": float(result.candidates.loc[reference, "threshold"])},
        "test_metrics": metrics,
        "test_estimates": {k: e.as_dict() for k, e in estimates.items()},
        "baselines_test_metrics": baselines,
        "candidates": result.candidates.reset_index().to_dict(orient="records"),
        "gates": gate_table.to_dict(orient="records"),
        "verdict": gates.overall(gate_table),
        "releasable": releasable,
        "reasons": reasons,
        "feature_importance": ranked.iloc[::-1].to_dict(),
    },
)
step.write_metrics(
    {
        "model": result.name,
        "threshold": result.threshold,
        "releasable": releasable,
        **{f"test_{k}": v for k, v in metrics.items()},
    }
)
step.write_plot_data("roc.csv", thin_curve({"fpr": fpr, "tpr": tpr}))
step.write_plot_data("precision_recall.csv", thin_curve({"recall": recall, "precision": precision}))

# %% [markdown]
# ## Summary

# %%
show(
    f"**{result.name}** goes forward with threshold **{result.threshold:.3f}** "
    f"({'releasable' if releasable else 'NOT releasable'}). It is saved as `models/trained_pipeline.skops`; "
    "step 07 packages it for deployment only if it is releasable, and step 08 checks its fairness gates."
)
