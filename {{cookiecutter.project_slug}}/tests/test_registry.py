import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from {{ cookiecutter.package_name }} import artifacts, scoring
from {{ cookiecutter.package_name }}.project import file_md5
from {{ cookiecutter.package_name }}.registry import (
    Registry,
    RegistryError,
    approval_command,
    model_age_days,
    timestamp,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2026, 3, 20, 16, 5, tzinfo=UTC)
REPORT = "reports/10_retraining/retraining_decision.json"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def models(tmp_path):
    paths = {}
    for name in ("v1", "v2", "v3"):
        paths[name] = tmp_path / "candidates" / f"{name}.skops"
        paths[name].parent.mkdir(exist_ok=True)
        paths[name].write_bytes(f"model {name}".encode())
    return paths


@pytest.fixture
def staged(tmp_path, models):
    """A registry whose champion is v1 (step 08's first release) and whose challenger v2 awaits approval."""
    registry = Registry(tmp_path)
    registry.sync_release(models["v1"], "v1")
    registry.stage(models["v2"], "v2", "retrained (trigger: monitoring)", {"roc_auc": 0.91}, REPORT, now=T0)
    return registry


def snapshot(registry):
    """Every file of the registry and the ledger, by name and bytes: to check that a refusal changes nothing."""
    files = [*registry.dir.rglob("*"), registry.ledger]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def test_a_new_registry_is_empty(tmp_path):
    registry = Registry(tmp_path)
    assert registry.state() == {"champion": None, "history": [], "events": []}
    registry.ensure()
    assert registry.log.is_file() and registry.state()["champion"] is None


def test_install_keeps_the_previous_champion_in_history(tmp_path, models):
    registry = Registry(tmp_path)
    registry.install(models["v1"], "1", "first release", metrics={"roc_auc": 0.9})
    state = registry.install(models["v2"], "2", "challenger won")
    assert registry.champion.read_bytes() == b"model v2"
    assert state["champion"]["version"] == "2" and state["champion"]["md5"] == file_md5(models["v2"])
    assert [entry["version"] for entry in state["history"]] == ["1"]
    archived = registry.dir / state["history"][0]["file"]
    assert archived.read_bytes() == b"model v1"
    assert state["history"][0]["metrics"] == {"roc_auc": 0.9}
    assert [e["event"] for e in state["events"]] == ["install", "install"]
    assert registry.state() == state  # persisted


def test_install_records_when_and_without_approval(tmp_path, models):
    """The first release installs as before, with the time (UTC) and no approver; the history keeps both."""
    registry = Registry(tmp_path)
    state = registry.install(models["v1"], "1", "first release from step 08", now=T0)
    assert state["champion"]["installed_at"] == "2026-03-01T09:30:00+00:00"
    assert state["champion"]["approved_by"] is None and "approval" not in state["champion"]
    assert state["events"][-1] == {
        "event": "install",
        "version": "1",
        "reason": "first release from step 08",
        "at": "2026-03-01T09:30:00+00:00",
        "approved_by": None,
    }
    state = registry.install(models["v2"], "2", "promoted by step 10", now=T1)
    assert state["history"][0]["installed_at"] == "2026-03-01T09:30:00+00:00"
    assert registry.installed_at() == T1 and registry.installed_at("1") == T0 and registry.installed_at("9") is None
    assert timestamp(datetime(2026, 3, 1, 10, 30)) == "2026-03-01T10:30:00+00:00"  # a naive time is UTC


def test_model_age_is_measured_from_the_install(tmp_path, models):
    registry = Registry(tmp_path)
    assert model_age_days(registry.state(), T1) is None  # no champion: no age
    registry.install(models["v1"], "1", "first release", now=T0)
    state = registry.state()
    assert model_age_days(state, T1) == pytest.approx(19 + (16 * 60 + 5 - 9 * 60 - 30) / 1440)
    assert model_age_days(state, "2026-03-11T09:30:00Z") == pytest.approx(10.0)
    assert model_age_days(state, "2026-03-11T09:30:00") == pytest.approx(10.0)  # no zone: UTC
    assert model_age_days(state, "2026-02-01T00:00:00+00:00") == 0.0  # before the install: it had served nothing
    del state["champion"]["installed_at"]  # a registry written before install times were recorded
    assert model_age_days(state, T1) is None


