"""Score records with the deployed artifact, after checking them against the training schema. Adapt with care: the service, `predict` and steps 07-10 rely on it.

The deployable artifact is one skops file holding a dict: the fitted model, the
decision threshold and metadata (input schema, version, training-data hash,
metrics). :func:`validate_input` turns every problem with a request into an
:class:`InputError` whose message names the column and the value; it works on
whole columns (one pass per column, not per cell), so validating one record costs
far less than the model's own pipeline.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import artifacts, data

# Numbers outside the training range widened by this many spans (each side) are refused
# unless unseen values are allowed: wide enough for production to exceed training a little,
# narrow enough to stop unit mix-ups and garbage (1e308, negative amounts).
RANGE_MARGIN = 1.0
DEFAULT_MODELS = ("models/registry/champion.skops", "models/release.skops", "models/model.skops")


class InputError(ValueError):
    """A scoring request does not fit the model's input schema."""


def make_bundle(model: Any, threshold: float, metadata: dict[str, Any]) -> dict[str, Any]:
    """The deployable artifact: model, threshold and metadata in one object."""
    required = {"model_name", "version", "schema", "feature_columns", "sensitive_features", "positive_label"}
    missing = required - set(metadata)
    if missing:
        raise ValueError(f"artifact metadata lacks {sorted(missing)}")
    return {"model": model, "threshold": float(threshold), "metadata": metadata}


def load_bundle(path: str | Path, allow_unreleased: bool = False) -> dict[str, Any]:
    """Load a deployable artifact; refuse one its pipeline did not mark releasable."""
    bundle = artifacts.load(path)
    if not isinstance(bundle, dict) or not {"model", "threshold", "metadata"} <= set(bundle):
        raise ValueError(f"{path} is not a deployable artifact (expected model, threshold and metadata)")
    meta = bundle["metadata"]
    if not meta.get("releasable", False) and not allow_unreleased:
        raise ValueError(f"{path} is not releasable: {'; '.join(meta.get('reasons', [])) or 'no reason recorded'}")
    return bundle


def default_model_path(root: Path) -> Path:
    """The artifact in service (:meth:`.registry.Registry.in_service`: the champion, or a release of step 08
    that step 10 has not installed yet), else step 07's deployable artifact. One answer for the service,
    ``predict``, 09 and 10. Raises :class:`.registry.NoModelInService` (a FileNotFoundError) when step 08
    did not release its model and the registry has no champion: only a released artifact is in service."""
    from .registry import NoModelInService, Registry, unreleased_reason

    champion, release, deployable = (root / candidate for candidate in DEFAULT_MODELS)
    if champion.is_file() or release.is_file():
        in_service = Registry(root).in_service(release)
        if in_service is None:
            raise NoModelInService(
                f"no model in service: step 08 did not release {release} ({unreleased_reason(release)}) "
                "and the registry has no champion"
            )
        return in_service
    if deployable.is_file():
        return deployable
    raise FileNotFoundError(f"no model in {root}: looked for {', '.join(DEFAULT_MODELS)}; run `dvc repro` first")


def required_columns(metadata: dict[str, Any]) -> list[str]:
    """Columns a request must carry: features, plus sensitive features if the model decides by group."""
    columns = list(metadata["feature_columns"])
    if metadata.get("needs_sensitive_features"):
        columns += [f for f in metadata["sensitive_features"] if f not in columns]
    return columns


