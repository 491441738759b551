"""Profile every column of a dataset and decide which columns are usable features. Adapt freely.

Usefulness is measured by single-feature ROC AUC, computed out of fold so that
an identifier cannot look predictive by memorising rows. The leakage screen looks
at each column three ways, then at the columns together:

- its values: a column that alone ranks the target far better than the business
  case's baseline process (or than ``leakage_auc``) is leakage;
- whether it is missing: a value present mostly for one outcome is typically
  recorded after the outcome (a re-arrest date, a payout);
- its levels: a categorical column whose rows sit mostly in levels seen once or
  twice (names, free-text codes) identifies people rather than describing them;
- together (:func:`combined_screen`): a quick model of the candidate features that
  is too good to be true names the columns that carry it, and they are excluded.

A column that is unique per row is an identifier. Every threshold is judged on a
one-sided 95 % lower bound, so a column is excluded when the evidence is clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from .data import as_list, numeric_bins, target_labels

NUMERIC, CATEGORICAL, DATETIME, TEXT = "numeric", "categorical", "datetime", "text"
Z_ONE_SIDED = float(norm.ppf(0.95))  # every screen excludes on a one-sided 95 % lower bound
RARE_LEVEL_COUNT = 2  # a level seen at most this often in the profiled rows is rare (names, codes)
SCREEN_MIN_CLASS_ROWS = 10  # rows of each class the quick model of the columns together needs (two folds)


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


def auc_interval(auc: float, n_positive: int, n_negative: int, z: float = Z_ONE_SIDED) -> tuple[float, float]:
    """``auc`` ± ``z`` standard errors (Hanley & McNeil, Radiology 1982), clipped to [0, 1].

    The closed form needs only the class counts, so every column's AUC gets its interval at no
    cost; ``z`` 1.645 gives the one-sided 95 % bounds the screens decide on.
    """
    if pd.isna(auc) or min(n_positive, n_negative) < 1:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)) / (
        n_positive * n_negative
    )
    half = z * float(np.sqrt(max(variance, 0.0)))
    return max(auc - half, 0.0), min(auc + half, 1.0)


def leakage_ceiling(leakage_auc: float, baseline_tpr: float, baseline_fpr: float, error_share: float) -> float:
    """The single-column AUC above which a column is leakage: it follows the task's baseline.

    The baseline process of the business case (step 01) ranks with AUC ``(1 + TPR - FPR) / 2``
    (its one operating point). A column that alone leaves less than ``error_share`` of the
    baseline's ranking errors (``1 - AUC``) does what the whole current process cannot, which
    a column recorded after the outcome does; ``leakage_auc`` stays the ceiling for any task.
    """
    baseline_auc = max((1 + baseline_tpr - baseline_fpr) / 2, 0.5)
    return float(min(leakage_auc, 1 - error_share * (1 - baseline_auc)))


def _missingness(missing: pd.Series, y: np.ndarray) -> dict[str, float]:
    """How whether a value is missing depends on the outcome: rates by class, AUC, odds ratio.

    The odds ratio's lower bound is one-sided 95 % (Woolf's log interval with the Haldane-Anscombe
    half added to every cell, so a class where the column is never missing still gives a finite
    bound: scipy's ``odds_ratio`` gives none there, and its exact interval takes seconds on large
    tables); it is oriented to be at least 1 whichever way the dependence goes.
    """
    missing = missing.to_numpy(dtype=bool)
    positive = y == 1
    table = np.array(
        [
            [(missing & positive).sum(), (~missing & positive).sum()],
            [(missing & ~positive).sum(), (~missing & ~positive).sum()],
        ],
        dtype=float,
    )
    log_odds = np.log((table[0, 0] + 0.5) * (table[1, 1] + 0.5) / ((table[0, 1] + 0.5) * (table[1, 0] + 0.5)))
    se = float(np.sqrt((1 / (table + 0.5)).sum()))
    return {
        "missing_in_positives": float(table[0, 0] / max(table[0].sum(), 1)),
        "missing_in_negatives": float(table[1, 0] / max(table[1].sum(), 1)),
        "missing_auc": single_feature_auc(pd.Series(missing, dtype=float), pd.Series(y), NUMERIC),
        "missing_odds_ratio_low": float(np.exp(abs(log_odds) - Z_ONE_SIDED * se)),
    }


def rare_share(values: pd.Series) -> float:
    """Share of present values whose level occurs at most :data:`RARE_LEVEL_COUNT` times.

    Names, addresses and free-text codes have most of their rows in such levels: they identify
    people rather than describe them, and a model cannot learn a level it saw once.
    """
    present = values.dropna().astype(str)
    if not len(present):
        return 0.0
    return float((present.map(present.value_counts()) <= RARE_LEVEL_COUNT).mean())


def profile(frame: pd.DataFrame, y: pd.Series, categorical: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per column: type, missingness, cardinality, range and usefulness.

    ``auc_low`` is the one-sided 95 % lower bound of ``auc``; columns with missing values also
    get how their missingness depends on the outcome (see :func:`_missingness`), categorical
    ones the share of their rows in rare levels (:func:`rare_share`).
    """
    categorical = set(categorical or [])
    labels = np.asarray(y, dtype=int)
    n_positive, n_negative = int(labels.sum()), int(len(labels) - labels.sum())
    rows = []
    for column in frame.columns:
        values = frame[column]
        kind = column_kind(values, column in categorical)
        n_unique = int(values.nunique(dropna=True))
        missing = values.isna()
        row: dict[str, Any] = {
            "column": column,
            "dtype": str(values.dtype),
            "kind": kind,
            "missing_rate": float(missing.mean()),
            "n_unique": n_unique,
            "unique_ratio": n_unique / max(int(values.notna().sum()), 1),
            "min": None,
            "max": None,
            "top_values": "",
            "auc": float("nan"),
            "missing_auc": float("nan"),
            "rare_share": rare_share(values) if kind == CATEGORICAL else float("nan"),
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
        if 0 < row["missing_rate"] < 1:  # a value recorded only after one outcome leaks by being there
            row.update(_missingness(missing, labels))
        row["auc_low"] = auc_interval(row["auc"], n_positive, n_negative)[0]
        row["missing_auc_low"] = auc_interval(row["missing_auc"], n_positive, n_negative)[0]
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
    missing_odds_ratio: float = 10.0,
    rare_level_share: float = 0.25,
) -> pd.DataFrame:
    """Add ``flags`` (why a column is suspicious) and ``exclude`` (whether it is dropped).

    ``leakage_auc`` is the single-column ceiling (see :func:`leakage_ceiling`), held against the
    one-sided 95 % lower bound of the column's AUC, and of its missingness indicator's AUC. Whether
    a value is missing is leakage too when its odds ratio with the outcome is at least
    ``missing_odds_ratio`` (95 % lower bound). A categorical column with at least ``rare_level_share``
    of its rows in levels seen at most twice is near-unique per person (a name, a code). ``duplicates``
    (from :func:`duplicate_columns`) names the columns that copy another: the copy is excluded, the
    first of them kept.
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
        identifier = integer_like and row.unique_ratio >= identifier_unique_ratio and n_rows >= 20
        if identifier:
            found.append(f"identifier ({row.unique_ratio:.0%} unique)")
            drop = True
        if not pd.isna(row.auc_low) and row.auc_low >= leakage_auc:
            found.append(
                f"leakage (AUC {row.auc:.3f} alone, at least {row.auc_low:.3f} at 95 %; ceiling {leakage_auc:.3f})"
            )
            drop = True
        if not pd.isna(row.missing_auc) and (
            row.missing_odds_ratio_low >= missing_odds_ratio or row.missing_auc_low >= leakage_auc
        ):
            found.append(
                f"leakage: whether it is missing depends on the outcome (missing for {row.missing_in_negatives:.0%} "
                f"of negatives, {row.missing_in_positives:.0%} of positives; odds ratio at least "
                f"{row.missing_odds_ratio_low:.1f} at 95 %, AUC {row.missing_auc:.3f}), as for a value recorded after "
                "the outcome; its values may be fine: data.keep_columns keeps it"
            )
            drop = True
        rare = row.kind == CATEGORICAL and not identifier and n_rows >= 20 and row.rare_share >= rare_level_share
        if rare:
            found.append(
                f"near-unique per person ({row.rare_share:.0%} of rows in levels seen at most {RARE_LEVEL_COUNT} "
                f"times, {row.n_unique:,} levels): an identifier and a proxy, such as a name or a code"
            )
            drop = True
        elif row.kind == CATEGORICAL and row.n_unique > max_categories:
            found.append(f"high cardinality ({row.n_unique} categories; rare ones grouped)")
        flags.append("; ".join(found))
        exclude.append(drop)
    return prof.assign(flags=flags, exclude=exclude)


def _exclusion(column: str, by_column: pd.DataFrame, contract: dict[str, Any]) -> str | None:
    """Why ``column`` is not a feature (the ``data`` key, or the profile's flags), or None when it is one.

    ``data.keep_columns`` keeps a flagged column, but cannot make a date or free text a feature.
    """
    if column in as_list(contract.get("id_columns")):
        return "data.id_columns"
    if column in as_list(contract.get("drop_columns")):
        return "data.drop_columns"
    if by_column.loc[column, "exclude"] and (
        column not in as_list(contract.get("keep_columns")) or by_column.loc[column, "kind"] in (DATETIME, TEXT)
    ):
        return str(by_column.loc[column, "flags"])
    return None


def candidate_features(prof: pd.DataFrame, contract: dict[str, Any]) -> list[str]:
    """The columns that are features after the column-by-column screen (target and sensitive features aside)."""
    roles = {str(contract["target"]), *as_list(contract["sensitive_features"])}
    by_column = prof.set_index("column")
    return [c for c in prof["column"] if c not in roles and _exclusion(c, by_column, contract) is None]


def _screen_matrix(frame: pd.DataFrame, kinds: dict[str, str]) -> tuple[pd.DataFrame, list[bool]]:
    """The columns as a quick model reads them, and which are categorical: numbers stay numbers with
    their missing values (a model learns where they go), categories become codes (levels seen fewer
    than :data:`.features.MIN_CATEGORY_FREQUENCY` times grouped, as the feature pipeline groups them).

    Encoding uses no label, so it is done once for both folds of :func:`screen_fit`.
    """
    from sklearn.preprocessing import OrdinalEncoder

    from .features import MIN_CATEGORY_FREQUENCY, as_text

    numeric = [c for c in frame.columns if kinds[c] == NUMERIC]
    categorical = [c for c in frame.columns if kinds[c] != NUMERIC]
    X = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    if categorical:
        encoder = OrdinalEncoder(
            encoded_missing_value=np.nan,
            min_frequency=MIN_CATEGORY_FREQUENCY,
            max_categories=254,  # the model's limit: fewer categories than its 255 bins
        )
        codes = encoder.fit_transform(as_text(frame[categorical]))
        X = pd.concat([X, pd.DataFrame(codes, index=frame.index, columns=categorical)], axis=1)
    return X, [False] * len(numeric) + [True] * len(categorical)


def screen_fit(frame: pd.DataFrame, y: np.ndarray, kinds: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """Out-of-fold ROC AUC (two folds) of a quick gradient-boosting model of ``frame``, with its 95 %
    interval, and each column's permutation importance (the AUC lost when that column is shuffled in
    the held-out fold, averaged over both folds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import cross_validate

    X, categorical = _screen_matrix(frame, kinds)
    model = HistGradientBoostingClassifier(
        max_iter=50, learning_rate=0.2, categorical_features=categorical, early_stopping=False, random_state=seed
    )
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    fitted = cross_validate(model, X, y, cv=folds, return_estimator=True, return_indices=True)
    scores = np.zeros(len(y))
    importance = pd.Series(0.0, index=X.columns)
    for estimator, held_out in zip(fitted["estimator"], fitted["indices"]["test"], strict=True):
        scores[held_out] = estimator.predict_proba(X.iloc[held_out])[:, 1]
        shuffled = permutation_importance(
            estimator, X.iloc[held_out], y[held_out], scoring="roc_auc", n_repeats=1, random_state=seed
        )
        importance += shuffled.importances_mean / 2
    auc = float(roc_auc_score(y, scores))
    low, high = auc_interval(auc, int(y.sum()), int(len(y) - y.sum()), z=float(norm.ppf(0.975)))
    return {"auc": auc, "low": low, "high": high, "importance": importance.sort_values(ascending=False)}


def combined_screen(
    frame: pd.DataFrame,
    y: pd.Series,
    prof: pd.DataFrame,
    contract: dict[str, Any],
    max_plausible_auc: float,
    max_rows: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The candidate features together: a quick model that is too good to be true is carried by leaks.

    Fits :func:`screen_fit` on a label-stratified sample of at most ``max_rows`` rows. While the
    lower bound of its AUC's 95 % interval is above ``max_plausible_auc``, the column that carries
    it most (largest permutation importance) is flagged and excluded, and the model is fitted
    again without it; a carrier kept by ``data.keep_columns`` stops the search (it is reported).
    Columns that pass one at a time can leak together: this catches what the profile cannot.

    Returns the profile with those flags and each candidate's ``importance`` in the last model, and
    one row per model fitted: features, AUC and interval, top contributors, the column excluded.
    """
    keep = set(as_list(contract.get("keep_columns")))
    labels = np.asarray(y, dtype=int)
    rows = np.arange(len(labels))
    if len(rows) > max_rows:
        rows = np.sort(train_test_split(rows, train_size=max_rows, stratify=labels, random_state=seed)[0])
    kinds = prof.set_index("column")["kind"].to_dict()
    columns = candidate_features(prof, contract)
    out, rounds = prof.copy(), []
    out["importance"] = np.nan
    while columns and np.bincount(labels[rows], minlength=2).min() >= SCREEN_MIN_CLASS_ROWS:
        fit = screen_fit(frame.iloc[rows][columns], labels[rows], kinds, seed)
        top = fit["importance"]
        carrier = top.index[0] if fit["low"] > max_plausible_auc else None
        rounds.append(
            {
                "features": len(columns),
                "rows": len(rows),
                "auc": fit["auc"],
                "auc_low": fit["low"],
                "auc_high": fit["high"],
                "too_good": fit["low"] > max_plausible_auc,
                "top_contributors": ", ".join(f"`{c}` ({v:+.3f})" for c, v in top.head(3).items()),
                "excluded": carrier if carrier is not None and carrier not in keep else "",
            }
        )
        out["importance"] = out["column"].map(top)
        if carrier is None or carrier in keep:
            break
        at = out.index[out["column"] == carrier][0]
        why = (
            f"leakage: carries a model of the candidate features that is too good to be true (AUC {fit['auc']:.3f}, "
            f"95 % interval {fit['low']:.3f}-{fit['high']:.3f}, above {max_plausible_auc}; shuffling it costs "
            f"{top.iloc[0]:.3f})"
        )
        out.loc[at, "flags"] = "; ".join(f for f in (out.loc[at, "flags"], why) if f)
        out.loc[at, "exclude"] = True
        columns = [c for c in columns if c != carrier]
    return out, pd.DataFrame(rounds)


def screen_summary(screen: pd.DataFrame) -> str:
    """Markdown lines, one per model of :func:`combined_screen`: its AUC and interval, verdict, top
    contributors and the column it excluded (step 03's report and the datasheet say the same)."""
    if not len(screen):
        return (
            "The candidate features were not modelled together: there are none, or fewer than "
            f"{SCREEN_MIN_CLASS_ROWS} rows of a class."
        )
    lines = [
        f"- {r.features} features, {r.rows:,} rows: AUC **{r.auc:.3f}** (95 % interval {r.auc_low:.3f}-{r.auc_high:.3f}), "
        + ("**too good to be true**" if r.too_good else "plausible")
        + f"; top contributors (AUC lost when shuffled) {r.top_contributors}"
        + (f"; `{r.excluded}` excluded" if r.excluded else "")
        for r in screen.itertuples()
    ]
    last = screen.iloc[-1]
    if last["too_good"] and not last["excluded"]:
        lines.append(
            "- Its top contributor is kept by `data.keep_columns`: it stays, and the leakage alarm of step 06 "
            "judges the final model."
        )
    return "\n".join(lines)


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
    by_column = prof.set_index("column")
    excluded: dict[str, str] = {}
    numeric, categorical = [], []
    for column in frame.columns:
        if column == target or column in sensitive:
            continue
        why = _exclusion(column, by_column, contract)
        if why is not None:
            excluded[column] = why
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


PROFILE_SHOWN = [  # what step 03 shows of the profile
    "column",
    "kind",
    "missing_rate",
    "n_unique",
    "auc",
    "auc_low",
    "missing_auc",
    "rare_share",
    "importance",
    "flags",
    "exclude",
]

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
    "missing_auc",
    "importance",
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

    columns = prof.assign(role=prof["column"].map(role)).reindex(columns=DICTIONARY_COLUMNS)
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
