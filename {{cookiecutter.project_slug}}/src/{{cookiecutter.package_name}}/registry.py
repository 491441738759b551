"""A small file-based model registry: the champion, a challenger awaiting approval, the history, rollback. Adapt with care: the service, steps 09 and 10, `approve` and `rollback` rely on it.

``models/registry/champion.skops`` is the model in service; every model it
replaces is kept under ``models/registry/history/``; ``registry.json`` records
each change (``events``), and every champion entry says when it was installed
(``installed_at``, UTC, ISO 8601) and by whose approval (``approved_by``: None for
step 08's releases and for promotions made without approval).

A person signs the promotion of a retrained model (``retraining.require_approval``,
on by default). Step 10 then does not install a challenger that passed its gates: it
stages it, and a person who read the report installs it::

    registry.stage(challenger_file, version, reason, metrics, report="reports/10_retraining/retraining_decision.json")
    {{ cookiecutter.package_name }} approve VERSION --by NAME --note "read the report; gates and canary pass"

:meth:`Registry.stage` keeps the challenger as ``models/registry/staged.skops`` and the
``staged`` entry (version, md5, when, reason, metrics, the report to read, the
champion it was judged against); nothing in service changes, and a later stage replaces
it. :meth:`Registry.approve` installs it (the champion goes to the history as with any
install) and records the approval (who, when, which version, which report, the note)
in the champion entry, the events, the history when it is replaced, and the git-tracked
ledger ``models/approvals.jsonl`` (one JSON line per approval or rollback). It refuses,
changing nothing, when nothing is staged, when the version is not the staged one, when
no approver is named, when the staged file changed, and when the champion changed since
the challenger was judged against it (rerun step 10). :func:`approval_command` is the
command step 10 shows while a challenger awaits approval. The first release of a new
project (step 08's, installed by :meth:`sync_release`) goes into service without one.

Roll back to the previous champion with one command (``--by NAME`` records who did)::

    {{ cookiecutter.package_name }} rollback --by NAME

In a git repository, ``approve`` and ``rollback`` commit what they changed that git
tracks (:func:`record_in_git`). In the generated project the whole of
``models/registry/`` is a DVC output of step 10 (ignored by git): when nothing else
of that stage changed since it ran, ``dvc commit`` records the new registry in
``dvc.lock`` (so ``dvc status`` stays clean, a ``dvc repro`` does not rerun step 10
for it, and ``dvc push`` shares it), and the commit holds ``dvc.lock`` and the ledger.
When git is absent or fails, the registry still records the change and the command says so.

Only a released artifact is in service (:meth:`Registry.in_service`, asked through
:func:`.scoring.default_model_path` by the service, ``predict`` and step 09): a new
release of step 08 counts only when its metadata says ``releasable``.

Model age is measured from the registry, not declared: :func:`model_age_days` (the
champion's age at a given time, e.g. the newest monitored decision, so that the same data
give the same age) and :meth:`Registry.installed_at`. A rollback restores a model with
its own install time: it is no younger for having been restored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .project import file_md5, read_json, read_yaml, write_json, write_text

REGISTRY = Path("models/registry")
LEDGER = Path("models/approvals.jsonl")  # outside the DVC output: git tracks it
DECISION_REPORT = "reports/10_retraining/retraining_decision.json"


class RegistryError(RuntimeError):
    """A registry operation was refused; nothing was changed."""


class NoModelInService(FileNotFoundError):
    """No released model is in service (no champion, and step 08 did not release its model)."""


def timestamp(now: datetime | None = None) -> str:
    """``now`` (default: this instant) in UTC, ISO 8601 to the second; a naive time is taken as UTC."""
    now = now or datetime.now(UTC)
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def parse_time(stamp: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (or a datetime, such as a pandas Timestamp) as an aware UTC datetime; UTC when it names no zone."""
    if stamp is None or stamp == "":
        return None
    when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def install_time(entry: dict[str, Any] | None) -> datetime | None:
    """When the registry installed the model of ``entry`` (a champion or history entry); None if not recorded."""
    return parse_time((entry or {}).get("installed_at"))