def contract_columns(metadata: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Columns of the training file that the data contract declared but the model does not take.

    ``target`` (the outcome), ``ids`` (``data.id_columns`` and columns step 03 excluded as
    identifiers: carried through to the output so scores join back) and ``dropped`` (every
    other excluded column). Read from the artifact's metadata when it records them (``target``,
    ``excluded_columns``), else from step 03's ``dataset_spec.json`` given as ``spec``.
    """
    source = metadata if "excluded_columns" in metadata else (spec or {})
    target = metadata.get("target", source.get("target"))
    excluded = dict(source.get("excluded_columns") or {})
    ids = [c for c, why in excluded.items() if why == "data.id_columns" or str(why).startswith("identifier")]
    return {
        "target": [target] if target else [],
        "ids": ids,
        "dropped": [c for c in excluded if c not in ids],
    }


def accepted_range(entry: dict[str, Any], margin: float = RANGE_MARGIN) -> tuple[float, float]:
    """The numbers a column accepts: its training range widened by ``margin`` times its span on
    each side; a column that was never negative in training stays non-negative."""
    low, high = float(entry["min"]), float(entry["max"])
    span = (high - low) or max(abs(high), 1.0)
    lower = low - margin * span
    return (max(lower, 0.0) if low >= 0 else lower), high + margin * span


def _shown(value: Any) -> Any:
    """A value as the user wrote it (numpy scalars as plain Python numbers) for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_numbers(values: np.ndarray, column: str) -> np.ndarray:
    """A column as float64; a value that is not a number (text, a boolean, a list) is an InputError."""
    if values.dtype.kind in "fiu":
        return values.astype("float64")
    absent = pd.isna(values)
    present = values[~absent]
    if values.dtype.kind != "b" and set(map(type, present)) <= {int, float, np.float64, np.int64}:
        out = np.full(len(values), np.nan)
        out[~absent] = np.asarray(present.tolist(), dtype="float64")  # the usual JSON case, in one pass
        return out
    out = np.full(len(values), np.nan)
    for row in np.flatnonzero(~absent):
        value, number = values[row], None
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise InputError(f"column {column!r}: value {_shown(value)!r} (record {row}) is not a number")
        out[row] = number
    return out


def _as_categories(values: np.ndarray, column: str) -> np.ndarray:
    """A column as text (numbers and booleans given for a category become their text).

    Missing values are NaN, as pandas reads them from CSV, Parquet and JSON: the feature
    pipeline imputes NaN, not None (scikit-learn's imputer does not see None as missing in
    a text column), so a None here would be scored as an unknown category.
    """
    absent = pd.isna(values)
    out = values.astype("object")  # a copy
    out[absent] = np.nan
    if set(map(type, out[~absent])) <= {str}:
        return out
    for row in np.flatnonzero(~absent):
        value = out[row]
        if isinstance(value, (dict, list)):
            raise InputError(f"column {column!r}: value {value!r} (record {row}) is not a category")
        out[row] = str(value)
    return out


