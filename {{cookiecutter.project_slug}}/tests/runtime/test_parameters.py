"""The parameters cells equal params.yaml (``sync-params``), and a run that differs is an exploration."""

import ast
import datetime
import json
import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import config, live, project
from {{ cookiecutter.package_name }}.notebook import start_step
from {{ cookiecutter.package_name }}.runtime import parameters
from {{ cookiecutter.package_name }}.runtime.run_step import StepError

PROJECT = Path(__file__).resolve().parents[2]
IN_A_PROJECT = pytest.mark.skipif(not (PROJECT / "dvc.yaml").is_file(), reason="runs inside a generated project")

CELL = """# costs of each error, in the business's units
cost_false_positive = 1.0  # an invitation that does not convert
cost_false_negative: float = 4.0
groups = [
    "sex",  # the first
    "race",
]
note = "keep me"
"""


def tiny_project(root: Path, cell: str = CELL, params: dict | None = None) -> Path:
    """A project with one stage (business_case) whose notebook has ``cell`` as its parameters cell."""
    params = params or {
        "business_case": {"cost_false_positive": 1.0, "cost_false_negative": 4.0, "groups": ["sex", "race"]},
        "data": {"note": "keep me"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = {
        "cmd": "x",
        "params": ["business_case", "data.note"],
        "outs": ["reports/01_business_case", {"models/registry": {"persist": True}}],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"business_case": stage}}))
    notebook = {
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# 01 · Business case"]},
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "b",
                "metadata": {"tags": ["parameters"]},
                "outputs": [],
                "source": cell.splitlines(keepends=True),
            },
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "c",
                "metadata": {},
                "outputs": [],
                "source": ["print(cost_false_positive)"],
            },
        ],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "notebooks").mkdir()
    (root / "notebooks" / "01_business_case.ipynb").write_text(
        json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    )
    return root


