"""Every Python the ``python_version`` prompt offers: a project generated for it installs in a
venv of that Python as its README says, passes its unit tests and reproduces its whole chain.

Each version costs a venv, a full install and a ``dvc repro`` (minutes), so ``make test`` runs the
newest version in cookiecutter.json and ``make test-python-matrix`` the others. The choice is
``TEMPLATE_PYTHON_VERSIONS``: ``newest`` (the default), ``others``, ``all`` or a comma list
(``3.11,3.12``). An interpreter is looked for under pyenv (``$(pyenv root)/versions/X.Y.N``, the
highest patch) and then as ``pythonX.Y`` on PATH. When the newest one is missing the test fails
and says how to get it; another missing version is skipped with the same words.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEFAULT_CONTEXT, STEPS, TEMPLATE, bake, report_dir, step_name

VERSIONS: list[str] = DEFAULT_CONTEXT["python_version"]
NEWEST = max(VERSIONS, key=lambda v: tuple(int(part) for part in v.split(".")))
SELECTION = "TEMPLATE_PYTHON_VERSIONS"
# The install takes the versions the template's CI pins (requirements-dev.txt as pip constraints),
# so that this test sees what the Python version changes, not a library released since;
# TEMPLATE_PYTHON_UNPINNED=1 installs exactly as the README says, the newest releases its ranges allow.
UNPINNED = "TEMPLATE_PYTHON_UNPINNED"


def selected_versions() -> list[str]:
    """The versions this run tests, from ``TEMPLATE_PYTHON_VERSIONS`` (see the module's docstring)."""
    choice = os.environ.get(SELECTION, "").strip() or "newest"
    if choice == "newest":
        return [NEWEST]
    if choice == "others":
        return [v for v in VERSIONS if v != NEWEST]
    if choice == "all":
        return list(VERSIONS)
    chosen = [v.strip() for v in choice.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VERSIONS]
    if unknown:
        raise pytest.UsageError(f"{SELECTION}={choice!r}: {', '.join(unknown)} not offered by cookiecutter.json ({', '.join(VERSIONS)})")
    return chosen


def pyenv_roots() -> list[Path]:
    roots = [os.environ.get("PYENV_ROOT", "")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        result = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
        roots.append(result.stdout.strip() if result.returncode == 0 else "")
    roots.append(str(Path.home() / ".pyenv"))
    return list(dict.fromkeys(Path(r) for r in roots if r))


def version_of(python: Path | str) -> str | None:
    try:
        result = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_interpreter(version: str) -> Path | None:
    """The highest installed patch release of ``version`` under pyenv, else ``pythonX.Y`` on PATH."""
    patch = re.compile(rf"^{re.escape(version)}\.(\d+)$")  # 3.13.0, not 3.13.0t or 3.13-dev
    candidates = sorted(
        ((int(m.group(1)), d / "bin" / "python") for root in pyenv_roots() if (root / "versions").is_dir()
         for d in (root / "versions").iterdir() if (m := patch.match(d.name))),
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    for python in [p for _, p in candidates] + ([Path(on_path)] if on_path else []):
        if python.is_file() and version_of(python) == version:
            return python
    return None


def how_to_get(version: str) -> str:
    roots = ", ".join(str(r / "versions" / f"{version}.N" / "bin" / "python") for r in pyenv_roots())
    return (f"Python {version} (offered by cookiecutter.json's python_version) is not installed: "
            f"looked for {roots or 'no pyenv root'} and python{version} on PATH. "
            f"Install it with `pyenv install {version}` (or the system's python{version} package) and rerun.")


def venv_env(venv: Path) -> dict[str, str]:
    """The shell after `. .venv/bin/activate`: the project's venv first, nothing of the template's venv."""
    template_bin = Path(sys.executable).parent
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != template_bin]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MPLBACKEND")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), *path]), VIRTUAL_ENV=str(venv), PIP_DISABLE_PIP_VERSION_CHECK="1")
    for key, value in {"GIT_AUTHOR_NAME": "Template Tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
                       "GIT_COMMITTER_NAME": "Template Tests", "GIT_COMMITTER_EMAIL": "tests@example.com"}.items():
        env.setdefault(key, value)
    return env


def step(cmd: list[str], project: Path, env: dict[str, str], what: str, timeout: float) -> str:
    result = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{what} failed ({' '.join(cmd)}, exit {result.returncode}):\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout + result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("version", VERSIONS)
def test_a_project_for_this_python_installs_tests_and_reproduces(version, tmp_path):
    if version not in selected_versions():
        where = "make test" if version == NEWEST else "make test-python-matrix"
        pytest.skip(f"Python {version} runs in `{where}` ({SELECTION}={os.environ.get(SELECTION) or 'newest'} here)")
    python = find_interpreter(version)
    if python is None:
        (pytest.fail if version == NEWEST else pytest.skip)(how_to_get(version))
    project = bake(tmp_path, python_version=version)
    assert f'requires-python = ">={version}"' in (project / "pyproject.toml").read_text()

    # The README's install: python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"
    venv = project / ".venv"
    step([str(python), "-m", "venv", str(venv)], project, os.environ.copy(), f"python{version} -m venv", 300)
    env = venv_env(venv)
    pins = [] if os.environ.get(UNPINNED) == "1" else ["--constraint", str(TEMPLATE / "requirements-dev.txt")]
    # --no-compile: Python compiles what it imports anyway; compiling every installed file took 45 s of CPU
    step(["pip", "install", "--no-compile", "-e", ".[dev]", *pins], project, env,
         f'pip install -e ".[dev]" on Python {version}', 2400)
    assert version_of(venv / "bin" / "python") == version

    tests = step(["python", "-m", "pytest", "tests", "-m", "not notebooks", "-q", "-p", "no:cacheprovider"],
                 project, env, f"the generated unit tests on Python {version}", 2400)
    summary = tests.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"failed|error", summary), summary

    step(["dvc", "repro"], project, env, f"dvc repro on Python {version}", 3600)
    for stage in STEPS:
        executed = report_dir(project, stage) / f"{step_name(stage)}.ipynb"
        assert executed.is_file(), f"dvc repro on Python {version} left no {executed.relative_to(project)}"
    status = step(["dvc", "status"], project, env, "dvc status", 300)
    assert "up to date" in status, status
