"""One source of parameters: each notebook's ``parameters`` cell shows what ``dvc repro`` gives it.

``dvc repro`` injects each stage's ``params.yaml`` section into its notebook (``run_step``); a
notebook opened in JupyterLab runs the literal values of its ``parameters`` cell instead. This
module keeps the two equal, and says where they are not:

    {{ cookiecutter.package_name }} sync-params            # write params.yaml's values into the parameters cells (make sync-params)
    {{ cookiecutter.package_name }} sync-params --check    # exit 1 naming each stage and key that disagree (pre-commit, tests)

Syncing rewrites only the values that differ, in place: the cell's comments, order and every
other byte of the notebook stay. It never adds a name to a cell: a key of params.yaml that no
cell declares is a mistake ``run_step`` refuses, and the check names it.

A notebook run outside ``dvc repro`` checks the same thing when it starts
(:func:`.notebook.start_step`): values that differ from params.yaml make the run an
*exploration*, which says so and writes under ``explorations/`` rather than the pipeline's outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..project import find_project_root, load_params, step_name, steps, write_text
from .run_step import (
    StepError,
    assignments,
    cell_source,
    declared_parameters,
    load_stage,
    parameters_cell,
    stage_outputs,
    stage_parameter_keys,
)

EXPLORATIONS = "explorations"  # where an exploration's outputs go (ignored by git and DVC)
# set to 1, an exploration writes the pipeline's outputs anyway
WRITE_ANYWAY_ENV = "{{ cookiecutter.package_name | upper }}_WRITE_EXPLORATION"
NOT_MIRRORED = {".git", ".dvc", ".venv", EXPLORATIONS}


class Difference(NamedTuple):
    stage: str
    name: str  # the name in the parameters cell
    key: str  # where params.yaml sets it: section.name
    cell: Any  # the value the parameters cell (or this run) has; NOT_DECLARED when it has none
    params: Any  # params.yaml's value; NOT_SET when it has none

    def __str__(self) -> str:
        if self.cell is NOT_DECLARED:
            return f"{self.stage}: {self.key} = {self.params!r} in params.yaml is not declared in the notebook's parameters cell"
        if self.params is NOT_SET:
            return f"{self.stage}: {self.key} = {self.cell!r} in the notebook is not set in params.yaml"
        return f"{self.stage}: {self.key} is {self.cell!r} in the notebook, {self.params!r} in params.yaml"


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_DECLARED, NOT_SET = _Missing("not declared"), _Missing("not set")


def notebook_path(root: Path, stage: str) -> Path:
    return root / "notebooks" / f"{step_name(stage, root)}.ipynb"


def differences(root: Path, stage: str, params: Mapping[str, Any] | None = None) -> list[Difference]:
    """Where the stored notebook's parameters cell and what ``dvc repro`` injects disagree."""
    params = load_params(root) if params is None else params
    given = stage_parameter_keys(load_stage(root, stage), dict(params))
    declared = declared_parameters(json.loads(notebook_path(root, stage).read_text(encoding="utf-8")))
    found = [
        Difference(stage, name, key, declared.get(name, NOT_DECLARED), value)
        for name, (key, value) in given.items()
        if name not in declared or not same(declared[name], value)
    ]
    found += [
        Difference(stage, name, f"{stage}.{name}", value, NOT_SET)
        for name, value in declared.items()
        if name not in given
    ]
    return found


