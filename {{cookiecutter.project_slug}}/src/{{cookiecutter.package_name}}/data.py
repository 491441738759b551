"""Read the user's data and check it against the ``data:`` contract of params.yaml. Adapt with care: every step reads data through it.

Every problem raises :class:`DataContractError` with one message that names the
params.yaml key (or the column) and the offending value, so a step stops at the
first place that can see the mistake.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MISSING_GROUP = "(missing)"


class DataContractError(ValueError):
    """The data does not meet the ``data:`` contract; the message says how."""


def shown(path: Path) -> str:
    """The path as the user wrote it in params.yaml: relative to the project root when inside it."""
    from .project import find_project_root

    try:
        return str(path.resolve().relative_to(find_project_root(path.resolve().parent)))
    except (FileNotFoundError, ValueError, OSError):
        return str(path)


def _kind_of_file(path: Path, key: str) -> str:
    name = path.name.lower()
    if path.is_dir():  # a directory of Parquet parts (a partitioned dataset), read whole
        return "parquet"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise DataContractError(
        f"{key}: {shown(path)!r} is neither CSV ({', '.join(CSV_SUFFIXES)}) nor Parquet ({', '.join(PARQUET_SUFFIXES)})"
    )


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh, delimiter=delimiter), [])


def _check_unique_columns(columns: Iterable[str], path: Path, key: str) -> None:
    seen, duplicated = set(), []
    for column in columns:
        if column in seen and column not in duplicated:
            duplicated.append(column)
        seen.add(column)
    if duplicated:
        raise DataContractError(
            f"{key}: {shown(path)!r} has duplicated column names: {', '.join(map(repr, duplicated))}"
        )


def read_table(path: str | Path, key: str = "data.path") -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file, or a directory of Parquet files whole, with errors that name ``key``.

    Steps 03-05 read a directory partition by partition instead (:mod:`.tables`).
    """
    path = Path(path)
    kind = _kind_of_file(path, key)
    if not path.is_file() and not path.is_dir():
        raise DataContractError(f"{key}: file {shown(path)!r} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise DataContractError(f"{key}: file {shown(path)!r} is empty")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            _check_unique_columns(_csv_header(path), path, key)
            frame = pd.read_csv(path, sep="\t" if ".tsv" in path.name.lower() else ",", low_memory=False)
    except DataContractError:
        raise
    except Exception as exc:  # the parser's own words say what is wrong
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataContractError(f"{key}: cannot read {shown(path)!r} as {kind}: {first_line}") from exc
    _check_unique_columns(frame.columns, path, key)
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise DataContractError(f"{key}: file {shown(path)!r} has no data rows")
    return frame


_BOOLEAN_SPELLINGS = {
    "true": True,
    "1": True,
    "1.0": True,
    "yes": True,
    "false": False,
    "0": False,
    "0.0": False,
    "no": False,
}


def _same_value(value: Any, label: Any) -> bool:
    """Whether a target value equals the positive label, across str/number/bool spellings."""
    if isinstance(value, (bool, np.bool_)) or isinstance(label, bool):
        # only a recognised spelling of true or false matches a boolean: a typo must not pick the False class
        as_bool = [_BOOLEAN_SPELLINGS.get(str(v).strip().lower()) for v in (value, label)]
        return as_bool[0] is not None and as_bool[0] == as_bool[1]
    if str(value).strip() == str(label).strip():
        return True
    try:
        return float(value) == float(label)
    except (TypeError, ValueError):
        return False


def target_labels(values: pd.Series, positive_label: Any, key: str = "data") -> tuple[Any, Any]:
    """The positive and the negative value of a binary target, as they appear in the data."""
    present = [
        v.item() if isinstance(v, np.generic) else v for v in values.dropna().unique()
    ]  # plain values for messages
    if len(present) == 0:
        raise DataContractError(f"{key}.target: column {values.name!r} has no values (all missing)")
    if len(present) == 1:
        raise DataContractError(
            f"{key}.target: column {values.name!r} has one class only ({present[0]!r}); "
            "a binary target needs exactly two"
        )
    if len(present) > 2:
        shown = ", ".join(repr(v) for v in sorted(present, key=str)[:6])
        raise DataContractError(
            f"{key}.target: column {values.name!r} has {len(present)} classes ({shown}"
            f"{', ...' if len(present) > 6 else ''}); a binary target needs exactly two"
        )
    matches = [v for v in present if _same_value(v, positive_label)]
    if len(matches) != 1:
        raise DataContractError(
            f"{key}.positive_label: {positive_label!r} is not one of the values of column "
            f"{values.name!r}: {', '.join(repr(v) for v in sorted(present, key=str))}"
        )
    positive = matches[0]
    negative = next(v for v in present if v is not positive and not (v == positive))
    return positive, negative


def binary_target(values: pd.Series, positive_label: Any, key: str = "data") -> pd.Series:
    """1.0 where the target equals the positive label, 0.0 elsewhere, NaN where missing."""
    positive, _ = target_labels(values, positive_label, key)
    return as_binary(values, positive)


def as_binary(values: pd.Series, positive: Any) -> pd.Series:
    """1.0 where the value is ``positive`` (as :func:`target_labels` found it), 0.0 elsewhere, NaN where missing."""
    return values.map(lambda v: np.nan if pd.isna(v) else float(v == positive)).astype("float64")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:30])
        raise DataContractError(f"{key}: column {missing[0]!r} is not in the data; columns are: {shown}")


