import gzip

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import data
from {{ cookiecutter.package_name }}.data import DataContractError

CONTRACT = {"target": "income", "positive_label": ">50K", "sensitive_features": ["sex"]}


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "age": [25, 38, 28, 44, 18, 34],
            "hours": [40.0, 50.5, np.nan, 40.0, 30.0, 45.0],
            "sex": ["Male", "Female", "Male", "Female", "Male", "Female"],
            "income": ["<=50K", ">50K", "<=50K", ">50K", "<=50K", "<=50K"],
        }
    )


# --- read_table ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.tsv", "t.parquet", "t.pq", "T.CSV"])
def test_read_table_round_trips_every_format(tmp_path, table, name):
    path = tmp_path / name
    if "parquet" in name or name.endswith(".pq"):
        table.to_parquet(path, index=False)
    else:
        sep = "\t" if ".tsv" in name else ","
        table.to_csv(path, index=False, sep=sep, compression="gzip" if name.endswith(".gz") else None)
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzipped
    read = data.read_table(path)
    assert list(read.columns) == list(table.columns)
    assert read["age"].tolist() == table["age"].tolist()
    assert read["hours"].isna().tolist() == table["hours"].isna().tolist()
    assert read["hours"].dropna().tolist() == table["hours"].dropna().tolist()
    assert read["income"].tolist() == table["income"].tolist()


def test_read_table_missing_file_names_the_key_and_the_path(tmp_path):
    with pytest.raises(DataContractError, match=r"data\.path: file .*nowhere\.csv.* does not exist"):
        data.read_table(tmp_path / "nowhere.csv")
    with pytest.raises(DataContractError, match=r"^INPUT: file"):
        data.read_table(tmp_path / "nowhere.parquet", key="INPUT")


def test_read_table_refuses_other_formats(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataContractError, match=r"data\.path: .*data\.xlsx.* neither CSV .* nor Parquet"):
        data.read_table(path)


def test_read_table_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataContractError, match=r"data\.path: file .*empty\.csv.* is empty"):
        data.read_table(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("age,income\n", "has no data rows"), ("a,b,a,b,c\n1,2,3,4,5\n", "duplicated column names: 'a', 'b'")],
    ids=["header without rows", "duplicated column names"],
)
def test_read_table_refuses_a_csv_it_cannot_use(tmp_path, text, message):
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataContractError, match=message):
        data.read_table(path)


@pytest.mark.parametrize(
    "name, payload",
    [
        ("broken.parquet", b"this is not parquet at all"),
        ("binary.csv", bytes(range(256)) * 4),
        ("fake.csv.gz", b"not gzip data"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5,6\n"),
        ("blank.csv", b"\n\n\n"),
        ("nothing.csv.gz", gzip.compress(b"", mtime=0)),
    ],
)
def test_read_table_unreadable_files(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(DataContractError, match=rf"data\.path: cannot read .*{name.replace('.', '[.]')}"):
        data.read_table(path)


def test_read_table_duplicated_column_names_in_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["x", "x"]), path)
    with pytest.raises(DataContractError, match="(duplicated column names: 'x'|cannot read)"):
        data.read_table(path)


# --- the contract ------------------------------------------------------------------------


def test_check_contract_returns_the_binary_target(table):
    y = data.check_contract(table, CONTRACT)
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert y.dtype == "float64"


def test_target_missing(table):
    with pytest.raises(
        DataContractError, match=r"data\.target: column 'salary' is not in the data; columns are: 'age'"
    ):
        data.check_contract(table, {**CONTRACT, "target": "salary"})
    with pytest.raises(DataContractError, match=r"data\.target: no target column"):
        data.check_contract(table, {**CONTRACT, "target": None})


def test_positive_label_not_among_the_values(table):
    with pytest.raises(
        DataContractError,
        match=r"data\.positive_label: '>50k' is not one of the values of column 'income': '<=50K', '>50K'",
    ):
        data.check_contract(table, {**CONTRACT, "positive_label": ">50k"})


def test_one_class(table):
    with pytest.raises(DataContractError, match=r"data\.target: column 'income' has one class only \('<=50K'\)"):
        data.check_contract(table.assign(income="<=50K"), CONTRACT)


def test_three_classes(table):
    three = table.assign(income=["<=50K", ">50K", "unknown", ">50K", "<=50K", "<=50K"])
    with pytest.raises(
        DataContractError, match=r"data\.target: column 'income' has 3 classes \('<=50K', '>50K', 'unknown'\)"
    ):
        data.check_contract(three, CONTRACT)


def test_target_without_values(table):
    with pytest.raises(DataContractError, match=r"data\.target: column 'income' has no values"):
        data.check_contract(table.assign(income=np.nan), CONTRACT)


def test_an_empty_column_is_left_to_step_03_but_an_empty_sensitive_feature_stops(table):
    empty = table.assign(notes=np.nan)
    assert data.check_contract(empty, CONTRACT).sum() == 2  # not available: step 03 excludes it, with the reason
    with pytest.raises(
        DataContractError, match=r"data\.sensitive_features: column 'sex' is entirely empty \(all 6 values missing\)"
    ):
        data.check_contract(table.assign(sex=np.nan), CONTRACT)


def test_sensitive_feature_missing(table):
    with pytest.raises(DataContractError, match=r"data\.sensitive_features: column 'race' is not in the data"):
        data.check_contract(table, {**CONTRACT, "sensitive_features": ["sex", "race"]})
    with pytest.raises(DataContractError, match=r"data\.sensitive_features: give at least one"):
        data.check_contract(table, {**CONTRACT, "sensitive_features": []})
    with pytest.raises(DataContractError, match=r"data\.sensitive_features: 'income' is the target"):
        data.check_contract(table, {**CONTRACT, "sensitive_features": ["sex", "income"]})


