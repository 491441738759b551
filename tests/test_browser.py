"""JupyterLab as a user sees it: a generated notebook opened in a real (headless) Chromium, Run All
from the menu, and the page checked: every code cell ran, no error output, the figures inline.
Then saved from the menu, and what the run wrote compared with what ``dvc repro`` wrote: the
cells' outputs and the step's report files, byte for byte (issue 18: a notebook run in
JupyterLab, with papermill or under ``dvc repro`` writes the same bytes).

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``CHROMIUM``) and Playwright's Python API
(requirements-dev.txt); Playwright never downloads a browser here. ``make test`` installs
chromium with apt-get when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import load_yaml, report_dir, step_name
from test_team import jupyter_lab

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Step 01 runs in seconds (no model fit) and draws a figure; a loaded machine makes step 04 (model fits) take minutes.
STAGE = "business_case"
# JupyterLab settings of a user who wants every cell in the page (no windowing) and no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
PROMPTS = "[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]"
KERNEL_READY = "() => / \\| Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent || '')"
STARTED = f"() => {PROMPTS}.some(p => p.textContent.trim() !== '[ ]:')"
FINISHED = f"""() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'
    && !{PROMPTS}.some(p => p.textContent.trim() === '[*]:')"""


def comparable(cell: dict) -> list[dict]:
    """A code cell's outputs without the execution count (papermill's injected cell shifts it by one)."""
    return [{k: v for k, v in output.items() if k != "execution_count"} for output in cell.get("outputs", [])]


def code_cells(path: Path) -> list[dict]:
    notebook = nbformat.read(path, as_version=4)
    return [c for c in notebook.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def written_by_the_step(project: Path, stage: str) -> dict[str, bytes]:
    """The files the stage's notebook writes (its dvc.yaml outs and plots; not papermill's executed copy)."""
    declared = load_yaml(project / "dvc.yaml")["stages"][stage]
    paths = [next(iter(o)) if isinstance(o, dict) else o for o in declared.get("outs", []) + declared.get("plots", [])]
    files = [f for p in map(project.joinpath, paths) for f in (sorted(p.rglob("*")) if p.is_dir() else [p])]
    return {str(f.relative_to(project)): f.read_bytes() for f in files if f.is_file() and f.suffix != ".ipynb"}


@pytest.mark.e2e
def test_run_all_in_jupyterlab_in_a_browser(reproduced_project, tmp_path):
    assert CHROMIUM.is_file(), f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make test does it as root)"
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in requirements-dev.txt")
    project = tmp_path / "project"
    shutil.copytree(reproduced_project, project, symlinks=True)
    name = step_name(STAGE)
    notebook, reports = f"notebooks/{name}.ipynb", report_dir(project, STAGE)
    dvc_written, dvc_cells = written_by_the_step(project, STAGE), code_cells(reports / f"{name}.ipynb")
    figures = sum("image/png" in o.get("data", {}) for c in dvc_cells for o in c["outputs"])
    assert figures, f"{name} under dvc repro drew no figure: pick a notebook that does"
    for written in dvc_written:  # what Lab's run writes must be written anew, not left from dvc repro
        (project / written).unlink()
    runtime = tmp_path / "runtime"
    for settings_file, settings in LAB_SETTINGS.items():
        target = runtime / "config" / "lab" / "user-settings" / settings_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings))

    with jupyter_lab(project, runtime) as (base, token), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{base}/lab/tree/{notebook}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
            page.wait_for_function(KERNEL_READY)
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click(".lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_function(STARTED)
            page.wait_for_function(FINISHED, timeout=600_000, polling=500)
            panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            error_text = errors.all_inner_texts()
            images = panel.locator(".jp-OutputArea-output img")
            shown = images.evaluate_all("imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")
            page.screenshot(path=str(tmp_path / "run_all.png"), full_page=True)
            page.click(".lm-MenuBar-item:has-text('File')")
            page.click(".lm-Menu-item[data-command='docmanager:save']")
            page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')")
        finally:
            browser.close()

    assert not error_text, f"{name} shows error output after Run All in JupyterLab:\n" + "\n".join(error_text)[-4000:]
    assert len(prompts) == len(dvc_cells), f"the page shows {len(prompts)} code cells, the notebook has {len(dvc_cells)}"
    assert [p.strip() for p in prompts] == [f"[{i}]:" for i in range(1, len(prompts) + 1)], prompts
    assert shown == figures, f"{shown} figures shown inline in JupyterLab, {figures} in dvc repro's executed notebook"

    lab_cells = code_cells(project / notebook)
    assert len(lab_cells) == len(dvc_cells)
    differ = [i for i, (lab, ran) in enumerate(zip(lab_cells, dvc_cells, strict=True)) if comparable(lab) != comparable(ran)]
    assert not differ, "outputs saved from JupyterLab differ from dvc repro's in code cells " + "; ".join(
        f"{i + 1}: {json.dumps(comparable(lab_cells[i]))[:600]} against {json.dumps(comparable(dvc_cells[i]))[:600]}"
        for i in differ
    )
    lab_written = written_by_the_step(project, STAGE)
    assert lab_written.keys() == dvc_written.keys(), f"JupyterLab's run wrote {sorted(lab_written)}, dvc repro {sorted(dvc_written)}"
    changed = sorted(k for k in dvc_written if lab_written[k] != dvc_written[k])
    assert not changed, f"files written by the JupyterLab run differ from dvc repro's: {changed}"
