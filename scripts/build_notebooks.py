"""Build the template's notebooks from their percent-format sources.

The ten notebooks are written as readable, diff-friendly Python files in
``notebooks_src/`` (``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown
cell whose lines start with ``# ``, ``# %% tags=["parameters"]`` tags a cell).
This script writes them as clean ``.ipynb`` files (no outputs, ``python3``
kernel, deterministic cell ids) into the generated project's ``notebooks/``.

    python scripts/build_notebooks.py          # rebuild
    python scripts/build_notebooks.py --check  # fail if a notebook is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks_src"
TARGET = ROOT / "{{cookiecutter.project_slug}}" / "notebooks"
CELL_RE = re.compile(r"^# %%(?: \[(?P<kind>markdown)\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def split_cells(text: str) -> list[dict]:
    cells: list[dict] = []
    for line in text.splitlines():
        match = CELL_RE.match(line)
        if match:
            cells.append(
                {"kind": match["kind"] or "code", "tags": json.loads(match["tags"] or "[]"), "lines": []}
            )
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    return cells


def markdown_source(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line and not (line.startswith("# ") or line == "#"):
            raise ValueError(f"markdown line does not start with '# ': {line!r}")
        out.append(line[2:])
    return out


def to_notebook(stem: str, text: str) -> dict:
    cells = []
    for index, cell in enumerate(split_cells(text)):
        lines = cell["lines"]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if cell["kind"] == "markdown":
            lines = markdown_source(lines)
        source = [line + "\n" for line in lines]
        if source:
            source[-1] = source[-1].rstrip("\n")
        entry = {
            "cell_type": cell["kind"],
            "id": f"{stem[:2]}-{index:02d}",
            "metadata": {"tags": cell["tags"]} if cell["tags"] else {},
            "source": source,
        }
        if cell["kind"] == "code":
            entry.update(execution_count=None, outputs=[])
        cells.append(entry)
    return {"cells": cells, "metadata": METADATA, "nbformat": 4, "nbformat_minor": 5}


def render(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a built notebook differs")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        target = TARGET / f"{source.stem}.ipynb"
        text = render(to_notebook(source.stem, source.read_text(encoding="utf-8")))
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run `python scripts/build_notebooks.py`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
