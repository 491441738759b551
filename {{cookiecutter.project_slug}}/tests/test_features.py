import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import features


@pytest.fixture
def labelled(make_frame):
    frame = make_frame(n=1000, seed=3)
    frame["income"] = (frame["income"] == ">50K").astype(int)
    return frame


def test_split_sizes_are_disjoint_and_complete(labelled):
    key = features.strata(labelled["income"], labelled["sex"])
    parts = features.split_frame(labelled, key, 0.15, 0.15, seed=1)
    assert {name: len(part) for name, part in parts.items()} == {"train": 700, "validation": 150, "test": 150}
    indexes = [set(part.index) for part in parts.values()]
    assert set.union(*indexes) == set(labelled.index)
    assert sum(len(i) for i in indexes) == len(labelled)


def test_split_is_stratified_by_label_and_group(labelled):
    key = features.strata(labelled["income"], labelled["sex"])
    parts = features.split_frame(labelled, key, 0.2, 0.2, seed=1)
    overall_rate = labelled["income"].mean()
    overall_female = (labelled["sex"] == "Female").mean()
    for part in parts.values():
        assert part["income"].mean() == pytest.approx(overall_rate, abs=0.01)
        assert (part["sex"] == "Female").mean() == pytest.approx(overall_female, abs=0.01)
        for sex in ("Female", "Male"):
            within = part.loc[part["sex"] == sex, "income"].mean()
            assert within == pytest.approx(labelled.loc[labelled["sex"] == sex, "income"].mean(), abs=0.02)


def test_split_is_deterministic_with_a_seed(labelled):
    key = features.strata(labelled["income"], labelled["sex"])
    first = features.split_frame(labelled, key, 0.15, 0.15, seed=5)
    again = features.split_frame(labelled, key, 0.15, 0.15, seed=5)
    other = features.split_frame(labelled, key, 0.15, 0.15, seed=6)
    for name in first:
        assert first[name].index.tolist() == again[name].index.tolist()
    assert first["test"].index.tolist() != other["test"].index.tolist()


@pytest.mark.parametrize("validation, test", [(0.0, 0.2), (0.2, 0.0), (0.5, 0.5), (1.2, 0.1), (0.2, -0.1)])
def test_split_rejects_impossible_fractions(labelled, validation, test):
    key = features.strata(labelled["income"], labelled["sex"])
    with pytest.raises(ValueError, match="validation_fraction"):
        features.split_frame(labelled, key, validation, test, seed=0)


def test_strata_folds_rare_combinations_into_the_label():
    y = pd.Series([1] * 10 + [0] * 10 + [1] * 2)
    groups = pd.Series(["A"] * 10 + ["A"] * 10 + ["tiny"] * 2)
    key = features.strata(y, groups, min_count=6)
    assert key.tolist() == ["1 | A"] * 10 + ["0 | A"] * 10 + ["1 | other"] * 2


def test_split_survives_a_tiny_group(labelled):
    labelled.loc[labelled.index[:3], "sex"] = "Other"
    key = features.strata(labelled["income"], labelled["sex"])
    parts = features.split_frame(labelled, key, 0.15, 0.15, seed=0)
    assert sum(len(p) for p in parts.values()) == len(labelled)


def _fit(spec, frame, encoding):
    pre = features.build_preprocessor(spec, encoding=encoding)
    return pre.fit(frame[spec["numeric_features"] + spec["categorical_features"]])


def test_onehot_preprocessor_handles_missing_values_and_unseen_categories(spec, frame):
    pre = _fit(spec, frame, "onehot")
    median_hours = frame["hours"].median()
    new = pd.DataFrame(
        {
            "age": [30, 30, 30, 30],
            "hours": [np.nan, median_hours, 40.0, 40.0],
            "job": ["clerk", "clerk", "astronaut", None],
        }
    )
    out = pre.transform(new)
    names = list(pre.get_feature_names_out())
    assert out.shape == (4, len(names)) and np.isfinite(out).all()
    # a missing number is the training median
    np.testing.assert_allclose(out[0], out[1])
    job_columns = [i for i, n in enumerate(names) if n.startswith("job_")]
    # an unseen category is encoded as no known category, not as an error
    assert out[2, job_columns].sum() == 0
    assert out[1, job_columns].sum() == 1
    # a missing category is a category of its own
    assert out[3, names.index(f"job_{features.MISSING}")] == 1


def test_ordinal_preprocessor_handles_missing_values_and_unseen_categories(spec, frame):
    pre = _fit(spec, frame, "ordinal")
    new = pd.DataFrame({"age": [30, 31, 32], "hours": [np.nan, 40.0, 40.0], "job": ["clerk", "astronaut", None]})
    out = pre.transform(new)
    assert out.shape == (3, 3)
    assert np.isfinite(out[:, :2]).all()  # numeric columns imputed
    assert np.isfinite(out[0, 2]) and np.isfinite(out[2, 2])  # known category and "(missing)"
    assert out[0, 2] != out[2, 2]
    assert np.isnan(out[1, 2])  # unseen: left for the tree model to treat as missing
    assert features.categorical_mask(spec) == [False, False, True]


