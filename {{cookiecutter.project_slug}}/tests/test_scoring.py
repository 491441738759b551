import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import artifacts, scoring
from {{ cookiecutter.package_name }}.scoring import InputError

ONE = {"age": 37, "hours": 40.0, "job": "engineer", "sex": "Female"}


def one(**changes) -> pd.DataFrame:
    return pd.DataFrame([{**ONE, **changes}])


def test_validate_input_returns_schema_types(metadata, records):
    clean = scoring.validate_input(records, metadata)
    assert list(clean.columns) == ["age", "hours", "job", "sex"]
    assert clean.index.equals(records.index)
    assert clean["age"].dtype == "float64" and clean["hours"].dtype == "float64"
    assert clean["hours"].isna().sum() == records["hours"].isna().sum()
    assert all(isinstance(v, str) for v in clean["job"].dropna())


def test_numbers_given_as_text_and_categories_given_as_numbers_are_accepted(metadata):
    meta = {
        **metadata,
        "schema": {**metadata["schema"], "job": {"kind": "categorical", "nullable": False, "categories": ["1", "2"]}},
    }
    clean = scoring.validate_input(one(age="42", job=2), meta)
    assert clean["age"].iloc[0] == 42.0 and clean["job"].iloc[0] == "2"


def test_missing_column(metadata):
    with pytest.raises(InputError, match=r"missing column 'hours' \(required: age, hours, job\)"):
        scoring.validate_input(one().drop(columns="hours"), metadata)


def test_sensitive_features_are_required_only_when_the_model_decides_by_group(metadata):
    without_sex = one().drop(columns="sex")
    assert list(scoring.validate_input(without_sex, metadata).columns) == ["age", "hours", "job"]
    with pytest.raises(InputError, match="missing column 'sex'"):
        scoring.validate_input(without_sex, {**metadata, "needs_sensitive_features": True})
    assert scoring.required_columns({**metadata, "needs_sensitive_features": True}) == ["age", "hours", "job", "sex"]


def test_extra_column(metadata):
    with pytest.raises(InputError, match="unexpected column 'zodiac'"):
        scoring.validate_input(one(zodiac="leo"), metadata)
    clean = scoring.validate_input(one(zodiac="leo"), metadata, allow_extra=True)
    assert "zodiac" not in clean.columns


@pytest.mark.parametrize("value", ["old", "", "12 years", True, [1, 2]])
def test_non_numeric_value(metadata, value):
    records = pd.DataFrame([ONE, {**ONE, "age": value}])  # as a JSON list of records arrives
    with pytest.raises(InputError, match=r"column 'age': value .* \(record 1\) is not a number"):
        scoring.validate_input(records, metadata)


def test_non_numeric_value_is_named_in_the_message(metadata):
    with pytest.raises(InputError, match="value 'old'"):
        scoring.validate_input(one(age="old"), metadata)


def test_unseen_category(metadata):
    with pytest.raises(InputError, match=r"column 'job': unseen category 'astronaut' \(known: clerk, engineer"):
        scoring.validate_input(one(job="astronaut"), metadata)
    clean = scoring.validate_input(one(job="astronaut"), metadata, allow_unseen=True)
    assert clean["job"].iloc[0] == "astronaut"


def test_a_record_or_list_is_not_a_category(metadata):
    with pytest.raises(InputError, match=r"column 'job': value \{'a': 1\} \(record 0\) is not a category"):
        scoring.validate_input(one(job={"a": 1}), metadata)


def test_missing_values_are_not_unseen_categories(metadata):
    clean = scoring.validate_input(one(job=None, hours=None), metadata)
    assert clean["job"].isna().all() and clean["hours"].isna().all()


def test_empty_input(metadata):
    with pytest.raises(InputError, match="no records"):
        scoring.validate_input(one().iloc[:0], metadata)


