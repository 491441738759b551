import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }} import schema


def test_training_like_data_has_no_violations(spec, frame):
    table = schema.violations(schema.build_schema(spec), frame)
    assert table.empty
    assert list(table.columns) == ["column", "check", "rows", "examples"]


def test_violations_lists_every_failed_check(spec, frame):
    bad = frame.head(10).copy()
    bad["age"] = bad["age"].astype(float)
    bad.loc[bad.index[:3], "age"] = [150.0, 151.0, 152.0]  # out of the training range
    bad.loc[bad.index[0], "job"] = "astronaut"  # unseen category
    bad.loc[bad.index[1], "sex"] = None  # not nullable
    table = schema.violations(schema.build_schema(spec), bad)
    by_column = table.groupby("column")["rows"].sum()
    assert by_column["age"] == 3
    assert "150.0" in table.loc[table["column"] == "age", "examples"].iloc[0]
    assert by_column["job"] == 1 and "astronaut" in table.loc[table["column"] == "job", "examples"].iloc[0]
    assert by_column["sex"] == 1
    assert "hours" not in by_column  # missing hours are allowed: the column was nullable in training


def test_missing_column_is_a_violation(spec, frame):
    table = schema.violations(schema.build_schema(spec), frame.drop(columns="hours"))
    assert table["column"].tolist() == ["hours"]
    assert table["rows"].tolist() == [1]


def test_strict_schema_names_the_extra_column(spec, frame):
    table = schema.violations(schema.build_schema(spec, strict=True), frame.drop(columns="income").assign(zodiac="leo"))
    assert table["column"].tolist() == ["zodiac"]


def test_range_margin_widens_numeric_ranges(spec, frame):
    slightly_older = frame.head(5).assign(age=[70.0, 69.0, 40.0, 30.0, 20.0])  # max 69 in training
    assert not schema.violations(schema.build_schema(spec), slightly_older).empty
    assert schema.violations(schema.build_schema(spec, range_margin=0.05), slightly_older).empty


def test_strict_schema_refuses_extra_columns(spec, frame):
    extra = frame.assign(zodiac="leo")
    assert schema.violations(schema.build_schema(spec), extra).empty
    assert not schema.violations(schema.build_schema(spec, strict=True), extra.drop(columns="income")).empty


def test_as_schema_types(spec):
    raw = pd.DataFrame({"age": ["37", "x"], "hours": [40, None], "job": [1, 2], "sex": ["F", None]})
    typed = schema.as_schema_types(raw, spec)
    assert typed["age"].dtype == "float64" and typed["age"].iloc[0] == 37.0 and np.isnan(typed["age"].iloc[1])
    assert typed["job"].tolist() == ["1", "2"]  # a category given as a number
    assert typed["sex"].iloc[0] == "F" and pd.isna(typed["sex"].iloc[1])  # missing stays missing, not "None"
    assert list(typed.columns) == ["age", "hours", "job", "sex"]