def test_stage_keeps_the_challenger_aside_and_nothing_in_service_changes(tmp_path, models):
    registry = Registry(tmp_path)
    registry.sync_release(models["v1"], "v1")
    before = registry.state()
    state = registry.stage(models["v2"], "v2", "retrained", {"roc_auc": 0.91}, REPORT, now=T0)
    assert registry.champion.read_bytes() == b"model v1" and registry.staged.read_bytes() == b"model v2"
    assert state["champion"] == before["champion"] and state["history"] == before["history"]
    assert state["staged"] == {
        "version": "v2",
        "md5": file_md5(models["v2"]),
        "staged_at": "2026-03-01T09:30:00+00:00",
        "reason": "retrained",
        "metrics": {"roc_auc": 0.91},
        "report": REPORT,
        "judged_against": {"version": "v1", "md5": file_md5(models["v1"])},
    }
    assert state["events"][-1]["event"] == "stage" and registry.awaiting_approval() == state["staged"]
    assert scoring.default_model_path(tmp_path) == registry.champion  # a staged challenger is not in service
    assert registry.stage(models["v2"], "v2", "retrained", report=REPORT, now=T1) == state  # a forced rerun: no change
    state = registry.stage(models["v3"], "v3", "retrained again", report=REPORT)  # replaces the earlier one
    assert state["staged"]["version"] == "v3" and registry.staged.read_bytes() == b"model v3"
    assert approval_command("v3").split()[1:5] == ["approve", "v3", "--by", "NAME"]


def test_approve_installs_the_staged_challenger_and_records_the_approval(staged, models):
    change = staged.approve("v2", " Ada Lovelace ", "read the report; canary passed", now=T1, commit=False)
    approval = {
        "version": "v2",
        "by": "Ada Lovelace",
        "at": "2026-03-20T16:05:00+00:00",
        "report": REPORT,
        "note": "read the report; canary passed",
        "md5": file_md5(models["v2"]),
    }
    state = staged.state()
    assert change.state == state and change.git.commit is None
    assert staged.champion.read_bytes() == b"model v2" and not staged.staged.exists() and "staged" not in state
    champion = state["champion"]
    assert champion["approval"] == approval and champion["approved_by"] == "Ada Lovelace"
    assert champion["installed_at"] == approval["at"] and champion["metrics"] == {"roc_auc": 0.91}
    assert [h["version"] for h in state["history"]] == ["v1"]
    assert (staged.dir / state["history"][0]["file"]).read_bytes() == b"model v1"
    assert state["events"][-1] == {
        "event": "install",
        "version": "v2",
        "reason": "retrained (trigger: monitoring)",
        "at": approval["at"],
        "approved_by": "Ada Lovelace",
        "report": REPORT,
        "note": approval["note"],
    }
    ledger = [json.loads(line) for line in staged.ledger.read_text().splitlines()]
    assert ledger == [{"event": "approve", **approval, "replaced": "v1"}] == [change.record]
    assert staged.installed_at("v2") == T1
    # the next promotion keeps the approval in the history
    staged.stage(models["v3"], "v3", "retrained", report=REPORT)
    state = staged.approve("v3", "Grace Hopper", now=T1, commit=False).state
    assert state["history"][-1]["approval"] == approval and state["champion"]["approval"]["note"] == ""


@pytest.mark.parametrize(
    "version, by, message",
    [
        ("v3", "Ada", r"version 'v3' is not the staged one: 'v2' is staged \(since 2026-03-01T09:30:00\+00:00"),
        ("v2", "  ", r"needs the approver's name: --by NAME"),
        ("v2", "", r"needs the approver's name"),
    ],
)
def test_approve_refuses_clearly_and_changes_nothing(staged, version, by, message):
    before = snapshot(staged)
    with pytest.raises(RegistryError, match=message):
        staged.approve(version, by, "ok", commit=False)
    assert snapshot(staged) == before


def test_approve_without_a_staged_challenger_refuses(tmp_path, models):
    registry = Registry(tmp_path)
    with pytest.raises(RegistryError, match="nothing is staged for approval"):
        registry.approve("v2", "Ada", commit=False)
    registry.sync_release(models["v1"], "v1")
    registry.stage(models["v2"], "v2", "retrained", report=REPORT)
    registry.approve("v2", "Ada", commit=False)
    before = snapshot(registry)
    with pytest.raises(RegistryError, match="nothing is staged for approval"):  # approved once, not twice
        registry.approve("v2", "Ada", commit=False)
    assert snapshot(registry) == before


def test_approve_refuses_a_challenger_judged_against_another_champion(staged, models):
    """After a rollback (or a new release) the report compares the challenger with a model no longer in service."""
    staged.install(models["v3"], "v3", "new release from step 08")
    before = snapshot(staged)
    with pytest.raises(RegistryError, match="champion changed since v2 was staged .*judged against v1.* now v3"):
        staged.approve("v2", "Ada", commit=False)
    assert snapshot(staged) == before
    staged.staged.write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="changed since step 10 staged it"):
        staged.approve("v2", "Ada", commit=False)


