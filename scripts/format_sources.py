"""Lint and format the template's Python sources with ruff, as a generated project would.

A freshly generated project must pass its own `pre-commit run --all-files` (ruff check
and ruff format over the package, the tests and the notebooks). The template's sources
hold Jinja placeholders, so ruff cannot run on them directly: this script renders the
placeholders with the default answers, runs ruff with the generated project's own
configuration, puts the placeholders back, and rebuilds the notebooks.

    python scripts/format_sources.py

Notebook sources (`notebooks_src/*.py`, percent format) are checked as scripts, where a
late import (E402) and a bare expression that displays a value (B018) are normal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "{{cookiecutter.project_slug}}"
NOTEBOOK_SOURCES = ROOT / "notebooks_src"
NOTEBOOK_ONLY_IGNORES = "E402,B018"


def default_answers() -> dict[str, str]:
    answers = json.loads((ROOT / "cookiecutter.json").read_text())
    return {
        "{{ cookiecutter.package_name }}": "income_outreach",
        "{{ cookiecutter.project_name }}": answers["project_name"],
        "{{ cookiecutter.author_name }}": answers["author_name"],
        "{{ cookiecutter.description }}": answers["description"],
    }


def render(text: str, answers: dict[str, str]) -> str:
    for placeholder, value in answers.items():
        text = text.replace(placeholder, value)
    return text


def unrender(text: str, answers: dict[str, str]) -> str:
    for placeholder, value in answers.items():
        text = text.replace(value, placeholder)
    return text


def ruff(*args: str, cwd: Path) -> int:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, check=False).returncode


def main() -> int:
    answers = default_answers()
    sources = sorted(PROJECT.rglob("*.py")) + sorted(NOTEBOOK_SOURCES.glob("*.py"))
    for path in sources:
        values_in_source = [value for value in answers.values() if value in path.read_text()]
        if values_in_source:
            raise SystemExit(f"{path}: holds {values_in_source} literally; cannot map formatting back")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pyproject = (PROJECT / "pyproject.toml").read_text()
        ruff_settings = pyproject[pyproject.index("[tool.ruff]") :]  # the last tables, free of Jinja
        (work / "pyproject.toml").write_text(render(ruff_settings, answers))
        copies = {}
        for path in sources:
            copy = work / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(render(path.read_text(), answers))
            copies[path] = copy
        notebooks = work / NOTEBOOK_SOURCES.relative_to(ROOT)
        failures = ruff("check", "--fix", "--quiet", str(work / PROJECT.relative_to(ROOT)), cwd=work)
        failures += ruff("check", "--fix", "--quiet", "--extend-ignore", NOTEBOOK_ONLY_IGNORES, str(notebooks), cwd=work)
        failures += ruff("format", "--quiet", ".", cwd=work)
        changed = 0
        for path, copy in copies.items():
            formatted = unrender(copy.read_text(), answers)
            if formatted != path.read_text():
                path.write_text(formatted)
                changed += 1
    print(f"{changed} of {len(sources)} sources reformatted")
    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_notebooks.py")], check=False)
    return 1 if failures or built.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
