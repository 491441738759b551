# %% [markdown]
# # 01 · Business case
#
# **What this step decides:** which decision the model supports, who acts on it, what a
# wrong decision costs, and what the current process achieves. Everything later is judged
# against this: a model is only worth deploying if it lowers the expected cost per decision
# below the baseline's.
#
# **Inputs:** the `business_case` and `data` sections of `params.yaml`; the target column
# of the raw data (for the share of positive cases).
# **Outputs:** `reports/01_business_case/charter.md` (the project charter, in the sections of
# the Team Data Science Process charter) and `charter.json` (the same facts for later steps).

# %% tags=["parameters"]
path = "data/raw/adult.csv.gz"
target = "income"
positive_label = ">50K"
sensitive_features = ["sex", "race"]
problem = "Invite the people most likely to earn more than 50K a year to a premium financial-advisory consultation, instead of mailing everyone."
decision = "invite to a premium advisory consultation"
decision_maker = "Outreach team (acts weekly on the scored list)"
stakeholders = ["Outreach team", "Advisors", "Compliance", "Applicants"]
positive_outcome = "the person earns more than 50K a year"
cost_false_positive = 1.0
cost_false_negative = 4.0
baseline_process = "advisors' manual screening of application forms"
baseline_true_positive_rate = 0.55
baseline_false_positive_rate = 0.15

# %%
import matplotlib.pyplot as plt
import pandas as pd

from {{ cookiecutter.package_name }} import business, config, data, tables
from {{ cookiecutter.package_name }}.notebook import show, start_step

cfg = config.BusinessCase.from_cell(globals())
step = start_step("business_case", cfg)

# %% [markdown]
# ## How often is the outcome positive?
# The share of positive cases sets how costly the two kinds of error are on average.
# Reading the target also checks the data contract early: a wrong `data.target`,
# `data.positive_label` or `data.sensitive_features` stops here, naming the key.

# %%
sensitive_features = data.as_list(sensitive_features)  # one name or a list
contract = {"target": target, "positive_label": positive_label, "sensitive_features": sensitive_features}
survey = tables.read(step.path(path), compute=step.compute, root=step.root).survey(
    contract, duplicates=False, empty_sensitive=False
)
prevalence = survey.prevalence
show(
    f"`{target}` = `{positive_label}` in **{survey.positives:,} of {survey.labelled:,}** rows: prevalence **{prevalence:.1%}**."
)

# %% [markdown]
# ## What does the current process cost?

# %%
baseline_cost = business.expected_cost(
    prevalence,
    baseline_true_positive_rate,
    baseline_false_positive_rate,
    cost_false_positive,
    cost_false_negative,
)
policies = business.trivial_policies(prevalence, cost_false_positive, cost_false_negative)
costs = pd.Series({f"baseline: {baseline_process}": baseline_cost, **policies}, name="expected cost per decision")
costs.to_frame()

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
costs.sort_values().plot.barh(
    ax=ax, color=["#4c72b0" if n.startswith("baseline") else "#bbbbbb" for n in costs.sort_values().index]
)
ax.set_title("Expected cost per decision of today's options")
ax.set_xlabel("expected cost per decision (cost units)")
ax.set_ylabel("")
step.save_figure(fig, "baseline_cost.png")
plt.show()

# %%
cheapest = costs.idxmin()
show(
    f"The baseline ({baseline_process}) costs **{baseline_cost:.3f}** per decision; "
    f"acting on nobody costs {policies['act on nobody']:.3f} and on everybody {policies['act on everybody']:.3f}. "
    f"Today's cheapest option is **{cheapest}**. A false negative costs "
    f"{cost_false_negative / cost_false_positive:.1f}× a false positive, so a calibrated model should act when the "
    f"score exceeds **{business.cost_optimal_threshold(cost_false_positive, cost_false_negative):.3f}**."
)

# %% [markdown]
# ## The charter

# %%
charter = {
    "project_name": "{{ cookiecutter.project_name }}",
    "problem": problem,
    "decision": decision,
    "decision_maker": decision_maker,
    "stakeholders": list(stakeholders),
    "positive_outcome": positive_outcome,
    "data_path": path,
    "target": target,
    "positive_label": positive_label,
    "sensitive_features": list(sensitive_features),
    "rows": survey.labelled,
    "prevalence": prevalence,
    "cost_false_positive": cost_false_positive,
    "cost_false_negative": cost_false_negative,
    "cost_optimal_threshold": business.cost_optimal_threshold(cost_false_positive, cost_false_negative),
    "baseline_process": baseline_process,
    "baseline_true_positive_rate": baseline_true_positive_rate,
    "baseline_false_positive_rate": baseline_false_positive_rate,
    "baseline_expected_cost": baseline_cost,
    "alternative_policies": policies,
}
step.write_json("charter.json", charter)
step.write_text("charter.md", business.charter_markdown(charter))
show(business.charter_markdown(charter))

# %% [markdown]
# ## Summary
# The charter above is the contract for the rest of the lifecycle: step 02 turns its costs
# and baseline into gates, step 06 picks the decision threshold that minimises this cost,
# and no model is released unless it beats the baseline's expected cost per decision.
