import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference
from sklearn.base import clone

from {{ cookiecutter.package_name }} import artifacts, business, config, data, fairness, gates, mitigation, scoring

FEATURES = ["age", "hours", "job"]
# fairlearn's reductions use pandas idioms that pandas deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Setting .*:Warning")


@pytest.fixture(scope="module")
def fitted(make_frame, make_pipeline, make_spec):
    """A model with a clear selection-rate gap by sex, and its ThresholdOptimizer mitigation."""
    spec = make_spec()
    frame = make_frame(n=1500, seed=5, sex_effect=1.0, proxy_gap=20)
    pipeline = make_pipeline(frame, spec)
    y = (frame["income"] == ">50K").astype(int).to_numpy()
    groups = data.sensitive_groups(frame, spec)
    model, curves = mitigation.fit_threshold_optimizer(
        pipeline, frame[FEATURES], y, groups[["sex"]], "demographic_parity"
    )
    return frame, spec, pipeline, groups, model, curves


def test_threshold_optimizer_narrows_the_parity_gap(fitted):
    frame, _, pipeline, groups, model, curves = fitted
    x = frame[FEATURES]
    before = (pipeline.predict_proba(x)[:, 1] >= 0.5).astype(int)
    after = model.decide(x, groups)
    gap = lambda d: demographic_parity_difference(np.zeros(len(d)), d, sensitive_features=groups["sex"])  # noqa: E731
    assert gap(before) > 0.1
    assert gap(after) < gap(before) / 2
    assert set(np.unique(after)) <= {0, 1}
    np.testing.assert_array_equal(model.score(x), pipeline.predict_proba(x)[:, 1])
    assert set(curves["groups"]) == {"Female", "Male"}


def test_decisions_are_deterministic(fitted):
    frame, _, _, groups, model, _ = fitted
    np.testing.assert_array_equal(model.decide(frame[FEATURES], groups), model.decide(frame[FEATURES], groups))


def test_mitigated_model_survives_a_save_and_load(tmp_path, fitted):
    frame, _, _, groups, model, _ = fitted
    path = artifacts.save(model, tmp_path / "mitigated.skops")
    assert artifacts.untrusted_types(path) == []
    loaded = artifacts.load(path)
    assert isinstance(loaded, mitigation.MitigatedModel) and loaded.kind == "threshold_optimizer"
    assert loaded.thresholds == model.thresholds and set(model.thresholds) == {"Female", "Male"}
    x = frame[FEATURES]
    np.testing.assert_array_equal(loaded.decide(x, groups), model.decide(x, groups))
    np.testing.assert_array_equal(loaded.score(x), model.score(x))
    assert artifacts.save(loaded, tmp_path / "again.skops").read_bytes() == path.read_bytes()


def test_a_mitigated_bundle_scores_with_group_aware_decisions(tmp_path, fitted, make_metadata):
    frame, spec, _, groups, model, _ = fitted
    meta = make_metadata(spec, needs_sensitive_features=True)
    path = artifacts.save(scoring.make_bundle(model, 0.5, meta), tmp_path / "release.skops")
    records = frame.drop(columns="income")
    result = scoring.score(scoring.load_bundle(path), records)
    np.testing.assert_array_equal(result["decision"].to_numpy(), model.decide(records[FEATURES], groups))
    with pytest.raises(scoring.InputError, match="missing column 'sex'"):
        scoring.score(scoring.load_bundle(path), records.drop(columns="sex"))


def test_scoring_runs_the_pipeline_once_and_decides_as_from_scratch(fitted, make_metadata, monkeypatch):
    frame, spec, pipeline, groups, model, _ = fitted
    records, x = frame.drop(columns="income"), frame[FEATURES]
    expected = model.decide(x, groups)
    np.testing.assert_array_equal(model.decide(x, groups, scores=model.score(x)), expected)
    calls = []
    original = type(pipeline).predict_proba
    monkeypatch.setattr(type(pipeline), "predict_proba", lambda self, *a: calls.append(1) or original(self, *a))
    result = scoring.score(scoring.make_bundle(model, 0.5, make_metadata(spec, needs_sensitive_features=True)), records)
    assert len(calls) == 1  # the post-processor decides on the scores, not on a second pass of the pipeline
    np.testing.assert_array_equal(result["decision"].to_numpy(), expected)
    with pytest.raises(ValueError, match="2 scores given for 3 records"):
        model.decide(x.head(3), groups.head(3), scores=np.array([0.1, 0.2]))