def set_params(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize(
    "value", [None, True, 3, 0.1, -2.5e-9, 'é "quoted" \\ back', ["a", 1, None], {"a": [1, 2.0], "b": "c"}, []]
)
def test_a_literal_reads_back_equal(value):
    assert ast.literal_eval(parameters.literal(value)) == value


@pytest.mark.parametrize("value", [float("inf"), float("nan"), datetime.date(2024, 1, 1)])
def test_a_value_no_cell_can_hold_is_an_error_naming_the_key(value):
    with pytest.raises(StepError, match="business_case.when"):
        parameters.literal(value, "business_case.when")


def test_rewriting_changes_the_values_only():
    keys = {"cost_false_negative": "business_case.cost_false_negative", "groups": "data.groups"}
    source = parameters.rewritten(CELL, {"cost_false_negative": 6, "groups": ["sex"]}, keys)
    assert source.splitlines()[:2] == CELL.splitlines()[:2]  # the comments and the untouched value stay
    assert "cost_false_negative: float = 6\n" in source and 'groups = ["sex"]\nnote = "keep me"\n' in source
    assert {name: ast.literal_eval(node) for name, node in parameters.assignments(source).items()} == {
        "cost_false_positive": 1.0,
        "cost_false_negative": 6,
        "groups": ["sex"],
        "note": "keep me",
    }


def test_sync_writes_params_yaml_into_the_cell_and_nothing_else(tmp_path):
    root = tiny_project(tmp_path)
    assert parameters.differences(root, "business_case") == []
    set_params(root, "business_case", "cost_false_negative", 7.5)
    path = root / "notebooks" / "01_business_case.ipynb"
    before = json.loads(path.read_text())
    found = parameters.differences(root, "business_case")
    assert [str(d) for d in found] == [
        "business_case: business_case.cost_false_negative is 4.0 in the notebook, 7.5 in params.yaml"
    ]
    synced, left = parameters.sync(root, ["business_case"])
    assert (synced, left) == (found, [])
    after = json.loads(path.read_text())
    assert parameters.differences(root, "business_case") == []
    changed = [line for line in after["cells"][1]["source"] if line not in before["cells"][1]["source"]]
    assert changed == ["cost_false_negative: float = 7.5\n"]
    after["cells"][1]["source"] = before["cells"][1]["source"]
    assert after == before  # every other byte of the notebook is kept


def test_a_key_no_cell_declares_is_named_and_never_added(tmp_path):
    root = tiny_project(tmp_path)
    set_params(root, "business_case", "cost_false_postive", 2.0)  # a typo
    synced, left = parameters.sync(root, ["business_case"])
    assert synced == [] and [d.key for d in left] == ["business_case.cost_false_postive"]
    assert "is not declared in the notebook's parameters cell" in str(left[0])
    assert "cost_false_postive" not in (root / "notebooks" / "01_business_case.ipynb").read_text()


def test_the_check_exits_1_naming_the_stage_and_the_key(tmp_path, monkeypatch, capsys):
    root = tiny_project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.setattr(parameters, "steps", lambda root: ("business_case",))
    assert parameters.main(["--check"]) == 0
    set_params(root, "data", "note", "changed")
    assert parameters.main(["--check"]) == 1
    assert "business_case: data.note is 'keep me' in the notebook, 'changed' in params.yaml" in capsys.readouterr().err
    assert parameters.main([]) == 0 and parameters.main(["--check"]) == 0


def test_an_exploration_writes_beside_the_project_and_reads_through_it(tmp_path):
    root = tiny_project(tmp_path)
    for relative, text in {
        "reports/01_business_case/charter.json": "{}",
        "models/registry/state.json": "v1",
        "models/other.skops": "m",
        "data/raw/x.csv": "a\n1\n",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    place = parameters.exploration(root, "business_case")
    assert place == root / "explorations" / "01_business_case"
    assert (place / "data" / "raw" / "x.csv").read_text() == "a\n1\n" and (
        place / "models" / "other.skops"
    ).is_symlink()
    assert not (place / "reports" / "01_business_case").exists()  # DVC removes a stage's outputs before it runs
    assert (place / "models" / "registry" / "state.json").read_text() == "v1"  # kept between runs: a copy
    (place / "models" / "registry" / "state.json").write_text("v2")
    project.write_json(place / "reports" / "01_business_case" / "charter.json", {"explored": True})
    assert (root / "models" / "registry" / "state.json").read_text() == "v1"
    assert (root / "reports" / "01_business_case" / "charter.json").read_text() == "{}"
    assert not (place / "explorations").exists()
    assert (
        parameters.exploration(root, "business_case") == place and not (place / "reports" / "01_business_case").exists()
    )


@pytest.fixture
def success_criteria_project(tmp_path, monkeypatch) -> Path:
    """params.yaml and dvc.yaml of this project in a directory of their own (start_step finds it from the cwd)."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy2(PROJECT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(parameters.WRITE_ANYWAY_ENV, raising=False)
    yield tmp_path
    live.MUTED = None


@IN_A_PROJECT
def test_a_run_with_params_yaml_s_values_is_the_pipeline_s(success_criteria_project, capsys):
    cfg = config.SuccessCriteria.from_params(project.load_params(success_criteria_project))
    step = start_step("success_criteria", cfg)
    assert (
        step.root == success_criteria_project
        and step.out == success_criteria_project / "reports" / "02_success_criteria"
    )
    assert capsys.readouterr().err == "" and live.MUTED is None


@IN_A_PROJECT
def test_a_run_with_other_values_says_so_first_and_writes_nothing_of_the_pipeline_s(success_criteria_project, capsys):
    cfg = config.SuccessCriteria.from_params(project.load_params(success_criteria_project))
    explored = cfg.model_copy(update={"confidence": 0.9})
    step = start_step("success_criteria", explored)
    said = capsys.readouterr().err
    assert "it is an exploration" in said
    assert f"success_criteria.confidence: 0.9 here, {cfg.confidence!r} in params.yaml" in said
    assert step.root == success_criteria_project / "explorations" / "02_success_criteria"
    assert not (success_criteria_project / "reports").exists() and step.out.is_dir()
    assert live.post({"x": 1})["sent"] is False and "exploration" in live.MUTED


@IN_A_PROJECT
def test_the_switch_writes_an_exploration_to_the_pipeline_s_outputs(success_criteria_project, capsys, monkeypatch):
    monkeypatch.setenv(parameters.WRITE_ANYWAY_ENV, "1")
    cfg = config.SuccessCriteria.from_params(project.load_params(success_criteria_project))
    step = start_step("success_criteria", cfg.model_copy(update={"confidence": 0.9}))
    assert step.root == success_criteria_project and "dvc status` will call them changed" in capsys.readouterr().err


@IN_A_PROJECT
def test_a_params_yaml_the_pipeline_cannot_use_makes_the_run_an_exploration(success_criteria_project, capsys):
    cfg = config.SuccessCriteria.from_params(project.load_params(success_criteria_project))
    set_params(success_criteria_project, "success_criteria", "confidence", 2)
    step = start_step("success_criteria", cfg)
    assert "success_criteria.confidence" in capsys.readouterr().err and step.root != success_criteria_project


@IN_A_PROJECT
@pytest.mark.parametrize("stage", project.STEPS)
def test_every_parameters_cell_equals_params_yaml(stage):
    """What JupyterLab runs is what dvc repro runs; `make sync-params` fixes a disagreement."""
    found = parameters.differences(PROJECT, stage)
    assert not found, "\n".join(map(str, found)) + "\nrun `make sync-params`"
