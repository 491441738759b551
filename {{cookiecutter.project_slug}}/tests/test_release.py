import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_criteria

from {{ cookiecutter.package_name }} import business, gates, release
from {{ cookiecutter.package_name }}.intervals import Estimate

FEATURES = ["age", "hours", "job"]
# fairlearn's reductions use pandas idioms that pandas deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Setting .*:Warning")


CRITERIA = synthetic_criteria()
DEPLOYED = {"deployed": True, "reasons": []}


def tradeoff(**rows) -> pd.DataFrame:
    """A trade-off table from ``name=(passes, expected_cost, largest upper bound of a gap)``."""
    frame = pd.DataFrame(
        [
            {
                "mitigation": name,
                "passes_fairness_gates": p,
                "expected_cost": c,
                "max_dp_upper": dp,
                "max_eo_upper": dp / 2,
            }
            for name, (p, c, dp) in rows.items()
        ]
    )
    return frame.set_index("mitigation")


def test_auto_releases_the_cheapest_option_that_passes():
    table = tradeoff(
        none=(False, 0.2, 0.25), threshold_optimizer=(True, 0.3, 0.10), exponentiated_gradient=(True, 0.5, 0.05)
    )
    assert release.choose(table, "auto") == "threshold_optimizer"
    assert release.choose(tradeoff(none=(True, 0.2, 0.1), threshold_optimizer=(True, 0.3, 0.05)), "auto") == "none"


def test_auto_without_a_passing_option_takes_the_smallest_upper_bound():
    table = tradeoff(
        none=(False, 0.2, 0.25), threshold_optimizer=(False, 0.3, 0.18), exponentiated_gradient=(False, 0.5, np.nan)
    )
    assert release.choose(table, "auto") == "threshold_optimizer"


def test_a_named_mitigation_is_released_when_it_was_fitted_else_none():
    table = tradeoff(none=(False, 0.2, 0.25), exponentiated_gradient=(True, 0.5, 0.05))
    assert release.choose(table, "exponentiated_gradient") == "exponentiated_gradient"
    assert release.choose(table, "threshold_optimizer") == "none"
    assert release.choose(table, "none") == "none"


def test_the_tradeoff_row_is_the_options_decision_metrics_and_gate():
    y = np.array([1, 1, 0, 0])
    decisions = np.array([1, 0, 1, 0])
    fairness = gates.evaluate(
        gates.gates_for(CRITERIA["gates"], "fairness_assessment"),
        {
            "demographic_parity_difference[sex]": Estimate(0.2, 0.1, 0.3),
            "equalized_odds_difference[sex]": Estimate(0.1, 0.0, 0.12),
        },
    )
    row = release.tradeoff_row(y, np.array([0.9, 0.4, 0.6, 0.1]), decisions, fairness, business.Costs(1.0, 3.0))
    assert row["accuracy"] == 0.5 and row["selection_rate"] == 0.5
    assert row["expected_cost"] == pytest.approx((1 * 1.0 + 1 * 3.0) / 4)
    assert row["passes_fairness_gates"] is False
    assert (row["max_dp_difference"], row["max_dp_upper"], row["max_eo_upper"]) == (0.2, 0.3, 0.12)


class Rescoring:
    """A mitigated model whose scores are not the deployed model's: its own ranking, decisions by the group."""

    def score(self, x):
        return 1 - np.asarray(x["age"], dtype=float) / 100  # ranks the synthetic data's outcome backwards

    def decide(self, x, groups, scores=None):
        return (groups["sex"].to_numpy() == "Female").astype(int)


