"""The feature pipeline and the train/validation/test split. Adapt freely.

:func:`build_preprocessor` is the one definition of preprocessing: step 05 fits
it to report what it produces, and step 06 (and 10) put it at the front of every
candidate model so preprocessing travels with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

MISSING = "(missing)"
MIN_CATEGORY_FREQUENCY = 10


def as_text(frame: pd.DataFrame) -> np.ndarray:
    """Categorical columns as strings (booleans, numbers forced categorical), missing kept as None."""
    values = pd.DataFrame(frame).astype("object")
    return values.where(values.isna(), values.astype(str)).to_numpy()


def _categorical_steps(encoding: str, max_categories: int) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = [
        ("as_text", FunctionTransformer(as_text, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
    ]
    if encoding == "onehot":
        steps.append(
            (
                "encode",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=MIN_CATEGORY_FREQUENCY,
                    max_categories=max_categories,
                    sparse_output=False,
                ),
            )
        )
    else:
        steps.append(
            (
                "encode",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    min_frequency=MIN_CATEGORY_FREQUENCY,
                    max_categories=max_categories,
                ),
            )
        )
    return steps


def build_preprocessor(spec: dict[str, Any], encoding: str = "onehot", max_categories: int = 50) -> ColumnTransformer:
    """Impute, scale numeric features and encode categorical ones (unseen categories handled).

    ``encoding="onehot"`` suits linear models; ``"ordinal"`` suits tree ensembles
    (categorical columns come last, see :func:`categorical_mask`).
    """
    if encoding not in ("onehot", "ordinal"):
        raise ValueError(f"encoding must be 'onehot' or 'ordinal', got {encoding!r}")
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(_categorical_steps(encoding, max_categories))
    return ColumnTransformer(
        [
            ("numeric", numeric, list(spec["numeric_features"])),
            ("categorical", categorical, list(spec["categorical_features"])),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def categorical_mask(spec: dict[str, Any]) -> list[bool]:
    """Which outputs of the ordinal preprocessor are categorical (for HistGradientBoosting)."""
    return [False] * len(spec["numeric_features"]) + [True] * len(spec["categorical_features"])


SPLITS = ("train", "validation", "test")


def _label_text(y: pd.Series) -> pd.Series:
    return pd.Series(np.asarray(y).astype(int).astype(str), index=y.index)


def fold_rare(key: pd.Series, rare: Any) -> pd.Series:
    """The stratification key with the strata in ``rare`` folded into their label's ``"<label> | other"``."""
    return key.where(~key.isin(rare), key.str.partition(" | ")[0] + " | other")


def strata(y: pd.Series, groups: pd.Series, min_count: int = 6) -> pd.Series:
    """Stratification key: label and sensitive group, with rare combinations folded into the label alone."""
    key = _label_text(y) + " | " + groups.astype(str).to_numpy()
    counts = key.value_counts()
    return fold_rare(key, counts.index[counts < min_count])


def split_keys(frame: pd.DataFrame, spec: dict[str, Any], min_count: int = 0) -> pd.Series:
    """Step 05's stratum of every row: :func:`strata` of the label and the intersection of sensitive groups
    (by default none folded: on partitioned data the counts that fold them are over every partition)."""
    from .data import intersection_labels, sensitive_groups

    return strata(frame[spec["target"]], intersection_labels(sensitive_groups(frame, spec)), min_count)


def _canonical(column: pd.Series) -> Any:
    """Numbers as float64 (0.0 for -0.0, one NaN), anything else as text objects with None for missing."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_complex_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan) + 0.0
        return np.where(np.isnan(values), np.nan, values)
    return column.astype(object).where(column.notna(), None).to_numpy()


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's content: identical rows share one (distinct rows almost never: 2**-64 a pair).

    Columns are taken by name and values canonically (an integer column and the same numbers as
    floats, pandas' own and nullable dtypes, NaN and None hash alike), so a row has the same hash in
    a CSV file, in one Parquet file or in any partition of a dataset.
    """
    canonical = pd.DataFrame({str(c): _canonical(frame[c]) for c in sorted(frame.columns, key=str)})
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy()


