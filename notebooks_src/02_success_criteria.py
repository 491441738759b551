# %% [markdown]
# # 02 · Success criteria
#
# **What this step decides:** the gates a model must pass before it reaches people, and
# which later step enforces each: model quality (06, 10), a real cost saving (06, 10), fairness
# gaps per sensitive feature and their intersection (08, 09, 10), scoring latency (07), feature
# drift and model staleness (09, 10). Writing them down *before* modelling keeps the bar from
# moving to meet the model.
#
# **How every gate decides.** A gate never holds a bare point estimate against its threshold:
# it judges the estimate's confidence interval (at `confidence`). A release or a promotion
# needs the whole interval on the right side of the threshold (a *pass*); an interval that
# holds the threshold is *inconclusive* (the rows judged cannot tell, and the report says so);
# an alarm (step 09) needs the whole interval on the wrong side (a *fail*). A gate that passes
# on its bound is wrong at most `(1 - confidence) / 2` of the time when the truth sits on the
# threshold. A team may decide on point estimates instead (`decide_on: point`); every report
# then says so. Which groups a fairness gate compares follows from `fairness_power`: a group is
# gated when, at its size, the gate would pass fair decisions and fail a gap of twice its
# threshold with that power. A gate with fewer than two groups that large is *not assessed*:
# reported with the rows each group lacks, and a reason to refuse only when the team says so
# (`block_unassessed`).
#
# **Fairness: the criterion the decision calls for.** Demographic parity asks for equal selection
# rates across groups; equalized odds for equal true and false positive rates. Where the groups'
# base rates differ, a useful model cannot meet both (Kleinberg, Mullainathan & Raghavan 2016;
# Chouldechova 2017): a gate on each at once is a gate nothing passes. A team gates the one its
# decision calls for (an opportunity that should reach the qualified in every group equally:
# equalized odds; an allocation that should not depend on group at all: parity) and leaves the
# other empty: it is still measured, reported and monitored in steps 08 to 10. Every gate is
# judged for each sensitive feature and for their intersection.
#
# **Relative by default.** Quality and cost are judged against step 06's reference baseline
# (the simplest honest model: the baseline deciding at the lowest cost on validation), scored
# on the same rows, so the gates mean something on any data. Absolute bars (a floor on the
# primary metric, a saving against step 01's baseline process) are there when a team sets them.
#
# **Inputs:** `reports/01_business_case/charter.json`; the `success_criteria` section and
# `data.sensitive_features` of `params.yaml`.
# **Outputs:** `reports/02_success_criteria/success_criteria.json` (machine-readable gates that
# later steps read) and `success_criteria.md` (the same as a table).

# %% tags=["parameters"]
sensitive_features = ["sex", "race"]
primary_metric = "roc_auc"
max_quality_loss_vs_baseline = 0.01
min_cost_reduction_vs_baseline = 0.1
min_primary_metric = None
min_cost_reduction_vs_process = None
max_plausible_roc_auc = 0.99
max_demographic_parity_difference = None
max_equalized_odds_difference = 0.15
max_batch_latency_ms = 500
psi_alert = 0.25
max_drifted_features = 0
max_staleness_days = 180
confidence = 0.95
decide_on = "interval"
fairness_power = 0.8
block_unassessed = False

# %%
import pandas as pd

from {{ cookiecutter.package_name }} import config, gates
from {{ cookiecutter.package_name }}.notebook import markdown_table, show, start_step

cfg = config.SuccessCriteria.from_cell(globals())
step = start_step("success_criteria", cfg)
charter = step.read_report("business_case", "charter.json")

# %% [markdown]
# ## From the business case to gates

# %%
criteria = cfg.model_dump(exclude={"sensitive_features"})
gate_list = gates.build_gates(criteria, cfg.sensitive_features)
table = pd.DataFrame(gate_list).assign(
    enforced_by=lambda d: d["enforced_by"].map(", ".join),
    rule=lambda d: d["operator"] + " " + d["threshold"].map("{:g}".format),
)[["name", "metric", "rule", "enforced_by", "why"]]
table

# %%
groupings = gates.grouping_names(cfg.sensitive_features)
absolute = [g["name"] for g in gate_list if g["name"] in ("model_quality_floor", "cost_vs_process")]
fair = sorted({g["name"].split("[")[0] for g in gate_list if g["name"].endswith("]")})
process_cost = charter["baseline_expected_cost"]
show(
    f"{len(gate_list)} gates in all; fairness gates ({', '.join(f'`{f}`' for f in fair) or 'none'}) for "
    f"{', '.join(f'`{g}`' for g in groupings)}"
    + (
        "; demographic parity is measured and reported, not gated"
        if "demographic_parity" not in fair
        else "; equalized odds is measured and reported, not gated"
        if "equalized_odds" not in fair
        else ""
    )
    + ". Quality and cost are relative to step 06's reference baseline: "
    f"the model may trail it on `{primary_metric}` by at most {max_quality_loss_vs_baseline:g}, and must decide at "
    f"least **{min_cost_reduction_vs_baseline:.0%}** cheaper than it, both judged on the lower bound of a "
    f"{confidence:.0%} interval on the same rows. "
    + (
        f"Absolute bars set by the team: {', '.join(f'`{g}`' for g in absolute)}. "
        if absolute
        else f"No absolute bar is set: step 01's baseline process ({process_cost:.3f} per decision) is reported "
        "beside the model, and gated when `min_cost_reduction_vs_process` is set. "
    )
    + (
        "**Every gate decides on its point estimate** (`decide_on: point`): a team's choice, which every report states."
        if decide_on == "point"
        else f"Every gate decides on its {confidence:.0%} interval; fairness gates compare the groups large enough "
        f"to see a gap of the gate's size with {fairness_power:.0%} power."
    )
)

# %%
step.write_json(
    "success_criteria.json",
    {
        "criteria": criteria,
        "baseline_expected_cost": charter["baseline_expected_cost"],
        "gates": gate_list,
    },
)
step.write_text("success_criteria.md", "# Success criteria\n\n" + markdown_table(table) + "\n")

# %% [markdown]
# ## Summary
# The gates above are now machine-readable in `success_criteria.json`. Steps 06–10 load
# them from that file and record a table of each gate's value, interval and verdict; a model
# that does not pass every gate it is subject to is not released or promoted, and the reports
# say which gate, by how much, and whether the evidence failed it or could not tell.
