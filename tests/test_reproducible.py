"""The same bytes however often a step runs: forced reruns, another MPLBACKEND (and wherever: test_generated_ci)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import changed_stages, dvc, pipeline_results

pytestmark = pytest.mark.e2e


@pytest.fixture()
def project_copy(reproduced_project, tmp_path):
    copy = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True)
    return copy


# A whole chain's bytes wherever it runs: tests/test_generated_ci.py compares a fresh clone's `dvc repro`
# (another directory, another process tree) with the shared reproduced project, file by file.
def test_a_forced_rerun_of_step_10_keeps_its_registry_and_every_result_byte_for_byte(project_copy):
    """Step 10 keeps models/registry between runs (persist): a rerun finds its own last run there."""
    before = pipeline_results(project_copy)
    registry = (project_copy / "models/registry/registry.json").read_bytes()
    latency = json.loads((project_copy / "reports/metrics/latency.json").read_text())
    assert latency["p99_latency_ms"] > 0, "step 07 measured no latency"
    dvc(project_copy, "repro", "--force", "--single-item", "retraining")
    after = pipeline_results(project_copy)
    assert after.keys() == before.keys()
    changed = [path for path in before if after[path] != before[path]]
    assert not changed, f"a forced rerun of step 10 changed {len(changed)} files: {changed[:10]}"
    assert (project_copy / "models/registry/registry.json").read_bytes() == registry, "the rerun staged anew"
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