@pytest.mark.parametrize("key", ["id_columns", "drop_columns", "categorical_columns", "keep_columns"])
def test_optional_column_keys_are_checked(table, key):
    with pytest.raises(DataContractError, match=rf"data\.{key}: column 'ghost' is not in the data"):
        data.check_contract(table, {**CONTRACT, key: ["age", "ghost"]})


@pytest.mark.parametrize(
    "values, label, expected",
    [
        (["<=50K", ">50K", None], ">50K", [0.0, 1.0, np.nan]),
        ([0, 1, 1], 1, [0.0, 1.0, 1.0]),
        ([0, 1, 1], "1", [0.0, 1.0, 1.0]),
        ([0, 1, 1], 0, [1.0, 0.0, 0.0]),
        ([0.0, 1.0, np.nan], "1", [0.0, 1.0, np.nan]),
        ([0, 1], 1.0, [0.0, 1.0]),
        ([2, 5, 5], "5", [0.0, 1.0, 1.0]),
        (["0", "1"], 1, [0.0, 1.0]),
        (["yes", "no"], "yes", [1.0, 0.0]),
        ([True, False, True], True, [1.0, 0.0, 1.0]),
        ([True, False, True], "true", [1.0, 0.0, 1.0]),
        ([True, False, True], "True", [1.0, 0.0, 1.0]),
        ([True, False, True], 1, [1.0, 0.0, 1.0]),
        ([True, False, True], False, [0.0, 1.0, 0.0]),
        ([True, False, True], "false", [0.0, 1.0, 0.0]),
        ([1, 0], True, [1.0, 0.0]),
    ],
)
def test_binary_target_accepts_str_number_and_bool_spellings(values, label, expected):
    y = data.binary_target(pd.Series(values, name="t"), label)
    np.testing.assert_array_equal(y.to_numpy(), np.array(expected, dtype=float))


def test_binary_target_with_a_nullable_boolean_column():
    values = pd.Series([True, False, None, True], dtype="boolean", name="t")
    np.testing.assert_array_equal(data.binary_target(values, "True").to_numpy(), [1.0, 0.0, np.nan, 1.0])


def test_target_labels_returns_the_values_as_they_appear():
    assert data.target_labels(pd.Series([0, 1, 1, 0], name="t"), "1") == (1, 0)
    assert data.target_labels(pd.Series(["a", "b"], name="t"), "b") == ("b", "a")


def test_as_list():
    assert data.as_list(None) == [] and data.as_list("") == []
    assert data.as_list("sex") == ["sex"]
    assert data.as_list(["sex", 3]) == ["sex", "3"]


# --- groups ------------------------------------------------------------------------------


def test_group_labels_of_a_categorical_feature():
    labels = data.group_labels(pd.Series(["Male", None, "Female", np.nan], name="sex"))
    assert labels.tolist() == ["Male", data.MISSING_GROUP, "Female", data.MISSING_GROUP]
    assert labels.name == "sex"


def test_numeric_bins_are_unique_and_ascending():
    assert data.numeric_bins(pd.Series(range(100)), 4) == [0.0, 24.75, 49.5, 74.25, 99.0]
    tied = data.numeric_bins(pd.Series([1] * 90 + list(range(2, 12))), 4)
    assert tied == sorted(set(tied)) and tied[0] == 1.0 and tied[-1] == 11.0


def test_group_labels_bins_a_numeric_feature():
    values = pd.Series(list(range(100)) + [np.nan], name="age", dtype=float)
    bins = data.numeric_bins(values, 4)
    labels = data.group_labels(values, bins)
    assert labels.name == "age"
    assert labels.iloc[-1] == data.MISSING_GROUP
    counts = labels.iloc[:-1].value_counts()
    assert len(counts) == 4 and counts.tolist() == [25, 25, 25, 25]
    # the lowest value is in the first bin, neighbours share a bin, bins are ordered
    assert labels[0] == labels[24] != labels[25] == labels[49] != labels[50]
    assert labels[99] == labels[75] != labels[74]
    for label, low, high in [(labels[0], -0.001, 24.75), (labels[60], 49.5, 74.25)]:
        left, right = (float(x) for x in label.strip("(]").split(","))
        assert left == pytest.approx(low, abs=1e-3) and right == pytest.approx(high)


def test_group_labels_put_values_beyond_the_training_range_in_the_outer_bins():
    bins = data.numeric_bins(pd.Series(range(18, 91), dtype=float), 4)
    train = data.group_labels(pd.Series([18.0, 90.0]), bins)
    production = data.group_labels(pd.Series([16.0, 95.0, np.nan]), bins)
    assert production.tolist() == [train[0], train[1], data.MISSING_GROUP]


def test_group_labels_with_a_single_edge():
    assert data.group_labels(pd.Series([5, np.nan, 5]), [5.0]).tolist() == ["5", data.MISSING_GROUP, "5"]


def test_sensitive_groups_and_intersections():
    frame = pd.DataFrame({"sex": ["F", "M", "F", None], "age": [20, 30, 40, 50]})
    spec = {"sensitive_features": ["sex", "age"], "sensitive_bins": {"age": [20.0, 35.0, 50.0]}}
    groups = data.sensitive_groups(frame, spec)
    assert list(groups.columns) == ["sex", "age"]
    assert groups["sex"].tolist() == ["F", "M", "F", data.MISSING_GROUP]
    assert groups["age"].nunique() == 2 and groups["age"][0] == groups["age"][1] != groups["age"][2]
    both = data.intersection_labels(groups)
    assert both.name == "sex & age"
    assert both[0] == f"F & {groups['age'][0]}"
