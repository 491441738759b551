# %% [markdown]
# # 02 · Success criteria
#
# **What this step decides:** the gates a model must pass before it reaches people, and
# which later step enforces each: model quality (06, 10), a real cost saving over the
# baseline (06, 10), fairness gaps per sensitive feature (08, 09, 10), scoring latency (07),
# feature drift and model staleness (09, 10). Writing them down *before* modelling keeps
# the bar from moving to meet the model.
#
# **Inputs:** `reports/01_business_case/charter.json`; the `success_criteria` section and
# `data.sensitive_features` of `params.yaml`.
# **Outputs:** `reports/02_success_criteria/success_criteria.json` (machine-readable gates that
# later steps read) and `success_criteria.md` (the same as a table).

# %% tags=["parameters"]
sensitive_features = ["sex", "race"]
primary_metric = "roc_auc"
min_primary_metric = 0.85
min_cost_reduction_vs_baseline = 0.1
max_plausible_roc_auc = 0.99
max_demographic_parity_difference = 0.15
max_equalized_odds_difference = 0.15
max_batch_latency_ms = 500
psi_alert = 0.25
max_drifted_features = 0
max_staleness_days = 180

# %%
import pandas as pd

from {{ cookiecutter.package_name }} import config, gates
from {{ cookiecutter.package_name }}.notebook import markdown_table, show, start_step

cfg = config.SuccessCriteria.from_cell(globals())
step = start_step("success_criteria")
charter = step.read_report("business_case", "charter.json")

# %% [markdown]
# ## From the business case to gates

# %%
criteria = {
    "primary_metric": primary_metric,
    "min_primary_metric": min_primary_metric,
    "min_cost_reduction_vs_baseline": min_cost_reduction_vs_baseline,
    "max_plausible_roc_auc": max_plausible_roc_auc,
    "max_demographic_parity_difference": max_demographic_parity_difference,
    "max_equalized_odds_difference": max_equalized_odds_difference,
    "max_batch_latency_ms": max_batch_latency_ms,
    "psi_alert": psi_alert,
    "max_drifted_features": max_drifted_features,
    "max_staleness_days": max_staleness_days,
}
gate_list = gates.build_gates(criteria, cfg.sensitive_features)
table = pd.DataFrame(gate_list).assign(
    enforced_by=lambda d: d["enforced_by"].map(", ".join),
    rule=lambda d: d["operator"] + " " + d["threshold"].map("{:g}".format),
)[["name", "metric", "rule", "enforced_by", "why"]]
table

# %%
target_cost = charter["baseline_expected_cost"] * (1 - min_cost_reduction_vs_baseline)
show(
    f"The baseline costs **{charter['baseline_expected_cost']:.3f}** per decision, so a model passes the cost gate "
    f"only at **{target_cost:.3f}** or less ({min_cost_reduction_vs_baseline:.0%} cheaper). "
    f"{len(gate_list)} gates in all, {2 * len(cfg.sensitive_features)} of them on fairness across "
    f"{', '.join(f'`{f}`' for f in cfg.sensitive_features)}."
)

# %%
step.write_json(
    "success_criteria.json",
    {
        "criteria": criteria,
        "baseline_expected_cost": charter["baseline_expected_cost"],
        "max_expected_cost": target_cost,
        "gates": gate_list,
    },
)
step.write_text("success_criteria.md", "# Success criteria\n\n" + markdown_table(table) + "\n")

# %% [markdown]
# ## Summary
# The gates above are now machine-readable in `success_criteria.json`. Steps 06–10 load
# them from that file and record a pass/fail table; a model that fails any gate it is
# subject to is not released or promoted, and the reports say which gate and by how much.
