"""Template updates reach existing projects: `cruft create` from one commit of the template,
`cruft update -y` to a later one, as the README tells a user.

Each test builds its own template repository from this working tree (commit A), commits a small
change on top (commit B), creates a project from A with cruft and updates it to B. The update must
apply the template's change and nothing of the post-generation hook's git and DVC state (which
made cruft stop on binary files, or report success having applied nothing).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATE, dvc, run

e2e = pytest.mark.e2e
BIN = Path(sys.executable).parent
GENERATED = "{{cookiecutter.project_slug}}"
# The last commit whose post-generation hook left its repository in cruft's renders: projects
# made from it (or earlier) are what the first update after the fix meets.
OLDER_HOOK_COMMIT = "6db7aab"


def readme_skip_list() -> list[str]:
    """The skip entries the README tells the owner of such a project to add to .cruft.json (off Linux)."""
    found = re.search(r'^\s*"skip": (\[[^\]\n]*\]),?$', (TEMPLATE / "README.md").read_text(), re.MULTILINE)
    assert found, "the README gives no `\"skip\": [...]` line for .cruft.json"
    return json.loads(found.group(1))


# The change commit B makes: a line of the generated data/README.md, and a new file.
CHANGED_FILE = "data/README.md"
CHANGED_LINE = "| `raw/` | the data as received; never edited | git without a DVC remote, else DVC (`*.dvc` files in git) |"
NEW_LINE = "| `raw/` | the data as received; never edited (the template's update changed this line) | git or DVC |"
NEW_FILE = "docs/UPDATED.md"


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout


def template_repository(root: Path, post_gen_hook: str | None = None) -> Path:
    """A git repository of this template's working tree (commit A); ``post_gen_hook`` replaces the hook."""
    repo = root / "template"
    repo.mkdir(parents=True)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=TEMPLATE, capture_output=True, text=True, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        source = TEMPLATE / name
        if source.is_file():  # a file another change deleted from the working tree is not copied
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes(source.read_bytes())
    if post_gen_hook is not None:
        (repo / "hooks" / "post_gen_project.py").write_text(post_gen_hook)
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit(repo, "A")
    return repo


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def change_template(repo: Path, post_gen_hook: str | None = None) -> str:
    """Commit B: one changed line and one new file in the generated project (and maybe another hook)."""
    readme = repo / GENERATED / CHANGED_FILE
    text = readme.read_text()
    assert CHANGED_LINE in text, f"the line this test changes is gone from {CHANGED_FILE}; pick another"
    readme.write_text(text.replace(CHANGED_LINE, NEW_LINE))
    (repo / GENERATED / NEW_FILE).parent.mkdir(parents=True, exist_ok=True)
    (repo / GENERATED / NEW_FILE).write_text("# Added by a template update\n")
    if post_gen_hook is not None:
        (repo / "hooks" / "post_gen_project.py").write_text(post_gen_hook)
    return commit(repo, "B")


