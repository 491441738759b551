import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import project
from {{ cookiecutter.package_name }}.runtime import run_step
from {{ cookiecutter.package_name }}.runtime.run_step import StepError

PROJECT = Path(__file__).resolve().parents[2]

PARAMS = {
    "data": {"path": "data/raw/x.csv", "target": "income", "positive_label": ">50K", "sensitive_features": ["sex"]},
    "business_case": {"cost_false_positive": 1.0, "cost_false_negative": 4.0},
    "seed": 7,
}


def notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def cell(source, tags=(), **extra):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, **extra}


def test_stage_parameters_from_a_dvc_stage():
    stage = {"params": ["data.path", "data.target", "business_case", "seed", {"other.yaml": ["x"]}]}
    assert run_step.stage_parameters(stage, PARAMS) == {
        "path": "data/raw/x.csv",
        "target": "income",
        "cost_false_positive": 1.0,
        "cost_false_negative": 4.0,
        "seed": 7,
    }
    assert run_step.stage_parameters({}, PARAMS) == {}


def test_stage_parameters_errors():
    with pytest.raises(StepError, match="no section 'modeling'"):
        run_step.stage_parameters({"params": ["modeling"]}, PARAMS)
    with pytest.raises(StepError, match="no key 'data.label'"):
        run_step.stage_parameters({"params": ["data.label"]}, PARAMS)
    with pytest.raises(StepError, match="parameter 'path' is given by both data.path and data"):
        run_step.stage_parameters({"params": ["data.path", "data"]}, PARAMS)


def test_check_parameters():
    declared = {"path": "", "target": "", "seed": 0}
    run_step.check_parameters("demo", {"path": "a", "target": "b", "seed": 1}, declared)  # no error
    with pytest.raises(
        StepError, match="parameter 'colour' of stage 'demo' is not declared .*declared: path, seed, target"
    ):
        run_step.check_parameters("demo", {"path": "a", "target": "b", "seed": 1, "colour": "red"}, declared)
    with pytest.raises(StepError, match="declares 'seed', which params.yaml does not give"):
        run_step.check_parameters("demo", {"path": "a", "target": "b"}, declared)


def test_declared_parameters_parses_the_parameters_cell():
    nb = notebook(
        cell("import pandas as pd\nx = 1\n"),
        cell(
            [
                "# defaults, overridden by papermill\n",
                "path = 'data/raw/x.csv'\n",
                "threshold: float = 0.5\n",
                "features = ['sex', 'race']\n",
                "costs = {'fp': 1.0, 'fn': 4.0}\n",
                "a = b = None\n",
                "flag = True",
            ],
            tags=["parameters"],
        ),
        cell("y = 2\n", tags=["other"]),
    )
    assert run_step.declared_parameters(nb) == {
        "path": "data/raw/x.csv",
        "threshold": 0.5,
        "features": ["sex", "race"],
        "costs": {"fp": 1.0, "fn": 4.0},
        "a": None,
        "b": None,
        "flag": True,
    }
    assert run_step.declared_parameters(notebook(cell("n = 3", tags=["parameters"]))) == {"n": 3}


@pytest.mark.parametrize("tags", [[], [["parameters"], ["parameters"]]])
def test_exactly_one_parameters_cell(tags):
    nb = notebook(*[cell("x = 1", tags=t) for t in tags] or [cell("x = 1")])
    with pytest.raises(StepError, match="exactly one cell tagged 'parameters'"):
        run_step.declared_parameters(nb)


def test_strip_volatile_removes_timings_and_random_ids():
    executed = {
        "metadata": {
            "papermill": {
                "start_time": "2024-01-01T10:00:00",
                "end_time": "2024-01-01T10:00:05",
                "duration": 5.1,
                "exception": None,
                "environment_variables": {"HOME": "/x"},
                "parameters": {"seed": 1},
                "input_path": "in.ipynb",
            },
            "widgets": {"state": {}},
            "kernelspec": {"name": "python3"},
        },
        "cells": [
            cell("x = 1", id="keep-me", tags=["parameters"]),
            cell("seed = 1", id="a7f3c9d2", tags=["injected-parameters"]),
            {
                "cell_type": "code",
                "id": "c3",
                "source": "y",
                "metadata": {
                    "papermill": {"duration": 0.1, "status": "completed"},
                    "execution": {"iopub.status.busy": "2024-01-01T10:00:01"},
                    "tags": [],
                },
            },
        ],
    }
    stripped = run_step.strip_volatile(json.loads(json.dumps(executed)))
    papermill = stripped["metadata"]["papermill"]
    assert papermill == {"parameters": {"seed": 1}, "input_path": "in.ipynb"}
    assert "widgets" not in stripped["metadata"] and stripped["metadata"]["kernelspec"] == {"name": "python3"}
    assert [c["id"] for c in stripped["cells"]] == ["keep-me", "cell-1", "c3"]
    assert stripped["cells"][2]["metadata"] == {"tags": []}
    # two runs that differ only in volatile data give the same text
    rerun = json.loads(json.dumps(executed))
    rerun["metadata"]["papermill"].update(start_time="2025-05-05T00:00:00", duration=9.9)
    rerun["cells"][1]["id"] = "ffffffff"
    rerun["cells"][2]["metadata"]["papermill"]["duration"] = 0.7
    assert json.dumps(run_step.strip_volatile(rerun), sort_keys=True) == json.dumps(stripped, sort_keys=True)


