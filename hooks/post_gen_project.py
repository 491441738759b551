"""Finish the generated project: drop unchosen options, save the answers,
put the raw data under DVC and make the first git commit.

Every external command gets its arguments as a list (never through a shell),
so no answer can be interpreted by a shell.  A missing tool is reported with
the exact commands to run later; it is not an error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# Files that belong to one choice of an option; the others are removed.
OPTION_FILES = {
    "ci": {
        "github": [".github"],
        "gitlab": [".gitlab-ci.yml"],
        "none": [],
    },
}
RAW_DATA = ["data/raw/adult.csv.gz", "data/external/adult_test.csv.gz"]
# Keys cookiecutter adds that describe this machine, not the answers.
VOLATILE_KEYS = ("_output_dir", "_repo_dir", "_checkout")


def unchosen_paths(answers: dict) -> list[str]:
    """Paths of files that belong to option values the user did not choose."""
    paths = []
    for option, files_by_value in OPTION_FILES.items():
        chosen = answers.get(option)
        for value, files in files_by_value.items():
            if value != chosen:
                paths.extend(files)
    return paths


def remove_paths(root: Path, paths: list[str]) -> None:
    for rel in paths:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def saved_answers(answers: dict) -> dict:
    """The answers in cookiecutter's replay format, without machine-specific keys."""
    kept = {k: v for k, v in answers.items() if k not in VOLATILE_KEYS}
    return {"cookiecutter": kept}


def dvc_command() -> list[str] | None:
    """How to call DVC from here: the interpreter's own module, else the PATH."""
    try:
        import dvc  # noqa: F401
    except ImportError:
        exe = shutil.which("dvc")
        return [exe] if exe else None
    return [sys.executable, "-m", "dvc"]


def run(cmd: list[str], root: Path) -> str | None:
    """Run one command; return its error output when it fails, None on success."""
    result = subprocess.run(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        return f"`{' '.join(cmd)}` failed: {result.stderr.strip()}"
    return None


def init_repository(root: Path, answers: dict) -> list[str]:
    """git init, DVC tracking of the raw data, first commit. Returns what was skipped."""
    skipped = []
    git = shutil.which("git")
    if git is None:
        return [
            "git not found: skipped `git init`, DVC tracking of the raw data and the first commit. "
            "Install git, then run: git init -b main && dvc add "
            + " ".join(RAW_DATA)
            + " && git add -A && git commit -m 'Initial commit'"
        ]
    failure = run([git, "init", "--quiet", "--initial-branch=main"], root)
    if failure:
        return [failure + "; skipped DVC tracking and the first commit"]
    dvc = dvc_command()
    if dvc is None:
        skipped.append(
            "dvc not found: raw data not yet tracked by DVC. After `pip install -e \".[dev]\"` run: "
            "dvc add " + " ".join(RAW_DATA) + " && git add -A && git commit -m 'Track raw data'"
        )
    else:
        skipped.append(run([*dvc, "add", "--quiet", *RAW_DATA], root))
    identity = ["-c", f"user.name={answers['author_name']}", "-c", f"user.email={answers['author_email']}"]
    skipped.append(run([git, "add", "-A"], root))
    message = "Initial commit from the ML lifecycle template"
    skipped.append(run([git, *identity, "commit", "--quiet", "-m", message], root))
    return [s for s in skipped if s]


def main(answers: dict, root: Path) -> int:
    remove_paths(root, unchosen_paths(answers))
    (root / ".cookiecutter.json").write_text(
        json.dumps(saved_answers(answers), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    for message in init_repository(root, answers):
        print(f"NOTE: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads({{ cookiecutter | jsonify | tojson }}), Path.cwd()))