def as_list(value: Any) -> list[str]:
    """A params.yaml value that may be one name, a list of names or empty."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def check_roles(columns: Iterable[str], contract: dict[str, Any]) -> tuple[str, list[str]]:
    """The target and the sensitive features of the ``data:`` contract, checked against the data's columns."""
    columns = pd.Index([str(c) for c in columns])
    frame = pd.DataFrame(columns=columns)  # the columns alone: what require_columns reads
    target = contract.get("target")
    if not target:
        raise DataContractError("data.target: no target column given")
    require_columns(frame, [str(target)], "data.target")
    sensitive = as_list(contract.get("sensitive_features"))
    if not sensitive:
        raise DataContractError("data.sensitive_features: give at least one column to assess for bias")
    require_columns(frame, sensitive, "data.sensitive_features")
    if str(target) in sensitive:
        raise DataContractError(f"data.sensitive_features: {target!r} is the target column")
    for key in ("id_columns", "drop_columns", "categorical_columns", "keep_columns"):
        require_columns(frame, as_list(contract.get(key)), f"data.{key}")
    return str(target), sensitive


def check_present(present: pd.Series, rows: int) -> None:
    """Every sensitive feature has a value somewhere (``present``: values per sensitive column)."""
    for column, count in present.items():  # any other empty column is simply not available: step 03 excludes it
        if count == 0:
            raise DataContractError(
                f"data.sensitive_features: column {column!r} is entirely empty (all {rows} values missing)"
            )


def check_contract(frame: pd.DataFrame, contract: dict[str, Any]) -> pd.Series:
    """Check the ``data:`` contract against the data; return the 0/1 target."""
    target, sensitive = check_roles(frame.columns, contract)
    y = binary_target(frame[target], contract.get("positive_label"))  # an empty target stops here
    check_present(frame[sensitive].notna().sum(), len(frame))
    return y


def numeric_bins(values: pd.Series, n_bins: int = 4) -> list[float]:
    """Quantile bin edges for a numeric sensitive feature (unique, ascending)."""
    edges = np.unique(np.nanquantile(values.astype(float), np.linspace(0, 1, n_bins + 1)))
    return [float(e) for e in edges]


def group_labels(values: pd.Series, bins: list[float] | None = None) -> pd.Series:
    """Group label of every row: the category itself, or its bin for numeric features."""
    if bins:
        if len(bins) < 2:
            labels = values.map(lambda v: MISSING_GROUP if pd.isna(v) else f"{bins[0]:g}")
        else:
            # values beyond the training range belong to the outer bins, not to "(missing)"
            clipped = values.astype(float).clip(bins[0], bins[-1])
            cut = pd.cut(clipped, bins=bins, include_lowest=True, duplicates="drop")
            labels = cut.astype(str).where(cut.notna(), MISSING_GROUP)
    else:
        labels = values.astype("string").fillna(MISSING_GROUP)
    return labels.astype(str).rename(values.name)


def sensitive_groups(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """One column of group labels per sensitive feature, binned as step 03 decided."""
    bins = spec.get("sensitive_bins", {})
    return pd.DataFrame(
        {f: group_labels(frame[f], bins.get(f)) for f in spec["sensitive_features"]},
        index=frame.index,
    )


def intersection_labels(groups: pd.DataFrame) -> pd.Series:
    """'Female & Black'-style labels combining every sensitive feature."""
    text = groups.astype(str)
    joined = text.iloc[:, 0]
    for column in text.columns[1:]:  # vectorised: a row-wise join takes seconds on 30k rows
        joined = joined + " & " + text[column]
    return joined.rename(" & ".join(groups.columns))