def test_the_release_is_judged_on_its_own_scores_and_decisions(make_frame, make_spec, make_metadata, make_pipeline):
    from sklearn.metrics import roc_auc_score

    from {{ cookiecutter.package_name }}.modeling import Scored

    spec, frame = make_spec(), make_frame(n=800, seed=3)
    test = frame.assign(income=(frame["income"] == ">50K").astype(int))
    deployed = {"model": make_pipeline(frame, spec), "threshold": 0.5,
                "metadata": make_metadata(spec, metrics={"roc_auc": 0.99})}  # fmt: skip
    candidate = release.release_bundle(
        deployed, "exponentiated_gradient", release.Choice(Rescoring(), "demographic_parity"), ["sex"]
    )
    charter = {"cost_false_positive": 1.0, "cost_false_negative": 3.0, "baseline_true_positive_rate": 0.5,
               "baseline_false_positive_rate": 0.2}  # fmt: skip
    baseline_scores = deployed["model"].predict_proba(test[FEATURES])[:, 1]
    baseline = Scored(baseline_scores, (baseline_scores >= 0.5).astype(int))
    verdict = release.judge(candidate, test, spec, CRITERIA, charter, baseline, DEPLOYED, seed=0)
    auc = roc_auc_score(test["income"], Rescoring().score(test))
    quality = verdict.gates.set_index("gate").loc["model_quality"]  # against the baseline, on the same rows
    assert quality["value"] == pytest.approx(auc - roc_auc_score(test["income"], baseline_scores))
    assert quality["verdict"] == "fail" and quality["high"] < -0.01
    np.testing.assert_array_equal(verdict.decisions, (test["sex"] == "Female").astype(int))
    assert verdict.gaps["demographic_parity_difference[sex]"].value == 1.0
    assert verdict.metrics["expected_cost"] == business.cost_of_predictions(test["income"], verdict.decisions, 1.0, 3.0)
    assert (
        not verdict.released
        and verdict.evidence == "fail"
        and any(r.startswith("model_quality") for r in verdict.reasons)
    )
    same = release.judge(release.release_bundle(deployed, "none", release.Choice(), []), test, spec, CRITERIA, charter,
                         baseline, {"deployed": False, "reasons": ["latency: too slow"]}, seed=0)  # fmt: skip
    assert same.reasons[-1] == "step 07: latency: too slow"
    saved = release.finalize(candidate, verdict)["metadata"]
    assert (saved["releasable"], saved["reasons"]) == (False, verdict.reasons)
    assert saved["fairness"]["demographic_parity_difference[sex]"]["value"] == 1.0


def test_the_quality_gates_read_the_primary_metric_the_team_chose(make_frame, make_spec, make_metadata, make_pipeline):
    """The issue's bug: with a primary metric other than ROC AUC, the leakage alarm was "not measured" and no release passed."""
    from {{ cookiecutter.package_name }}.modeling import Scored

    spec, frame = make_spec(), make_frame(n=800, seed=3)
    test = frame.assign(income=(frame["income"] == ">50K").astype(int))
    deployed = {"model": make_pipeline(frame, spec), "threshold": 0.5, "metadata": make_metadata(spec)}
    charter = {"cost_false_positive": 1.0, "cost_false_negative": 3.0, "baseline_true_positive_rate": 0.5,
               "baseline_false_positive_rate": 0.2}  # fmt: skip
    scores = np.full(len(test), 0.5)
    chosen = synthetic_criteria(primary_metric="average_precision", max_plausible_roc_auc=0.99, min_primary_metric=0.1)
    verdict = release.judge(
        deployed, test, spec, chosen, charter, Scored(scores, np.zeros(len(test), int)), DEPLOYED, seed=0
    )
    table = verdict.gates.set_index("gate")
    assert {"leakage_alarm", "model_quality_floor", "model_quality"} <= set(table.index)
    quality = table.loc[["leakage_alarm", "model_quality_floor", "model_quality", "cost_vs_baseline"], "verdict"]
    assert (quality != "not measured").all()
    assert table.loc["model_quality_floor", "metric"] == "test_average_precision"


def test_the_mitigation_is_chosen_on_held_out_validation_rows(make_frame, make_spec, make_metadata, make_pipeline):
    from {{ cookiecutter.package_name }} import config, mitigation

    spec, frame = make_spec(), make_frame(n=5000, seed=5, sex_effect=1.0, proxy_gap=20)
    validation = frame.assign(income=(frame["income"] == ">50K").astype(int))
    bundle = {"model": make_pipeline(frame, spec), "threshold": 0.5, "metadata": make_metadata(spec)}
    strict = synthetic_criteria(max_demographic_parity_difference=0.1)
    settings = config.FairnessAssessment(min_group_size=30, mitigation="auto", mitigation_max_rows=None, seed=0)
    selection = release.choose_mitigation(bundle, spec, validation, strict, settings, business.Costs(1.0, 3.0))
    fit, choice = mitigation.split_for_choice(validation, spec, settings)
    assert (selection.fit_rows, selection.choice_rows) == (len(fit), len(choice))
    assert selection.failed and selection.features == ["sex"] and "demographic_parity" in selection.constraints
    assert set(selection.tradeoff.index) == {"none", "threshold_optimizer"}  # the reduction only when named
    assert any("not fitted under `mitigation: auto`" in note for note in selection.notes)
    # every row of the trade-off is measured on the held-out rows
    deployed = (bundle["model"].predict_proba(choice[FEATURES])[:, 1] >= 0.5).astype(int)
    assert selection.tradeoff.loc["none", "selection_rate"] == deployed.mean()
    post = selection.options["threshold_optimizer"]
    decided = post.model.decide(choice[FEATURES], choice[["sex"]])
    assert selection.tradeoff.loc["threshold_optimizer", "selection_rate"] == decided.mean()
    assert selection.tradeoff.loc["threshold_optimizer", "objective"] == post.objective
    assert selection.chosen == release.choose(selection.tradeoff, "auto") != "none"
    assert selection.tradeoff.loc[selection.chosen, "passes_fairness_gates"]
    lax = synthetic_criteria(max_demographic_parity_difference=0.9, max_equalized_odds_difference=0.9)
    none = release.choose_mitigation(bundle, spec, validation, lax, settings, (1.0, 3.0))
    assert (none.failed, list(none.options), none.chosen) == ([], ["none"], "none")


