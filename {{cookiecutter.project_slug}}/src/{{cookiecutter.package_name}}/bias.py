"""Bias in the data: representation, base rates, proxies, and remediations. Adapt freely.

Reweighing follows Kamiran & Calders (2012): each (group, label) cell gets the
weight P(group) P(label) / P(group, label), so that group and label are
independent in the weighted data. Group-aware resampling draws rows with the
same ratios. Nothing here drops rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .profiling import single_feature_auc

WEIGHT_BOUNDS = (0.1, 10.0)


def representation(groups: pd.Series, y: pd.Series, min_group_size: int) -> pd.DataFrame:
    """Per group: rows, share of the whole, positive base rate, and whether it is large enough to assess."""
    cells = pd.DataFrame({"group": groups.to_numpy(), "y": np.asarray(y)}).value_counts(sort=False)
    return _representation(cells.rename("rows").reset_index(), min_group_size)


def representation_of_cells(cells: pd.DataFrame, features: list[str], target: str, min_group_size: int) -> pd.DataFrame:
    """:func:`representation` from counted cells (:meth:`.tables.MemoryTable.cells`): by one sensitive
    feature, or by the intersection of several."""
    from .data import intersection_labels

    group = cells[features[0]] if len(features) == 1 else intersection_labels(cells[features])
    return _representation(pd.DataFrame({"group": group, "y": cells[target], "rows": cells["rows"]}), min_group_size)


def _representation(cells: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """The representation table of cells ``group, y (0/1), rows``."""
    cells = cells.assign(positives=cells["rows"] * cells["y"])
    table = cells.groupby("group")[["rows", "positives"]].sum()
    table["positive_rate"] = table["positives"] / table["rows"]
    table["share"] = table["rows"] / table["rows"].sum()
    table["positive_rate_vs_overall"] = table["positive_rate"] - overall_rate(cells)
    table["assessable"] = table["rows"] >= min_group_size
    table.index.name = "group"
    return table.sort_values("rows", ascending=False)[
        ["rows", "share", "positive_rate", "positive_rate_vs_overall", "assessable"]
    ]


def overall_rate(cells: pd.DataFrame, target: str = "y") -> float:
    """The positive rate of all rows of counted cells."""
    return float((cells["rows"] * cells[target]).sum() / cells["rows"].sum())


def base_rate_gap(table: pd.DataFrame) -> tuple[float, str, str]:
    """Largest difference in positive rate between assessable groups, and which two groups."""
    ok = table[table["assessable"]]
    if len(ok) < 2:
        return float("nan"), "", ""
    hi, lo = ok["positive_rate"].idxmax(), ok["positive_rate"].idxmin()
    return float(ok.loc[hi, "positive_rate"] - ok.loc[lo, "positive_rate"]), str(hi), str(lo)


def sample_positions(rows: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted positions of a random sample of ``max_rows`` of ``rows`` rows (all of them when fewer)."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be a positive number of rows, got {max_rows}")
    if rows <= max_rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))


def proxy_scan(
    features: pd.DataFrame, groups: pd.Series, kinds: dict[str, str], min_group_size: int, seed: int
) -> pd.Series:
    """How well each feature alone predicts group membership (size-weighted one-vs-rest AUC, out of fold)."""
    counts = groups.value_counts()
    assessable = counts[counts >= min_group_size]
    scores = {}
    for column in features.columns:
        aucs, weights = [], []
        for group, size in assessable.items():
            member = (groups == group).astype(int)
            if member.nunique() < 2:
                continue
            aucs.append(single_feature_auc(features[column], member, kinds.get(column, "categorical"), seed=seed))
            weights.append(size)
        scores[column] = float(np.average(aucs, weights=weights)) if aucs else float("nan")
    return pd.Series(scores, name="proxy_auc").sort_values(ascending=False)


def joint_proxy_auc(
    encoded: np.ndarray, groups: pd.Series, min_group_size: int, seed: int, max_rows: int = 20000
) -> float:
    """How well all features together predict group membership (weighted one-vs-rest AUC, 3-fold)."""
    counts = groups.value_counts()
    keep = groups.isin(counts[counts >= max(min_group_size, 3)].index).to_numpy()
    x, g = encoded[keep], groups[keep].to_numpy()
    if len(np.unique(g)) < 2:
        return float("nan")
    if len(g) > max_rows:
        idx = np.random.default_rng(seed).choice(len(g), max_rows, replace=False)
        x, g = x[idx], g[idx]
    model = HistGradientBoostingClassifier(max_iter=60, random_state=seed)
    proba = cross_val_predict(
        model, x, g, cv=StratifiedKFold(3, shuffle=True, random_state=seed), method="predict_proba"
    )
    classes = np.unique(g)
    if len(classes) == 2:
        return float(roc_auc_score(g == classes[1], proba[:, 1]))
    return float(roc_auc_score(g, proba, multi_class="ovr", average="weighted", labels=classes))


def reweighing_table(groups: pd.Series, y: pd.Series) -> pd.DataFrame:
    """Kamiran & Calders weights per (group, label) cell, clipped to avoid exploding weights."""
    frame = pd.DataFrame({"group": groups.to_numpy(), "label": np.asarray(y).astype(int)})
    return _reweighing(frame.value_counts(["group", "label"]).rename("rows").reset_index())


def reweighing_of_cells(cells: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """:func:`reweighing_table` by intersectional group, from counted cells (:meth:`.tables.MemoryTable.cells`)."""
    from .data import intersection_labels

    labels = intersection_labels(cells[spec["sensitive_features"]])
    frame = pd.DataFrame({"group": labels, "label": cells[spec["target"]].astype(int), "rows": cells["rows"]})
    return _reweighing(frame.groupby(["group", "label"], sort=False)["rows"].sum().reset_index())


def _reweighing(cells: pd.DataFrame) -> pd.DataFrame:
    n = cells["rows"].sum()
    p_group = cells.groupby("group")["rows"].sum() / n
    p_label = cells.groupby("label")["rows"].sum() / n
    cells = cells.copy()
    cells["expected"] = cells["group"].map(p_group) * cells["label"].map(p_label) * n
    cells["weight"] = (cells["expected"] / cells["rows"]).clip(*WEIGHT_BOUNDS)
    return cells.sort_values(["group", "label"]).reset_index(drop=True)


def row_weights(groups: pd.Series, y: pd.Series, table: pd.DataFrame) -> np.ndarray:
    """The weight of every row from a :func:`reweighing_table` (1.0 for cells it does not know)."""
    lookup = {(str(g), int(lbl)): w for g, lbl, w in table[["group", "label", "weight"]].itertuples(index=False)}
    return np.array(
        [lookup.get((str(g), int(lbl)), 1.0) for g, lbl in zip(groups, np.asarray(y).astype(int), strict=True)]
    )


def resample_indices(weights: np.ndarray, seed: int) -> np.ndarray:
    """Group-aware resampling: draw as many rows as there are, with probability proportional to the weights."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())


