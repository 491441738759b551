"""Finish the generated project: drop unchosen options, save the answers,
version the raw data and make the first git commit.

The raw data goes to git when there is no DVC remote (a fresh clone, CI's
among them, then has it) and under DVC otherwise (`dvc push` sends it to the
remote, `dvc pull` brings it back).

Every external command gets its arguments as a list (never through a shell),
so no answer can be interpreted by a shell.  A missing tool is reported with
the exact commands to run later; it is not an error.

cruft renders the template's old and new versions into temporary directories
and applies their difference to the project; in such a render the project
keeps only what git tracks (see `rendering_for_a_diff`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
# What git and DVC keep in a project beside the files git tracks: never part of a template
# update (a render for cruft's diff drops them; so does the older render, see older_render).
REPOSITORY_STATE = [".git", ".dvc/cache", ".dvc/tmp"]
# The names tempfile.TemporaryDirectory() gives (not `mktemp -d`'s "tmp.XXXXXXXXXX").
TEMPORARY_NAME_RE = re.compile(r"^tmp[a-z0-9_]{8}$")


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


def data_in_dvc(answers: dict) -> bool:
    """Whether the raw data is DVC-tracked: with a remote to push it to; in git without one."""
    return answers.get("remote", "none") != "none"


def init_repository(root: Path, answers: dict) -> list[str]:
    """git init, DVC tracking of the raw data (with a remote), first commit. Returns what was skipped."""
    skipped = []
    dvc_add = ("dvc add " + " ".join(RAW_DATA) + " && ") if data_in_dvc(answers) else ""
    git = shutil.which("git")
    if git is None:
        return [
            "git not found: skipped `git init`, " + ("DVC tracking of the raw data " if dvc_add else "")
            + "and the first commit. Install git, then run: git init -b main && " + dvc_add
            + "git add -A && git commit -m 'Initial commit'"
        ]
    failure = run([git, "init", "--quiet", "--initial-branch=main"], root)
    if failure:
        return [failure + "; skipped the first commit"]
    dvc = dvc_command()
    if not dvc_add:
        pass  # the raw data is committed with the rest
    elif dvc is None:
        skipped.append(
            "dvc not found: raw data not yet tracked by DVC. After `pip install -e \".[dev]\"` run: "
            + dvc_add + "git add -A && git commit -m 'Track raw data'"
        )
    else:
        skipped.append(run([*dvc, "add", "--quiet", *RAW_DATA], root))
    identity = ["-c", f"user.name={answers['author_name']}", "-c", f"user.email={answers['author_email']}"]
    skipped.append(run([git, "add", "-A"], root))
    message = "Initial commit from the ML lifecycle template"
    skipped.append(run([git, *identity, "commit", "--quiet", "-m", message], root))
    return [s for s in skipped if s]


def made_by_temporary_directory(path: Path) -> bool:
    """``path`` is a directory that tempfile.TemporaryDirectory() made."""
    path = path.resolve()
    return path.parent == Path(tempfile.gettempdir()).resolve() and bool(TEMPORARY_NAME_RE.match(path.name))


def in_fresh_temporary_directory(root: Path) -> bool:
    """``root`` is the only entry of a directory that tempfile.TemporaryDirectory() made."""
    parent = root.resolve().parent
    return made_by_temporary_directory(parent) and [p.name for p in parent.iterdir()] == [root.name]


def rendering_for_a_diff(answers: dict, root: Path) -> bool:
    """Whether this is a render that a tool makes only to compare template versions.

    `cruft update` renders the project's template version and the new one, each into a fresh
    temporary directory through cookiecutter's API (which sets no `_output_dir`, unlike the
    cookiecutter command), diffs the two and applies the difference to the project. There the
    hook's repository state (a new `.git`, DVC's cache and lock files) is no part of the
    template: in the diff it made `cruft update` stop on binary files, or apply nothing.
    `cruft create` renders into the directory the user chose, so it gets a repository.
    """
    return "_output_dir" not in answers and in_fresh_temporary_directory(root)


def older_render(answers: dict) -> Path | None:
    """cruft's render of the project's current version, when this hook runs in the render of the new one.

    A project made before the hook knew `rendering_for_a_diff` carries that older hook in its
    template version, and its render still holds a repository; the new version cannot leave it
    out of the diff by rendering alone. cruft's update keeps the template's clone in `repo` and
    the older render in `current_template`, side by side in one temporary directory, and
    cookiecutter runs this hook from `repo`: on Linux that is the parent process's working
    directory. Found only when the older render is complete and is of the same template.
    """
    try:
        repo = Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:  # not Linux, or no such process: the README's skip list does it instead
        return None
    old = repo.parent / "current_template"
    if repo.name != "repo" or not made_by_temporary_directory(repo.parent):
        return None
    try:
        saved = json.loads((old / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return old if saved.get("_template") == answers.get("_template") else None


def main(answers: dict, root: Path) -> int:
    remove_paths(root, unchosen_paths(answers))
    (root / ".cookiecutter.json").write_text(
        json.dumps(saved_answers(answers), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    for message in init_repository(root, answers):
        print(f"NOTE: {message}", file=sys.stderr)
    if rendering_for_a_diff(answers, root):
        # the files a fresh project tracks (the .dvc files included), and the raw data beside them
        remove_paths(root, REPOSITORY_STATE)
        old = older_render(answers)
        if old is not None:
            remove_paths(old, REPOSITORY_STATE)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads({{ cookiecutter | jsonify | tojson }}), Path.cwd()))