def test_cells_seconds_sums_papermills_cell_timings():
    executed = notebook(
        cell("x = 1", metadata={"papermill": {"duration": 0.25}}),
        {"cell_type": "markdown", "metadata": {}, "source": "# no timing"},
        cell("y = 2", metadata={"papermill": {"duration": 1.5}}),
        cell("z = 3", metadata={"papermill": {"duration": None}}),  # a cell that never ran
    )
    assert run_step.cells_seconds(executed) == 1.75
    assert run_step.cells_seconds(notebook()) == 0


def test_stage_outputs_and_remove_outputs(tmp_path):
    stage = {
        "outs": ["data/interim/selected.parquet", "reports/03_data_selection"],
        "metrics": [{"reports/metrics.json": {"cache": False}}],
        "plots": [{"reports/plots/roc.csv": {"x": "fpr"}}],
    }
    paths = run_step.stage_outputs(tmp_path, stage)
    assert paths == [
        tmp_path / "data/interim/selected.parquet",
        tmp_path / "reports/03_data_selection",
        tmp_path / "reports/metrics.json",
        tmp_path / "reports/plots/roc.csv",
    ]
    for path in paths[:1] + paths[2:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (paths[1] / "sub").mkdir(parents=True)
    (paths[1] / "sub" / "f.txt").write_text("x")
    keep = tmp_path / "reports" / "01_business_case" / "charter.json"
    keep.parent.mkdir(parents=True)
    keep.write_text("{}")
    run_step.remove_outputs(paths + [tmp_path / "never-created"])
    assert not any(p.exists() for p in paths)
    assert keep.exists()  # other stages' outputs are untouched


def test_load_stage(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"modeling": {"cmd": "x"}}}))
    assert run_step.load_stage(tmp_path, "modeling") == {"cmd": "x"}
    with pytest.raises(StepError, match="no stage 'training'; stages are: modeling"):
        run_step.load_stage(tmp_path, "training")


@pytest.mark.skipif(not (PROJECT / "dvc.yaml").is_file(), reason="runs inside a generated project")
@pytest.mark.parametrize("stage", project.STEPS)
def test_every_stage_gets_exactly_the_parameters_its_notebook_declares(stage):
    """params.yaml, dvc.yaml and the notebooks' parameters cells name the same parameters (run_step checks it
    before running; test_parameters checks that the values are equal too)."""
    given = run_step.stage_parameters(run_step.load_stage(PROJECT, stage), project.load_params(PROJECT))
    source = PROJECT / "notebooks" / f"{project.step_name(stage)}.ipynb"
    declared = run_step.declared_parameters(json.loads(source.read_text(encoding="utf-8")))
    run_step.check_parameters(stage, given, declared)


def test_kernel_environment_puts_the_project_first_and_restores_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "elsewhere")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = dict(os.environ)
    with run_step._kernel_environment(tmp_path):
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path.resolve() / "src"), "elsewhere"]
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert dict(os.environ) == before


def test_kernel_environment_keeps_a_thread_count_the_user_set(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    with run_step._kernel_environment(tmp_path):
        assert os.environ["OMP_NUM_THREADS"] == "8"


def test_kernels_draw_figures_inline_whatever_mplbackend_says(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as many servers and CI images export it
    with run_step._kernel_environment(tmp_path):
        assert os.environ["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
    assert os.environ["MPLBACKEND"] == "Agg"


def test_the_step_process_runs_papermill_without_loading_pyarrow():
    code = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.runtime.run_step import skip_hdfs_support\n"
        "skip_hdfs_support()\n"
        "import papermill\n"
        "print('pyarrow.lib' in sys.modules, callable(papermill.execute_notebook))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def test_run_step_imports_without_posix_only_modules_and_signals():
    """As on Windows: no fcntl, no SIGHUP, SIGCHLD or SIGPIPE (the warm kernels are Linux only)."""
    code = (
        "import signal, sys\n"
        "for name in ('SIGHUP', 'SIGCHLD', 'SIGPIPE', 'SIGKILL'):\n"
        "    delattr(signal, name)\n"
        "sys.modules['fcntl'] = None\n"
        "from {{ cookiecutter.package_name }}.runtime import run_step, warm_kernels\n"
        "print(callable(run_step.run_as_step_process), [s.name for s in warm_kernels.FORWARDED_SIGNALS])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split(maxsplit=1) == ["True", "['SIGINT', 'SIGTERM']\n"]


def test_notebook_validation_works_without_the_iri_format_checker():
    """In a fresh process: the grammar module is not loaded, nbformat still validates notebooks."""
    code = """
import sys
from {{ cookiecutter.package_name }}.runtime import skip_iri_format_checker
skip_iri_format_checker()
import nbformat
notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.validate(notebook)
notebook.cells[0]["cell_type"] = "not a cell type"
try:
    nbformat.validate(notebook)
except nbformat.ValidationError:
    print("invalid notebook rejected")
print(sys.modules["rfc3987_syntax"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["invalid notebook rejected", "None"], result.stdout + result.stderr