def split_draws(hashes: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per row, uniform over rows, from the row's hash and ``seed``.

    The same row draws the same number (so identical rows go together, and the draw does not depend
    on where the row is or what else is read with it); another seed, other numbers.
    """
    key = np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0]
    mixed = pd.util.hash_array(np.asarray(hashes, dtype=np.uint64) ^ key)  # splitmix64's finaliser
    return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def stratum_draws(key: pd.Series, draws: np.ndarray) -> dict[str, np.ndarray]:
    """The draws of every stratum of ``key`` (what :func:`cut_points` takes, piece by piece)."""
    codes, names = pd.factorize(key, sort=True)
    if len(names) == 0:  # an empty partition
        return {}
    edges = np.cumsum(np.bincount(codes, minlength=len(names)))[:-1]
    return dict(zip(map(str, names), np.split(draws[np.argsort(codes, kind="stable")], edges), strict=True))


@dataclass(frozen=True)
class SplitCuts:
    """Where every stratum's draws are cut: below ``bounds[s][0]`` test, below ``bounds[s][1]`` validation, else train."""

    rare: frozenset[str]  # strata too small to stand alone, folded into "<label> | other"
    bounds: dict[str, tuple[float, float]]


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise ValueError(
            f"data_pipeline.validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) "
            "must be between 0 and 1 and sum to less than 1"
        )


def _kth(values: np.ndarray, k: int) -> float:
    """The k-th smallest value (from 0): exactly k values lie below it when none tie; 1.0 (above every draw) for k = n."""
    return 1.0 if k >= len(values) else float(np.partition(values, k)[k])


def cut_points(
    pieces: list[dict[str, np.ndarray]], validation_fraction: float, test_fraction: float, min_count: int = 6
) -> SplitCuts:
    """The cuts of a stratified split, from the draws of every row (:func:`stratum_draws` of each piece of the data).

    Strata with fewer than ``min_count`` rows are folded as :func:`strata` folds them. Stratum by
    stratum (in sorted order), the test split takes the rows with the lowest draws, as many as the
    cumulative rounding of ``test_fraction`` gives it (the whole test split has ``round(rows *
    test_fraction)`` rows and every stratum is within one row of its share); validation the next
    ones, likewise. A function of the rows alone: the pieces may come in any number and order.
    Identical rows draw the same number and stay on one side of a cut, which may move a split's
    size by the copies of the row at its cut.
    """
    _check_fractions(validation_fraction, test_fraction)
    pooled: dict[str, list[np.ndarray]] = {}
    for piece in pieces:
        for name, values in piece.items():
            pooled.setdefault(name, []).append(values)
    counts = pd.Series({name: sum(map(len, parts)) for name, parts in pooled.items()}, dtype="int64")
    rare = frozenset(counts.index[counts < min_count])
    folded: dict[str, list[np.ndarray]] = {}
    for name, into in fold_rare(counts.index.to_series(), rare).items():
        folded.setdefault(into, []).extend(pooled[name])
    names = sorted(folded)
    ends = np.cumsum([sum(map(len, folded[name])) for name in names])
    starts = np.concatenate([[0], ends[:-1]])
    tests, validations = (
        (np.round(ends * fraction) - np.round(starts * fraction)).astype(int)
        for fraction in (test_fraction, validation_fraction)
    )
    bounds = {}
    for name, test, validation in zip(names, tests, validations, strict=True):
        values = np.concatenate(folded[name])
        bounds[name] = (_kth(values, test), _kth(values, test + validation))
    return SplitCuts(rare, bounds)


def assign_splits(key: pd.Series, draws: np.ndarray, cuts: SplitCuts) -> np.ndarray:
    """The split (``"train"``, ``"validation"`` or ``"test"``) of every row, from its stratum and its draw."""
    bounds = pd.DataFrame(cuts.bounds, index=["test", "validation"]).T.reindex(fold_rare(key, cuts.rare))
    test = draws < bounds["test"].to_numpy()
    validation = ~test & (draws < bounds["validation"].to_numpy())
    return np.select([test, validation], ["test", "validation"], "train")


def split_frame(
    frame: pd.DataFrame, key: pd.Series, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Train/validation/test split stratified by ``key``, every row placed by a seeded hash of its content.

    Identical rows land in one split; the split is a function of the rows (not of their order or of
    how they are stored: :meth:`.tables.PartitionedTable.split` gives the same split of the same
    rows); each split's rows come in the order of their draws (a shuffle that is a function of the rows).
    """
    draws = split_draws(row_hashes(frame), seed)
    cuts = cut_points([stratum_draws(key, draws)], validation_fraction, test_fraction, min_count=0)
    order = np.argsort(draws, kind="stable")
    placed, shuffled = assign_splits(key, draws, cuts)[order], frame.iloc[order]
    return {name: shuffled[placed == name] for name in SPLITS}


def split_selected(selected: pd.DataFrame, spec: dict[str, Any], split: Any) -> dict[str, pd.DataFrame]:
    """Step 05's split of step 03's selected rows, as a function of them and ``data_pipeline``'s parameters.

    No row is dropped: identical rows (the same person, or people alike in every selected column)
    go together into one split, so no row is judged against its own copy. Stratified by label and
    sensitive group. Step 04 calls it too, to fit and choose its remediation on the training rows
    only: the same parameters give the same rows.
    """
    from .data import DataContractError

    clean = selected.reset_index(drop=True)
    if len(clean) < 50:
        raise DataContractError(f"data.path: only {len(clean)} usable rows; at least 50 are needed")
    return split_frame(clean, split_keys(clean, spec, 6), split.validation_fraction, split.test_fraction, split.seed)


def identical_rows(hashes: dict[str, np.ndarray]) -> dict[str, int]:
    """From the row hashes of every split: the rows that repeat another, and the distinct rows found in two splits."""
    distinct = {name: np.unique(values) for name, values in hashes.items()}
    everywhere, seen_in = np.unique(np.concatenate(list(distinct.values())), return_counts=True)
    rows = sum(len(values) for values in hashes.values())
    return {
        "rows": rows,
        "repeats": rows - len(everywhere),
        "in_two_splits": int((seen_in > 1).sum()),
    }
