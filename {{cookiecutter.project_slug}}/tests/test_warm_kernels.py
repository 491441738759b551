import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from {{ cookiecutter.package_name }} import warm_kernels
from {{ cookiecutter.package_name }}.warm_kernels import ForkedKernel

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="warm kernels are forked: Linux only")


def test_enabled_unless_switched_off(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert warm_kernels.enabled({})
    assert warm_kernels.enabled({"WARM_KERNELS": "1"})
    for off in ("0", "false", "No", " off "):
        assert not warm_kernels.enabled({"WARM_KERNELS": off})
    monkeypatch.setattr(sys, "platform", "win32")
    assert not warm_kernels.enabled({})


def test_server_key_follows_the_environment_but_not_the_stage(tmp_path):
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "1", "DVC_STAGE": "modeling"}
    key = warm_kernels.server_key(tmp_path, env)
    assert warm_kernels.server_key(tmp_path, {**env, "DVC_STAGE": "monitoring", "PYTEST_CURRENT_TEST": "x"}) == key
    assert warm_kernels.server_key(tmp_path, {**env, "OMP_NUM_THREADS": "2"}) != key
    assert warm_kernels.server_key(tmp_path / "other", env) != key


def test_kernel_arguments_only_for_this_interpreter():
    ours = [sys.executable, "-m", "ipykernel_launcher", "-f", "k.json", "--HistoryManager.hist_file=:memory:"]
    assert warm_kernels.kernel_arguments(ours) == ["-f", "k.json", "--HistoryManager.hist_file=:memory:"]
    assert warm_kernels.kernel_arguments(["/other/python", *ours[1:]]) is None
    assert warm_kernels.kernel_arguments([sys.executable, "-m", "other_kernel", "-f", "k.json"]) is None
    assert warm_kernels.kernel_arguments(["julia", "kernel.jl", "k.json"]) is None


def test_modules_to_preload_are_the_top_level_imports_of_package_and_notebooks(tmp_path):
    package, notebooks = tmp_path / "pkg", tmp_path / "notebooks"
    package.mkdir()
    notebooks.mkdir()
    (package / "a.py").write_text(
        "from __future__ import annotations\nimport json\nfrom scipy import stats\n"
        f"from . import b\nfrom {warm_kernels.PACKAGE}.project import STEPS\n"
        "def f():\n    import papermill\n"
    )
    (package / "broken.py").write_text("def (:\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\nimport nothing_after_a_magic"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom sklearn.metrics import roc_curve, auc"),
        nbformat.v4.new_markdown_cell("import not_code"),
    ]
    nbformat.write(notebook, notebooks / "01_step.ipynb")
    assert warm_kernels.modules_to_preload(package, notebooks) == [
        ("json", ()),
        ("matplotlib.pyplot", ()),
        ("scipy", ("stats",)),
        ("sklearn.metrics", ("auc", "roc_curve")),
    ]


def test_socket_directory_is_private():
    directory = warm_kernels.socket_directory()
    assert directory.stat().st_uid == os.getuid()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_forked_kernel_process_handle():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    handle = ForkedKernel(child.pid)
    assert handle.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        handle.wait(timeout=0.1)
    handle.kill()
    child.wait(timeout=10)  # reaped here, as the server reaps its kernels
    assert handle.wait(timeout=5) == 0
    handle.kill()  # a kernel already gone is not an error


PROBE = """
import json, os, random, sys
preloaded = "pandas" in sys.modules
import matplotlib.pyplot as plt
import numpy as np
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [2, 0, 1])
ax.set_title("probe")
plt.show()
print(json.dumps({
    "pid": os.getpid(), "parent": os.getppid(), "cwd": os.getcwd(), "marker": os.environ.get("PROBE_MARKER"),
    "preloaded": preloaded, "random": random.random(), "numpy_random": np.random.random(),
}))
"""


def run_probe(notebooks: Path, manager=None) -> tuple[dict, list]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(PROBE)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, notebooks / "probe.ipynb")
    try:
        executed = papermill.execute_notebook(
            str(notebooks / "probe.ipynb"),
            str(notebooks / "out.ipynb"),
            km=manager,
            cwd=str(notebooks),
            progress_bar=False,
        )
    finally:
        if manager is not None and manager.has_kernel:
            manager.shutdown_kernel(now=True)  # as run_step does: papermill leaves a given manager's kernel running
    outputs = executed.cells[0].outputs
    printed = json.loads(next(o for o in outputs if o.get("name") == "stdout")["text"])
    figures = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    return printed, figures


@linux_only
def test_a_warm_kernel_is_a_new_kernel_with_the_same_outputs(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setenv("PROBE_MARKER", "stage environment")
    monkeypatch.setattr(warm_kernels, "IDLE_SECONDS", 3.0)
    fresh, fresh_figures = run_probe(notebooks)
    first, first_figures = run_probe(notebooks, warm_kernels.kernel_manager(kernel_name="python3"))
    second, _ = run_probe(notebooks, warm_kernels.kernel_manager(kernel_name="python3"))

    server = warm_kernels.socket_path(str(notebooks), warm_kernels.kernel_environment())
    assert warm_kernels.server_running(server)
    for kernel in (first, second):
        assert kernel["parent"] != os.getpid(), "the kernel should come from the server, not from this process"
        assert kernel["cwd"] == str(notebooks) and kernel["marker"] == "stage environment"
    assert first["parent"] == second["parent"] and first["pid"] != second["pid"]
    assert first["preloaded"] and not fresh["preloaded"]
    assert first["random"] != second["random"] and first["numpy_random"] != second["numpy_random"]
    assert first_figures == fresh_figures and len(fresh_figures) == 1

    deadline = time.monotonic() + 30
    while warm_kernels.server_running(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not warm_kernels.server_running(server), "an idle server should exit"
    assert not server.exists() and not server.with_suffix(".lock").exists(), "and leave no files behind"


@linux_only
def test_switched_off_the_kernel_is_a_fresh_process(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setenv("WARM_KERNELS", "0")
    printed, _ = run_probe(notebooks, warm_kernels.kernel_manager(kernel_name="python3"))
    assert printed["parent"] == os.getpid() and not printed["preloaded"]
    assert not warm_kernels.server_running(warm_kernels.socket_path(str(notebooks), warm_kernels.kernel_environment()))


@linux_only
def test_other_threads_lists_the_threads_besides_the_main_one():
    before = warm_kernels.other_threads()
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert len(warm_kernels.other_threads()) == len(before) + 1
    finally:
        release.set()
        thread.join()
