"""Score records with the deployed artifact, after checking them against the training schema.

The deployable artifact is one skops file holding a dict: the fitted model, the
decision threshold and metadata (input schema, version, training-data hash,
metrics). :func:`validate_input` turns every problem with a request into an
:class:`InputError` whose message names the column and the value.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import artifacts, data

DEFAULT_MODELS = ("models/registry/champion.skops", "models/release.skops", "models/model.skops")


class InputError(ValueError):
    """A scoring request does not fit the model's input schema."""


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    """The registry's champion, else step 08's release, else step 07's deployable artifact."""
    for candidate in DEFAULT_MODELS:
        if (root / candidate).is_file():
            return root / candidate
    raise FileNotFoundError(f"no model in {root}: looked for {', '.join(DEFAULT_MODELS)}; run `dvc repro` first")


def required_columns(metadata: dict[str, Any]) -> list[str]:
    """Columns a request must carry: features, plus sensitive features if the model decides by group."""
    columns = list(metadata["feature_columns"])
    if metadata.get("needs_sensitive_features"):
        columns += [f for f in metadata["sensitive_features"] if f not in columns]
    return columns


def validate_input(
    frame: pd.DataFrame, metadata: dict[str, Any], allow_extra: bool = False, allow_unseen: bool = False
) -> pd.DataFrame:
    """Check columns, types and categories; return the input columns in schema types."""
    if frame.shape[0] == 0:
        raise InputError("input has no records")
    schema = metadata["schema"]
    expected = required_columns(metadata)
    known = set(expected) | set(metadata["sensitive_features"])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r} (required: {', '.join(expected)})")
    extra = [c for c in frame.columns if c not in known]
    if extra and not allow_extra:
        raise InputError(f"unexpected column {extra[0]!r}: the model takes only {', '.join(expected)}")
    out = {}
    for column in [c for c in schema if c in frame.columns]:
        entry, values = schema[column], frame[column]
        if entry["kind"] == "numeric":
            numbers = pd.to_numeric(values.where(~values.map(lambda v: isinstance(v, bool))), errors="coerce")
            bad = numbers.isna() & values.notna()
            if bad.any():
                first = bad.to_numpy().nonzero()[0][0]
                raise InputError(f"column {column!r}: value {values.iloc[first]!r} (record {first}) is not a number")
            out[column] = numbers.astype("float64")
        else:
            obj = values.astype("object")
            bad = obj.map(lambda v: isinstance(v, (dict, list)))
            if bad.any():
                first = bad.to_numpy().nonzero()[0][0]
                raise InputError(f"column {column!r}: value {obj.iloc[first]!r} (record {first}) is not a category")
            text = obj.where(obj.isna(), obj.astype(str))
            categories = entry.get("categories")
            if categories and not allow_unseen:
                unseen = sorted(set(text.dropna()) - set(categories))
                if unseen:
                    raise InputError(
                        f"column {column!r}: unseen category {unseen[0]!r} (known: {', '.join(categories[:12])}"
                        f"{', ...' if len(categories) > 12 else ''})"
                    )
            out[column] = text
    return pd.DataFrame(out, index=frame.index)


def score(
    bundle: dict[str, Any], frame: pd.DataFrame, allow_extra: bool = False, allow_unseen: bool = False
) -> pd.DataFrame:
    """Scores (probability of the positive outcome) and decisions for every record."""
    meta = bundle["metadata"]
    clean = validate_input(frame, meta, allow_extra=allow_extra, allow_unseen=allow_unseen)
    model = bundle["model"]
    if meta.get("needs_sensitive_features"):
        groups = data.sensitive_groups(
            clean, {"sensitive_features": meta["sensitive_features"], "sensitive_bins": meta.get("sensitive_bins", {})}
        )
        scores = np.asarray(model.score(clean[meta["feature_columns"]]), dtype=float)
        decisions = np.asarray(model.decide(clean[meta["feature_columns"]], groups), dtype=int)
    else:
        scores = np.asarray(model.predict_proba(clean[meta["feature_columns"]]))[:, 1]
        decisions = (scores >= bundle["threshold"]).astype(int)
    if not np.isfinite(scores).all():
        raise InputError("the model produced a non-finite score; check the input for extreme values")
    labels = np.where(decisions == 1, str(meta["positive_label"]), str(meta.get("negative_label", "negative")))
    return pd.DataFrame({"score": scores, "decision": decisions, "label": labels}, index=frame.index)
