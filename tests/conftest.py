"""Shared fixtures: bake projects from this template and run their own commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULT_CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())


def bake(output_dir: Path, **answers: str) -> Path:
    """Generate a project non-interactively; returns its directory."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def project_env(project: Path) -> dict[str, str]:
    """Environment in which a baked project's commands find its package and this venv's tools."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("GIT_AUTHOR_NAME", "Template Tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "Template Tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@example.com")
    return env


def run(cmd: list[str], project: Path, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run a command in a baked project; on failure the assertion shows its output."""
    result = subprocess.run(cmd, cwd=project, env=project_env(project), capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project, check=check)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, baked once for the fast checks (do not run its pipeline)."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project after a full `dvc repro` (shared by the end-to-end tests)."""
    reuse = os.environ.get("TEMPLATE_TESTS_REPRODUCED_PROJECT")
    if reuse:  # developer shortcut: a copy of an already reproduced default project
        project = tmp_path_factory.mktemp("reproduced") / Path(reuse).name
        shutil.copytree(reuse, project, symlinks=True)
        return project
    project = bake(tmp_path_factory.mktemp("reproduced"))
    dvc(project, "repro")
    return project
