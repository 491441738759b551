"""Unit tests of the hooks' functions (the hooks are plain Python with one Jinja line in main)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HOOKS = Path(__file__).resolve().parents[1] / "hooks"


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(name, HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre = load_hook("pre_gen_project")
post = load_hook("post_gen_project")
GOOD = {
    "project_name": "Income Outreach",
    "project_slug": "income-outreach",
    "package_name": "income_outreach",
    "description": "A project.",
    "author_name": "Team",
    "author_email": "team@example.com",
    "python_version": "3.11",
    "license": "MIT",
    "ci": "github",
    "remote": "none",
    "remote_url": "",
}


def test_good_answers_pass():
    assert pre.validate(GOOD) == []
    assert pre.main(GOOD) == 0


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("project_slug", "My Project", "project_slug 'My Project' is not a valid directory name"),
        ("project_slug", "1project", "project_slug '1project'"),
        ("project_slug", "../escape", "project_slug '../escape'"),
        ("package_name", "my-package", "package_name 'my-package' is not a valid Python package name"),
        ("package_name", "class", "package_name 'class' is a Python keyword"),
        ("package_name", "json", "would shadow"),
        ("package_name", "pandas", "would shadow"),
        ("author_email", "not-an-email", "author_email 'not-an-email' is not an e-mail address"),
        ("author_email", "a@b", "author_email 'a@b'"),
        ("python_version", "3.9", "python_version '3.9' is not one of: 3.11, 3.12, 3.13"),
        ("license", "GPL", "license 'GPL' is not one of"),
        ("ci", "jenkins", "ci 'jenkins' is not one of"),
        ("project_name", "", "project_name is empty"),
        ("description", 'say "hi"', "contains a quote"),
        ("author_name", "a\nb", "newline"),
        ("description", "x" * 300, "at most 200"),
    ],
)
def test_bad_answer_is_named(key, value, fragment, capsys):
    answers = {**GOOD, key: value}
    errors = pre.validate(answers)
    assert len(errors) == 1 and fragment in errors[0]
    assert pre.main(answers) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ERROR: {errors[0]}"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "   "}, "project_name is empty"),
        ({"project_name": ""}, "project_name is empty"),
        ({"project_name": "!!!"}, "project_name '!!!' has no letters or digits to derive project_slug from"),
        ({"project_name": " ", "project_slug": "my-project"}, "project_name is empty"),
    ],
)
def test_name_without_a_slug_fails_like_any_bad_answer(tmp_path, answers, message):
    """Run as a user would: one line names project_name, and no directory is left behind.

    (A name without letters slugified to an empty directory name, and cookiecutter stopped
    before the hook with `"<output dir>" directory already exists`.)
    """
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(tmp_path), str(HOOKS.parent),
         *[f"{k}={v}" for k, v in answers.items()]],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ") and "Stopping generation" not in line]
    assert len(ours) == 1 and ours[0].startswith(f"ERROR: {message}"), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_underivable_slug_reports_only_the_name():
    derived = {**GOOD, "project_name": "  ", "project_slug": pre.UNDERIVABLE_SLUG, "package_name": pre.UNDERIVABLE_SLUG}
    assert pre.validate(derived) == ["project_name is empty"]
    # a package_name given on its own is still checked
    assert pre.validate({**derived, "package_name": "class"}) == ["project_name is empty", "package_name 'class' is a Python keyword"]
    # a slug given on its own is checked with the name
    errors = pre.validate({**derived, "project_slug": "Bad Slug", "package_name": "bad_slug"})
    assert errors[0] == "project_name is empty" and errors[1].startswith("project_slug 'Bad Slug'") and len(errors) == 2


def test_unchosen_option_files():
    assert post.unchosen_paths({"ci": "github"}) == [".gitlab-ci.yml"]
    assert post.unchosen_paths({"ci": "gitlab"}) == [".github"]
    assert sorted(post.unchosen_paths({"ci": "none"})) == [".github", ".gitlab-ci.yml"]


def test_saved_answers_drop_machine_specific_keys():
    saved = post.saved_answers({**GOOD, "_output_dir": "/tmp/x", "_repo_dir": "/r", "_template": "gh:x/y"})
    assert saved == {"cookiecutter": {**GOOD, "_template": "gh:x/y"}}
    json.dumps(saved)


def test_remove_paths(tmp_path):
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".gitlab-ci.yml").write_text("x")
    post.remove_paths(tmp_path, [".github", ".gitlab-ci.yml", "absent"])
    assert list(tmp_path.iterdir()) == []


def test_missing_git_is_reported_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setattr(post.shutil, "which", lambda name: None)
    skipped = post.init_repository(tmp_path, GOOD)
    assert len(skipped) == 1 and skipped[0].startswith("git not found")
    assert not (tmp_path / ".git").exists()


def test_answers_reach_git_as_arguments_not_shell(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return type("R", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(post.subprocess, "run", fake_run)
    monkeypatch.setattr(post, "dvc_command", lambda: None)
    post.init_repository(tmp_path, {**GOOD, "author_name": "x; rm -rf /"})
    assert calls and all(isinstance(cmd, list) and not kw.get("shell") for cmd, kw in calls)
    assert any("user.name=x; rm -rf /" in cmd for cmd, _ in calls)


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("none", ""),
        ("local", "../income-outreach-dvc-storage"),
        ("local", "/mnt/dvc storage/income"),
        ("s3", "s3://my-bucket"),
        ("s3", "s3://my.bucket-1/team/income-outreach"),
        ("gcs", "gs://my_bucket/income"),
        ("azure", "azure://ml-container/income"),
    ],
)
def test_good_remote_urls(remote, url):
    assert pre.validate({**GOOD, "remote": remote, "remote_url": url}) == []


@pytest.mark.parametrize(
    ("remote", "url", "fragment"),
    [
        ("none", "s3://bucket", "remote_url 's3://bucket' is given but remote is 'none'"),
        ("local", "", "remote_url is empty; remote 'local' needs one"),
        ("local", "s3://bucket/x", "is a URL; remote 'local' needs a directory"),
        ("local", "~/storage", "starts with '~'"),
        ("local", "store#1", "contains a quote"),
        ("local", " /padded", "outer space"),
        ("s3", "", "remote_url is empty; remote 's3' needs one, e.g. s3://bucket/path"),
        ("s3", "gs://bucket/x", "remote_url 'gs://bucket/x' is not a s3 URL"),
        ("s3", "s3://My_Bucket", "is not a s3 URL"),
        ("s3", "s3://b", "is not a s3 URL"),
        ("gcs", "s3://bucket", "is not a gcs URL (expected e.g. gs://bucket/path)"),
        ("azure", "azure://a--b/x", "is not a azure URL"),
        ("azure", "https://account.blob.core.windows.net/c", "is not a azure URL"),
        ("s3", "s3://bucket/a'b", "contains a quote"),
    ],
)
def test_bad_remote_url_is_named(remote, url, fragment):
    errors = pre.validate({**GOOD, "remote": remote, "remote_url": url})
    assert len(errors) == 1 and fragment in errors[0], errors


def test_bad_remote_choice_is_named_once():
    errors = pre.validate({**GOOD, "remote": "ftp", "remote_url": "ftp://x"})
    assert errors == ["remote 'ftp' is not one of: none, local, s3, gcs, azure"]


def test_prompts_cover_every_answer():
    """Every question of cookiecutter.json has a prompt text, and every choice list matches the hook's."""
    context = json.loads((HOOKS.parent / "cookiecutter.json").read_text())
    questions = [k for k in context if not k.startswith("_")]
    assert sorted(context["__prompts__"]) == sorted(questions)
    for name, allowed in pre.CHOICES.items():
        assert tuple(context[name]) == allowed, name


