"""Model files with skops: safe to load (no pickle) and byte-reproducible. Adapt with care: every model file goes through it.

:func:`load` accepts only the types on :data:`TRUSTED_TYPES` beyond skops' own
safe defaults; an artifact that contains anything else is refused with the
list of offending types. :func:`save` writes a canonical archive (member names
and timestamps made deterministic), so the same model gives the same bytes and
DVC does not rerun later stages for nothing.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from .project import write_bytes

# Types our artifacts contain that skops does not trust by default. Keep this
# list explicit and short: every entry is code that runs when a model loads.
TRUSTED_TYPES = (
    "{{ cookiecutter.package_name }}.features.as_text",
    "{{ cookiecutter.package_name }}.mitigation.MitigatedModel",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # the nodes of a fitted decision tree (and of every tree of a random or extra-trees forest):
    # numpy arrays of thresholds, features and values, restored without running other code
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    # HistGradientBoostingClassifier with categorical features keeps an internal
    # FunctionTransformer(functools.partial(check_array, ...)); skops checks the
    # wrapped function separately, so trusting partial does not trust any callable.
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # a model calibrated on held-out rows (modeling.calibrate): the map's holder and Platt's sigmoid, two numbers
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


class UntrustedArtifactError(ValueError):
    """The file holds types that are not on the trusted list."""


# Values whose identity means nothing: skops numbers each node by id(), so two equal strings are one
# node when they are one object and two when they are copies (a model fitted on a Dask worker comes
# back as copies). Each gets a number of its own, so the bytes depend on the values alone.
IMMUTABLE = {"str", "int", "float", "bool", "complex", "bytes", "NoneType"}


def _renumber(node: Any, ids: dict[int, int], counter: list[int]) -> None:
    """Number skops' ``__id__`` in order of appearance: shared objects keep one number, immutable values none."""
    if isinstance(node, dict):
        if "__id__" in node:
            counter[0] += 1
            if node.get("__module__") == "builtins" and node.get("__class__") in IMMUTABLE:
                node["__id__"] = counter[0]
            else:
                node["__id__"] = ids.setdefault(node["__id__"], counter[0])
        for value in node.values():
            _renumber(value, ids, counter)
    elif isinstance(node, list):
        for value in node:
            _renumber(value, ids, counter)


def _canonical(raw: bytes) -> bytes:
    """Rename skops' id()-based members and numbers in order of appearance and fix timestamps."""
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = source.read("schema.json").decode("utf-8")
    files: dict[str, str] = {}
    for match in re.finditer(r'"(\d+)\.npy"', schema):
        files.setdefault(match.group(1), f"{len(files):06d}")
    tree = json.loads(schema)
    _renumber(tree, {}, [0])
    schema = json.dumps(tree, indent=2)
    schema = re.sub(r'"(\d+)\.npy"', lambda m: f'"{files[m.group(1)]}.npy"', schema)
    members = {"schema.json": schema.encode("utf-8")}
    for name in source.namelist():
        if name != "schema.json":
            stem = name.removesuffix(".npy")
            members[f"{files.get(stem, stem)}.npy"] = source.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, members[name])
    return out.getvalue()


def save(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` with skops, atomically and deterministically."""
    return write_bytes(Path(path), _canonical(sio.dumps(obj)))


def untrusted_types(path: str | Path) -> list[str]:
    """Types in the file that are neither skops defaults nor on :data:`TRUSTED_TYPES`."""
    return sorted(set(sio.get_untrusted_types(file=str(path))) - set(TRUSTED_TYPES))


def trusted_types_in(path: str | Path) -> list[str]:
    """Types in the file that load only because :data:`TRUSTED_TYPES` lists them."""
    return sorted(set(sio.get_untrusted_types(file=str(path))) & set(TRUSTED_TYPES))


def load(path: str | Path) -> Any:
    """Load a skops file, refusing any type outside skops' defaults and :data:`TRUSTED_TYPES`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist: run `dvc repro` first")
    try:
        unexpected = untrusted_types(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a skops model file (not a zip archive)") from None
    if unexpected:
        raise UntrustedArtifactError(
            f"{path} contains types that are not trusted: {', '.join(unexpected)}; "
            "refusing to load it (extend artifacts.TRUSTED_TYPES only for code you trust)"
        )
    return sio.load(str(path), trusted=trusted_types_in(path))


def describe(path: str | Path) -> dict[str, Any]:
    """Size and member count of a skops file (for reports)."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        return {"bytes": path.stat().st_size, "members": len(archive.namelist()), "protocol": schema.get("protocol")}
