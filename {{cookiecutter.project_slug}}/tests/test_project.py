import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import project


def make_root(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "params.yaml").write_text("data: {}\n", encoding="utf-8")
    (path / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    return path


def test_find_project_root_from_the_root_and_from_below(tmp_path):
    root = make_root(tmp_path / "project")
    nested = root / "notebooks" / "deeper"
    nested.mkdir(parents=True)
    assert project.find_project_root(root) == root.resolve()
    assert project.find_project_root(nested) == root.resolve()
    assert project.find_project_root(str(nested)) == root.resolve()


def test_find_project_root_defaults_to_the_working_directory(tmp_path, monkeypatch):
    root = make_root(tmp_path / "project")
    (root / "notebooks").mkdir()
    monkeypatch.chdir(root / "notebooks")
    assert project.find_project_root() == root.resolve()


def test_find_project_root_needs_both_markers(tmp_path):
    outer = make_root(tmp_path / "outer")
    inner = outer / "inner"
    inner.mkdir()
    (inner / "params.yaml").write_text("", encoding="utf-8")  # dvc.yaml missing: not a root
    assert project.find_project_root(inner) == outer.resolve()


def test_find_project_root_raises_outside_a_project(outside_project):
    (outside_project / "params.yaml").write_text("", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="params.yaml and dvc.yaml"):
        project.find_project_root(outside_project)


def test_step_names_and_report_dirs(tmp_path):
    assert project.step_name("business_case") == "01_business_case"
    assert project.step_name("modeling") == "06_modeling"
    assert project.step_name("retraining") == "10_retraining"
    with pytest.raises(KeyError, match="unknown stage 'training'"):
        project.step_name("training")
    path = project.report_dir(tmp_path, "monitoring")
    assert path == tmp_path / "reports" / "09_monitoring" and path.is_dir()


def test_a_step_added_as_a_notebook_after_the_ten_is_a_step(tmp_path):
    for marker in project.MARKERS:
        (tmp_path / marker).write_text("")
    (tmp_path / "notebooks").mkdir()
    for name in ("06_modeling", "12_review", "11_audit", "05_scratch", "notes"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    assert project.steps(tmp_path) == (*project.STEPS, "audit", "review")
    assert project.step_name("audit", tmp_path) == "11_audit"
    assert project.report_dir(tmp_path, "review") == tmp_path / "reports" / "12_review"
    with pytest.raises(KeyError, match="stages are: business_case, .*retraining, audit, review"):
        project.step_name("scratch", tmp_path)  # numbered among the ten: not a step of its own
    assert project.steps(tmp_path / "elsewhere" / "deeper") == project.STEPS  # no project there


def test_load_params(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  target: income\n", encoding="utf-8")
    assert project.load_params(tmp_path) == {"data": {"target": "income"}}
    (tmp_path / "params.yaml").write_text("", encoding="utf-8")
    assert project.load_params(tmp_path) == {}


def test_write_json_is_byte_stable_whatever_the_key_order(tmp_path):
    first = {"b": 1, "a": {"y": [1, 2], "x": 0.5}, "c": "é"}
    second = {"c": "é", "a": {"x": 0.5, "y": [1, 2]}, "b": 1}
    p1 = project.write_json(tmp_path / "one.json", first)
    p2 = project.write_json(tmp_path / "two.json", second)
    assert p1.read_bytes() == p2.read_bytes()
    before = p1.read_bytes()
    project.write_json(p1, first)
    assert p1.read_bytes() == before  # a rerun writes the same bytes
    text = before.decode("utf-8")
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert "é" in text  # not escaped


def test_write_json_writes_nan_and_infinities_as_null(tmp_path):
    payload = {
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": -math.inf,
        "numpy_nan": np.float64("nan"),
        "array": np.array([1.0, np.nan, np.inf]),
        "nested": [{"x": float("nan")}, (1, float("nan"))],
        "fine": 0.25,
    }
    path = project.write_json(tmp_path / "m.json", payload)

    def refuse(constant):
        raise AssertionError(f"{constant} is not valid JSON")

    loaded = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert loaded == {
        "nan": None,
        "inf": None,
        "minus_inf": None,
        "numpy_nan": None,
        "array": [1.0, None, None],
        "nested": [{"x": None}, [1, None]],
        "fine": 0.25,
    }


def test_write_json_converts_numpy_paths_and_sets(tmp_path):
    payload = {
        "int": np.int64(3),
        "bool": np.bool_(True),
        "path": Path("data/raw/x.csv"),
        "set": {"b", "a"},
        "matrix": np.arange(4).reshape(2, 2),
    }
    loaded = project.read_json(project.write_json(tmp_path / "x.json", payload))
    assert loaded == {"int": 3, "bool": True, "path": "data/raw/x.csv", "set": ["a", "b"], "matrix": [[0, 1], [2, 3]]}


def test_write_json_refuses_unknown_types_and_leaves_no_temporary_file(tmp_path):
    with pytest.raises(TypeError, match="object"):
        project.write_json(tmp_path / "bad.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []
    project.write_json(tmp_path / "good.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["good.json"]


def test_read_yaml_reads_the_projects_files_as_safe_load_does_with_libyaml():
    import yaml

    if sys.platform == "linux":  # PyPI's Linux wheels of PyYAML include libyaml
        assert project.SAFE_YAML_LOADER is yaml.CSafeLoader, "PyYAML without libyaml: steps parse in pure Python"
    root = Path(__file__).resolve().parents[1]
    for name in ("params.yaml", "dvc.yaml"):
        assert project.read_yaml(root / name) == yaml.safe_load((root / name).read_text(encoding="utf-8"))


def test_read_json_says_which_step_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        project.read_json(tmp_path / "missing.json")


def test_dvc_parses_yaml_with_the_c_parser():
    """DVC reads dvc.yaml, dvc.lock and params.yaml with ruamel's safe loader: the C one, if installed."""
    from dvc.utils.serialize import parse_yaml
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is missing: every dvc command parses YAML in pure Python"
    assert YAML(typ="safe").Parser is CParser
    assert parse_yaml("stage: {cmd: run, deps: [a, b]}", "dvc.yaml") == {"stage": {"cmd": "run", "deps": ["a", "b"]}}


def test_file_md5(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert project.file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"


@pytest.mark.parametrize(("exported", "threads"), [(None, 1), ("2", 2)])
def test_a_notebook_runs_native_code_on_the_pipelines_threads_wherever_it_runs(monkeypatch, exported, threads):
    """JupyterLab's kernel would use every core; the pipeline's use OMP_NUM_THREADS (1): same bytes need the same."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from {{ cookiecutter.package_name }}.notebook import use_the_pipelines_threads

    if exported is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", exported)
    with threadpoolctl.threadpool_limits(limits=None):  # restores the process's limits afterwards
        use_the_pipelines_threads()
        pools = threadpoolctl.threadpool_info()
        assert pools and {pool["num_threads"] for pool in pools} == {threads}