def validate_input(
    frame: pd.DataFrame,
    metadata: dict[str, Any],
    allow_extra: bool = False,
    allow_unseen: bool = False,
    spec: dict[str, Any] | None = None,
    range_margin: float = RANGE_MARGIN,
) -> pd.DataFrame:
    """Check columns, types, categories, ranges and missing values; return the input columns in schema types.

    Columns of the training file that the contract declares (target, ids, dropped columns;
    see :func:`contract_columns`) are accepted and left out; any other column is refused
    unless ``allow_extra``. ``allow_unseen`` accepts what training never saw: unseen
    categories, numbers outside :func:`accepted_range` and missing values in a column
    that had none.
    """
    if frame.shape[0] == 0:
        raise InputError("input has no records")
    schema = metadata["schema"]
    expected = required_columns(metadata)
    declared = contract_columns(metadata, spec)
    known = set(expected) | set(metadata["sensitive_features"]) | {c for cs in declared.values() for c in cs}
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r} (required: {', '.join(expected)})")
    extra = [c for c in frame.columns if c not in known]
    if extra and not allow_extra:
        raise InputError(f"unexpected column {extra[0]!r}: the model takes only {', '.join(expected)}")
    out = {}
    for column in [c for c in schema if c in frame.columns]:
        entry, raw = schema[column], frame[column].to_numpy()
        if entry["kind"] == "numeric":
            values = _as_numbers(raw, column)
            absent = np.isnan(values)
            infinite = np.isinf(values)
            if infinite.any():
                row = _first(infinite)
                raise InputError(f"column {column!r}: value {_shown(raw[row])!r} (record {row}) is not a finite number")
            if not allow_unseen and "min" in entry:
                low, high = accepted_range(entry, range_margin)
                outside = ~absent & ((values < low) | (values > high))
                if outside.any():
                    row = _first(outside)
                    raise InputError(
                        f"column {column!r}: value {_shown(raw[row])!r} (record {row}) is outside the accepted range "
                        f"{low:g} to {high:g} (training: {entry['min']:g} to {entry['max']:g})"
                    )
        else:
            values = _as_categories(raw, column)
            absent = pd.isna(values)
            categories = entry.get("categories")
            if categories and not allow_unseen:
                unseen = sorted(set(pd.unique(values[~absent])) - set(categories))
                if unseen:
                    raise InputError(
                        f"column {column!r}: unseen category {unseen[0]!r} (known: {', '.join(categories[:12])}"
                        f"{', ...' if len(categories) > 12 else ''})"
                    )
        if not allow_unseen and not entry.get("nullable", True) and absent.any():
            raise InputError(
                f"column {column!r}: missing value (record {_first(absent)}); the training data had none in this column"
            )
        out[column] = pd.Series(values, index=frame.index, dtype=values.dtype)  # text stays object
    return pd.DataFrame(out, index=frame.index)


def model_scores(bundle: dict[str, Any], clean: pd.DataFrame) -> np.ndarray:
    """The model's score for the positive outcome of validated records (a ranking score: step 06 reports how well
    it is calibrated, overall and per group)."""
    model, features = bundle["model"], bundle["metadata"]["feature_columns"]
    if bundle["metadata"].get("needs_sensitive_features"):
        return np.asarray(model.score(clean[features]), dtype=float)
    return np.asarray(model.predict_proba(clean[features]))[:, 1]


