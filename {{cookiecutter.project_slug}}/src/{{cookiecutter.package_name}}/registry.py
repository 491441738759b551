"""A small file-based model registry: the champion, its predecessors, and rollback. Adapt with care: the service, steps 09 and 10 and `rollback` rely on it.

``models/registry/champion.skops`` is the model in service; every model it
replaces is kept under ``models/registry/history/``; ``registry.json`` records
each change with its reason. Roll back to the previous champion with one command:

    {{ cookiecutter.package_name }} rollback
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .project import file_md5, read_json, write_json

REGISTRY = Path("models/registry")


class Registry:
    def __init__(self, root: Path):
        self.dir = root / REGISTRY
        self.champion = self.dir / "champion.skops"
        self.history = self.dir / "history"
        self.log = self.dir / "registry.json"

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
        self, model_file: Path, version: str, reason: str, metrics: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Make ``model_file`` the champion, keeping the current one in the history."""
        state = self.state()
        self._archive_champion(state)
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_file, self.champion)
        state["champion"] = {
            "version": version,
            "md5": file_md5(self.champion),
            "reason": reason,
            "metrics": metrics or {},
        }
        state["events"].append({"event": "install", "version": version, "reason": reason})
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

    def in_service(self, release: Path) -> Path:
        """The model in service: the champion, unless step 08 released a model the registry has not installed.

        Step 10 installs such a release (:meth:`sync_release`) before it challenges it; from the moment
        step 08 writes it, it is the model deployed. The service, ``predict``, step 09 and step 10 all
        ask here (through :func:`.scoring.default_model_path`), so the model monitored and challenged
        is the model served.
        """
        if not self.champion.is_file():
            return release
        if release.is_file() and self.state().get("release_md5") != file_md5(release):
            return release
        return self.champion

    def rollback(self) -> dict[str, Any]:
        """Restore the most recent previous champion; the current one is discarded from service but kept."""
        state = self.state()
        if not state["history"]:
            raise RuntimeError(f"nothing to roll back to: {self.history} is empty")
        previous = state["history"].pop()
        current = dict(state["champion"] or {})
        shutil.copy2(self.champion, self.dir / f"rolled_back_{file_md5(self.champion)[:8]}.skops")
        shutil.copy2(self.dir / previous["file"], self.champion)
        state["champion"] = {k: v for k, v in previous.items() if k != "file"}
        state["events"].append({"event": "rollback", "from": current.get("version"), "to": previous.get("version")})
        write_json(self.log, state)
        return state