@pytest.mark.parametrize(("remote", "in_dvc"), [("none", False), ("local", True), ("s3", True)])
def test_raw_data_is_in_git_without_a_remote(remote, in_dvc, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(post, "run", lambda cmd, root: calls.append(cmd))
    monkeypatch.setattr(post, "dvc_command", lambda: ["dvc"])
    post.init_repository(tmp_path, {**GOOD, "remote": remote})
    assert any(cmd[:2] == ["dvc", "add"] for cmd in calls) == in_dvc
    monkeypatch.setattr(post.shutil, "which", lambda name: None)
    (note,) = post.init_repository(tmp_path, {**GOOD, "remote": remote})
    assert ("dvc add" in note) == in_dvc, note


def test_render_for_a_diff_is_a_fresh_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    render = tmp_path / "tmpab_12cd3" / "income-outreach"  # tempfile.TemporaryDirectory()'s kind of name
    render.mkdir(parents=True)
    assert post.rendering_for_a_diff({}, render)
    # cookiecutter's command sets _output_dir; `mktemp -d` names; a directory with other things in it
    assert not post.rendering_for_a_diff({"_output_dir": str(render.parent)}, render)
    elsewhere = tmp_path / "tmp.Ab3dE6fG7h" / "income-outreach"
    elsewhere.mkdir(parents=True)
    assert not post.rendering_for_a_diff({}, elsewhere)
    (render.parent / "notes.txt").write_text("mine")
    assert not post.rendering_for_a_diff({}, render)


def test_render_for_a_diff_keeps_only_what_git_tracks(tmp_path, monkeypatch):
    """In cruft's render the project has its tracked files and data, and no repository state."""
    root = tmp_path / "income-outreach"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text("[core]\n")
    for state in post.REPOSITORY_STATE:
        (root / state).mkdir(parents=True, exist_ok=True)
        (root / state / "x").write_text("state")
    monkeypatch.setattr(post, "init_repository", lambda root, answers: [])
    monkeypatch.setattr(post, "rendering_for_a_diff", lambda answers, root: True)
    monkeypatch.setattr(post, "older_render", lambda answers: None)
    post.main({**GOOD, "ci": "none"}, root)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [".cookiecutter.json", ".dvc", ".dvc/config"]