def selection_rate_gap(pred: np.ndarray, groups: pd.Series, min_group_size: int) -> float:
    """Demographic parity difference over groups with at least ``min_group_size`` rows."""
    frame = pd.DataFrame({"g": groups.to_numpy(), "p": np.asarray(pred)})
    rates = frame.groupby("g")["p"].agg(["size", "mean"])
    rates = rates[rates["size"] >= min_group_size]["mean"]
    return float(rates.max() - rates.min()) if len(rates) >= 2 else float("nan")


def choose_remediation(effects: pd.DataFrame, max_accuracy_loss: float = 0.01) -> str:
    """The candidate with the smallest fairness gap among those losing at most ``max_accuracy_loss`` accuracy.

    "none" when no gap could be measured (no two groups of the held-out rows reach the minimum
    size, as on small data): without evidence, the data is left as it is.
    """
    reference = float(effects.loc["none", "accuracy"])
    eligible = effects[effects["accuracy"] >= reference - max_accuracy_loss]["max_parity_gap"].dropna()
    return str(eligible.idxmin()) if len(eligible) else "none"


def plan_summary(choice: str, effects: pd.DataFrame) -> dict[str, Any]:
    row = effects.loc[choice]
    none = effects.loc["none"]
    return {
        "remediation": choice,
        "parity_gap_before": float(none["max_parity_gap"]),
        "parity_gap_after": float(row["max_parity_gap"]),
        "accuracy_before": float(none["accuracy"]),
        "accuracy_after": float(row["accuracy"]),
    }


def remediation_effects(
    rows: pd.DataFrame, spec: dict[str, Any], weights_table: pd.DataFrame, min_group_size: int, seed: int
) -> pd.DataFrame:
    """Accuracy and largest parity gap of a quick model under each remediation: none, reweighing, resampling.

    ``rows`` are training rows (step 05's training split, or a sample of it): the quick model
    (logistic regression on the step-05 features) is fitted on 70 % of them and measured on the
    other 30 %, so the choice of remediation never sees a validation or test row.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    from .data import intersection_labels, sensitive_groups
    from .features import build_preprocessor

    columns = spec["numeric_features"] + spec["categorical_features"]
    y, groups = rows[spec["target"]], sensitive_groups(rows, spec)
    fit, hold = train_test_split(np.arange(len(rows)), test_size=0.3, stratify=y, random_state=seed)
    weights = row_weights(intersection_labels(groups).iloc[fit], y.iloc[fit], weights_table)

    def measure(picked: np.ndarray, sample_weight: np.ndarray | None = None) -> dict[str, float]:
        model = make_pipeline(build_preprocessor(spec), LogisticRegression(max_iter=1000))
        model.fit(rows.iloc[picked][columns], y.iloc[picked], logisticregression__sample_weight=sample_weight)
        pred = model.predict(rows.iloc[hold][columns])
        gaps = [selection_rate_gap(pred, groups[f].iloc[hold], min_group_size) for f in spec["sensitive_features"]]
        measured = [gap for gap in gaps if not np.isnan(gap)]  # NaN: no two groups large enough to compare
        return {
            "accuracy": float((pred == y.iloc[hold].to_numpy()).mean()),
            "max_parity_gap": max(measured, default=np.nan),
        }

    return pd.DataFrame(
        {
            "none": measure(fit),
            "reweighing": measure(fit, weights),
            "resampling": measure(fit[resample_indices(weights, seed)]),
        }
    ).T
