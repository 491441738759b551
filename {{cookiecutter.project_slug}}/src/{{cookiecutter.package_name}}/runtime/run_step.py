"""Run one lifecycle step's notebook with papermill: ``python -m {{ cookiecutter.package_name }}.runtime.run_step STAGE``.

This is the command of every stage in dvc.yaml. It
1. takes the stage's ``params:`` entries from dvc.yaml and their values from
   params.yaml (``section`` injects every key of the section, ``section.key`` one key),
2. refuses a parameter the notebook's ``parameters`` cell does not declare (and a
   declared one params.yaml does not give), instead of papermill's silent no-op,
3. executes ``notebooks/NN_stage.ipynb`` with papermill on the ``python3`` kernel (a warm
   one where it can: forked from a server that has imported the stack, see ``warm_kernels``;
   once that server runs, this step process's work is forked from it too, papermill imported),
4. on success writes the executed notebook to ``reports/NN_stage/NN_stage.ipynb``
   without volatile metadata (timings, random ids), so a rerun is byte-identical,
5. on failure prints one line with the error, removes the stage's half-written
   outputs (earlier stages' outputs are untouched) and keeps the failed notebook
   under ``reports/failed/`` for debugging.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from ..project import find_project_root, load_params, read_yaml, step_name, steps, write_text
from . import skip_iri_format_checker, warm_kernels

PARAMETERS_TAG = "parameters"
VOLATILE_NOTEBOOK_KEYS = ("start_time", "end_time", "duration", "exception", "environment_variables")


class StepError(RuntimeError):
    """A stage cannot run as configured; the message says why."""


def load_stage(root: Path, stage: str) -> dict[str, Any]:
    stages = (read_yaml(root / "dvc.yaml") or {}).get("stages", {})
    if stage not in stages:
        raise StepError(f"dvc.yaml has no stage {stage!r}; stages are: {', '.join(stages)}")
    return stages[stage]


def stage_parameters(stage_spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Parameters to inject: the keys the stage declares under ``params:`` in dvc.yaml."""
    return {name: value for name, (_, value) in stage_parameter_keys(stage_spec, params).items()}


