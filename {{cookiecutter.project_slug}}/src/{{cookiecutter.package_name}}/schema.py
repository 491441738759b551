"""The data schema inferred in step 03, enforced with pandera in steps 05 and 09. Adapt freely.

Types, allowed categories, ranges and nullability come from
``dataset_spec.json``; :func:`violations` returns a readable table of every
failed check instead of stopping at the first.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa


def build_schema(spec: dict[str, Any], range_margin: float = 0.0, strict: bool = False) -> pa.DataFrameSchema:
    """A pandera schema for the input columns (features and sensitive features).

    ``range_margin`` widens numeric ranges by that fraction of their span (production
    data may legitimately exceed the training range a little).
    """
    columns = {}
    for name, entry in spec["columns"].items():
        checks = []
        if entry["kind"] == "numeric":
            span = entry["max"] - entry["min"]
            checks.append(pa.Check.in_range(entry["min"] - range_margin * span, entry["max"] + range_margin * span))
            columns[name] = pa.Column(float, checks=checks, nullable=entry["nullable"], coerce=True, required=True)
        else:
            if entry.get("categories"):
                checks.append(pa.Check.isin(entry["categories"]))
            columns[name] = pa.Column(str, checks=checks, nullable=entry["nullable"], coerce=True, required=True)
    return pa.DataFrameSchema(columns, strict=strict, name="training schema")


def violations(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (column, check) that fails: how many rows and a few example values."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.copy()
        # a missing (or, if strict, an extra) column is a frame-level failure whose case is the column's name
        frame_level = cases["column"].isna() | cases["schema_context"].eq("DataFrameSchema")
        cases["column"] = cases["column"].where(~frame_level, cases["failure_case"]).astype(str)
        cases["check"] = cases["check"].astype(str)
        summary = cases.groupby(["column", "check"], sort=True).agg(
            rows=("failure_case", "size"),
            examples=("failure_case", lambda v: ", ".join(sorted({str(x) for x in v})[:5])),
        )
        return summary.reset_index()
    return pd.DataFrame(columns=["column", "check", "rows", "examples"])


def as_schema_types(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The input columns cast to the schema's types (numbers as float, categories as text)."""
    out = {}
    for name, entry in spec["columns"].items():
        values = frame[name]
        if entry["kind"] == "numeric":
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            obj = values.astype("object")
            out[name] = obj.where(obj.isna(), obj.astype(str))
    return pd.DataFrame(out, index=frame.index)
