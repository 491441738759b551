"""Deterministic test datasets shaped unlike Adult, for the bring-your-own-data tests.

Each :class:`Dataset` knows its file (CSV or Parquet, written under ``data/raw/`` of a
baked project) and the ``data:`` section a user would write for it, plus the two
``monitoring`` keys the README tells users with their own data to set. Together they cover:

============  =======  =====  ==========================  ============================  =============================
name          format   rows   target (positive label)     sensitive features            other traits
============  =======  =====  ==========================  ============================  =============================
clinic        CSV      400    boolean (``true``, bool)     one, numeric (binned)         odd names (€, dots, umlauts),
                                                                                          missing values
churn         Parquet  3000   numeric 1/2 (``2``, number)  two: categorical + numeric    300-category zip code, spaces
fraud         CSV      5000   numeric 0/1 (``"1"``, str)   one, categorical, tiny group  2% positives, missing values
grants        Parquet  1200   string (``"funded"``)        two categorical, unicode      id column, bool feature,
                                                                                          numeric code forced categorical
============  =======  =====  ==========================  ============================  =============================

Every target depends on a few features through a logistic model (real signal, ROC AUC
well above 0.5), and every generator is seeded, so the files are byte-identical run to run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _labels_with_prevalence(rng: np.random.Generator, logit: np.ndarray, prevalence: float) -> np.ndarray:
    """Draw 0/1 labels from a logit, shifted so that the expected positive share is ``prevalence``."""
    low, high = -30.0, 30.0
    for _ in range(60):  # bisection on the intercept
        mid = (low + high) / 2
        if _sigmoid(logit + mid).mean() < prevalence:
            low = mid
        else:
            high = mid
    return (rng.random(len(logit)) < _sigmoid(logit + (low + high) / 2)).astype(int)


def _with_missing(rng: np.random.Generator, values: pd.Series, rate: float) -> pd.Series:
    return values.mask(rng.random(len(values)) < rate)


def clinic(rows: int = 400, seed: int = 1) -> pd.DataFrame:
    """Hospital readmission: boolean target, one numeric sensitive feature, odd column names."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 95, rows)
    income = rng.lognormal(7.6, 0.5, rows).round(2)
    height = rng.normal(170, 10, rows).round(1)
    visits = rng.poisson(2.0, rows)
    ward = rng.choice(["Kardiologie", "Onkologie", "Chirurgie", "Innere Medizin"], rows, p=[0.3, 0.2, 0.3, 0.2])
    logit = 0.04 * (age - 55) + 0.6 * visits - 0.0004 * (income - 2000) + np.where(ward == "Onkologie", 0.8, 0.0)
    y = _labels_with_prevalence(rng, logit, 0.35).astype(bool)
    return pd.DataFrame({
        "Patient age": age,
        "Monthly income (€)": _with_missing(rng, pd.Series(income), 0.1),
        "größe": _with_missing(rng, pd.Series(height), 0.05),
        "visits.last_year": visits,
        "ward": _with_missing(rng, pd.Series(ward), 0.05),
        "readmitted": y,
    })


def churn(rows: int = 3000, seed: int = 2) -> pd.DataFrame:
    """Subscription churn: target coded 1/2, categorical and numeric sensitive features, 300 zip codes."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male", "non-binary"], rows, p=[0.48, 0.48, 0.04])
    age = rng.integers(18, 80, rows)
    tenure = rng.integers(0, 120, rows)
    calls = rng.poisson(1.5, rows).astype(float)
    zip_code = np.array([f"Z{z:03d}" for z in rng.integers(0, 300, rows)])
    zip_effect = dict(zip([f"Z{z:03d}" for z in range(300)], rng.normal(0, 0.7, 300)))
    plan = rng.choice(["basic", "plus", "premium"], rows, p=[0.5, 0.3, 0.2])
    logit = (-0.08 * tenure + 1.4 * calls + np.vectorize(zip_effect.get)(zip_code)
             + np.where(plan == "basic", 1.5, 0.0) - 0.02 * (age - 45))
    y = _labels_with_prevalence(rng, logit, 0.3) + 1  # 1 = stays, 2 = churns
    return pd.DataFrame({
        "customer gender": gender,
        "age": age,
        "tenure months": tenure,
        "support calls": _with_missing(rng, pd.Series(calls), 0.08),
        "zip.code": zip_code,
        "plan": plan,
        "monthly charge": (rng.normal(30, 5, rows) + np.where(plan == "premium", 40, np.where(plan == "plus", 15, 0))).round(2),
        "churn status": y,
    })


def fraud(rows: int = 5000, seed: int = 3) -> pd.DataFrame:
    """Card fraud: 0/1 target with 2% positives, a sensitive feature with a group of 8 rows."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.3, 0.3, 0.2, 0.2]).astype(object)
    region[rng.choice(rows, 8, replace=False)] = "islands"  # too small to assess
    amount = rng.lognormal(3.5, 1.0, rows).round(2)
    hour = rng.integers(0, 24, rows)
    merchant = rng.choice(["grocery", "fuel", "online", "travel", "electronics"], rows)
    device = rng.choice(["card present", "card not present"], rows, p=[0.7, 0.3])
    logit = (2.0 * np.log(amount) + np.where((hour < 5), 2.5, 0.0) + np.where(merchant == "online", 2.0, 0.0)
             + np.where(device == "card not present", 2.0, 0.0))
    y = _labels_with_prevalence(rng, logit, 0.02)
    return pd.DataFrame({
        "amount": _with_missing(rng, pd.Series(amount), 0.03),
        "hour of day": hour,
        "merchant.category": merchant,
        "device": device,
        "region": region,
        "is_fraud": y,
    })