def test_group_key():
    assert mitigation.group_key(pd.Series(["F", "M"])).tolist() == ["F", "M"]
    both = pd.DataFrame({"sex": ["F", "M"], "race": ["A", "B"]})
    assert mitigation.group_key(both).tolist() == ["F & A", "M & B"]


def test_mitigate_rejects_unknown_choices(fitted):
    frame, spec, pipeline, _, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    with pytest.raises(ValueError, match="fairness constraint"):
        mitigation.mitigate("threshold_optimizer", pipeline, spec, labelled, ["sex"], "equal_luck")
    with pytest.raises(ValueError, match="unknown mitigation 'magic'"):
        mitigation.mitigate("magic", pipeline, spec, labelled, ["sex"], "demographic_parity")


def test_exponentiated_gradient_round_trip(tmp_path, fitted):
    frame, spec, pipeline, groups, _, _ = fitted
    part, g = frame.head(300), groups.head(300)
    y = (part["income"] == ">50K").astype(int).to_numpy()
    model = mitigation.fit_exponentiated_gradient(
        pipeline, part[FEATURES], y, g[["sex"]], "demographic_parity", costs=(1.0, 3.0), max_iter=3
    )
    assert model.kind == "exponentiated_gradient" and model.predictors
    assert model.weights.sum() == pytest.approx(1.0)
    x = part[FEATURES]
    decisions = model.decide(x, g)
    assert set(np.unique(decisions)) <= {0, 1}
    np.testing.assert_array_equal(decisions, (model.score(x) >= 0.5).astype(int))
    loaded = artifacts.load(artifacts.save(model, tmp_path / "eg.skops"))
    np.testing.assert_array_equal(loaded.decide(x, g), decisions)
    np.testing.assert_allclose(loaded.score(x), model.score(x))


class Vote:
    def __init__(self, value):
        self.value = value

    def predict_proba(self, x):
        return np.column_stack([np.full(len(x), 1.0 - self.value), np.full(len(x), float(self.value))])


def test_an_ensembles_probability_stays_within_0_and_1_whatever_the_rounding():
    # weights whose unanimous vote rounds to 1.0000000000000002 (seen at 30k rows in step 09)
    weights = [0.4520887883271084, 0.39465979707096, 0.23231147528553098, 0.7487557250039351,
               0.6437047620803104, 0.7257576850518699, 0.08280857589649471, 0.3527434156964051,
               0.5198330743342318, 0.42672114373024106, 0.040617561872745234]  # fmt: skip
    assert (np.ones((3, len(weights))) @ np.array(weights) / np.array(weights).sum() > 1).all()
    x = pd.DataFrame({"a": [1, 2, 3]})
    for value in (1, 0):
        model = mitigation.MitigatedModel(
            "exponentiated_gradient", None, [], predictors=[Vote(value)] * len(weights), weights=weights
        )
        assert model.score(x).tolist() == [float(value)] * 3


def test_groups_too_small_or_with_one_outcome_are_pooled():
    key = np.array(["A"] * 80 + ["B"] * 80 + ["C"] * 50 + ["D"] * 35)
    # C has 25 of each outcome, D 10 positives: each is short, together they have 35 positives and 50 negatives
    y = np.array([0, 1] * 40 + [0, 1] * 40 + [0, 1] * 25 + [1] * 10 + [0] * 25)
    mapping, fallback = mitigation.fittable_groups(key, y, min_group_size=30)
    assert fallback == mitigation.POOLED_GROUP
    assert mapping == {"A": "A", "B": "B", "C": fallback, "D": fallback}


def test_a_group_with_a_handful_of_positives_is_pooled_however_many_rows_it_has():
    # 400 rows but 9 positives: its ROC curve moves in steps of 0.11 and its thresholds would be noise
    key = np.array(["A"] * 400 + ["B"] * 400)
    y = np.r_[np.tile([0, 1], 200), np.ones(9), np.zeros(391)].astype(int)
    mapping, fallback = mitigation.fittable_groups(key, y, min_group_size=30)
    assert mapping == {"A": "A", "B": "A"} and fallback == "A"  # a pool as short of positives joins the largest group


