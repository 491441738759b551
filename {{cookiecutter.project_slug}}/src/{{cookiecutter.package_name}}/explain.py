"""Why this score: the features that pushed one record's score up or down. Adapt freely.

Each record gets, per input feature of the model, its Shapley value for the score
(interventional, against reference records from the training split): how much the record's
own value of the feature moved its score away from the reference average. The values add
up exactly: ``base_score + sum(contributions) == score``. They are estimated by sampling
feature orders (Strumbelj and Kononenko, 2014), with antithetic pairs (each order and its
reverse). The estimate is a function of the record alone (the same orders and reference
records for every record, from a fixed seed), so a record gets the same explanation alone,
in any batch and through ``predict --explain`` or ``POST /predict?explain=true``.

Why not SHAP: its ``TreeExplainer`` reads scikit-learn's HistGradientBoosting trees as
numeric splits only; on this template's default model (native categorical splits) its
values did not add up to the model's output (off by 12 in log-odds, shap 0.51), and the
package brings numba and llvmlite (about 200 MB). The model-agnostic estimate here calls
the deployed pipeline itself, works for every model the template trains, and explains per
original input column, so one-hot or ordinal encodings never need adding back together.

The average size of the contributions over many records ranks the features as step 06's
permutation importance does (the model card's global importance): both measure how the
score moves when a feature's value is replaced by another record's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import scoring

DEFAULT_BACKGROUND = "data/processed/train.parquet"
BACKGROUND_ROWS = 24
ORDERS = 2
CHUNK_ROWS = 50_000


class Explainer:
    """Per-record contributions of every feature to the deployed model's score."""

    def __init__(
        self,
        bundle: dict[str, Any],
        reference: pd.DataFrame,
        rows: int = BACKGROUND_ROWS,
        orders: int = ORDERS,
        seed: int = 0,
    ):
        meta = bundle["metadata"]
        self.bundle = bundle
        self.features = list(meta["feature_columns"])
        if len(reference) == 0:
            raise ValueError("explanations need reference records; the reference data is empty")
        sample = reference.sample(n=min(rows, len(reference)), random_state=seed)  # before validating: fast start
        clean = scoring.validate_input(sample, meta, allow_extra=True, allow_unseen=True)
        self.reference = clean.reset_index(drop=True)
        rng = np.random.default_rng(seed)
        half = [rng.permutation(len(self.features)) for _ in range(max(1, orders // 2))]
        self.orders = np.array(half + [order[::-1] for order in half])
        self.base_score = float(np.mean(scoring.model_scores(bundle, self.reference)))

    def contributions(self, clean: pd.DataFrame) -> np.ndarray:
        """(records, features) contributions to the score, for records through validate_input."""
        per_record = len(self.reference) * len(self.orders) * (len(self.features) + 1)
        chunk = max(1, CHUNK_ROWS // per_record)
        parts = [self._contributions(clean.iloc[start : start + chunk]) for start in range(0, len(clean), chunk)]
        return np.vstack(parts) if parts else np.zeros((0, len(self.features)))

    def _contributions(self, clean: pd.DataFrame) -> np.ndarray:
        n, b, p, d = len(clean), len(self.reference), len(self.orders), len(self.features)
        # position[o, j]: where feature j comes in order o; at step k the features placed before k
        # take the record's value, the others the reference record's
        position = np.argsort(self.orders, axis=1)
        own = np.arange(d + 1)[None, :, None] > position[:, None, :]  # (orders, steps, features)
        hybrid = {}
        for j, feature in enumerate(self.features):
            kind = "float64" if clean[feature].dtype.kind == "f" else object
            mine = clean[feature].to_numpy(dtype=kind)[:, None, None, None]
            theirs = self.reference[feature].to_numpy(dtype=kind)[None, :, None, None]
            values = np.where(own[None, None, :, :, j], mine, theirs).reshape(-1)
            hybrid[feature] = pd.Series(values, dtype=values.dtype)  # text stays object, as validate_input gives it
        frame = pd.DataFrame(hybrid)
        scores = scoring.model_scores(self.bundle, frame).reshape(n, b, p, d + 1)
        steps = np.diff(scores, axis=3).mean(axis=1)  # (records, orders, steps): the feature placed at each step
        out = np.zeros((n, d))
        for o, order in enumerate(self.orders):
            out[:, order] += steps[:, o, :]
        return out / p

    def explain(self, clean: pd.DataFrame) -> list[dict[str, Any]]:
        """Per record: the base score and every feature's value and contribution, largest first."""
        values = self.contributions(clean)
        explained = []
        for row, record in zip(values, clean[self.features].itertuples(index=False), strict=True):
            ranked = sorted(zip(self.features, record, row, strict=True), key=lambda item: -abs(item[2]))
            explained.append(
                {
                    "base_score": self.base_score,
                    "contributions": [
                        {"feature": f, "value": None if pd.isna(v) else v, "contribution": float(c)}
                        for f, v, c in ranked
                    ],
                }
            )
        return explained

    def columns(self, clean: pd.DataFrame) -> pd.DataFrame:
        """The contributions as columns ``contribution_<feature>`` (for batch output), and ``base_score``."""
        values = self.contributions(clean)
        table = pd.DataFrame(values, columns=[f"contribution_{f}" for f in self.features], index=clean.index)
        return table.assign(base_score=self.base_score)


def load_reference(path: str | Path) -> pd.DataFrame:
    """Reference records for explanations: a CSV or Parquet file of training rows."""
    from .data import read_table

    return read_table(path, key="reference data")