def same(a: Any, b: Any) -> bool:
    """Equal as the notebook would use them (1 and 1.0 are; True and 1 are not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def literal(value: Any, key: str = "") -> str:
    """``value`` as Python source that ``ast.literal_eval`` reads back equal (strings in double quotes)."""
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StepError(f"{key}: {value!r} cannot be written into a parameters cell (give a finite number)")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(item, key) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k, key)}: {literal(v, key)}" for k, v in value.items()) + "}"
    raise StepError(f"{key}: a {type(value).__name__} ({value!r}) cannot be written into a parameters cell")


def rewritten(source: str, values: Mapping[str, Any], keys: Mapping[str, str]) -> str:
    """``source`` with each assignment in ``values`` given that value; every other character kept."""
    nodes = assignments(source)
    lines = source.encode("utf-8").splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = source.encode("utf-8")
    spans = sorted(
        (
            (offsets[n.lineno - 1] + n.col_offset, offsets[n.end_lineno - 1] + n.end_col_offset, name)
            for name, n in nodes.items()
            if name in values
        ),
        reverse=True,
    )
    for start, end, name in spans:  # from the end, so earlier offsets stay right
        text = text[:start] + literal(values[name], keys[name]).encode("utf-8") + text[end:]
    return text.decode("utf-8")


def sync(root: Path, stages: Iterable[str] | None = None) -> tuple[list[Difference], list[Difference]]:
    """Write params.yaml's values into the parameters cells: (what was synced, what cannot be)."""
    params = load_params(root)
    synced: list[Difference] = []
    left: list[Difference] = []
    for stage in stages or steps(root):
        found = differences(root, stage, params)
        fixable = [d for d in found if d.cell is not NOT_DECLARED and d.params is not NOT_SET]
        left += [d for d in found if d not in fixable]
        if not fixable:
            continue
        values, keys = {d.name: d.params for d in fixable}, {d.name: d.key for d in fixable}
        path = notebook_path(root, stage)
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = parameters_cell(notebook)
        cell["source"] = rewritten(cell_source(cell), values, keys).splitlines(keepends=True)
        write_text(path, json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        synced += fixable
    return synced, left


# ------------------------------------------------------------------ a notebook run outside dvc repro


def run_differences(stage: str, cfg: Any, root: Path) -> list[str]:
    """How the values this run uses (``cfg``, from the parameters cell) differ from what ``dvc repro`` gives."""
    try:
        given = stage_parameter_keys(load_stage(root, stage), load_params(root))
        pipeline = type(cfg).checked(
            {name: value for name, (_, value) in given.items() if name in type(cfg).model_fields}
        )
    except (StepError, ValueError) as exc:  # ConfigError is a ValueError
        return [f"params.yaml cannot give this stage its parameters ({exc}): the pipeline would stop here"]
    return [  # every field is in ``given``: checked() refused a missing one above
        f"{given[name][0]}: {getattr(cfg, name)!r} here, {getattr(pipeline, name)!r} in params.yaml"
        for name in type(cfg).model_fields
        if getattr(cfg, name) != getattr(pipeline, name)
    ]


def exploration(root: Path, stage: str) -> Path:
    """A fresh ``explorations/NN_stage/`` that looks like the project to the step, its outputs its own.

    Everything the step reads is a link to the project's file; the paths the stage writes
    (its dvc.yaml outs, metrics and plots) are real files and directories here, empty, or a copy
    where DVC keeps the output between runs (``persist``), so the step can run to its end and
    leave the project's outputs as the pipeline wrote them.
    """
    spec = load_stage(root, stage)
    persist = {
        next(iter(entry))
        for kind in ("outs", "metrics", "plots")
        for entry in spec.get(kind, [])
        if isinstance(entry, dict) and (next(iter(entry.values())) or {}).get("persist")
    }
    outputs = {path.relative_to(root): str(path.relative_to(root)) in persist for path in stage_outputs(root, spec)}
    place = root / EXPLORATIONS / step_name(stage, root)
    if place.exists():
        shutil.rmtree(place)
    _mirror(root, root, place, outputs)
    return place


def _mirror(root: Path, source: Path, target: Path, outputs: Mapping[Path, bool]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for child in sorted(source.iterdir()):
        relative = child.relative_to(root)
        if source == root and child.name in NOT_MIRRORED:
            continue
        if relative in outputs:
            if outputs[relative] and child.is_dir():
                shutil.copytree(child, target / child.name, symlinks=True)
            elif outputs[relative] and child.exists():
                shutil.copy2(child, target / child.name)
        elif child.is_dir() and any(relative in path.parents for path in outputs):
            _mirror(root, child, target / child.name, outputs)
        else:
            (target / child.name).symlink_to(child)


def exploring(stage: str, cfg: Any, root: Path) -> tuple[Path, str] | None:
    """Where a notebook run with ``cfg`` writes, and what it says first; None when it is the pipeline's run."""
    found = run_differences(stage, cfg, root)
    if not found:
        return None
    lines = [
        f"This run's parameters differ from params.yaml: it is an exploration, not the pipeline's {stage} step.",
        *(f"  {line}" for line in found),
    ]
    sync = "`make sync-params` writes params.yaml's values into the notebook (then reload it from disk and run all)"
    if os.environ.get(WRITE_ANYWAY_ENV) == "1":
        lines.append(
            f"{WRITE_ANYWAY_ENV}=1: it writes to the pipeline's outputs anyway; `dvc status` will call them changed."
        )
        return root, "\n".join([*lines, f"To run what the pipeline runs: {sync}."])
    place = exploration(root, stage)
    lines += [
        f"It writes to {place.relative_to(root)}/, not to reports/, models/ or data/, and sends no alert.",
        f"To run what the pipeline runs: {sync}; to keep this exploration's outputs as the pipeline's, "
        f"set {WRITE_ANYWAY_ENV}=1 before starting the kernel.",
    ]
    return place, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }} sync-params",
        description="Write each stage's params.yaml values into its notebook's parameters cell, so a notebook "
        "run in JupyterLab uses what dvc repro gives it.",
    )
    parser.add_argument("stages", nargs="*", help="stages to sync (default: all)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each disagreement")
    args = parser.parse_args(argv)
    root = find_project_root()
    unknown = sorted(set(args.stages) - set(steps(root)))
    if unknown:
        parser.error(f"no stage {unknown[0]!r}; stages are: {', '.join(steps(root))}")
    try:
        if args.check:
            found = [d for stage in args.stages or steps(root) for d in differences(root, stage)]
            for difference in found:
                print(difference, file=sys.stderr)
            if found:
                print(
                    "run `make sync-params` ({{ cookiecutter.package_name }} sync-params) to write params.yaml's values into the notebooks",
                    file=sys.stderr,
                )
            return 1 if found else 0
        synced, left = sync(root, args.stages or None)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for difference in synced:
        print(f"synced {difference.stage}: {difference.key} = {difference.params!r} (was {difference.cell!r})")
    for difference in left:
        print(difference, file=sys.stderr)
    if not synced and not left:
        print("every parameters cell already equals params.yaml")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