def grants(rows: int = 1200, seed: int = 4) -> pd.DataFrame:
    """Research grants: string target, two categorical sensitive features with unicode names."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["weiblich", "männlich"], rows, p=[0.45, 0.55])
    region = rng.choice(["Süd", "Nord", "Ost", "West", "Übersee"], rows, p=[0.3, 0.3, 0.15, 0.15, 0.1])
    score = rng.normal(70, 12, rows).round(1)
    papers = rng.poisson(6, rows)
    budget = rng.lognormal(11, 0.6, rows).round(-2)
    field_code = rng.choice([11, 22, 33, 44], rows)  # a numeric code that is really a category
    resubmission = rng.random(rows) < 0.3
    logit = (0.25 * (score - 70) + 0.4 * (papers - 6) + np.where(resubmission, 1.2, 0.0) + np.where(field_code == 33, 1.0, 0.0)
             - np.where(gender == "weiblich", 0.5, 0.0))
    funded = _labels_with_prevalence(rng, logit, 0.4) == 1
    y = np.where(funded, "funded", "rejected")
    # Columns recorded after the outcome, as real exports carry them: the payout (a few rejected
    # applications were paid after an appeal, a few funded ones never drew: alone ROC AUC ~0.97),
    # the days the decision took (nearly perfect), and the date it was sent (text that reads as dates).
    flipped = rng.random(rows) < 0.03
    paid = np.where(flipped, ~funded, funded)
    decided_in = np.where(funded, 45, 12) + rng.integers(0, 6, rows)
    sent = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 300, rows) + decided_in, unit="D")
    score_column = _with_missing(rng, pd.Series(score), 0.07)
    return pd.DataFrame({
        "application id": np.arange(100000, 100000 + rows),
        "Geschlecht": gender,
        "Herkunft.region": region,
        "review score": score_column,
        "papers": papers,
        "budget (€)": budget,
        "field code": field_code,
        "resubmission": resubmission,
        "payout (€)": np.where(paid, (budget * rng.uniform(0.8, 1.0, rows)).round(-2), 0.0),
        "days to decision": decided_in,
        "decision sent": sent.strftime("%Y-%m-%d"),
        "score (copy)": score_column,  # the same values under another name
        "notes": np.full(rows, None, dtype=object),  # never filled in: not available
        "décision": y,
    })


@dataclass(frozen=True)
class Dataset:
    """A test dataset and the ``data:`` contract a user would write for it."""

    name: str
    filename: str
    make: Callable[[], pd.DataFrame]
    contract: dict[str, Any]
    drift_feature: str
    description: str
    monitoring: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"data/raw/{self.filename}"

    def frame(self) -> pd.DataFrame:
        return self.make()

    def write(self, directory: Path) -> Path:
        """Write the file into ``directory`` (a project's data/raw/) and return its path."""
        target = Path(directory) / self.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = self.frame()
        if self.filename.endswith(".parquet"):
            frame.to_parquet(target, index=False)
        else:
            frame.to_csv(target, index=False)
        return target

    def data_section(self) -> dict[str, Any]:
        """The complete ``data:`` section for params.yaml."""
        return {
            "path": self.path, "id_columns": [], "drop_columns": [], "categorical_columns": [],
            "keep_columns": [], "production_dir": "data/production", **self.contract,
        }

    def monitoring_section(self) -> dict[str, Any]:
        """The ``monitoring`` keys a user with their own data changes (README, "Bring your own data")."""
        return {"simulation_source": "data/processed/test.parquet", "drift_shift_feature": self.drift_feature,
                **self.monitoring}


DATASETS = {
    d.name: d for d in (
        Dataset("clinic", "clinic readmissions.csv", clinic,
                {"target": "readmitted", "positive_label": True, "sensitive_features": ["Patient age"]},
                drift_feature="Monthly income (€)",
                description="400 rows, CSV, boolean target, one numeric sensitive feature, odd names, missing values"),
        Dataset("churn", "churn.parquet", churn,
                {"target": "churn status", "positive_label": 2, "sensitive_features": ["customer gender", "age"]},
                drift_feature="tenure months",
                description="3000 rows, Parquet, target 1/2, categorical + numeric sensitive features, 300 zip codes"),
        Dataset("fraud", "fraud.csv", fraud,
                {"target": "is_fraud", "positive_label": "1", "sensitive_features": ["region"]},
                drift_feature="amount",
                description="5000 rows, CSV, 0/1 target with 2% positives, a sensitive group of 8 rows"),
        Dataset("grants", "grants.parquet", grants,
                {"target": "décision", "positive_label": "funded", "sensitive_features": ["Geschlecht", "Herkunft.region"],
                 "id_columns": ["application id"], "categorical_columns": ["field code"]},
                drift_feature="review score",
                description="1200 rows, Parquet, string target, two categorical sensitive features, unicode names, id column, "
                            "columns recorded after the outcome, a copied column, an empty one"),
    )
}


if __name__ == "__main__":  # a quick look: python tests/datasets.py
    for dataset in DATASETS.values():
        frame = dataset.frame()
        target = dataset.contract["target"]
        print(f"{dataset.name:7s} {frame.shape}  {target}: {frame[target].value_counts().to_dict()}  -- {dataset.description}")
