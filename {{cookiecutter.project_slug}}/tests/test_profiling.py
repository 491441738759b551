import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import profiling

N = 400
CONTRACT = {"target": "income", "positive_label": "yes", "sensitive_features": ["sex"]}


@pytest.fixture
def raw():
    rng = np.random.default_rng(7)
    y = rng.random(N) < 0.3
    age = rng.integers(18, 70, N) + 8 * y  # useful, not leaking
    return pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(10_000, 10_000 + N)),  # unique integer per row
            "ticket": [f"T{i:05d}" for i in rng.permutation(N)],  # unique string per row
            "age": age,
            "city": rng.choice(["north", "south", "east", "west"], N),
            "outcome_code": np.where(y, "approved", "declined"),  # the target in disguise
            "score_after": y + rng.normal(0, 0.05, N),  # numeric leak
            "country": "US",  # constant
            "sex": rng.choice(["F", "M"], N),
            "income": np.where(y, "yes", "no"),
        }
    )


def selection(raw, contract=CONTRACT):
    features = raw.drop(columns="income")
    y = (raw["income"] == "yes").astype(int)
    prof = profiling.profile(features, y, seed=0)
    flagged = profiling.flag_columns(prof, leakage_auc=0.98, identifier_unique_ratio=0.95, max_categories=50, n_rows=N)
    spec = profiling.dataset_spec(features, flagged, contract, 50, raw["income"])
    return flagged.set_index("column"), spec


def test_identifier_and_leaking_columns_are_flagged_and_excluded(raw):
    flagged, spec = selection(raw)
    for column in ("customer_id", "ticket"):
        assert "identifier" in flagged.loc[column, "flags"], column
        assert flagged.loc[column, "exclude"]
    for column in ("outcome_code", "score_after"):
        assert "leakage" in flagged.loc[column, "flags"], column
        assert flagged.loc[column, "auc"] >= 0.98
        assert flagged.loc[column, "exclude"]
    assert "constant" in flagged.loc["country", "flags"] and flagged.loc["country", "exclude"]
    for column in ("age", "city"):
        assert flagged.loc[column, "flags"] == "" and not flagged.loc[column, "exclude"]
    assert 0.5 < flagged.loc["age", "auc"] < 0.98
    excluded = spec["excluded_columns"]
    assert set(excluded) == {"customer_id", "ticket", "outcome_code", "score_after", "country"}
    assert "identifier" in excluded["customer_id"] and "leakage" in excluded["outcome_code"]
    assert spec["numeric_features"] == ["age"]
    assert spec["categorical_features"] == ["city"]
    assert profiling.feature_columns(spec) == ["age", "city"]
    assert profiling.input_columns(spec) == ["age", "city", "sex"]


def test_keep_columns_keeps_flagged_columns(raw):
    _, spec = selection(raw, {**CONTRACT, "keep_columns": ["customer_id", "outcome_code"]})
    assert "customer_id" in spec["numeric_features"]
    assert "outcome_code" in spec["categorical_features"]
    assert "customer_id" not in spec["excluded_columns"] and "outcome_code" not in spec["excluded_columns"]
    assert "score_after" in spec["excluded_columns"]  # not kept: still excluded


def test_id_and_drop_columns_are_excluded_with_their_key(raw):
    _, spec = selection(raw, {**CONTRACT, "id_columns": ["city"], "drop_columns": "age"})
    assert spec["excluded_columns"]["city"] == "data.id_columns"
    assert spec["excluded_columns"]["age"] == "data.drop_columns"
    assert profiling.feature_columns(spec) == []


def test_dataset_spec_records_labels_schema_and_sensitive_bins(raw):
    raw["age_group"] = raw["age"]
    _, spec = selection(raw, {**CONTRACT, "sensitive_features": ["sex", "age_group"]})
    assert (spec["positive_label"], spec["negative_label"]) == ("yes", "no")
    assert spec["sensitive_features"] == ["sex", "age_group"]
    assert list(spec["sensitive_bins"]) == ["age_group"]  # numeric with many values: binned
    assert spec["sensitive_bins"]["age_group"][0] == raw["age"].min()
    assert spec["columns"]["sex"] == {"kind": "categorical", "nullable": False, "categories": ["F", "M"]}
    age = spec["columns"]["age"]
    assert (age["min"], age["max"], age["integer"], age["nullable"]) == (
        float(raw["age"].min()),
        float(raw["age"].max()),
        True,
        False,
    )


def test_single_feature_auc_is_symmetric_and_out_of_fold():
    y = pd.Series([0] * 50 + [1] * 50)
    assert profiling.single_feature_auc(pd.Series(np.arange(100.0)), y, "numeric") == 1.0
    assert profiling.single_feature_auc(pd.Series(-np.arange(100.0)), y, "numeric") == 1.0
    # a unique key per row cannot predict anything out of fold, however well it memorises
    unique = pd.Series([f"k{i}" for i in range(100)])
    assert profiling.single_feature_auc(unique, y, "categorical") == pytest.approx(0.5)
    same = pd.Series(np.where(y == 1, "a", "b"))
    assert profiling.single_feature_auc(same, y, "categorical") == 1.0


