import pytest

from {{ cookiecutter.package_name }}.project import file_md5
from {{ cookiecutter.package_name }}.registry import Registry


@pytest.fixture
def models(tmp_path):
    paths = {}
    for name in ("v1", "v2", "v3"):
        paths[name] = tmp_path / "candidates" / f"{name}.skops"
        paths[name].parent.mkdir(exist_ok=True)
        paths[name].write_bytes(f"model {name}".encode())
    return paths


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


def test_rollback_restores_the_previous_champion(tmp_path, models):
    registry = Registry(tmp_path)
    for version in ("v1", "v2", "v3"):
        registry.install(models[version], version, "release")
    state = registry.rollback()
    assert registry.champion.read_bytes() == b"model v2"
    assert state["champion"]["version"] == "v2" and "file" not in state["champion"]
    assert state["events"][-1] == {"event": "rollback", "from": "v3", "to": "v2"}
    assert any(p.read_bytes() == b"model v3" for p in registry.dir.glob("rolled_back_*.skops"))
    state = registry.rollback()
    assert registry.champion.read_bytes() == b"model v1" and state["champion"]["version"] == "v1"
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        registry.rollback()
    assert registry.champion.read_bytes() == b"model v1"  # a refused rollback changes nothing


def test_rollback_with_empty_history_raises(tmp_path, models):
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        Registry(tmp_path).rollback()
    registry = Registry(tmp_path)
    registry.install(models["v1"], "1", "first release")
    with pytest.raises(RuntimeError, match="nothing to roll back to"):
        registry.rollback()


def test_install_after_rollback_keeps_every_model(tmp_path, models):
    registry = Registry(tmp_path)
    registry.install(models["v1"], "1", "r")
    registry.install(models["v2"], "2", "r")
    registry.rollback()
    state = registry.install(models["v3"], "3", "r")
    assert registry.champion.read_bytes() == b"model v3"
    assert [h["version"] for h in state["history"]] == ["1"]
    assert (registry.dir / state["history"][0]["file"]).read_bytes() == b"model v1"
    registry.rollback()
    assert registry.champion.read_bytes() == b"model v1"


def test_sync_release_installs_each_release_once(tmp_path, models):
    registry = Registry(tmp_path)
    assert registry.sync_release(models["v1"], "1") == "first release from step 08"
    assert registry.sync_release(models["v1"], "1") is None
    assert registry.sync_release(models["v2"], "2") == "new release from step 08"
    state = registry.state()
    assert state["champion"]["version"] == "2" and [h["version"] for h in state["history"]] == ["1"]