def stage_parameter_keys(stage_spec: dict[str, Any], params: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Each parameter to inject, with where params.yaml sets it: ``{name: ("section.name", value)}``."""
    values: dict[str, tuple[str, Any]] = {}
    origin: dict[str, str] = {}
    for entry in stage_spec.get("params", []):
        if not isinstance(entry, str):
            continue  # parameters from other files are DVC's business only
        section, _, key = entry.partition(".")
        if section not in params:
            raise StepError(f"params.yaml has no section {section!r} (declared in dvc.yaml)")
        if key:
            if not isinstance(params[section], dict) or key not in params[section]:
                raise StepError(f"params.yaml has no key {entry!r} (declared in dvc.yaml)")
            chosen = {key: params[section][key]}
        elif isinstance(params[section], dict):
            chosen = dict(params[section])
        else:
            chosen = {section: params[section]}
        for name, value in chosen.items():
            if name in values:
                raise StepError(f"parameter {name!r} is given by both {origin[name]} and {entry}")
            where = f"{section}.{name}" if isinstance(params[section], dict) else section
            values[name], origin[name] = (where, value), entry
    return values


def parameters_cell(notebook: dict[str, Any]) -> dict[str, Any]:
    """The single cell tagged ``parameters``."""
    cells = [c for c in notebook.get("cells", []) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise StepError(f"the notebook must have exactly one cell tagged {PARAMETERS_TAG!r}, found {len(cells)}")
    return cells[0]


def cell_source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def assignments(source: str) -> dict[str, ast.expr]:
    """Each name a cell assigns, with its value's node (where the value is in the text)."""
    values: dict[str, ast.expr] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                values[target.id] = node.value
    return values


def declared_parameters(notebook: dict[str, Any]) -> dict[str, Any]:
    """Names and default values assigned in the ``parameters`` cell."""
    return {name: ast.literal_eval(node) for name, node in assignments(cell_source(parameters_cell(notebook))).items()}


def check_parameters(stage: str, given: dict[str, Any], declared: dict[str, Any]) -> None:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StepError(
            f"parameter {unknown[0]!r} of stage {stage!r} is not declared in the notebook's "
            f"parameters cell (declared: {', '.join(sorted(declared))})"
        )
    missing = sorted(set(declared) - set(given))
    if missing:
        raise StepError(
            f"the notebook of stage {stage!r} declares {missing[0]!r}, which params.yaml does not give "
            "(add it to params.yaml, or to the stage's params in dvc.yaml)"
        )


def strip_volatile(notebook: dict[str, Any]) -> dict[str, Any]:
    """Drop timings, kernel-session data and random cell ids from an executed notebook."""
    meta = notebook.setdefault("metadata", {})
    for key in VOLATILE_NOTEBOOK_KEYS:
        meta.get("papermill", {}).pop(key, None)
    meta.pop("widgets", None)
    for index, cell in enumerate(notebook.get("cells", [])):
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        cell["id"] = cell.get("id") if not _is_random_id(cell) else f"cell-{index}"
    return notebook


def _is_random_id(cell: dict[str, Any]) -> bool:
    """Papermill gives the injected-parameters cell a random id."""
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def stage_outputs(root: Path, stage_spec: dict[str, Any]) -> list[Path]:
    """Every path the stage declares as an output (outs, metrics, plots)."""
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in stage_spec.get(kind, []):
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            paths.append(root / name)
    return paths


def remove_outputs(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _local_kernel_manager(sockets: Path):
    """A kernel talking over Unix sockets in a private directory instead of loopback TCP.

    The kernel comes warm (forked from a server that has the imports done) where it can:
    see ``warm_kernels``.
    """
    return warm_kernels.kernel_manager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel"))


# Set for the kernels unless the environment already sets them. scikit-learn's OpenMP
# threads (histogram gradient boosting, the heaviest fits here) spin while they wait: on
# 2 cores the default chain takes the same wall time with one thread (3 min 43 s against
# 3 min 50 s, 25 % less CPU), and on a busy machine (CI, several projects at once) one
# thread keeps a step at 26 s where the default took 149 s. Export OMP_NUM_THREADS to
# use more cores for large data.
KERNEL_ENVIRONMENT_DEFAULTS = {"OMP_NUM_THREADS": "1"}
# Set whatever the environment says: a report's figures are drawn inline (an exported
# MPLBACKEND=Agg, common on servers and CI images, would leave every report without figures).
KERNEL_ENVIRONMENT_FORCED = {"MPLBACKEND": warm_kernels.INLINE_BACKEND}


def kernel_environment_for(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the stage's kernel inherits from a step process with ``environ``.

    The project's own package comes first on PYTHONPATH: the kernel runs in notebooks/,
    so a relative ``PYTHONPATH=src`` would not reach src/, and another project generated
    from the same template and installed in the same environment would silently provide
    the code. ``KERNEL_ENVIRONMENT_DEFAULTS`` fill what the environment does not set;
    ``KERNEL_ENVIRONMENT_FORCED`` replace what it does.
    """
    python_path = environ.get("PYTHONPATH")
    env = {**KERNEL_ENVIRONMENT_DEFAULTS, **environ, **KERNEL_ENVIRONMENT_FORCED}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(root).resolve() / "src"), *filter(None, [python_path])])
    return env


@contextmanager
def _kernel_environment(root: Path) -> Iterator[None]:
    """This process's environment as ``kernel_environment_for`` says, restored afterwards."""
    before = dict(os.environ)
    os.environ.update(kernel_environment_for(root, before))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def server_environment(root: Path) -> dict[str, str]:
    """The kernel's environment as jupyter_client passes it: what keys this stage's kernel server."""
    return warm_kernels.kernel_environment(kernel_environment_for(root, os.environ))


def notebooks_dir(root: Path) -> Path:
    """Where the notebooks are, and where their kernels run."""
    return (Path(root) / "notebooks").resolve()


class StepRun(NamedTuple):
    report: Path  # the executed notebook
    kernel: str  # "warm" (forked by the kernel server, see warm_kernels) or "fresh"
    cells_seconds: float  # the notebook's cells, as papermill timed them; the rest is start-up and bookkeeping


def cells_seconds(executed: dict[str, Any]) -> float:
    """How long the cells of an executed notebook ran, by papermill's per-cell timings."""
    durations = (cell.get("metadata", {}).get("papermill", {}).get("duration") for cell in executed.get("cells", []))
    return sum(duration for duration in durations if isinstance(duration, (int, float)))


def execute(stage: str, root: Path | None = None, log_output: bool = False) -> StepRun:
    """Run the stage's notebook; return where the executed copy is and which kernel ran it."""
    root = root or find_project_root()
    name = step_name(stage, root)
    source = notebooks_dir(root) / f"{name}.ipynb"
    stage_spec = load_stage(root, stage)
    given = stage_parameters(stage_spec, load_params(root))
    notebook = json.loads(source.read_text(encoding="utf-8"))
    check_parameters(stage, given, declared_parameters(notebook))
    # the server imports while this process imports papermill
    warm_kernels.start_server_unless_running(str(source.parent), server_environment(root))
    skip_iri_format_checker()
    import papermill  # imported here: `--help` and errors above stay fast

    target = root / "reports" / name / f"{name}.ipynb"
    failed = root / "reports" / "failed" / f"{name}.ipynb"
    failed.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="kernel-") as sockets, _kernel_environment(root):
            kernel = _local_kernel_manager(Path(sockets))
            try:
                executed = papermill.execute_notebook(
                    str(source),
                    str(failed),
                    parameters=given,
                    kernel_name="python3",
                    km=kernel,
                    cwd=str(source.parent),
                    progress_bar=False,
                    log_output=log_output,
                    request_save_on_cell_execute=False,
                )
            finally:
                kernel_kind = "warm" if kernel.warm_pid else "fresh"
                if kernel.has_kernel:
                    kernel.shutdown_kernel(now=True)
    except papermill.PapermillExecutionError as exc:
        remove_outputs(stage_outputs(root, stage_spec))
        message = f"{exc.ename}: {exc.evalue}"
        raise StepError(f"{message}\n(executed notebook with the traceback: {failed.relative_to(root)})") from None
    except BaseException:
        remove_outputs(stage_outputs(root, stage_spec))
        raise
    executed = json.loads(json.dumps(executed))
    in_cells = cells_seconds(executed)
    executed = strip_volatile(executed)
    executed["metadata"].setdefault("papermill", {}).update(
        input_path=str(source.relative_to(root.resolve())), output_path=str(target.relative_to(root))
    )
    write_text(target, json.dumps(executed, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    failed.unlink(missing_ok=True)
    if not any(failed.parent.iterdir()):
        failed.parent.rmdir()
    return StepRun(target, kernel_kind, in_cells)


def skip_hdfs_support() -> None:
    """Keep papermill from loading pyarrow for its ``hdfs://`` handler: 0.25 s of every stage.

    For the step process only (``python -m ...run_step``): its notebooks are local files. The
    kernels, other processes, keep pyarrow; a process that reads Parquet itself must not call this.
    """
    sys.modules.setdefault("pyarrow.fs", None)  # type: ignore[assignment]


def main(argv: list[str] | None = None, forked: bool = False) -> int:
    """Run the stage named in ``argv`` here; ``forked`` says this process was forked by the kernel server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=steps())
    parser.add_argument("--log-output", action="store_true", help="stream cell output while running")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        run = execute(args.stage, log_output=args.log_output)
    except StepError as exc:
        print(f"ERROR [{args.stage}]: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    step_process = "forked" if forked else "own"
    print(
        f"{args.stage}: {run.report.relative_to(find_project_root())} ({elapsed:.1f} s, "
        f"{run.cells_seconds:.1f} s in cells, {run.kernel} kernel, {step_process} step process)"
    )
    return 0


def run_as_step_process() -> int:
    """``python -m ...run_step``: forked from the kernel server when one runs for this project, else here.

    The first stage of a run finds no server: it runs here, and starts the server for the
    stages after it. ``WARM_KERNELS=0`` runs every stage here. The result is an exit status,
    or minus the signal that ended a forked step (see ``warm_kernels.end_as``).
    """
    try:
        root = find_project_root()
    except FileNotFoundError:
        pass  # main() says so
    else:
        status = warm_kernels.run_forked_step(str(notebooks_dir(root)), server_environment(root))
        if status is not None:
            return status
    skip_hdfs_support()  # this process is the step process
    return main()


if __name__ == "__main__":
    warm_kernels.end_as(run_as_step_process())
