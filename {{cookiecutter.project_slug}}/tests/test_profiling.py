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


# --- leakage and identifiers that a screen of one column at a time misses --------------------------------------------
# A recidivism-like table of ~7,000 people: honest columns (age, prior offences, charge), columns recorded after the
# outcome (a re-arrest's days, missing for 97 % of those not re-arrested and 32 % of those re-arrested; a violent
# charge, missing for 99 % and 76 %; the days observed, AUC ~0.92 alone), first and last names with thousands of
# levels, and a 300-level code that is a real category (about 23 rows each).
RECID = {"target": "recid", "positive_label": 1, "sensitive_features": []}
ROWS = 7000


def zipf_names(rng, prefix, population, exponent, rows):
    """Names drawn as real names are: a few common, most rare (Zipf's law)."""
    weights = 1.0 / np.arange(1, population + 1) ** exponent
    return np.array([f"{prefix}{i}" for i in rng.choice(population, rows, p=weights / weights.sum())])


def honest_people(rng, rows=ROWS):
    age = rng.integers(18, 70, rows)
    priors = rng.poisson(3, rows)
    charge = rng.choice(["felony", "misdemeanor"], rows, p=[0.6, 0.4])
    logit = -0.045 * (age - 35) + 0.22 * (priors - 3) + 0.4 * (charge == "felony") - 0.25
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "priors": priors, "charge": charge}), y


def missing_unless(rng, values, y, present_if_positive, present_if_negative):
    """``values`` recorded for a share of each outcome only, as a value known after the outcome is."""
    present = np.where(y == 1, rng.random(len(y)) < present_if_positive, rng.random(len(y)) < present_if_negative)
    return pd.Series(values).where(present)


@pytest.fixture(scope="module")
def recid():
    rng = np.random.default_rng(11)
    frame, y = honest_people(rng)
    frame["days_to_rearrest"] = missing_unless(rng, rng.integers(1, 700, ROWS).astype(float), y, 0.68, 0.03)
    frame["violent_charge"] = missing_unless(rng, rng.choice(["assault", "battery", "robbery"], ROWS), y, 0.24, 0.01)
    frame["income"] = pd.Series(rng.lognormal(7, 0.5, ROWS)).mask(rng.random(ROWS) < 0.1)  # missing at random
    frame["days_observed"] = (700 - 450 * y + rng.normal(0, 216, ROWS)).round()  # ends at the re-arrest
    frame["first_name"] = zipf_names(rng, "F", 20_000, 1.0, ROWS)
    frame["last_name"] = zipf_names(rng, "L", 200_000, 0.95, ROWS)
    frame["district"] = np.array([f"D{z:03d}" for z in rng.integers(0, 300, ROWS)])
    return frame, pd.Series(y)


def one_at_a_time(frame, y, leakage_auc=0.95):
    prof = profiling.profile(frame, y, seed=0)
    return profiling.flag_columns(prof, leakage_auc, 0.95, 200, len(frame)).set_index("column")


def test_a_column_present_mostly_for_one_outcome_is_leakage_even_with_useless_values(recid):
    frame, y = recid
    flagged = one_at_a_time(frame, y)
    rearrest = flagged.loc["days_to_rearrest"]
    assert rearrest["auc"] < 0.6  # its values (missing ones at the median) say little
    assert 0.8 < rearrest["missing_auc"] < 0.85  # whether it is there says a lot
    assert "whether it is missing" in rearrest["flags"] and rearrest["exclude"]
    assert "97% of negatives, 32% of positives" in rearrest["flags"]
    violent = flagged.loc["violent_charge"]  # present for a quarter of one outcome: AUC only ~0.61
    assert violent["missing_auc"] < 0.65 and violent["missing_odds_ratio_low"] > 10
    assert "whether it is missing" in violent["flags"] and violent["exclude"]
    assert flagged.loc["income", "missing_odds_ratio_low"] < 2 and not flagged.loc["income", "exclude"]
    spec = profiling.dataset_spec(frame, flagged.reset_index(), {**RECID, "keep_columns": ["violent_charge"]}, 200, y)
    assert "days_to_rearrest" in spec["excluded_columns"] and "violent_charge" in spec["categorical_features"]


def test_names_and_near_unique_codes_are_excluded_as_identifiers_not_grouped(recid):
    frame, y = recid
    flagged = one_at_a_time(frame, y)
    for column in ("first_name", "last_name"):
        assert flagged.loc[column, "n_unique"] > 2000 and flagged.loc[column, "unique_ratio"] < 0.95
        assert "near-unique per person" in flagged.loc[column, "flags"] and flagged.loc[column, "exclude"]
        assert "rare ones grouped" not in flagged.loc[column, "flags"]
    district = flagged.loc["district"]  # 300 levels of ~23 rows: a category, not a name
    assert district["rare_share"] < 0.01 and not district["exclude"]
    assert district["flags"] == "high cardinality (300 categories; rare ones grouped)"
    spec = profiling.dataset_spec(frame, flagged.reset_index(), {**RECID, "keep_columns": ["first_name"]}, 200, y)
    assert "first_name" in spec["categorical_features"] and "last_name" in spec["excluded_columns"]


def test_the_single_column_ceiling_follows_the_baseline_process():
    # the default business case: true positive rate 55 %, false positive rate 15 % (AUC 0.70)
    assert profiling.leakage_ceiling(0.95, 0.55, 0.15, 0.33) == pytest.approx(0.901)
    assert profiling.leakage_ceiling(0.95, 0.90, 0.10, 0.33) == 0.95  # leakage_auc stays the ceiling
    assert profiling.leakage_ceiling(0.95, 0.10, 0.30, 0.33) == pytest.approx(1 - 0.33 * 0.5)  # worse than chance
    # Hanley & McNeil's standard error for AUC 0.9 with 300 positives and 700 negatives: 0.0124
    low, high = profiling.auc_interval(0.9, 300, 700)
    assert (low, high) == pytest.approx((0.9 - 1.645 * 0.0124, 0.9 + 1.645 * 0.0124), abs=5e-4)