def test_score_gives_scores_decisions_and_labels(tmp_path, bundle_path, pipeline, records):
    bundle = scoring.load_bundle(bundle_path)
    result = scoring.score(bundle, records)
    assert list(result.columns) == ["score", "decision", "label"]
    assert result.index.equals(records.index)
    expected = pipeline.predict_proba(records[["age", "hours", "job"]])[:, 1]
    np.testing.assert_allclose(result["score"], expected)
    assert (result["decision"] == (result["score"] >= 0.5)).all()
    assert 0 < result["decision"].sum() < len(result)  # both decisions occur
    assert set(result.loc[result["decision"] == 1, "label"]) == {">50K"}
    assert set(result.loc[result["decision"] == 0, "label"]) == {"<=50K"}
    strict = scoring.score({**bundle, "threshold": 1.01}, records)
    assert strict["decision"].sum() == 0


def test_make_bundle_requires_metadata(pipeline, metadata):
    with pytest.raises(ValueError, match="schema"):
        scoring.make_bundle(pipeline, 0.5, {k: v for k, v in metadata.items() if k != "schema"})


def test_load_bundle_refuses_unreleasable_and_foreign_files(tmp_path, pipeline, make_metadata, spec):
    meta = make_metadata(spec, releasable=False, reasons=["fairness gate failed"])
    path = artifacts.save(scoring.make_bundle(pipeline, 0.5, meta), tmp_path / "model.skops")
    with pytest.raises(ValueError, match="not releasable: fairness gate failed"):
        scoring.load_bundle(path)
    assert scoring.load_bundle(path, allow_unreleased=True)["threshold"] == 0.5
    bare = artifacts.save(pipeline, tmp_path / "bare.skops")
    with pytest.raises(ValueError, match="not a deployable artifact"):
        scoring.load_bundle(bare)


def test_default_model_path_is_the_model_in_service(tmp_path, pipeline, make_metadata, spec):
    from {{ cookiecutter.package_name }}.registry import Registry

    def artifact(path, version, **meta):
        return artifacts.save(scoring.make_bundle(pipeline, 0.5, make_metadata(spec, version=version, **meta)), path)

    with pytest.raises(FileNotFoundError, match="dvc repro"):
        scoring.default_model_path(tmp_path)
    deployable, release = tmp_path / "models/model.skops", tmp_path / "models/release.skops"
    artifact(deployable, "0")
    assert scoring.default_model_path(tmp_path) == deployable
    artifact(release, "1")
    assert scoring.default_model_path(tmp_path) == release
    registry = Registry(tmp_path)
    registry.sync_release(release, "1")
    assert scoring.default_model_path(tmp_path) == registry.champion  # installed: the same model
    registry.install(artifact(tmp_path / "challenger.skops", "2"), "2", "promoted")
    assert scoring.default_model_path(tmp_path) == registry.champion  # the promoted challenger, not the release
    artifact(release, "3")
    assert scoring.default_model_path(tmp_path) == release  # deployed before step 10 installs it


def test_a_release_step_08_did_not_release_is_never_in_service(tmp_path, pipeline, make_metadata, spec):
    """The champion stays in service; without one nothing is, and serve, predict and step 09 are told why."""
    from {{ cookiecutter.package_name }}.registry import NoModelInService, Registry

    release = tmp_path / "models/release.skops"
    unreleased = make_metadata(spec, version="2", releasable=False, reasons=["fairness gate failed"])
    artifacts.save(scoring.make_bundle(pipeline, 0.5, unreleased), release)
    with pytest.raises(NoModelInService, match=r"did not release .*release.skops \(fairness gate failed\)"):
        scoring.default_model_path(tmp_path)
    champion = artifacts.save(scoring.make_bundle(pipeline, 0.5, make_metadata(spec)), tmp_path / "v1.skops")
    registry = Registry(tmp_path)
    registry.install(champion, "1.0.0", "first release from step 08")
    assert scoring.default_model_path(tmp_path) == registry.champion
    assert scoring.load_bundle(scoring.default_model_path(tmp_path))["metadata"]["version"] == "1.0.0"
    release.write_bytes(b"not an artifact")  # unreadable: not released either
    assert scoring.default_model_path(tmp_path) == registry.champion


@pytest.mark.parametrize(
    "value, message",
    [
        (500, r"column 'age': value 500 \(record 0\) is outside the accepted range 0 to 120 \(training: 18 to 69\)"),
        (-3, "outside the accepted range 0 to 120"),
        ("1e400", r"value '1e400' \(record 0\) is not a finite number"),
        (float("inf"), "is not a finite number"),
    ],
)
def test_numbers_far_outside_the_training_range_are_refused(metadata, value, message):
    with pytest.raises(InputError, match=message):
        scoring.validate_input(one(age=value), metadata)


