"""Notebook checks (marker ``notebooks``; ``make test-notebooks`` runs them, ``make test-unit`` does not).

1. ``test_lifecycle_on_a_small_sample``: the ten notebooks, in order, with papermill
   (through ``run_step``, as ``dvc repro`` runs them) on a small stratified sample of
   the data and small search, bootstrap and batch sizes, in a temporary copy of the
   project. Checks that every step runs top to bottom and leaves its report; it needs
   nothing but the raw data. About a minute.
2. ``test_stored_notebook_runs_under_nbval``: nbval (``pytest --nbval-lax``) over each
   notebook as stored in ``notebooks/``, with its default parameters, in a temporary
   copy of the project. A notebook reads what the steps before it wrote, so this needs
   the pipeline's outputs: run ``dvc repro`` first (``make test`` does). Without them
   the test is skipped and says so. About as long as ``dvc repro``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.project import STEPS, find_project_root, step_name
from {{ cookiecutter.package_name }}.runtime import run_step

pytestmark = pytest.mark.notebooks
ROOT = find_project_root(Path(__file__).parent)
SAMPLE_ROWS = 3000
# Small settings for a fast run; keys a project has removed from params.yaml are skipped.
SMALL = {
    "data_bias_plan": {"min_group_size": 20},
    "modeling": {"cv_folds": 2, "search_iterations": 1},
    "deployment": {"latency_requests": 5, "batch_size": 20},
    "fairness_assessment": {"min_group_size": 20},
    "monitoring": {"batch_size": 400},
    "retraining": {"challenger_models": ["logistic_regression"], "min_group_size": 20},
}
# The thread settings `run_step` gives its kernels, for the kernels these tests start.
ONE_THREAD = {name: os.environ.get(name, value) for name, value in run_step.KERNEL_ENVIRONMENT_DEFAULTS.items()}
# What the copies need; outputs of the pipeline are added for nbval.
PROJECT_FILES = ("params.yaml", "dvc.yaml", "notebooks", "src", "data/raw", "data/external", "data/production")
SKIP_IN_COPY = shutil.ignore_patterns("failed", "__pycache__", ".ipynb_checkpoints")


def copy_project(target: Path, parts: tuple[str, ...]) -> Path:
    for part in parts:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=SKIP_IN_COPY, dirs_exist_ok=True)
        elif source.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)
    return target


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def stratified_sample(frame: pd.DataFrame, column: str, rows: int, seed: int = 0) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    share = rows / len(frame)
    return frame.groupby(column, group_keys=False).sample(frac=share, random_state=seed).sort_index()


def small_params(root: Path) -> dict:
    """params.yaml of the copy: the data (and monitoring source) sampled, small settings."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    target = params["data"]["target"]
    sample_dir = root / "data" / "sample"
    sample_dir.mkdir(parents=True, exist_ok=True)
    raw = read_table(root / params["data"]["path"])
    stratified_sample(raw, target, SAMPLE_ROWS).to_csv(sample_dir / "data.csv", index=False)
    params["data"]["path"] = "data/sample/data.csv"
    # One sensitive feature: intersections of several are groups of a few rows in a sample.
    params["data"]["sensitive_features"] = params["data"]["sensitive_features"][:1]
    source = params.get("monitoring", {}).get("simulation_source")
    if source and (root / source).is_file() and not source.startswith("data/processed"):
        monitored = read_table(root / source)
        if target in monitored:
            monitored = stratified_sample(monitored, target, SAMPLE_ROWS)
        monitored.to_csv(sample_dir / "monitoring_source.csv", index=False)
        params["monitoring"]["simulation_source"] = "data/sample/monitoring_source.csv"
    for section, values in SMALL.items():
        for key, value in values.items():
            if key in params.get(section, {}):
                params[section][key] = value
    return params


def test_lifecycle_on_a_small_sample(tmp_path, monkeypatch):
    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)  # the kernels inherit it
    root = copy_project(tmp_path / "project", PROJECT_FILES)
    params = small_params(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    durations = {}
    for stage in STEPS:
        started = time.perf_counter()
        try:
            executed = run_step.execute(stage, root=root).report
        except run_step.StepError as exc:
            pytest.fail(f"step {step_name(stage)} failed on the small sample: {exc}")
        durations[stage] = time.perf_counter() - started
        notebook = json.loads(executed.read_text(encoding="utf-8"))
        errors = [
            o
            for c in notebook["cells"]
            if c["cell_type"] == "code"
            for o in c.get("outputs", [])
            if o["output_type"] == "error"
        ]
        assert not errors, f"{step_name(stage)}: a cell raised {errors[0]['ename']}"
        assert any(p.name != executed.name for p in executed.parent.iterdir()), f"{stage} wrote no report"
    assert not (root / "reports" / "failed").exists()
    print("small-sample run: " + ", ".join(f"{s} {d:.1f} s" for s, d in durations.items()))


def pipeline_has_run() -> bool:
    return all((ROOT / "reports" / step_name(s) / f"{step_name(s)}.ipynb").is_file() for s in STEPS)


@pytest.fixture(scope="module")
def reproduced_copy(tmp_path_factory) -> Path:
    """A copy of the project with the pipeline's outputs, so nbval cannot disturb them."""
    if not pipeline_has_run():
        pytest.skip("nbval needs the pipeline's outputs: run `dvc repro` (or `make test`) first")
    parts = (*PROJECT_FILES, "data", "models", "reports")
    return copy_project(tmp_path_factory.mktemp("nbval") / "project", parts)


# `pytest --nbval-lax NOTEBOOK` in the copy: run every cell, fail on an error (outputs are not compared).
NBVAL_OPTIONS = ["--nbval-lax", "--nbval-cell-timeout=1800", "-p", "no:cacheprovider", "-q", "-o", "addopts="]


@pytest.mark.parametrize("stage", STEPS)
def test_stored_notebook_runs_under_nbval(reproduced_copy, stage):
    notebook = f"notebooks/{step_name(stage)}.ipynb"
    # the copy's own package first, as `run_step` gives it to the kernels of `dvc repro`
    path = os.pathsep.join([str(reproduced_copy / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1", **ONE_THREAD)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *NBVAL_OPTIONS, notebook],
        cwd=reproduced_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"nbval failed on {notebook}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