def test_rollback_restores_the_previous_champion(tmp_path, models):
    registry = Registry(tmp_path)
    for version in ("v1", "v2", "v3"):
        registry.install(models[version], version, "release")
    state = registry.rollback(now=T1, commit=False).state
    assert registry.champion.read_bytes() == b"model v2"
    assert state["champion"]["version"] == "v2" and "file" not in state["champion"]
    assert state["events"][-1] == {"event": "rollback", "from": "v3", "to": "v2", "at": "2026-03-20T16:05:00+00:00"}
    assert any(p.read_bytes() == b"model v3" for p in registry.dir.glob("rolled_back_*.skops"))
    state = registry.rollback(commit=False).state
    assert registry.champion.read_bytes() == b"model v1" and state["champion"]["version"] == "v1"
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        registry.rollback(commit=False)
    assert registry.champion.read_bytes() == b"model v1"  # a refused rollback changes nothing


def test_rollback_after_an_approval_restores_the_previous_champion(staged, models):
    staged.approve("v2", "Ada", "ok", now=T0, commit=False)
    change = staged.rollback(by="Grace", note="complaints from the field", now=T1, commit=False)
    state = staged.state()
    assert staged.champion.read_bytes() == b"model v1" and state["champion"]["version"] == "v1"
    assert (state["champion"]["restored_at"], state["champion"]["restored_by"]) == (timestamp(T1), "Grace")
    assert state["champion"]["approved_by"] is None  # v1 went into service as step 08's first release
    assert state["events"][-1] == {
        "event": "rollback",
        "from": "v2",
        "to": "v1",
        "at": "2026-03-20T16:05:00+00:00",
        "by": "Grace",
        "note": "complaints from the field",
    }
    assert [json.loads(line)["event"] for line in staged.ledger.read_text().splitlines()] == ["approve", "rollback"]
    assert change.record["md5"] == file_md5(models["v1"])


def test_rollback_with_empty_history_raises(tmp_path, models):
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        Registry(tmp_path).rollback(commit=False)
    registry = Registry(tmp_path)
    registry.install(models["v1"], "1", "first release")
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        registry.rollback(commit=False)


def test_install_after_rollback_keeps_every_model(tmp_path, models):
    registry = Registry(tmp_path)
    registry.install(models["v1"], "1", "r")
    registry.install(models["v2"], "2", "r")
    registry.rollback(commit=False)
    state = registry.install(models["v3"], "3", "r")
    assert registry.champion.read_bytes() == b"model v3"
    assert [h["version"] for h in state["history"]] == ["1"]
    assert (registry.dir / state["history"][0]["file"]).read_bytes() == b"model v1"
    registry.rollback(commit=False)
    assert registry.champion.read_bytes() == b"model v1"


def test_sync_release_installs_each_release_once(tmp_path, models):
    registry = Registry(tmp_path)
    assert registry.sync_release(models["v1"], "1") == "first release from step 08"
    assert registry.sync_release(models["v1"], "1") is None
    assert registry.sync_release(models["v2"], "2") == "new release from step 08"
    state = registry.state()
    assert state["champion"]["version"] == "2" and [h["version"] for h in state["history"]] == ["1"]


def test_only_a_released_artifact_is_in_service(tmp_path, pipeline, make_metadata, spec):
    """A new release step 08 did not release leaves the champion in service; with no champion, nothing is."""

    def artifact(name, **meta):
        bundle = scoring.make_bundle(pipeline, 0.5, make_metadata(spec, **meta))
        return artifacts.save(bundle, tmp_path / "models" / name)

    registry, release = Registry(tmp_path), tmp_path / "models/release.skops"
    artifact("release.skops", version="1", releasable=False, reasons=["fairness gate failed"])
    assert registry.in_service(release) is None
    artifact("release.skops", version="1")
    assert registry.in_service(release) == release  # released: deployed before step 10 installs it
    registry.sync_release(release, "1")
    assert registry.in_service(release) == registry.champion
    artifact("release.skops", version="2", releasable=False, reasons=["quality gate failed"])
    assert registry.in_service(release) == registry.champion  # an unreleased new release never is
    artifact("release.skops", version="3")
    assert registry.in_service(release) == release


# --- the approval in git (and DVC) ----------------------------------------------------------------


def git(root, *args) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repository(tmp_path, monkeypatch, models):
    """A project in a git repository of its own (an identity, no user or system configuration), champion v1 and v2 staged."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.org")
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text("retraining: {require_approval: true}\n")
    git(root, "init", "--quiet", "--initial-branch=main")
    registry = Registry(root)
    registry.sync_release(models["v1"], "v1")
    registry.stage(models["v2"], "v2", "retrained", {"roc_auc": 0.91}, REPORT)
    return root


def committed(root) -> tuple[str, list[str]]:
    """The last commit's message and the files it changed."""
    return git(root, "log", "-1", "--format=%B"), git(root, "show", "--name-only", "--format=", "HEAD").split()


