"""The same bytes wherever and however often a step runs: forced reruns, another MPLBACKEND."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import changed_stages, dvc

pytestmark = pytest.mark.e2e
# Run-to-run measurements: files of their own that no stage depends on (step 07's and the canary's latencies).
MEASUREMENTS = {"reports/metrics/latency.json", "reports/metrics/canary_latency.json"}


@pytest.fixture()
def project_copy(reproduced_project, tmp_path):
    copy = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True)
    return copy


def results(project: Path) -> dict[str, bytes]:
    """Every file under reports/ and models/ but the run-to-run measurements, by path."""
    files = [p for folder in ("reports", "models") for p in sorted((project / folder).rglob("*")) if p.is_file()]
    return {str(p.relative_to(project)): p.read_bytes() for p in files if str(p.relative_to(project)) not in MEASUREMENTS}


def test_a_forced_repro_rewrites_every_result_byte_for_byte(project_copy):
    before = results(project_copy)
    latency = json.loads((project_copy / "reports/metrics/latency.json").read_text())
    assert latency["p99_latency_ms"] > 0, "step 07 measured no latency"
    dvc(project_copy, "repro", "--force")
    after = results(project_copy)
    assert after.keys() == before.keys()
    changed = [path for path in before if after[path] != before[path]]
    assert not changed, f"a forced repro changed {len(changed)} files: {changed[:10]}"
    assert changed_stages(project_copy) == ""


def test_rerunning_deployment_leaves_the_later_steps_up_to_date(project_copy):
    dvc(project_copy, "repro", "--force", "--single-item", "deployment")
    status = changed_stages(project_copy)
    assert status == "", f"a rerun of step 07 invalidated later stages:\n{status}"


def images(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code" for o in c["outputs"])


@pytest.mark.parametrize("warm", ["1", "0"])
def test_figures_are_drawn_whatever_mplbackend_the_user_exported(project_copy, warm):
    executed = project_copy / "reports/03_data_selection/03_data_selection.ipynb"
    expected = images(executed)
    assert expected > 0
    before = executed.read_bytes()
    dvc(project_copy, "repro", "--force", "--single-item", "data_selection", env={"MPLBACKEND": "Agg", "WARM_KERNELS": warm})
    assert images(executed) == expected
    assert executed.read_bytes() == before