def older_hook() -> str:
    shown = subprocess.run(["git", "show", f"{OLDER_HOOK_COMMIT}:hooks/post_gen_project.py"], cwd=TEMPLATE,
                           capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip(f"commit {OLDER_HOOK_COMMIT} (the older hook) is not in this clone: {shown.stderr.strip()}")
    return shown.stdout


def cruft_create(template: Path, out: Path, commit_sha: str) -> Path:
    """`cruft create --checkout` as a user runs it, then the user's commit of .cruft.json."""
    out.mkdir(parents=True)
    run([str(BIN / "cruft"), "create", "--no-input", "--checkout", commit_sha, str(template)], out)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    commit(project, "Link the project to its template (cruft)")
    return project


def cruft_update(project: Path) -> subprocess.CompletedProcess:
    return run([str(BIN / "cruft"), "update", "-y"], project, check=False)


def fresh_project(template: Path, out: Path) -> Path:
    run([sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(out), str(template)], template)
    (project,) = [p for p in out.iterdir() if p.is_dir()]
    return project


def tracked(project: Path) -> set[str]:
    return set(git(project, "ls-files").split())


def assert_updated_like_fresh(project: Path, fresh: Path, result: subprocess.CompletedProcess) -> None:
    """A clean update: cruft succeeded, no conflict, and the project's files are a fresh project's."""
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "as clean as possible" in output, output
    assert "error" not in output.lower() and "conflict" not in output.lower(), output
    assert not list(project.rglob("*.rej")), output
    assert (project / NEW_FILE).is_file() and NEW_LINE in (project / CHANGED_FILE).read_text(), output
    git(project, "add", "-A")  # what the user commits
    saved = {".cruft.json", ".cookiecutter.json"}  # the template commit they record differs by design
    assert tracked(project) - saved == tracked(fresh) - saved, tracked(project) ^ tracked(fresh)
    differ = [f for f in sorted(tracked(fresh) - saved) if (project / f).read_bytes() != (fresh / f).read_bytes()]
    assert differ == [], differ
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers == json.loads((fresh / ".cookiecutter.json").read_text())["cookiecutter"] | {
        "_commit": answers["_commit"]}


def test_update_to_a_newer_template_applies_its_change_only(tmp_path):
    """Both commits with this hook: the update is clean, the files are those of a fresh project at B."""
    template = template_repository(tmp_path)
    a = git(template, "rev-parse", "HEAD").strip()
    b = change_template(template)
    project = cruft_create(template, tmp_path / "work", a)
    result = cruft_update(project)
    assert_updated_like_fresh(project, fresh_project(template, tmp_path / "fresh"), result)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == b


@e2e
def test_update_from_a_project_the_older_hook_made_then_it_runs(tmp_path):
    """A project from before the fix (its template version's hook left .git and DVC's state in the
    render): on Linux the new version's hook drops that state from the older render too. The
    updated project then runs its first stages (its raw data moved from DVC to git: remote none)."""
    template = template_repository(tmp_path, post_gen_hook=older_hook())
    a = git(template, "rev-parse", "HEAD").strip()
    change_template(template, post_gen_hook=(TEMPLATE / "hooks" / "post_gen_project.py").read_text())
    project = cruft_create(template, tmp_path / "work", a)
    assert (project / "data/raw/adult.csv.gz.dvc").is_file(), "the older hook no longer DVC-tracks the raw data"
    result = cruft_update(project)
    assert_updated_like_fresh(project, fresh_project(template, tmp_path / "fresh"), result)
    commit(project, "Update from the template")
    dvc(project, "repro", "data_selection")
    assert (project / "data/interim/selected.parquet").is_file()


def test_older_hook_on_both_sides_updates_with_the_readme_skip_list(tmp_path):
    """Where the new hook cannot reach the older render (both versions carry the older hook here,
    as off Linux): the skip entries the README gives make the update clean; without them it is not."""
    hook = older_hook()
    template = template_repository(tmp_path, post_gen_hook=hook)
    a = git(template, "rev-parse", "HEAD").strip()
    change_template(template, post_gen_hook=hook)
    project = cruft_create(template, tmp_path / "work", a)
    without = cruft_update(project)
    applied = (project / NEW_FILE).is_file()
    assert without.returncode != 0 or not applied, "the older hook's update worked without the skip list"
    git(project, "reset", "--quiet", "--hard")
    git(project, "clean", "--quiet", "-fd")
    cruft_file = project / ".cruft.json"
    state = json.loads(cruft_file.read_text())
    cruft_file.write_text(json.dumps({**state, "skip": readme_skip_list()}, indent=2) + "\n")
    commit(project, "cruft: skip the repository state (README)")
    result = cruft_update(project)
    assert_updated_like_fresh(project, fresh_project(template, tmp_path / "fresh"), result)


def test_a_user_edit_the_update_also_changes_is_reported_as_a_conflict(tmp_path):
    template = template_repository(tmp_path)
    a = git(template, "rev-parse", "HEAD").strip()
    change_template(template)
    project = cruft_create(template, tmp_path / "work", a)
    readme = project / CHANGED_FILE
    readme.write_text(readme.read_text().replace(CHANGED_LINE, "| `raw/` | our own edit of this line | DVC |"))
    commit(project, "Our own wording")
    result = cruft_update(project)
    output = result.stdout + result.stderr
    text = readme.read_text()
    rejected = list(project.rglob("*.rej"))
    marked = "<<<<<<<" in text and "our own edit of this line" in text and NEW_LINE in text
    assert rejected or marked, f"the conflict was resolved silently:\n{output}\n{text}"
    assert "conflict" in output.lower() and CHANGED_FILE in output, output
    assert (project / NEW_FILE).is_file(), "the change that does not conflict was not applied"