@needs_git
def test_approve_commits_the_approval_in_git(repository):
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "-m", "the project")
    (repository / "params.yaml").write_text("retraining: {require_approval: false}\n")
    git(repository, "add", "params.yaml")  # someone's staged work: not part of the approval
    change = Registry(repository).approve("v2", "Ada Lovelace", "gates and canary pass", now=T1)
    assert change.git.commit and change.git.commit == git(repository, "rev-parse", "--short", "HEAD").strip()
    message, files = committed(repository)
    assert message.startswith("Approve model v2 for service (by Ada Lovelace)")
    assert "gates and canary pass" in message and f"Report read: {REPORT}" in message
    assert "models/approvals.jsonl" in files and "models/registry/registry.json" in files
    assert "models/registry/champion.skops" in files and "params.yaml" not in files
    assert "models/registry/staged.skops" in files  # its removal: git tracked it here
    assert git(repository, "diff", "--cached", "--name-only").split() == ["params.yaml"]  # still staged
    assert git(repository, "status", "--porcelain", "--", "models").strip() == ""


@needs_git
def test_only_what_git_tracks_is_committed(repository):
    """In the generated project models/registry/ is DVC's (ignored by git): the commit holds the ledger."""
    (repository / "models/.gitignore").write_text("/registry\n")
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "-m", "the project")
    change = Registry(repository).approve("v2", "Ada", "ok")
    message, files = committed(repository)
    assert files == ["models/approvals.jsonl"] and change.git.detail.startswith(f"committed {change.git.commit}")
    assert json.loads((repository / "models/approvals.jsonl").read_text())["by"] == "Ada"
    change = Registry(repository).rollback(by="Grace", note="alarms")
    message, files = committed(repository)
    assert message.startswith("Roll back the model in service: v2 -> v1 (by Grace)") and "alarms" in message
    assert files == ["models/approvals.jsonl"] and change.git.commit


@needs_git
def test_a_failed_commit_still_records_the_approval(repository):
    hook = repository / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    change = Registry(repository).approve("v2", "Ada", "ok")
    assert change.git.commit is None and "not committed: git failed (hook says no)" == change.git.detail
    assert Registry(repository).state()["champion"]["approved_by"] == "Ada"


def in_a_repository(path) -> bool:
    if shutil.which("git") is None:
        return False
    return subprocess.run(["git", "rev-parse"], cwd=path, capture_output=True).returncode == 0


def test_outside_a_git_repository_nothing_is_committed(staged):
    if in_a_repository(staged.root):
        pytest.skip(f"the temporary directory {staged.root} is inside a git repository")
    change = staged.approve("v2", "Ada", "ok")
    assert change.git.commit is None and "not in a git repository" in change.git.detail
    assert staged.state()["champion"]["approved_by"] == "Ada"


@needs_git
def test_a_dvc_tracked_registry_is_recorded_in_dvc_lock(repository, monkeypatch):
    """As in the generated project: models/registry is a persisted output of a stage; the approval updates
    dvc.lock (nothing else of the stage changed), so `dvc status` stays clean and the commit holds dvc.lock."""
    from dvc.repo import Repo

    (repository / "dvc.yaml").write_text(
        "stages:\n  retraining:\n    cmd: echo\n    deps: [params.yaml]\n    outs:\n      - models/registry:\n          persist: true\n"
    )
    monkeypatch.chdir(repository)
    Repo.init(str(repository)).close()
    with Repo(str(repository)) as repo:
        repo.commit("retraining", force=True)  # as if step 10 had run
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "-m", "the project")
    lock_before = (repository / "dvc.lock").read_text()
    change = Registry(repository).approve("v2", "Ada", "ok")
    message, files = committed(repository)
    assert sorted(files) == ["dvc.lock", "models/approvals.jsonl"], change.git.detail
    assert "dvc.lock records the new registry" in change.git.detail
    assert (repository / "dvc.lock").read_text() != lock_before
    with Repo(str(repository)) as repo:
        assert repo.status() == {}
    (repository / "params.yaml").write_text("retraining: {require_approval: false}\n")  # an input changed since
    change = Registry(repository).rollback(by="Grace")
    assert "dvc.lock not updated: stage retraining changed since it ran (changed deps: params.yaml" in change.git.detail
    assert committed(repository)[1] == ["models/approvals.jsonl"]