def test_column_kind():
    assert profiling.column_kind(pd.Series([1, 2, 3])) == "numeric"
    assert profiling.column_kind(pd.Series([1, 2, 3]), forced_categorical=True) == "categorical"
    assert profiling.column_kind(pd.Series([True, False])) == "categorical"
    assert profiling.column_kind(pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"]))) == "datetime"
    assert profiling.column_kind(pd.Series(["a", "b", None])) == "categorical"
    text = pd.Series([f"a long free-text comment number {i} about the customer's situation" for i in range(10)])
    assert profiling.column_kind(text) == "text"


def test_profile_reports_missingness_cardinality_and_range():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "c": ["a", "a", "b", None]})
    prof = profiling.profile(frame, pd.Series([0, 1, 0, 1])).set_index("column")
    assert prof.loc["x", "missing_rate"] == 0.25 and prof.loc["x", "n_unique"] == 3
    assert (prof.loc["x", "min"], prof.loc["x", "max"]) == (1.0, 4.0)
    assert prof.loc["c", "kind"] == "categorical" and prof.loc["c", "n_unique"] == 2
    assert prof.loc["c", "top_values"].startswith("a (67%)")


def test_text_that_reads_as_dates_is_a_date_column_checked_for_leakage(raw):
    rng = np.random.default_rng(3)
    y = (raw["income"] == "yes").to_numpy()
    opened = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, N), unit="D")
    # recorded after the outcome: approvals closed months later than refusals
    closed = pd.Timestamp("2021-01-01") + pd.to_timedelta(np.where(y, 200, 0) + rng.integers(0, 60, N), unit="D")
    dated = raw.assign(
        opened=opened.strftime("%Y-%m-%d"),  # no information about the outcome
        closed_at=closed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        note_date=np.where(rng.random(N) < 0.5, "2021-03-04", "soon"),  # not a date column: half are words
    )
    assert profiling.column_kind(dated["opened"]) == profiling.DATETIME
    assert profiling.column_kind(dated["closed_at"]) == profiling.DATETIME
    assert profiling.column_kind(dated["note_date"]) == profiling.CATEGORICAL
    flagged, spec = selection(dated)
    assert flagged.loc["closed_at", "auc"] > 0.95 and "leakage" in flagged.loc["closed_at", "flags"]
    assert flagged.loc["opened", "auc"] < 0.7 and "leakage" not in flagged.loc["opened", "flags"]
    assert flagged.loc["opened", "min"].startswith("2020-01")
    for column in ("opened", "closed_at"):
        assert "datetime (not used as a feature)" in spec["excluded_columns"][column]


def test_an_exact_copy_of_a_column_is_excluded_and_the_first_kept(raw):
    copied = raw.assign(years=raw["age"], town=raw["city"], age_plus=raw["age"] + 1)
    features = copied.drop(columns="income")
    assert profiling.duplicate_columns(features) == {"years": "age", "town": "city"}
    y = (copied["income"] == "yes").astype(int)
    prof = profiling.profile(features, y, seed=0)
    flagged = profiling.flag_columns(prof, 0.98, 0.95, 50, N, profiling.duplicate_columns(features))
    spec = profiling.dataset_spec(features, flagged, CONTRACT, 50, copied["income"])
    assert spec["excluded_columns"]["years"] == "duplicate of `age`"
    assert spec["excluded_columns"]["town"] == "duplicate of `city`"
    assert {"age", "age_plus"} <= set(spec["numeric_features"]) and "city" in spec["categorical_features"]


def test_an_empty_column_is_excluded_as_not_available(raw):
    flagged, spec = selection(raw.assign(notes=np.nan))
    assert spec["excluded_columns"]["notes"] == "empty (no value present)"


def test_a_profile_of_a_sample_states_missing_values_and_ranges_of_every_row(raw):
    from {{ cookiecutter.package_name }} import tables

    raw = raw.assign(age=raw["age"].astype(float))
    raw.loc[0, "age"], raw.loc[1, "age"], raw.loc[2:40, "city"] = 5.0, 99.0, None  # outside the sample
    sample = raw.iloc[100:]
    prof = profiling.profile(sample.drop(columns="income"), (sample["income"] == "yes").astype(int), seed=0)
    assert (
        prof.set_index("column").loc["age", "min"] > 5.0 and prof.set_index("column").loc["city", "missing_rate"] == 0
    )
    stats = tables.MemoryTable(raw).column_stats(list(raw.columns.drop("income")))
    whole = profiling.with_stats(prof, stats).set_index("column")
    assert (whole.loc["age", "min"], whole.loc["age", "max"]) == (5.0, 99.0)
    assert whole.loc["city", "missing_rate"] == pytest.approx(39 / N)
    assert whole.loc["city", "min"] is None or pd.isna(whole.loc["city", "min"])  # categories have no range
    assert whole.loc["sex", "kind"] == prof.set_index("column").loc["sex", "kind"]
