"""The model specification: candidates, search, threshold, metrics, selection (shared by steps 06 and 10)."""

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import artifacts, bias, business, config, data, gates, intervals, modeling

SPACE = {
    "logistic_regression": {"C": [0.1, 1.0]},
    "hist_gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [7]},
}
NO_REMEDIATION = {"remediation": "none"}


@pytest.fixture(scope="module")
def splits(make_frame, make_spec):
    """Processed splits as step 05 writes them: the target is 0/1."""
    spec = make_spec()
    frame = make_frame(n=900, seed=3)
    frame[spec["target"]] = (frame[spec["target"]] == spec["positive_label"]).astype(int)
    return spec, frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)


def select(spec, train, validation, include=None, search_max_rows=None, fit_max_rows=None, available_rows=None):
    search = config.Search(
        search_space=SPACE,
        cv_folds=2,
        search_iterations=2,
        search_max_rows=search_max_rows,
        fit_max_rows=fit_max_rows,
        seed=0,
    )
    return modeling.train_and_select(
        train,
        validation,
        spec,
        NO_REMEDIATION,
        business.Costs(1.0, 4.0),
        search,
        include=include,
        available_rows=available_rows,
    )


def test_every_candidate_is_a_pipeline_ending_in_its_model(make_spec):
    pipelines = modeling.candidate_pipelines(make_spec(), seed=0)
    assert set(modeling.BASELINES) | {"logistic_regression", "hist_gradient_boosting"} <= set(pipelines)
    assert all(pipeline.steps[-1][0] == "model" for pipeline in pipelines.values())


def test_cost_threshold_minimises_the_business_cost():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.9, 0.35, 0.05])
    threshold, cost = modeling.cost_threshold(y, scores, 1.0, 4.0)
    every_cut = min(business.cost_of_predictions(y, scores >= c, 1.0, 4.0) for c in [*np.unique(scores), 1.01])
    assert cost == pytest.approx(every_cut)
    assert business.cost_of_predictions(y, scores >= threshold, 1.0, 4.0) == pytest.approx(cost)


def test_evaluate_reports_every_metric_in_range():
    y = np.array([0, 1, 0, 1, 1, 0])
    metrics = modeling.evaluate(y, np.array([0.2, 0.8, 0.4, 0.7, 0.3, 0.1]), 0.5, 1.0, 4.0)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["selection_rate"] == pytest.approx(2 / 6) and metrics["recall"] == pytest.approx(2 / 3)
    assert all(0 <= metrics[k] <= 1 for k in ("accuracy", "f1", "precision", "brier", "average_precision"))
    assert np.isnan(modeling.evaluate(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5, 1.0, 4.0)["roc_auc"])


def test_selection_learns_the_signal_and_beats_the_majority_baseline(splits):
    spec, train, validation = splits
    result = select(spec, train, validation)
    assert result.name in {"logistic_regression", "hist_gradient_boosting"}
    table = result.candidates
    assert set(modeling.BASELINES) <= set(table.index)
    # the synthetic data's signal (age, job) supports an AUC near 0.7; no signal gives 0.5
    assert table.loc[result.name, "validation_roc_auc"] > 0.6 > table.loc["majority_class", "validation_roc_auc"] + 0.05
    assert table.loc[result.name, "validation_expected_cost"] < table.loc["majority_class", "validation_expected_cost"]
    assert result.params == table.loc[result.name, "params"]


def test_training_is_reproducible_to_the_byte(splits, tmp_path):
    spec, train, validation = splits
    first, second = select(spec, train, validation), select(spec, train, validation)
    np.testing.assert_array_equal(first.validation_scores, second.validation_scores)
    a = artifacts.save(first.model, tmp_path / "first.skops").read_bytes()
    assert a == artifacts.save(second.model, tmp_path / "second.skops").read_bytes()


def test_unknown_models_are_named_in_the_error(splits):
    spec, train, validation = splits
    with pytest.raises(ValueError, match="unknown model 'xgboost'"):
        select(spec, train, validation, include=["xgboost"])


def test_served_decisions_not_a_threshold_decide_the_cost():
    y = np.array([0, 1, 0, 1])
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    decisions = np.array([0, 1, 0, 1])  # e.g. group-specific thresholds of a mitigated model
    served = modeling.evaluate_served(y, scores, decisions, 1.0, 4.0)
    assert served["expected_cost"] == 0 and served["accuracy"] == 1
    assert served["roc_auc"] == modeling.evaluate(y, scores, 0.5, 1.0, 4.0)["roc_auc"] == 0.25
    assert modeling.evaluate(y, scores, 0.5, 1.0, 4.0)["expected_cost"] > 0