def test_allow_unseen_accepts_out_of_range_numbers_and_missing_values(metadata):
    clean = scoring.validate_input(one(age=500, sex=None), metadata, allow_unseen=True)
    assert clean["age"].iloc[0] == 500 and clean["sex"].isna().all()
    with pytest.raises(InputError, match="not a finite number"):  # infinity is never a value
        scoring.validate_input(one(age=float("inf")), metadata, allow_unseen=True)


def test_a_missing_value_in_a_column_that_had_none_is_refused(metadata):
    with pytest.raises(InputError, match=r"column 'age': missing value \(record 1\); the training data had none"):
        scoring.validate_input(pd.DataFrame([ONE, {**ONE, "age": None}]), metadata)


def test_accepted_range():
    assert scoring.accepted_range({"min": 18, "max": 69}) == (0.0, 120.0)  # never negative in training
    assert scoring.accepted_range({"min": -10, "max": 10}) == (-30.0, 30.0)
    assert scoring.accepted_range({"min": 5, "max": 5}, margin=0.5) == (2.5, 7.5)  # constant column: its size


def test_columns_of_the_training_file_the_contract_declares_are_accepted(metadata):
    """A file shaped like the training data (target, id and dropped columns) scores without --allow-extra."""
    spec = {"target": "income", "excluded_columns": {"person_id": "data.id_columns", "weight": "data.drop_columns"}}
    training_shape = one().assign(income=">50K", person_id=7, weight=1.5)
    with pytest.raises(InputError, match="unexpected column 'income'"):
        scoring.validate_input(training_shape, metadata)  # nothing says what these columns are
    clean = scoring.validate_input(training_shape, metadata, spec=spec)
    assert list(clean.columns) == ["age", "hours", "job", "sex"]
    with pytest.raises(InputError, match="unexpected column 'zodiac'"):
        scoring.validate_input(training_shape.assign(zodiac="leo"), metadata, spec=spec)
    recorded = {**metadata, "target": "income", "excluded_columns": spec["excluded_columns"]}
    assert list(scoring.validate_input(training_shape, recorded).columns) == ["age", "hours", "job", "sex"]


def test_contract_columns():
    spec = {
        "target": "y",
        "excluded_columns": {"id": "data.id_columns", "row": "identifier (100% unique)", "w": "data.drop_columns"},
    }
    assert scoring.contract_columns({}, spec) == {"target": ["y"], "ids": ["id", "row"], "dropped": ["w"]}
    assert scoring.contract_columns({}, None) == {"target": [], "ids": [], "dropped": []}


def test_numbers_of_every_origin_validate_alike(metadata):
    """Numbers from JSON (ints, floats, None), from text, from nullable integer columns."""
    frame = pd.DataFrame({"age": [37, 40.0, "41"], "hours": [None, 38.5, np.nan], "job": ["clerk", None, 2]})
    frame["age2"] = pd.array([37, 40, 41], dtype="Int64")
    meta = {**metadata, "schema": {**metadata["schema"], "job": {"kind": "categorical", "nullable": True}}}
    clean = scoring.validate_input(frame.drop(columns="age2"), meta)
    assert clean["age"].tolist() == [37.0, 40.0, 41.0] and clean["hours"].isna().tolist() == [True, False, True]
    assert clean["job"].dtype == object and clean["job"].isna().tolist() == [False, True, False]
    assert clean["job"][[0, 2]].tolist() == ["clerk", "2"]
    nullable_ints = frame.drop(columns="age").rename(columns={"age2": "age"})
    assert scoring.validate_input(nullable_ints, meta)["age"].tolist() == [37.0, 40.0, 41.0]


def test_a_missing_category_scores_as_the_pipeline_scores_a_missing_value(bundle_path, records, pipeline):
    """None in a JSON record and NaN from a file are the same missing value to the model."""
    rows = records.assign(job=[None] * len(records))
    scored = scoring.score(scoring.load_bundle(bundle_path), rows)["score"].to_numpy()
    np.testing.assert_allclose(scored, pipeline.predict_proba(rows.assign(job=np.nan)[["age", "hours", "job"]])[:, 1])