def test_a_post_outcome_column_below_the_fixed_cut_off_is_leakage_against_the_baseline(recid):
    frame, y = recid
    ceiling = profiling.leakage_ceiling(0.95, 0.55, 0.15, 0.33)
    observed = one_at_a_time(frame, y, ceiling).loc["days_observed"]
    assert 0.9 < observed["auc"] < 0.95  # passed the fixed 0.95
    assert observed["auc_low"] > ceiling and "leakage (AUC" in observed["flags"] and observed["exclude"]
    # an honest strong column (alone AUC ~0.85, as the strongest real predictors go) stays
    rng = np.random.default_rng(5)
    strong = pd.DataFrame({"score": y * 1.47 + rng.normal(0, 1, len(y))})
    kept = one_at_a_time(strong, y, ceiling).loc["score"]
    assert 0.82 < kept["auc"] < 0.88 and not kept["exclude"]


@pytest.fixture(scope="module")
def combined_leak():
    """Four follow-up columns each known for a random 70 % of people: alone AUC ~0.85, together ~0.99."""
    rng = np.random.default_rng(12)
    frame, y = honest_people(rng)
    for i in range(4):
        known = rng.random(ROWS) < 0.7
        frame[f"followup_{i}"] = np.where(known, y, rng.integers(0, 2, ROWS)) * 10 + rng.normal(0, 1, ROWS)
    return frame, pd.Series(y)


@pytest.fixture(scope="module")
def together(combined_leak):
    """The one-at-a-time screen (the default ceiling, 0.90) and the screen of the columns together."""
    frame, y = combined_leak
    flagged = one_at_a_time(frame, y, profiling.leakage_ceiling(0.95, 0.55, 0.15, 0.33)).reset_index()
    prof, screen = profiling.combined_screen(frame, y, flagged, RECID, 0.97, 10_000, seed=0)
    return flagged, prof, screen


def test_columns_that_leak_together_carry_a_model_too_good_to_be_true(combined_leak, together):
    frame, y = combined_leak
    flagged, prof, screen = together
    flagged, prof = flagged.set_index("column"), prof.set_index("column")
    followups = [f"followup_{i}" for i in range(4)]
    assert not flagged.loc[followups, "exclude"].any() and (flagged.loc[followups, "auc"] < 0.88).all()
    assert screen["too_good"].iloc[0] and screen["auc_low"].iloc[0] > 0.97
    assert not screen["too_good"].iloc[-1]  # until the model is plausible
    excluded = [c for c in screen["excluded"] if c]
    assert excluded and set(excluded) <= set(followups)
    for column in excluded:
        assert "too good to be true" in prof.loc[column, "flags"] and prof.loc[column, "exclude"]
    assert not prof.loc[["age", "priors", "charge"], "exclude"].any()
    assert screen["top_contributors"].iloc[0].startswith("`followup_")
    assert prof.loc["age", "importance"] > 0  # the last model's contributions are reported
    summary = profiling.screen_summary(screen)
    assert "**too good to be true**" in summary and f"`{excluded[0]}` excluded" in summary
    # a carrier kept on purpose stays: the search stops there and says so
    kept, screen = profiling.combined_screen(
        frame, y, flagged.reset_index(), {**RECID, "keep_columns": followups}, 0.97, 10_000, seed=0
    )
    assert len(screen) == 1 and screen["too_good"].iloc[0] and screen["excluded"].iloc[0] == ""
    assert not kept["exclude"].any() and "kept by `data.keep_columns`" in profiling.screen_summary(screen)


def test_an_honest_table_passes_the_screen_together(raw):
    y = (raw["income"] == "yes").astype(int)
    features = raw.drop(columns="income")
    flagged = profiling.flag_columns(profiling.profile(features, y), 0.98, 0.95, 50, N)
    prof, screen = profiling.combined_screen(features, y, flagged, CONTRACT, 0.97, 10_000)
    assert list(screen["features"]) == [2] and not screen["too_good"].any()  # age and city
    assert prof["exclude"].equals(flagged["exclude"])
    # too few rows of a class to model: nothing fitted, and the report says why
    few = features.iloc[np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:5]]]
    prof, screen = profiling.combined_screen(few, y.loc[few.index], flagged, CONTRACT, 0.97, 10_000)
    assert screen.empty and prof["exclude"].equals(flagged["exclude"])
    assert "fewer than 10 rows of a class" in profiling.screen_summary(screen)


def test_the_datasheet_reports_the_columns_together(combined_leak, together):
    from {{ cookiecutter.package_name }} import datasheet

    frame, y = combined_leak
    _, prof, screen = together
    spec = profiling.dataset_spec(frame, prof, RECID, 200, y)
    facts = {
        "path": "x.csv",
        "problem": "p",
        "decision": "d",
        "rows": len(frame),
        "columns": frame.shape[1],
        "prevalence": float(y.mean()),
        "unlabelled_rows": 0,
        "duplicate_rows": 0,
        "production_dir": "data/production",
    }
    sheet = datasheet.datasheet_markdown(facts, prof, spec, screen)
    assert profiling.screen_summary(screen) in sheet and "too good to be true" in sheet
    excluded = screen["excluded"].iloc[0]
    assert f"- `{excluded}`: leakage: carries a model of the candidate features" in sheet