def test_search_rows_are_all_rows_or_a_label_stratified_sample():
    y = np.array([0] * 900 + [1] * 100)
    assert np.array_equal(modeling.search_rows(y, None, seed=0), np.arange(1000))
    assert np.array_equal(modeling.search_rows(y, 1000, seed=0), np.arange(1000))
    rows = modeling.search_rows(y, 200, seed=0)
    assert len(rows) == 200 and len(set(rows)) == 200 and np.all(np.diff(rows) > 0)
    assert y[rows].mean() == pytest.approx(0.1)
    assert np.array_equal(rows, modeling.search_rows(y, 200, seed=0))
    with pytest.raises(ValueError, match="search_max_rows must be at least 4"):
        modeling.search_rows(y, 3, seed=0)


def test_a_capped_search_still_fits_the_chosen_model_on_every_row(splits):
    spec, train, validation = splits
    result = select(spec, train, validation, search_max_rows=200)
    assert (result.search_rows, result.training_rows) == (200, len(train))
    assert result.model.named_steps["model"].n_features_in_ > 0
    full = select(spec, train, validation)
    assert (full.search_rows, full.training_rows) == (len(train), len(train))


def test_search_sample_note_says_whether_the_search_used_a_sample(splits):
    spec, train, validation = splits
    capped = select(spec, train, validation, search_max_rows=200)
    assert modeling.search_sample_note(capped) == (
        f"The search compared settings on a stratified sample of 200 of the {len(train):,} training rows "
        "(`search_max_rows`); every model was then fitted on all of them."
    )
    full = select(spec, train, validation)
    assert modeling.search_sample_note(full) == f"The search and the fits used all {len(train):,} training rows."


def test_leakage_suspects_name_the_features_that_carry_a_too_good_score():
    alarm = [gates.gate("leakage_alarm", "test_roc_auc", "<=", 0.99, ["modeling"], "too good to be true")]
    importance = pd.Series({"closed_at": 0.30, "status_code": 0.15, "age": 0.05, "city": 0.01, "noise": -0.002})
    alarmed = gates.evaluate(alarm, {"test_roc_auc": 0.998})
    named = modeling.leakage_suspects(alarmed, importance)
    assert named == "`closed_at` (drop 0.300 in ROC AUC without it)"  # alone more than half of the total drop
    assert "`status_code`" in modeling.leakage_suspects(alarmed, importance, share=0.7)
    assert modeling.leakage_suspects(gates.evaluate(alarm, {"test_roc_auc": 0.91}), importance) == ""


def test_resampling_weights_the_rows_instead_of_copying_them_across_folds(splits):
    spec, train, _ = splits
    groups = data.intersection_labels(data.sensitive_groups(train, spec))
    table = bias.reweighing_table(groups, train[spec["target"]])
    plan = {"remediation": "resampling", "weights": table.to_dict(orient="records")}
    frame, counts = modeling.training_weights(train, spec, plan, seed=0)
    assert frame is train, "the resampled rows must not be copied into the frame the search cross-validates"
    assert counts.sum() == len(train) and {0.0, 1.0, 2.0} <= set(np.unique(counts))  # drawn 0, 1, 2, ... times
    expected = bias.row_weights(groups, train[spec["target"]], table)
    heavy = expected > np.median(expected)
    assert counts[heavy].mean() > counts[~heavy].mean()  # drawn as the weights say


def test_capped_fits_use_a_stratified_sample_and_say_so(splits):
    spec, train, validation = splits
    result = select(spec, train, validation, search_max_rows=200, fit_max_rows=400)
    assert (result.search_rows, result.training_rows, result.available_rows) == (200, 400, len(train))
    assert result.model.named_steps["model"].n_features_in_ > 0
    assert modeling.search_sample_note(result) == (
        f"Every model was fitted on a stratified sample of 400 of the {len(train):,} training rows (`fit_max_rows`), "
        "the search compared settings on 200 of them (`search_max_rows`)."
    )
    same = select(spec, train, validation, search_max_rows=200, fit_max_rows=400)
    assert same.validation_scores.tolist() == result.validation_scores.tolist()  # seeded
    drawn = select(
        spec, train.iloc[:450], validation, fit_max_rows=400, available_rows=90_000
    )  # a sample of the partitions
    assert (drawn.training_rows, drawn.available_rows) == (400, 90_000)
    uncapped = select(spec, train, validation, fit_max_rows=len(train))
    assert uncapped.validation_scores.tolist() == select(spec, train, validation).validation_scores.tolist()