def score(
    bundle: dict[str, Any],
    frame: pd.DataFrame,
    allow_extra: bool = False,
    allow_unseen: bool = False,
    spec: dict[str, Any] | None = None,
    clean: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Scores (for the positive outcome) and decisions for every record.

    ``clean``: the records already through :func:`validate_input` (the service validates once).
    """
    meta = bundle["metadata"]
    if clean is None:
        clean = validate_input(frame, meta, allow_extra=allow_extra, allow_unseen=allow_unseen, spec=spec)
    scores = model_scores(bundle, clean)
    if meta.get("needs_sensitive_features"):
        groups = data.sensitive_groups(
            clean, {"sensitive_features": meta["sensitive_features"], "sensitive_bins": meta.get("sensitive_bins", {})}
        )
        decisions = np.asarray(bundle["model"].decide(clean[meta["feature_columns"]], groups, scores=scores), dtype=int)
    else:
        decisions = (scores >= bundle["threshold"]).astype(int)
    if not np.isfinite(scores).all():
        raise InputError("the model produced a non-finite score; check the input for extreme values")
    labels = np.where(decisions == 1, str(meta["positive_label"]), str(meta.get("negative_label", "negative")))
    return pd.DataFrame({"score": scores, "decision": decisions, "label": labels}, index=clean.index)


# ------------------------------------------------------------------ a Parquet dataset, partition by partition


def is_dataset(path: str | Path) -> bool:
    """A directory, a glob or a URL (``s3://...``, read by the workers) of Parquet files, scored partition by
    partition; not a single local file."""
    text = str(path)
    if "://" in text:
        return not text.lower().endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz"))
    return Path(path).is_dir() or any(ch in text for ch in "*?[")


def score_partition(
    frame: pd.DataFrame,
    bundle: dict[str, Any],
    options: dict[str, Any],
    ids: list[str],
    keep_columns: bool,
    log: dict[str, Any] | None = None,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Score one partition as ``predict`` scores a file: validated, scored, logged (before it is written).

    ``log``: the prediction log's ``url``, ``privacy``, ``request_id`` (this partition's request is
    ``<request_id>-<partition number>``, record_index the row within it) and the ``id_columns`` to log;
    None: not logged. Runs where the partition is: in this process or on a worker.
    """
    number = (partition_info or {}).get("number", 0)
    try:
        clean = validate_input(frame, bundle["metadata"], **options)
    except InputError as exc:
        raise InputError(f"partition {number}: {exc}") from None
    result = score(bundle, frame, clean=clean)
    out = (frame if keep_columns else frame[[c for c in ids if c in frame.columns]]).join(result)
    if log is not None:
        from .prediction_log import Log

        request_id = f"{log['request_id']}-{number:05d}"
        logged_ids = [c for c in log["id_columns"] if c in frame.columns]
        id_values = frame[logged_ids].to_dict(orient="records") if logged_ids else None
        target = Log(log["url"], log["privacy"])
        target.write(
            target.rows(request_id, "predict", bundle["metadata"], clean.to_dict(orient="records"), result, id_values)
        )
        out = out.assign(request_id=request_id, record_index=np.arange(len(out)))
    return out.reset_index(drop=True)


def score_dataset(
    source: str,
    output: str | Path,
    bundle: dict[str, Any],
    options: dict[str, Any],
    ids: list[str],
    keep_columns: bool,
    log: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Score a directory or glob of Parquet files into a directory of Parquet parts, one per partition.

    Through ``dask.dataframe``: ``read_parquet``, :func:`score_partition` on each partition
    (``map_partitions``), ``to_parquet``. Memory is bounded by a few partitions, whatever the
    dataset's size. Inside a :func:`.compute.cluster` block the partitions go to its workers; outside
    one, they are scored one after another in this process. Returns the rows, partitions and
    positive decisions written.
    """
    import dask
    import dask.dataframe as dd

    from .data import DataContractError

    try:
        frame = dd.read_parquet(source)
    except Exception as exc:  # the reader's own words say what is wrong
        raise DataContractError(f"INPUT: cannot read {source!r} as a Parquet dataset: {exc}") from None
    if not len(frame.columns):
        raise DataContractError(f"INPUT: {source!r} matches no Parquet file with columns")
    sample = frame.partitions[0].head(2)
    if sample.empty:
        raise DataContractError(f"INPUT: the first partition of {source!r} has no rows")
    meta = score_partition(sample, bundle, options, ids, keep_columns, None)
    if log is not None:  # the columns a logged partition adds, in their types
        meta = meta.assign(request_id="-", record_index=np.arange(len(meta)))
    meta = meta.iloc[:0]
    bundle_once = dask.delayed(bundle, name=f"bundle-{id(bundle)}-{len(frame.columns)}")  # sent once, not per task
    scored = frame.map_partitions(score_partition, bundle_once, options, ids, keep_columns, log, meta=meta)
    target = str(output)
    if "://" not in target:
        Path(target).mkdir(parents=True, exist_ok=True)
    with dask.config.set({} if _client() else {"scheduler": "synchronous"}):
        try:
            scored.to_parquet(target, write_index=False, name_function=lambda i: f"part-{i:05d}.parquet")
        except (InputError, RuntimeError):  # a record's problem, or the log's (PredictionLogError)
            raise
        except Exception as exc:  # files that disagree with the first one's columns or types
            raise DataContractError(f"INPUT: cannot score {source!r}: {type(exc).__name__}: {exc}") from None
        decisions = dd.read_parquet(target, columns=["decision"])["decision"]
        rows, positives = dask.compute(decisions.size, decisions.sum())
    return {"rows": int(rows), "partitions": frame.npartitions, "positive": int(positives)}


def _client() -> Any:
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None