def test_a_pool_with_one_outcome_joins_the_largest_group():
    key = np.array(["A"] * 80 + ["B"] * 120 + ["C"] * 5)
    y = np.array([0, 1] * 40 + [0, 1] * 60 + [0] * 5)
    mapping, fallback = mitigation.fittable_groups(key, y, min_group_size=30)
    assert fallback == "B" and mapping["C"] == "B"


def test_no_fittable_group_is_a_clear_error():
    with pytest.raises(mitigation.MitigationUnavailable, match="no sensitive group has 30 rows of each outcome"):
        mitigation.fittable_groups(np.array(["A"] * 40 + ["B"] * 40), np.array([0, 1] * 40), min_group_size=30)


def test_threshold_optimizer_fits_with_a_tiny_one_outcome_intersection(make_frame, make_pipeline, make_spec):
    """Small intersections with one outcome used to stop fairlearn with 'Degenerate labels'."""
    spec = make_spec()
    frame = make_frame(n=1500, seed=7, sex_effect=1.0, proxy_gap=20)
    tiny = frame.index[:6]
    frame.loc[tiny, "sex"], frame.loc[tiny, "income"] = "Other", "<=50K"
    pipeline = make_pipeline(frame, spec)
    y = (frame["income"] == ">50K").astype(int).to_numpy()
    groups = data.sensitive_groups(frame, spec)
    model, _ = mitigation.fit_threshold_optimizer(pipeline, frame[FEATURES], y, groups[["sex"]], "demographic_parity")
    assert model.pooled_groups == ["Other"]
    unseen = groups.head(3).assign(sex="Never seen")
    decisions = model.decide(frame[FEATURES].head(3), unseen)
    assert set(np.unique(decisions)) <= {0, 1}


def test_business_costs_choose_the_objective_on_the_held_out_rows(fitted):
    frame, spec, pipeline, _, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    fit, choice = mitigation.split_for_choice(labelled, spec, settings())
    costs = (1.0, 10.0)  # a missed positive costs ten false alarms
    chosen = mitigation.choose_fit(
        "threshold_optimizer",
        pipeline,
        spec,
        fit,
        choice,
        ["sex"],
        ["demographic_parity"],
        parity_criteria(),
        settings(),
        costs,
    )
    tried = chosen.tried
    # a missed positive costs ten false alarms: balanced accuracy's weighing is the nearer
    assert tried["objective"].tolist() == ["balanced_accuracy_score"] == [chosen.objective]
    decided = chosen.model.decide(choice[FEATURES], data.sensitive_groups(choice, spec))
    assert business.cost_of_predictions(choice["income"], decided, *costs) == tried["expected_cost"].min()


def test_the_post_processor_s_objective_follows_the_business_costs():
    parity = "demographic_parity"
    assert mitigation.objective_for((1.0, 1.0), 0.24, parity) == "accuracy_score"  # errors cost alike
    assert mitigation.objective_for((1.0, 4.0), 0.24, parity) == "balanced_accuracy_score"  # the default charter
    assert mitigation.objective_for((1.0, 1.5), 0.24, parity) == "accuracy_score"
    assert mitigation.objective_for((3.0, 1.0), 0.5, parity) == "accuracy_score"
    # under equalized odds the business cost itself is the objective, whatever the costs
    assert mitigation.objective_for((1.0, 4.0), 0.24) == mitigation.EXPECTED_COST


def test_cost_weighted_rows_make_accuracy_rank_decisions_as_the_business_cost_does():
    y = np.array([1, 0, 0, 1])
    assert mitigation.cost_weighted_rows(y, (1.0, 4.0)).tolist() == [4, 1, 1, 4]
    assert mitigation.cost_weighted_rows(y, (2.0, 3.0)).tolist() == [3, 2, 2, 3]
    assert mitigation.cost_weighted_rows(y, (30.0, 1.0)).tolist() == [1, 30, 30, 1]  # a false alarm dearer
    with pytest.raises(ValueError, match="must be positive"):
        mitigation.cost_weighted_rows(y, (0.0, 1.0))