@pytest.fixture(scope="module")
def miscalibrated(make_frame, make_spec):
    """A logistic regression fitted with positives weighted five times (its scores overstate the positive rate), and
    labelled rows it never saw: one half to calibrate on, one half to judge on."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from {{ cookiecutter.package_name }} import features

    spec = make_spec()
    frame = make_frame(n=6000, seed=11)
    frame[spec["target"]] = (frame[spec["target"]] == spec["positive_label"]).astype(int)
    cols = spec["numeric_features"] + spec["categorical_features"]
    model = Pipeline(
        [("preprocess", features.build_preprocessor(spec)), ("model", LogisticRegression(class_weight={0: 1, 1: 5}))]
    ).fit(frame[cols].iloc[:2000], frame[spec["target"]].iloc[:2000])
    return spec, model, frame.iloc[2000:4000], frame.iloc[4000:]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrate_maps_the_scores_to_observed_rates_without_refitting_the_model(miscalibrated, method):
    spec, model, held, judged = miscalibrated
    cols, target = spec["numeric_features"] + spec["categorical_features"], spec["target"]
    calibrated = modeling.calibrate(model, held[cols], held[target].to_numpy(), method)
    raw, fixed = modeling.probabilities(model, judged[cols]), modeling.probabilities(calibrated, judged[cols])
    y = judged[target].to_numpy()
    assert intervals.mean_interval(raw - y, 0.95).low > 0.1  # weighted positives: scores far above the outcomes
    gap, raw_gap = intervals.mean_interval(fixed - y, 0.95), intervals.mean_interval(raw - y, 0.95)
    assert gap.low < 0 < gap.high and abs(gap.value) < raw_gap.value / 3  # calibrated on other rows, right here
    assert modeling.uncalibrated(calibrated) is model and modeling.uncalibrated(model) is model  # frozen, not refitted
    order = np.argsort(raw, kind="stable")
    assert (np.diff(fixed[order]) >= -1e-12).all()  # a monotone map: the ranking (ROC AUC) is the model's


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_a_calibrated_model_saves_and_loads_with_skops(miscalibrated, method, tmp_path):
    spec, model, held, judged = miscalibrated
    cols = spec["numeric_features"] + spec["categorical_features"]
    calibrated = modeling.calibrate(model, held[cols], held[spec["target"]].to_numpy(), method)
    path = artifacts.save(calibrated, tmp_path / "calibrated.skops")
    assert artifacts.untrusted_types(path) == []
    loaded = artifacts.load(path)
    np.testing.assert_array_equal(
        modeling.probabilities(loaded, judged[cols]), modeling.probabilities(calibrated, judged[cols])
    )


def test_a_calibrated_result_decides_at_the_bayes_threshold(splits):
    spec, train, validation = splits
    result = select(spec, train, validation)
    before = result.candidates.copy()
    fixed = modeling.calibrated(result, validation, spec, business.Costs(1.0, 4.0))
    assert fixed.threshold == pytest.approx(0.2) == fixed.candidates.loc[result.name, "threshold"]  # 1 / (1 + 4)
    assert fixed.models[result.name] is fixed.model and modeling.uncalibrated(fixed.model) is result.model
    x = validation[spec["numeric_features"] + spec["categorical_features"]]
    np.testing.assert_array_equal(fixed.validation_scores, modeling.probabilities(fixed.model, x))
    expected = modeling.evaluate(validation[spec["target"]], fixed.validation_scores, 0.2, 1.0, 4.0)["expected_cost"]
    assert fixed.candidates.loc[result.name, "validation_expected_cost"] == pytest.approx(expected)
    baselines = list(modeling.BASELINES)
    pd.testing.assert_frame_equal(fixed.candidates.loc[baselines], before.loc[baselines])  # the baselines keep theirs
    pd.testing.assert_frame_equal(result.candidates, before)  # the result it wraps is left as it was


def test_calibration_table_shows_each_groups_predicted_and_observed_rate_with_intervals():
    frame = pd.DataFrame({"sex": ["Female"] * 400 + ["Male"] * 600, "race": (["A", "B"] * 500)})
    spec = {"sensitive_features": ["sex", "race"], "sensitive_bins": {}}
    y = np.r_[np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40), np.tile([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 60)]
    scores = np.r_[np.full(400, 0.10), np.full(600, 0.45)]  # women right (10 %), men over by 15 points (30 %)
    table = modeling.calibration_table(y, scores, frame, spec)
    assert list(table.index.get_level_values("grouping").unique()) == ["all", "sex", "race", "sex & race"]
    women, men = table.loc[("sex", "Female")], table.loc[("sex", "Male")]
    assert (women["rows"], women["predicted"], women["observed"]) == (400, pytest.approx(0.10), pytest.approx(0.10))
    assert women["gap_low"] < 0 < women["gap_high"]  # calibrated: the interval holds zero
    assert men["gap"] == pytest.approx(0.15) and men["gap_low"] > 0.1  # miscalibration shown
    low, high = intervals.wilson(180, 600, intervals.z_value(0.95, 2))  # two groups of sex: Bonferroni over them
    assert (men["observed_low"], men["observed_high"]) == (pytest.approx(low), pytest.approx(high))
    overall = table.loc[("all", "all")]
    assert overall["rows"] == 1000 and overall["predicted"] == pytest.approx(0.31)
    assert table.loc["sex & race"]["rows"].sum() == 1000
