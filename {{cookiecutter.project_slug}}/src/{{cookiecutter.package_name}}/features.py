"""The feature pipeline and the train/validation/test split. Adapt freely.

:func:`build_preprocessor` is the one definition of preprocessing: step 05 fits
it to report what it produces, and step 06 (and 10) put it at the front of every
candidate model so preprocessing travels with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
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


def strata(y: pd.Series, groups: pd.Series, min_count: int = 6) -> pd.Series:
    """Stratification key: label and sensitive group, with rare combinations folded into the label alone."""
    key = pd.Series(np.asarray(y).astype(int).astype(str), index=y.index) + " | " + groups.astype(str).to_numpy()
    counts = key.value_counts()
    rare = key.map(counts) < min_count
    return key.where(~rare, pd.Series(np.asarray(y).astype(int).astype(str), index=y.index) + " | other")


def split_frame(
    frame: pd.DataFrame, key: pd.Series, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Stratified train/validation/test split with a fixed seed."""
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise ValueError(
            f"data_pipeline.validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) "
            "must be between 0 and 1 and sum to less than 1"
        )
    rest, test = train_test_split(frame, test_size=test_fraction, stratify=key, random_state=seed)
    rest_key = key.loc[rest.index]
    rest_key = rest_key.where(rest_key.map(rest_key.value_counts()) >= 2, rest_key.str.split(" | ").str[0] + " | other")
    train, validation = train_test_split(
        rest, test_size=validation_fraction / (1 - test_fraction), stratify=rest_key, random_state=seed
    )
    return {"train": train, "validation": validation, "test": test}


def split_selected(selected: pd.DataFrame, spec: dict[str, Any], split: Any) -> dict[str, pd.DataFrame]:
    """Step 05's split of step 03's selected rows, as a function of them and ``data_pipeline``'s parameters.

    Duplicated rows go first (``split.drop_duplicates``: a row and its copy on both sides of the
    split would leak), then a split stratified by label and sensitive group. Step 04 calls it
    too, to fit and choose its remediation on the training rows only: the same parameters
    give the same rows.
    """
    from .data import DataContractError, intersection_labels, sensitive_groups

    clean = (selected.drop_duplicates() if split.drop_duplicates else selected).reset_index(drop=True)
    if len(clean) < 50:
        raise DataContractError(
            f"data.path: only {len(clean)} usable rows remain after cleaning; at least 50 are needed"
        )
    key = strata(clean[spec["target"]], intersection_labels(sensitive_groups(clean, spec)))
    return split_frame(clean, key, split.validation_fraction, split.test_fraction, split.seed)