def test_the_equalized_odds_post_processor_minimises_the_business_cost(make_frame, make_pipeline, make_spec):
    # a missed positive costs six false alarms: the cost objective beats both fixed objectives on its rows
    spec = make_spec()
    frame = make_frame(n=3000, seed=11, sex_effect=1.0, proxy_gap=20)
    pipeline = make_pipeline(frame, spec)
    y = (frame["income"] == ">50K").astype(int).to_numpy()
    groups = data.sensitive_groups(frame, spec)[["sex"]]
    costs = (1.0, 6.0)
    cost = {}
    for objective in mitigation.POSTPROCESSING_OBJECTIVES:
        model, _ = mitigation.fit_threshold_optimizer(
            pipeline, frame[FEATURES], y, groups, "equalized_odds", 30, objective, costs
        )
        cost[objective] = business.cost_of_predictions(y, model.decide(frame[FEATURES], groups), *costs)
    assert cost[mitigation.EXPECTED_COST] < min(cost["accuracy_score"], cost["balanced_accuracy_score"]), cost
    with pytest.raises(ValueError, match="not selection rates"):
        mitigation.fit_threshold_optimizer(
            pipeline, frame[FEATURES], y, groups, "demographic_parity", 30, mitigation.EXPECTED_COST, costs
        )


def test_failing_constraints_from_gate_failures():
    failures = [
        "demographic_parity[sex]: demographic_parity_difference[sex] = 0.25, required <= 0.15",
        "equalized_odds[race]: equalized_odds_difference[race] = 0.17, required <= 0.15",
        "demographic_parity[race]: demographic_parity_difference[race] = 0.25, required <= 0.15",
        "latency: p99_latency_ms = 900, required <= 500",
    ]
    assert mitigation.failing_constraints(failures) == ["demographic_parity", "equalized_odds"]


def parity_criteria(threshold: float = 0.1) -> dict:
    """Step 02's record with one fairness gate: demographic parity by sex."""
    criteria = {
        "max_demographic_parity_difference": threshold,
        "max_equalized_odds_difference": None,
        "confidence": 0.95,
        "fairness_power": 0.8,
        "decide_on": "interval",
    }
    gate = gates.gate("demographic_parity[sex]", "demographic_parity_difference[sex]", "<=", threshold,
                      ["fairness_assessment"], "")  # fmt: skip
    return {"criteria": criteria, "gates": [gate]}


DEMOGRAPHIC_PARITY_SEX_GATE = parity_criteria()


def settings(max_rows=None):
    return config.Mitigation(mitigation_max_rows=max_rows, min_group_size=30, seed=0)


def test_mitigate_to_pass_keeps_a_fit_that_passes_the_gates(fitted):
    frame, spec, pipeline, _, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    gate = DEMOGRAPHIC_PARITY_SEX_GATE
    model, _, constraint = mitigation.mitigate_to_pass(
        "threshold_optimizer",
        pipeline,
        spec,
        labelled,
        ["sex"],
        ["demographic_parity", "equalized_odds"],
        gate,
        settings(),
        costs=(1.0, 4.0),
    )
    assert constraint in {"demographic_parity", "equalized_odds"}  # whichever passes at the lower cost
    decided = model.decide(labelled[FEATURES], data.sensitive_groups(labelled, spec))
    judged = fairness.gate_table(labelled["income"].to_numpy(), decided, labelled, spec, gate)[0]
    assert not gates.failures(judged), judged
    with pytest.raises(ValueError, match="no fairness constraint"):
        mitigation.mitigate_to_pass("threshold_optimizer", pipeline, spec, labelled, ["sex"], [], gate, settings())


def test_mitigate_to_pass_fits_on_a_sample_of_at_most_max_rows(fitted, monkeypatch):
    frame, spec, pipeline, _, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    gate = DEMOGRAPHIC_PARITY_SEX_GATE
    fitted_rows = []
    fit = mitigation.mitigate

    def recording_fit(kind, pipeline, spec, frame, *args, **kwargs):
        fitted_rows.append(len(frame))
        return fit(kind, pipeline, spec, frame, *args, **kwargs)

    monkeypatch.setattr(mitigation, "mitigate", recording_fit)
    constraints = ["demographic_parity", "equalized_odds"]
    mitigation.mitigate_to_pass(
        "threshold_optimizer", pipeline, spec, labelled, ["sex"], constraints, gate, settings(max_rows=300)
    )
    assert fitted_rows == [300] * 2  # two constraints, the objective of the costs
    fitted_rows.clear()
    mitigation.mitigate_to_pass("threshold_optimizer", pipeline, spec, labelled, ["sex"], constraints, gate, settings())
    fit, choice = mitigation.split_for_choice(labelled, spec, settings())
    assert fitted_rows == [len(fit)] * 2 and len(fit) + len(choice) == len(labelled)
    assert len(fit) >= mitigation.fitting_rows(len(labelled)) > 300


