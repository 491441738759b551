"""Where things live in the project, and how steps read and write them. Adapt with care: the runner and every step rely on it.

Notebooks call :func:`find_project_root` so they run the same from
``dvc repro``, from papermill and from JupyterLab opened in ``notebooks/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

STEPS = (
    "business_case",
    "success_criteria",
    "data_selection",
    "data_bias_plan",
    "data_pipeline",
    "modeling",
    "deployment",
    "fairness_assessment",
    "monitoring",
    "retraining",
)
MARKERS = ("params.yaml", "dvc.yaml")


def find_project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest directory at or above ``start`` holding params.yaml and dvc.yaml."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if all((candidate / marker).is_file() for marker in MARKERS):
            return candidate
    raise FileNotFoundError(f"no project root (a directory with {' and '.join(MARKERS)}) at or above {here}")


def added_steps(root: Path | None = None) -> dict[str, str]:
    """Steps a team added after the ten, by name: ``{"audit": "11_audit"}`` for ``notebooks/11_audit.ipynb``.

    Adding a step is a notebook numbered after the ten and a stage of the same name in
    dvc.yaml (README: "Adding a step"); nothing here needs editing.
    """
    try:
        root = root or find_project_root()
    except FileNotFoundError:
        return {}
    added = {}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number, _, name = path.stem.partition("_")
        if int(number) > len(STEPS) and name not in STEPS:
            added[name] = path.stem
    return added


def steps(root: Path | None = None) -> tuple[str, ...]:
    """The project's steps in order: the ten of the lifecycle, then those the team added."""
    return STEPS + tuple(added_steps(root))


def step_name(stage: str, root: Path | None = None) -> str:
    """'modeling' -> '06_modeling', the notebook and report directory name (an added step's from its notebook)."""
    if stage in STEPS:
        return f"{STEPS.index(stage) + 1:02d}_{stage}"
    added = added_steps(root)
    if stage not in added:
        raise KeyError(f"unknown stage {stage!r}; stages are: {', '.join(STEPS + tuple(added))}")
    return added[stage]


def report_dir(root: Path, stage: str) -> Path:
    """reports/NN_stage/, created if needed: everything the step reports lives here."""
    path = root / "reports" / step_name(stage, root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# libyaml's parser where PyYAML has it: the same data as yaml.safe_load, about 7 times faster
# (every step process reads dvc.yaml and params.yaml: 35 ms with the pure-Python parser)
SAFE_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """A YAML file's data, as ``yaml.safe_load`` reads it."""
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=SAFE_YAML_LOADER)


def load_params(root: Path) -> dict[str, Any]:
    return read_yaml(root / "params.yaml") or {}


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays, paths and sets JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, set, frozenset)):
        return str(value) if isinstance(value, Path) else sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically: a reader never sees it half-written."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, payload: bytes) -> Path:
    """Write binary content atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any) -> Path:
    """Write JSON with sorted keys and finite numbers, so reruns are byte-identical."""
    plain = json.loads(json.dumps(data, default=_json_default))
    text = json.dumps(_finite(plain), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return write_text(path, text + "\n")


def file_md5(path: str | Path) -> str:
    """The file's MD5, read in chunks (artifacts, training data and registry entries are identified by it).

    A directory (a partitioned dataset's parts) has the MD5 of its files' relative names and bytes, in order.
    """
    path = Path(path)
    digest = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the step that writes it first (dvc repro)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