def model_age_days(state: dict[str, Any], at: str | datetime) -> float | None:
    """The champion's age in days at ``at``, from when the registry installed it.

    ``state`` is :meth:`Registry.state`. None when there is no champion or the registry
    predates install times (then the age is unknown, not zero). Pass a time taken from the
    data (e.g. the newest decision monitored) rather than the clock, so that the same data
    give the same age. A time before the install gives 0: the model had served nothing yet.
    """
    since = install_time(state.get("champion"))
    if since is None:
        return None
    return max(0.0, (parse_time(at) - since).total_seconds() / 86400)


def unreleased_reason(path: Path) -> str | None:
    """Why the artifact at ``path`` was not released by its pipeline (None when its metadata says ``releasable``)."""
    import zipfile

    from .scoring import load_bundle

    try:
        meta = load_bundle(path, allow_unreleased=True)["metadata"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return f"it cannot be read as a deployable artifact ({exc})"
    if meta.get("releasable", False):
        return None
    return "; ".join(meta.get("reasons") or []) or "no reason recorded"


def approval_command(version: str) -> str:
    """The command a reviewer runs to put the staged ``version`` into service (shown by step 10)."""
    return f'{{ cookiecutter.package_name }} approve {version} --by NAME --note "what you checked"'


@dataclass(frozen=True)
class GitRecord:
    """What :func:`record_in_git` did: the commit made (short hash) or None, and what happened, in words."""

    commit: str | None
    detail: str


@dataclass(frozen=True)
class Change:
    """An approval or a rollback: the registry after it, the record kept of it, and its git commit."""

    state: dict[str, Any]
    record: dict[str, Any]
    git: GitRecord


class Registry:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / REGISTRY
        self.champion = self.dir / "champion.skops"
        self.staged = self.dir / "staged.skops"
        self.history = self.dir / "history"
        self.log = self.dir / "registry.json"
        self.ledger = self.root / LEDGER

    def state(self) -> dict[str, Any]:
        if self.log.is_file():
            return read_json(self.log)
        return {"champion": None, "history": [], "events": []}

    def ensure(self) -> None:
        """Create the registry (empty, no champion) if it does not exist yet."""
        if not self.log.is_file():
            write_json(self.log, self.state())

    def _archive_champion(self, state: dict[str, Any]) -> None:
        if not self.champion.is_file():
            return
        self.history.mkdir(parents=True, exist_ok=True)
        entry = dict(state["champion"] or {"version": "unknown"})
        entry["file"] = f"history/{len(state['history']) + 1:03d}_{file_md5(self.champion)[:8]}.skops"
        shutil.copy2(self.champion, self.dir / entry["file"])
        state["history"].append(entry)

    def install(
        self,
        model_file: Path,
        version: str,
        reason: str,
        metrics: dict[str, Any] | None = None,
        *,
        approval: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Make ``model_file`` the champion, keeping the current one in the history.

        Records when (``installed_at``) and by whose approval (``approved_by``, with the whole
        ``approval`` when there is one; None for installs that need none).
        """
        state = self.state()
        self._archive_champion(state)
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_file, self.champion)
        at, by = timestamp(now), (approval or {}).get("by")
        state["champion"] = {
            "version": version,
            "md5": file_md5(self.champion),
            "reason": reason,
            "metrics": metrics or {},
            "installed_at": at,
            "approved_by": by,
        } | ({"approval": approval} if approval else {})
        event = {"event": "install", "version": version, "reason": reason, "at": at, "approved_by": by}
        state["events"].append(event | ({"report": approval["report"], "note": approval["note"]} if approval else {}))
        write_json(self.log, state)
        return state

    def sync_release(self, release_file: Path, version: str) -> str | None:
        """Install a new release from step 08 as champion; returns why, or None if it is already known."""
        state = self.state()
        md5 = file_md5(release_file)
        if state.get("release_md5") == md5:
            return None
        reason = "first release from step 08" if state["champion"] is None else "new release from step 08"
        state = self.install(release_file, version, reason)
        state["release_md5"] = md5
        write_json(self.log, state)
        return reason

    def in_service(self, release: Path) -> Path | None:
        """The released model in service: the champion, unless step 08 released a model the registry has not installed.

        Step 10 installs such a release (:meth:`sync_release`) before it challenges it; from the moment
        step 08 writes it, it is the model deployed, provided step 08 released it (its metadata says
        ``releasable``). A release step 08 did not release is never in service: the champion stays,
        and without a champion nothing is (None). The service, ``predict``, step 09 and step 10 all
        ask here (through :func:`.scoring.default_model_path`), so the model monitored and challenged
        is the model served.
        """
        champion = self.champion if self.champion.is_file() else None
        if not release.is_file() or self.state().get("release_md5") == file_md5(release):
            return champion
        return release if unreleased_reason(release) is None else champion

    def stage(
        self,
        model_file: Path,
        version: str,
        reason: str,
        metrics: dict[str, Any] | None = None,
        report: str = DECISION_REPORT,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Keep a challenger that passed step 10's gates as *staged*, awaiting approval; nothing in service changes.

        ``report`` is what a reviewer should read before approving (relative to the project).
        A staged challenger replaces any earlier one; staging the one already staged (same version,
        same bytes: a forced rerun of step 10) changes nothing. Returns the registry's state.
        """
        state = self.state()
        staged = state.get("staged") or {}
        if staged.get("version") == version and self.staged.exists() and staged.get("md5") == file_md5(model_file):
            return state
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_file, self.staged)
        champion = state.get("champion") or {}
        at = timestamp(now)
        state["staged"] = {
            "version": version,
            "md5": file_md5(self.staged),
            "staged_at": at,
            "reason": reason,
            "metrics": metrics or {},
            "report": str(report),
            "judged_against": {"version": champion.get("version"), "md5": champion.get("md5")},
        }
        state["events"].append(
            {"event": "stage", "version": version, "reason": reason, "at": at, "report": str(report)}
        )
        write_json(self.log, state)
        return state

    def awaiting_approval(self) -> dict[str, Any] | None:
        """The staged challenger's entry (version, md5, staged_at, reason, metrics, report), or None."""
        return self.state().get("staged")

    def _staged_entry(self, state: dict[str, Any], version: str, by: str) -> dict[str, Any]:
        """The staged entry ``version`` names, checked; raises RegistryError saying why it cannot be approved."""
        if not by.strip():
            raise RegistryError("an approval needs the approver's name: --by NAME")
        staged = state.get("staged")
        if not staged:
            raise RegistryError(
                "nothing is staged for approval: step 10 stages a challenger that passes its gates "
                f"(see {DECISION_REPORT})"
            )
        if version != staged["version"]:
            raise RegistryError(
                f"version {version!r} is not the staged one: {staged['version']!r} is staged "
                f"(since {staged['staged_at']}; report {staged['report']})"
            )
        if not self.staged.is_file() or file_md5(self.staged) != staged["md5"]:
            raise RegistryError(f"{self.staged} is missing or changed since step 10 staged it: rerun step 10")
        against, champion = staged.get("judged_against") or {}, state.get("champion") or {}
        if against.get("md5") != champion.get("md5"):
            raise RegistryError(
                f"the champion changed since {version} was staged (judged against {against.get('version')}, "
                f"the champion is now {champion.get('version')}): rerun step 10 to challenge the model in service"
            )
        return staged

    def approve(
        self, version: str, by: str, note: str = "", now: datetime | None = None, commit: bool = True
    ) -> Change:
        """Install the staged ``version`` as champion on ``by``'s approval, recorded in the registry, the ledger and git.

        Refuses (RegistryError, nothing changed) when nothing is staged, when ``version`` is not the
        staged one, when ``by`` is empty, when the staged file changed, or when the champion changed
        since the challenger was judged against it. With ``commit``, commits what git tracks of the
        change (:func:`record_in_git`); the returned :class:`Change` says whether it did.
        """
        state = self.state()
        staged = self._staged_entry(state, version, by)
        previous = (state.get("champion") or {}).get("version")
        approval = {
            "version": version,
            "by": by.strip(),
            "at": timestamp(now),
            "report": staged["report"],
            "note": note.strip(),
            "md5": staged["md5"],
        }
        state = self.install(self.staged, version, staged["reason"], staged["metrics"], approval=approval, now=now)
        state.pop("staged")
        write_json(self.log, state)
        self.staged.unlink()
        record = {"event": "approve", **approval, "replaced": previous}
        self._append_ledger(record)
        git = GitRecord(None, "not committed (commit=False)")
        if commit:
            git = record_in_git(self.root, approval_message(record), self._approved_paths(state))
        return Change(state, record, git)

    def rollback(
        self, by: str | None = None, note: str = "", now: datetime | None = None, commit: bool = True
    ) -> Change:
        """Restore the most recent previous champion; the current one is discarded from service but kept.

        Records when and, if given, by whom and why (``note``) in the events and the ledger; the
        restored model keeps its own ``installed_at``. With ``commit``, commits what git tracks of the
        change, as :meth:`approve` does.
        """
        state = self.state()
        if not state["history"]:
            raise RegistryError(f"nothing to roll back to: {self.history} is empty")
        previous = state["history"].pop()
        current = dict(state["champion"] or {})
        discarded = self.dir / f"rolled_back_{file_md5(self.champion)[:8]}.skops"
        shutil.copy2(self.champion, discarded)
        shutil.copy2(self.dir / previous["file"], self.champion)
        at, by = timestamp(now), (by or "").strip() or None
        restored = {k: v for k, v in previous.items() if k != "file"}
        state["champion"] = restored | {"restored_at": at, "restored_by": by}
        event = {"event": "rollback", "from": current.get("version"), "to": previous.get("version"), "at": at}
        event |= ({"by": by} if by else {}) | ({"note": note.strip()} if note.strip() else {})
        state["events"].append(event)
        write_json(self.log, state)
        record = event | {"md5": restored.get("md5")}
        self._append_ledger(record)
        git = GitRecord(None, "not committed (commit=False)")
        if commit:
            git = record_in_git(self.root, rollback_message(record), [self.log, self.champion, discarded, self.ledger])
        return Change(state, record, git)

    def installed_at(self, version: str | None = None) -> datetime | None:
        """When the champion (or the latest install of ``version``, champion or history) was installed; None if unknown."""
        state = self.state()
        entries = [state.get("champion") or {}, *reversed(state.get("history", []))]
        for entry in entries:
            if entry and (version is None or entry.get("version") == version):
                return install_time(entry)
        return None

    def _append_ledger(self, record: dict[str, Any]) -> None:
        """One JSON line per approval or rollback in the git-tracked ledger (the registry's own log is DVC's)."""
        before = self.ledger.read_text(encoding="utf-8") if self.ledger.is_file() else ""
        write_text(self.ledger, before + json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")

    def _approved_paths(self, state: dict[str, Any]) -> list[Path]:
        """The files an approval writes or removes (git commits those it tracks)."""
        newest = [self.dir / state["history"][-1]["file"]] if state["history"] else []
        return [self.log, self.champion, self.staged, *newest, self.ledger]


def approval_message(record: dict[str, Any]) -> str:
    """The git commit message of an approval: the version, the approver and the note."""
    body = record["note"] or "(no note)"
    return (
        f"Approve model {record['version']} for service (by {record['by']})\n\n{body}\n\n"
        f"Report read: {record['report']}\nApproved at: {record['at']} (UTC)\nModel md5: {record['md5']}\n"
        f"Replaces: {record['replaced']}\n"
    )


def rollback_message(record: dict[str, Any]) -> str:
    """The git commit message of a rollback: from which version to which, by whom and why."""
    who = f" (by {record['by']})" if record.get("by") else ""
    return f"Roll back the model in service: {record['from']} -> {record['to']}{who}\n\n{record.get('note') or '(no note)'}\n"


def _run(cmd: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)


def _failure(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"


def _registry_stage(root: Path) -> str | None:
    """The DVC stage that has ``models/registry`` as an output in dvc.lock (step 10's), if DVC tracks it."""
    lock = root / "dvc.lock"
    stages = ((read_yaml(lock) or {}).get("stages") or {}) if lock.is_file() else {}
    for name, stage in stages.items():
        if any(out.get("path") == REGISTRY.as_posix() for out in stage.get("outs") or []):
            return name
    return None


def _only_registry_changed(changes: list[Any]) -> bool:
    """Whether ``dvc status STAGE``'s changes are the registry output's alone (modified)."""
    return bool(changes) and all(
        isinstance(c, dict) and set(c) == {"changed outs"} and c["changed outs"] == {REGISTRY.as_posix(): "modified"}
        for c in changes
    )


def _summary(changes: list[Any]) -> str:
    """``dvc status``'s changes of one stage in a few words: what changed, by kind."""
    kinds = [c.items() if isinstance(c, dict) else [(str(c), [])] for c in changes]
    return "; ".join(f"{kind}: {', '.join(map(str, paths))}".rstrip(": ") for k in kinds for kind, paths in k)


@contextlib.contextmanager
def _dvc_repo(root: Path):
    """DVC's repository at ``root``, from ``root`` (targets are relative to it), its progress messages kept quiet."""
    from dvc.repo import Repo

    log = logging.getLogger("dvc")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with contextlib.chdir(root), Repo(str(root)) as repo:
            yield repo
    finally:
        log.setLevel(level)


def record_in_dvc(root: Path) -> tuple[bool, str]:
    """Record the changed registry in dvc.lock (``dvc commit``) when nothing else of its stage changed.

    Returns whether dvc.lock was updated, and what happened in words ("" when DVC does not track the
    registry). Other changes (inputs edited since the stage ran) are left to ``dvc repro``: committing
    them would record outputs the stage never produced from those inputs. DVC's own API, in this
    process (one import instead of a command per call).
    """
    stage = _registry_stage(root)
    if stage is None:
        return False, ""
    try:
        from dvc.exceptions import DvcException
    except ImportError:
        return False, "dvc.lock not updated: dvc is not installed"
    try:
        with _dvc_repo(root) as repo:
            changes = repo.status(targets=[stage]).get(stage, [])
            if not _only_registry_changed(changes):
                return False, (
                    f"dvc.lock not updated: stage {stage} changed since it ran ({_summary(changes)}); "
                    "the next `dvc repro` records the registry with it"
                    if changes
                    else ""
                )
            repo.commit(stage, force=True)
    except DvcException as exc:
        return False, f"dvc.lock not updated ({exc})"
    return True, "dvc.lock records the new registry (`dvc push` shares it)"


def _git_paths(root: Path, paths: list[Path], git: str) -> list[str]:
    """Of ``paths``, those git tracks or would track (existing and not ignored), relative to ``root``."""
    relative = [p.relative_to(root).as_posix() for p in paths]
    tracked = set(_run([git, "ls-files", "--", *relative], root).stdout.splitlines())
    existing = [r for r in relative if (root / r).exists() and r not in tracked]
    ignored = set(_run([git, "check-ignore", "--", *existing], root).stdout.splitlines()) if existing else set()
    return [r for r in relative if r in tracked or (r in existing and r not in ignored)]


def record_in_git(root: Path, message: str, paths: list[Path]) -> GitRecord:
    """Commit, with ``message``, what of ``paths`` git tracks (and dvc.lock when DVC tracks the registry).

    Commits those paths only (``git commit -- PATHS``): whatever else is staged stays staged. A
    dvc.lock that had other uncommitted changes is updated but left out of the commit. Never raises:
    without git, outside a repository or when git fails, the commit is not made and ``detail`` says why.
    """
    git = shutil.which("git")
    if git is None:
        return GitRecord(None, "not committed: git not found")
    if _run([git, "rev-parse", "--git-dir"], root).returncode:
        return GitRecord(None, f"not committed: {root} is not in a git repository")
    lock = root / "dvc.lock"
    lock_was_clean = not any(  # committed, and as committed: an approval commit may carry it
        _run([git, *cmd, "--", "dvc.lock"], root).returncode
        for cmd in (["ls-files", "--error-unmatch"], ["diff", "--quiet", "HEAD"])
    )
    updated, dvc_note = record_in_dvc(root)
    notes = [dvc_note] if dvc_note else []
    if updated and not lock_was_clean:
        notes.append("dvc.lock had other uncommitted changes: left out of this commit")
    targets = _git_paths(root, [*paths, *([lock] if updated and lock_was_clean else [])], git)
    if not targets:
        return GitRecord(None, "; ".join(["not committed: git tracks none of the files changed", *notes]))
    added = _run([git, "add", "--all", "--", *targets], root)
    done = added if added.returncode else _run([git, "commit", "--quiet", "-m", message, "--", *targets], root)
    if done.returncode:
        return GitRecord(None, "; ".join([f"not committed: git failed ({_failure(done)})", *notes]))
    sha = _run([git, "rev-parse", "--short", "HEAD"], root).stdout.strip()
    return GitRecord(sha, "; ".join([f"committed {sha}: {', '.join(targets)}", *notes]))