def test_sample_note_only_when_the_mitigation_fits_on_a_sample():
    assert mitigation.sample_note(40_000, 20_000, "the whole test split") == ""
    assert mitigation.sample_note(40_000, None, "the whole test split") == ""
    assert mitigation.sample_note(50_000, 20_000, "the whole test split") == (
        "The mitigations are fitted on a random sample of 20,000 rows (`mitigation_max_rows`) of the 50,000 "
        "validation rows' fitting half, chosen on the other half, then assessed on the whole test split."
    )


def test_the_held_out_rows_are_a_share_of_every_group_and_outcome(make_spec):
    strata = np.array(["a"] * 100 + ["b"] * 11 + ["c"])
    held = mitigation.holdout_mask(strata, 0.5, seed=3)
    assert [held[strata == s].sum() for s in "abc"] == [50, 5, 0]
    np.testing.assert_array_equal(held, mitigation.holdout_mask(strata, 0.5, seed=3))
    assert not np.array_equal(held, mitigation.holdout_mask(strata, 0.5, seed=4))
    spec = make_spec()
    frame = pd.DataFrame({"sex": ["F"] * 40 + ["M"] * 60, "income": [0, 1] * 50, "age": range(100)})
    fit, choice = mitigation.split_for_choice(frame, spec, settings())
    assert len(choice) == 50 and not set(fit.index) & set(choice.index)
    assert choice.groupby(["sex", "income"]).size().tolist() == [10, 10, 15, 15]
    fit, _ = mitigation.split_for_choice(frame, spec, settings(max_rows=100))
    assert len(fit) == 50  # at most max_rows: no sample needed