def gate_rows(dp, eo):
    return gates.evaluate(
        gates.gates_for(CRITERIA["gates"], "fairness_assessment"),
        {"demographic_parity_difference[sex]": Estimate(*dp), "equalized_odds_difference[sex]": Estimate(*eo)},
    )


def test_the_decision_note_says_what_was_chosen_where_and_the_verdict():
    table = tradeoff(none=(False, 0.25, 0.25), threshold_optimizer=(True, 0.34, 0.14))
    choice = release.Choice("model", "equalized_odds", "balanced_accuracy_score")
    selection = release.Selection(
        100, 100, ["demographic_parity[sex]: ..."], ["sex"], ["equalized_odds"],
        {"none": release.Choice(), "threshold_optimizer": choice}, table, "threshold_optimizer",
    )  # fmt: skip
    before = gate_rows((0.25, 0.2, 0.3), (0.17, 0.1, 0.24))
    after = gate_rows((0.12, 0.05, 0.14), (0.05, 0.0, 0.09))
    verdict = release.Verdict(None, None, {}, None, {"accuracy": 0.81, "expected_cost": 0.34}, after, [])
    note = release.decision_note(selection, before, {"accuracy": 0.80, "expected_cost": 0.25}, verdict)
    assert note.startswith(
        "Without mitigation, fairness gates do not pass on the validation split (demographic_parity[sex]: ...). "
    )
    assert "**threshold_optimizer** (equalized odds constraint on `sex`, objective `balanced_accuracy_score`)" in note
    assert "largest parity gap 0.250 (upper bound 0.300) → **0.120 (upper bound 0.140)**" in note
    assert "accuracy 0.800 → **0.810**, expected cost 0.250 → **0.340**" in note
    assert note.endswith("**Released**: `models/release.skops` passes every gate it could assess, on its interval.")
    selection.failed, selection.chosen = [], "none"
    unsure = gate_rows((0.12, 0.05, 0.2), (0.05, 0.0, 0.09))
    verdict = release.Verdict(
        None, None, {}, None, {"accuracy": 0.81, "expected_cost": 0.34}, unsure, gates.failures(unsure)
    )
    note = release.decision_note(selection, before, {"accuracy": 0.80, "expected_cost": 0.25}, verdict)
    assert note.startswith("Every assessed fairness gate passes on the validation split without mitigation")
    assert "**Not released** (the evidence is inconclusive): demographic_parity[sex]: inconclusive" in note


def test_the_release_section_of_the_model_card_says_how_decisions_are_made():
    from {{ cookiecutter.package_name }}.model_card import release_section

    record = {
        "released": True,
        "reasons": [],
        "mitigation": "threshold_optimizer",
        "constraint": "equalized_odds",
        "objective": "balanced_accuracy_score",
        "decision_rule": "a draw derived from the record itself",
        "chosen_on": {"split": "validation", "fit_rows": 2188, "held_out_rows": 2177},
    }
    text = release_section(record)
    assert "`threshold_optimizer` under `equalized_odds`, objective `balanced_accuracy_score`" in text
    assert "chosen on 2,177 validation rows held out from its fit (2,188 rows)" in text
    assert "**How a decision is made:** a draw derived from the record itself" in text
    unmitigated = release_section({"released": False, "reasons": ["gate x"], "mitigation": "none"})
    assert "**Released:** no: gate x" in unmitigated and "Mitigation:** none" in unmitigated
    assert "Into service" not in unmitigated and "Into service" in text  # a first release goes in without approval
    judged = release_section({**record, "evidence": "pass", "confidence": 0.95, "decided_on": "interval",
                              "groups": {"equalized_odds": {"reported": {"race=Other": 851}}}})  # fmt: skip
    assert "**Evidence:** pass, every gate judged on their 95% intervals" in judged
    assert "`race=Other` (~851)" in judged


def test_the_model_card_says_what_the_score_means():
    from {{ cookiecutter.package_name }}.model_card import calibration_line

    row = {"grouping": "sex", "group": "Female", "predicted": 0.141, "observed": 0.110, "gap": 0.031}
    off = calibration_line(
        [{**row, "miscalibrated": True}, {**row, "group": "Male", "gap": -0.02, "miscalibrated": False}]
    )
    assert (
        "it is not each group's probability: in 1 of 2 groups" in off and "`sex` = `Female`, 0.141 against 0.110" in off
    )
    assert "can be read as a probability" in calibration_line([{**row, "miscalibrated": False}])
    assert "not measured" in calibration_line(None)
