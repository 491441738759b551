"""Profile every column of a dataset and decide which columns are usable features. Adapt freely.

Usefulness is measured by single-feature ROC AUC, computed out of fold so that
an identifier cannot look predictive by memorising rows; a column that alone
predicts the target almost perfectly is flagged as leakage, a column that is
unique per row as an identifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from .data import as_list, numeric_bins, target_labels

NUMERIC, CATEGORICAL, DATETIME, TEXT = "numeric", "categorical", "datetime", "text"


# A date or a timestamp as CSV files write them: 2021-03-04, 04/03/2021, 2021-03-04T10:15:00Z, ...
DATE_PATTERN = r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
DATE_SHARE = 0.95  # of a column's present values must read as dates for it to be a date column


def as_timestamps(values: pd.Series) -> pd.Series:
    """A date column as seconds since 1970 (missing where a value is no date): what its usefulness is measured on."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed", utc=True)
    parsed = parsed.dt.tz_localize(None) if getattr(parsed.dt, "tz", None) is not None else parsed
    return (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds()


def _reads_as_dates(present: pd.Series) -> bool:
    sample = present.drop_duplicates().head(500)
    if not len(sample) or sample.str.fullmatch(DATE_PATTERN).mean() < DATE_SHARE:
        return False
    return bool(as_timestamps(sample).notna().mean() >= DATE_SHARE)


def column_kind(values: pd.Series, forced_categorical: bool = False) -> str:
    """numeric, categorical, datetime (typed, or text that reads as dates) or text (long, mostly unique strings)."""
    if forced_categorical or pd.api.types.is_bool_dtype(values):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(values):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(values):
        return DATETIME
    present = values.dropna().astype(str)
    if _reads_as_dates(present.str.strip()):
        return DATETIME
    if len(present) and present.str.len().mean() > 40 and present.nunique() > 0.5 * len(present):
        return TEXT
    return CATEGORICAL


def _symmetric_auc(y: np.ndarray, score: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    auc = roc_auc_score(y, score)
    return float(max(auc, 1.0 - auc))


def single_feature_auc(values: pd.Series, y: pd.Series, kind: str, seed: int = 0, folds: int = 2) -> float:
    """How well this column alone ranks the target (0.5 = useless, 1 = perfect), out of fold.

    Numeric columns are used as the score directly (missing values as the median);
    categories are replaced by the positive rate of that category in the other folds.
    """
    y = np.asarray(y, dtype=int)
    if kind == NUMERIC:
        score = pd.to_numeric(values, errors="coerce").astype(float)
        return _symmetric_auc(y, score.fillna(score.median() if score.notna().any() else 0.0).to_numpy())
    keys = values.astype("string").fillna("(missing)").to_numpy()
    score = np.full(len(y), y.mean(), dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, score_idx in splitter.split(keys, y):
        rates = pd.Series(y[fit_idx]).groupby(keys[fit_idx]).mean()
        score[score_idx] = pd.Series(keys[score_idx]).map(rates).fillna(y[fit_idx].mean()).to_numpy()
    return _symmetric_auc(y, score)


def profile(frame: pd.DataFrame, y: pd.Series, categorical: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per column: type, missingness, cardinality, range and usefulness."""
    categorical = set(categorical or [])
    rows = []
    for column in frame.columns:
        values = frame[column]
        kind = column_kind(values, column in categorical)
        n_unique = int(values.nunique(dropna=True))
        row: dict[str, Any] = {
            "column": column,
            "dtype": str(values.dtype),
            "kind": kind,
            "missing_rate": float(values.isna().mean()),
            "n_unique": n_unique,
            "unique_ratio": n_unique / max(int(values.notna().sum()), 1),
            "min": None,
            "max": None,
            "top_values": "",
            "auc": float("nan"),
        }
        if kind == NUMERIC:
            numeric = pd.to_numeric(values, errors="coerce")
            row["min"], row["max"] = float(numeric.min()), float(numeric.max())
        elif kind == CATEGORICAL:
            top = values.astype("string").value_counts(normalize=True).head(3)
            row["top_values"] = ", ".join(f"{k} ({v:.0%})" for k, v in top.items())
        elif kind == DATETIME:
            stamps = as_timestamps(values)
            row["min"], row["max"] = (
                str(pd.to_datetime(stamps.min(), unit="s")),
                str(pd.to_datetime(stamps.max(), unit="s")),
            )
        if kind in (NUMERIC, CATEGORICAL) and n_unique > 1:
            row["auc"] = single_feature_auc(values, y, kind, seed=seed)
        elif kind == DATETIME and n_unique > 1:  # a date recorded after the outcome leaks like any column
            row["auc"] = single_feature_auc(as_timestamps(values), y, NUMERIC, seed=seed)
        rows.append(row)
    return pd.DataFrame(rows)


def with_stats(prof: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """The profile's missing rates, and numeric columns' ranges, from ``stats`` (every row, see :meth:`.tables.MemoryTable.column_stats`).

    The profile itself may be of a sample (``data_selection.max_rows``); what the schema and the
    datasheet state about missing values and ranges holds for every row.
    """
    by_column = stats.reindex(prof["column"])
    numeric = (prof["kind"] == NUMERIC).to_numpy()
    out = prof.copy()
    out["missing_rate"] = (by_column["missing"] / by_column["rows"]).to_numpy()
    for bound in ("min", "max"):
        out.loc[numeric, bound] = by_column[bound].to_numpy()[numeric].astype(float)
    return out


def duplicate_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Columns that repeat an earlier column's values exactly, under another name: ``{copy: original}``."""
    seen: dict[int, list[str]] = {}
    copies: dict[str, str] = {}
    for column in frame.columns:
        values = frame[column]
        digest = int(pd.util.hash_pandas_object(values, index=False).sum())
        same = next(
            (c for c in seen.get(digest, []) if frame[c].dtype == values.dtype and frame[c].equals(values)), None
        )
        if same is None:
            seen.setdefault(digest, []).append(column)
        else:
            copies[column] = same
    return copies


def flag_columns(
    prof: pd.DataFrame,
    leakage_auc: float,
    identifier_unique_ratio: float,
    max_categories: int,
    n_rows: int,
    duplicates: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Add ``flags`` (why a column is suspicious) and ``exclude`` (whether it is dropped).

    ``duplicates`` (from :func:`duplicate_columns`) names the columns that copy another: the
    copy is excluded, the first of them kept.
    """
    duplicates = duplicates or {}
    flags, exclude = [], []
    for row in prof.itertuples(index=False):
        found, drop = [], False
        if row.missing_rate == 1:
            found.append("empty (no value present)")
            drop = True
        elif row.n_unique <= 1:
            found.append("constant")
            drop = True
        if row.column in duplicates:
            found.append(f"duplicate of `{duplicates[row.column]}`")
            drop = True
        if row.kind in (DATETIME, TEXT):
            found.append(f"{row.kind} (not used as a feature)")
            drop = True
        integer_like = row.kind == CATEGORICAL or (row.kind == NUMERIC and "int" in row.dtype)
        if integer_like and row.unique_ratio >= identifier_unique_ratio and n_rows >= 20:
            found.append(f"identifier ({row.unique_ratio:.0%} unique)")
            drop = True
        if not pd.isna(row.auc) and row.auc >= leakage_auc:
            found.append(f"leakage (AUC {row.auc:.3f} alone)")
            drop = True
        if row.kind == CATEGORICAL and row.n_unique > max_categories:
            found.append(f"high cardinality ({row.n_unique} categories; rare ones grouped)")
        flags.append("; ".join(found))
        exclude.append(drop)
    return prof.assign(flags=flags, exclude=exclude)


def column_schema(frame: pd.DataFrame, kinds: dict[str, str], max_categories: int) -> dict[str, dict[str, Any]]:
    """What step 05 validates: kind, nullability, observed range or allowed categories."""
    schema = {}
    for column, kind in kinds.items():
        values = frame[column]
        entry: dict[str, Any] = {"kind": kind, "nullable": bool(values.isna().any())}
        if kind == NUMERIC:
            numeric = pd.to_numeric(values, errors="coerce")
            entry.update(
                min=float(numeric.min()), max=float(numeric.max()), integer=bool(pd.api.types.is_integer_dtype(values))
            )
        else:
            categories = values.dropna().astype(str).value_counts()
            entry["categories"] = (
                sorted(categories.index[:max_categories].tolist()) if len(categories) <= max_categories else None
            )
        schema[column] = entry
    return schema


def _plain(value: Any) -> Any:
    """A numpy scalar as the plain Python value (for JSON)."""
    return value.item() if hasattr(value, "item") else value


def dataset_spec(
    frame: pd.DataFrame,
    prof: pd.DataFrame,
    contract: dict[str, Any],
    max_categories: int,
    raw_target: pd.Series,
    schema_of: Callable[[dict[str, str], int], dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Roles of every column after selection: what later steps use instead of guessing again.

    ``raw_target``: the target's values (its distinct values suffice); ``schema_of(kinds,
    max_categories)``: the column schema over every row (:meth:`.tables.MemoryTable.column_schema`),
    by default :func:`column_schema` of ``frame``.
    """
    target = str(contract["target"])
    sensitive = as_list(contract["sensitive_features"])
    keep = set(as_list(contract.get("keep_columns")))
    ids = set(as_list(contract.get("id_columns")))
    dropped = set(as_list(contract.get("drop_columns")))
    by_column = prof.set_index("column")
    excluded: dict[str, str] = {}
    numeric, categorical = [], []
    for column in frame.columns:
        if column == target or column in sensitive:
            continue
        if column in ids:
            excluded[column] = "data.id_columns"
        elif column in dropped:
            excluded[column] = "data.drop_columns"
        elif by_column.loc[column, "exclude"] and (
            column not in keep or by_column.loc[column, "kind"] in (DATETIME, TEXT)
        ):
            excluded[column] = str(
                by_column.loc[column, "flags"]
            )  # keep_columns cannot make a date or free text a feature
        elif by_column.loc[column, "kind"] == NUMERIC:
            numeric.append(column)
        else:
            categorical.append(column)
    kinds = {c: NUMERIC for c in numeric} | {c: CATEGORICAL for c in categorical}
    sensitive_bins = {}
    for feature in sensitive:
        feature_kind = by_column.loc[feature, "kind"]
        kinds[feature] = NUMERIC if feature_kind == NUMERIC else CATEGORICAL
        if feature_kind == NUMERIC and frame[feature].nunique() > 10:
            sensitive_bins[feature] = numeric_bins(frame[feature])
    positive, negative = target_labels(raw_target, contract["positive_label"])
    return {
        "target": target,
        "positive_label": _plain(positive),
        "negative_label": _plain(negative),
        "sensitive_features": sensitive,
        "sensitive_bins": sensitive_bins,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "excluded_columns": excluded,
        "columns": (schema_of or (lambda k, m: column_schema(frame, k, m)))(kinds, max_categories),
    }


def feature_columns(spec: dict[str, Any]) -> list[str]:
    """The model's input features (sensitive features are not among them)."""
    return list(spec["numeric_features"]) + list(spec["categorical_features"])


def input_columns(spec: dict[str, Any]) -> list[str]:
    """Columns a scoring request must carry: the features plus the sensitive features."""
    return feature_columns(spec) + [f for f in spec["sensitive_features"] if f not in feature_columns(spec)]


DICTIONARY_COLUMNS = [
    "column",
    "role",
    "kind",
    "dtype",
    "missing_rate",
    "n_unique",
    "min",
    "max",
    "top_values",
    "auc",
    "flags",
]


def data_dictionary(
    prof: pd.DataFrame, spec: dict[str, Any], target_dtype: str, target_missing_rate: float
) -> pd.DataFrame:
    """One row per column of the raw data: its role (feature, sensitive, excluded, target) and its profile."""

    def role(column: str) -> str:
        if column in spec["sensitive_features"]:
            return "sensitive"
        return "excluded" if column in spec["excluded_columns"] else "feature"

    columns = prof.assign(role=prof["column"].map(role))[DICTIONARY_COLUMNS]
    target = {
        "column": spec["target"],
        "role": "target",
        "kind": "categorical",
        "dtype": target_dtype,
        "missing_rate": target_missing_rate,
        "n_unique": 2,
        "top_values": f"positive: {spec['positive_label']}",
    }
    return pd.concat([columns, pd.DataFrame([target])], ignore_index=True)