def nudged(x: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``x`` with every ``hours`` moved by 0.001 to 0.003: the size of a typo, or of a deliberate nudge."""
    return x.assign(hours=x["hours"] + np.random.default_rng(seed).uniform(0.001, 0.003, len(x)))


def test_a_decision_is_the_score_against_its_groups_threshold(fitted):
    """Within a group, a higher score never gets the worse decision: nothing is drawn at random."""
    frame, _, pipeline, groups, model, _ = fitted
    x = frame[FEATURES]
    scores, decided = pipeline.predict_proba(x)[:, 1], model.decide(x, groups)
    for group in ("Female", "Male"):
        rows = (groups["sex"] == group).to_numpy()
        by_score = decided[rows][np.argsort(scores[rows], kind="stable")]
        assert (np.diff(by_score) >= 0).all(), f"{group}: decisions are not monotone in the score"
        assert 0 < by_score.mean() < 1
    np.testing.assert_array_equal(decided, (scores >= model.group_threshold(groups)).astype(int))


def test_a_tiny_feature_change_flips_a_decision_only_across_its_groups_threshold(fitted):
    frame, _, pipeline, groups, model, _ = fitted
    x = frame[FEATURES]
    moved = nudged(x)
    threshold = model.group_threshold(groups)
    crossed = (pipeline.predict_proba(x)[:, 1] >= threshold) != (pipeline.predict_proba(moved)[:, 1] >= threshold)
    flipped = model.decide(x, groups) != model.decide(moved, groups)
    np.testing.assert_array_equal(flipped, crossed)
    assert flipped.sum() <= 3  # of 1,500 records


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_group_thresholds_reach_the_optimizers_operating_point(make_frame, make_pipeline, make_spec, constraint):
    """fairlearn's rule randomises between two thresholds per group; one threshold per group comes as close to
    its selection rate (parity) or its true and false positive rates (equalized odds) as the scores allow,
    and so narrows the gap the optimizer was fitted for."""
    from fairlearn.metrics import equalized_odds_difference
    from fairlearn.postprocessing import ThresholdOptimizer

    spec, frame = make_spec(), make_frame(n=3000, seed=11, sex_effect=1.0, proxy_gap=20)
    pipeline = make_pipeline(frame, spec)
    x, y, sex = frame[FEATURES], (frame["income"] == ">50K").astype(int).to_numpy(), frame["sex"].to_numpy()
    optimizer = ThresholdOptimizer(
        estimator=pipeline, constraints=constraint, prefit=True, predict_method="predict_proba"
    )
    optimizer.fit(x, y, sensitive_features=sex)
    scores = pipeline.predict_proba(x)[:, 1]
    positive = mitigation.interpolated_positive(optimizer.interpolated_thresholder_.interpolation_dict, scores, sex)
    np.testing.assert_array_equal(positive, optimizer._pmf_predict(x, sensitive_features=sex)[:, 1])  # bit for bit
    assert ((positive > 0) & (positive < 1)).sum() > 100  # fairlearn's own rule draws for many records
    thresholds = mitigation.group_thresholds(scores, y, sex, positive, constraint)
    decided = (scores >= pd.Series(sex).map(thresholds).to_numpy()).astype(int)
    for group in ("Female", "Male"):
        rows = sex == group
        if constraint == "demographic_parity":
            assert abs(decided[rows].mean() - positive[rows].mean()) <= 0.5 / rows.sum()
        else:
            for outcome in (0, 1):
                part = rows & (y == outcome)
                assert abs(decided[part].mean() - positive[part].mean()) < 0.02
    gap = equalized_odds_difference if constraint == "equalized_odds" else demographic_parity_difference
    unmitigated = gap(y, (scores >= 0.5).astype(int), sensitive_features=sex)
    assert gap(y, decided, sensitive_features=sex) < unmitigated / 3


def test_the_model_card_states_how_many_decisions_are_randomised():
    from {{ cookiecutter.package_name }}.model_card import release_section

    record = {
        "released": True,
        "reasons": [],
        "mitigation": "threshold_optimizer",
        "constraint": "demographic_parity",
        "decision_rule": mitigation.DECISION_RULE,
        "chosen_on": {"fit_rows": 2188, "held_out_rows": 2177},
    }
    text = release_section(record)
    assert "- **Randomised decisions:** 0. Every decision is the record's score against a threshold" in text
    assert "No decision is randomised" in text and "seed" not in text
    assert "**Randomised decisions:** 0." in release_section({"released": True, "reasons": [], "mitigation": "none"})
    stated = release_section(record | {"randomised_decisions": 1234})
    assert "**Randomised decisions:** 1,234 of the test split's decisions are drawn at random." in stated


def test_a_release_saved_with_the_randomised_rule_is_refused_with_the_step_to_rerun(fitted):
    frame, _, pipeline, groups, _, _ = fitted
    old = mitigation.MitigatedModel.__new__(mitigation.MitigatedModel)  # as skops restores an older file
    old.__dict__.update(
        kind="threshold_optimizer", pipeline=pipeline, group_columns=["sex"], postprocessor=None, seed=0
    )
    with pytest.raises(ValueError, match="no group thresholds .* run step 08 again"):
        old.decide(frame[FEATURES], groups)


def test_no_fit_takes_the_public_seed():
    """The seed in params.yaml is public: a decision that depended on it could be replayed and gamed."""
    import inspect

    for fit in (mitigation.mitigate, mitigation.fit_threshold_optimizer, mitigation.fit_exponentiated_gradient):
        assert "seed" not in inspect.signature(fit).parameters
    assert "seed" not in inspect.signature(mitigation.MitigatedModel).parameters


def test_the_reduction_refits_the_deployed_estimator_for_the_business_cost(fitted):
    """ExponentiatedGradient retrains the deployed model's own estimator (its tuned settings), not a stock one,
    and minimises the business cost: a dearer missed positive selects more records."""
    frame, spec, pipeline, groups, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    deployed = clone(pipeline).set_params(model__C=0.37).fit(labelled[FEATURES], labelled["income"])
    part = labelled.head(600)
    fits = {
        costs: mitigation.mitigate(
            "exponentiated_gradient", deployed, spec, part, ["sex"], "demographic_parity", costs=costs
        )
        for costs in ((1.0, 1.0), (1.0, 5.0))
    }
    x = labelled[FEATURES]
    for model, curves in fits.values():
        assert curves is None and model.pipeline is deployed
        assert all(
            type(p[-1]) is type(deployed[-1]) and p[-1].C == 0.37 and p is not deployed for p in model.predictors
        )
        np.testing.assert_array_equal(model.decide(x, groups), (model.score(x) >= 0.5).astype(int))
    cheap, dear = (model.decide(x, groups).mean() for model, _ in fits.values())
    assert dear > cheap + 0.1


def test_the_reduction_is_fitted_only_when_named_and_the_reason_is_given():
    assert mitigation.AUTO_KINDS == ("threshold_optimizer",)
    assert "name it to fit it" in mitigation.NOT_IN_AUTO["exponentiated_gradient"]
    assert set(mitigation.DECISION_RULES) == set(mitigation.AUTO_KINDS) | set(mitigation.NOT_IN_AUTO)
    assert all("No decision is randomised" in rule for rule in mitigation.DECISION_RULES.values())


def test_mitigate_to_pass_chooses_on_rows_held_out_from_the_fit(fitted, monkeypatch):
    """The constraint and the objective are chosen on rows the mitigation was not fitted on."""
    from {{ cookiecutter.package_name }} import fairness

    frame, spec, pipeline, _, _, _ = fitted
    labelled = frame.assign(income=(frame["income"] == ">50K").astype(int))
    fitted_on, judged_on = [], []
    fit, judge = mitigation.mitigate, fairness.gate_table

    def recording_fit(kind, pipeline, spec, frame, *args, **kwargs):
        fitted_on.append(set(frame.index))
        return fit(kind, pipeline, spec, frame, *args, **kwargs)

    def recording_judge(y, decided, frame, *args, **kwargs):
        if len(args) > 2:  # a fit's decisions judged (the other call only sizes the groups, on every row's counts)
            judged_on.append(set(frame.index))
        return judge(y, decided, frame, *args, **kwargs)

    monkeypatch.setattr(mitigation, "mitigate", recording_fit)
    monkeypatch.setattr(fairness, "gate_table", recording_judge)
    constraints = ["demographic_parity", "equalized_odds"]
    mitigation.mitigate_to_pass(
        "threshold_optimizer", pipeline, spec, labelled, ["sex"], constraints, DEMOGRAPHIC_PARITY_SEX_GATE, settings()
    )
    assert fitted_on and judged_on
    fit_rows, judged_rows = set().union(*fitted_on), set().union(*judged_on)
    assert not fit_rows & judged_rows
    assert len(judged_rows) > len(labelled) / 3 and fit_rows | judged_rows == set(labelled.index)


def test_a_records_decision_is_the_same_alone_in_a_batch_and_shuffled(fitted):
    frame, _, _, groups, model, _ = fitted
    x = frame[FEATURES]
    batch = model.decide(x, groups)
    alone = np.array([model.decide(x.iloc[[i]], groups.iloc[[i]])[0] for i in range(300)])
    np.testing.assert_array_equal(alone, batch[:300])
    order = np.random.default_rng(1).permutation(len(x))
    np.testing.assert_array_equal(model.decide(x.iloc[order], groups.iloc[order]), batch[order])
    np.testing.assert_array_equal(model.decide(x.iloc[200:260], groups.iloc[200:260]), batch[200:260])


def test_scoring_decides_a_record_alike_alone_in_a_batch_shuffled_and_from_json(fitted, make_metadata):
    """What the service does with a request (scoring.score on the JSON records) gives one decision per record."""
    import json

    frame, spec, _, groups, model, _ = fitted
    bundle = scoring.make_bundle(model, 0.5, make_metadata(spec, needs_sensitive_features=True))
    records = frame.drop(columns="income").head(400)
    batch = scoring.score(bundle, records)["decision"].to_numpy()
    np.testing.assert_array_equal(batch, model.decide(records[FEATURES], groups.head(400)))
    wire = json.loads(records.to_json(orient="records"))
    as_requests = [scoring.score(bundle, pd.DataFrame([r]))["decision"].iloc[0] for r in wire[:150]]
    np.testing.assert_array_equal(as_requests, batch[:150])
    order = np.random.default_rng(2).permutation(len(wire))
    shuffled = scoring.score(bundle, pd.DataFrame([wire[i] for i in order]))["decision"].to_numpy()
    np.testing.assert_array_equal(shuffled, batch[order])