def test_preprocessor_treats_numbers_and_booleans_as_text_categories():
    spec = {"numeric_features": [], "categorical_features": ["code", "flag"]}
    train = pd.DataFrame({"code": [1, 2] * 10, "flag": [True, False] * 10})
    pre = features.build_preprocessor(spec).fit(train)
    assert sorted(pre.get_feature_names_out()) == ["code_1", "code_2", "flag_False", "flag_True"]
    out = pre.transform(pd.DataFrame({"code": ["1", 3], "flag": [True, None]}))
    assert out.shape == (2, 4)


def test_build_preprocessor_rejects_an_unknown_encoding(spec):
    with pytest.raises(ValueError, match="encoding"):
        features.build_preprocessor(spec, encoding="target")


def selected_frame(make_frame, spec, n=500, seed=2):
    frame = make_frame(n=n, seed=seed)
    frame[spec["target"]] = (frame[spec["target"]] == spec["positive_label"]).astype(int)  # as step 03 writes it
    return frame


def by_content(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as a multiset: sorted by every column, index dropped."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def test_split_selected_is_step_05s_split_for_step_04_too(make_frame, make_spec):
    from {{ cookiecutter.package_name }} import config

    spec = make_spec()
    frame = selected_frame(make_frame, spec)
    frame = pd.concat([frame, frame.head(20)], ignore_index=True)  # 20 duplicated rows
    split = config.DataPipeline(validation_fraction=0.2, test_fraction=0.2, seed=3)
    first, second = features.split_selected(frame, spec, split), features.split_selected(frame, spec, split)
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(first[name], second[name])  # the same rows for steps 04 and 05
    rows = pd.concat(first.values())
    assert len(rows) == len(frame) and rows.index.is_unique  # every row kept, once


def test_identical_rows_are_kept_and_never_on_two_sides(make_frame, make_spec):
    """Copies of a row (a fifth of the rows, some many times over) all land in one split; none is dropped."""
    from {{ cookiecutter.package_name }} import config

    spec = make_spec()
    frame = selected_frame(make_frame, spec, n=1000)
    copies = frame.sample(n=250, replace=True, random_state=0)  # pairs, and rows repeated up to 5 times
    frame = pd.concat([frame, copies], ignore_index=True)
    split = config.DataPipeline(validation_fraction=0.15, test_fraction=0.15, seed=1)
    parts = features.split_selected(frame, spec, split)
    assert sum(len(p) for p in parts.values()) == len(frame)
    hashes = {name: set(features.row_hashes(part)) for name, part in parts.items()}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["validation"]
    assert not hashes["validation"] & hashes["test"]
    counted = features.identical_rows({name: features.row_hashes(part) for name, part in parts.items()})
    assert counted == {"rows": len(frame), "repeats": int(frame.duplicated().sum()), "in_two_splits": 0}


def test_the_split_is_a_function_of_the_rows_not_their_order(make_frame, make_spec):
    from {{ cookiecutter.package_name }} import config

    spec = make_spec()
    frame = selected_frame(make_frame, spec, n=800)
    split = config.DataPipeline(validation_fraction=0.15, test_fraction=0.15, seed=4)
    first = features.split_selected(frame, spec, split)
    shuffled = features.split_selected(frame.sample(frac=1, random_state=9), spec, split)
    for name in first:
        pd.testing.assert_frame_equal(first[name].reset_index(drop=True), shuffled[name].reset_index(drop=True))
    other = features.split_selected(frame, spec, split.model_copy(update={"seed": 5}))
    assert not by_content(other["test"]).equals(by_content(first["test"]))  # another seed, another split


def test_the_split_keeps_every_stratum_within_a_row_of_its_share(make_frame, make_spec):
    from {{ cookiecutter.package_name }} import config

    spec = make_spec()
    frame = selected_frame(make_frame, spec, n=2000, seed=6)
    frame.loc[frame.index[:40], "sex"] = "Other"  # a small group is a stratum of its own
    split = config.DataPipeline(validation_fraction=0.2, test_fraction=0.1, seed=0)
    parts = features.split_selected(frame, spec, split)
    assert {name: len(p) for name, p in parts.items()} == {"train": 1400, "validation": 400, "test": 200}
    key = features.split_keys(frame, spec)
    for name, fraction in (("validation", 0.2), ("test", 0.1)):
        counts = features.split_keys(parts[name], spec).value_counts()
        share = key.value_counts() * fraction
        assert (counts.reindex(share.index, fill_value=0) - share).abs().max() <= 1, name


def test_row_hashes_see_content_not_dtypes():
    a = pd.DataFrame({"x": [1, 2, None], "t": ["a", None, "c"], "b": [True, False, True]})
    b = pd.DataFrame(
        {
            "b": pd.Series([1.0, 0.0, 1.0]),
            "t": pd.Series(["a", np.nan, "c"], dtype=object),
            "x": pd.Series([1, 2, None], dtype="Int64"),
        }
    )
    np.testing.assert_array_equal(features.row_hashes(a), features.row_hashes(b))
    assert len(set(features.row_hashes(a))) == 3
