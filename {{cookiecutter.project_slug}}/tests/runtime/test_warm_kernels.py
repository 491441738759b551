import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from {{ cookiecutter.package_name }}.runtime import warm_kernels
from {{ cookiecutter.package_name }}.runtime.warm_kernels import ForkedKernel

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


class FakeIOPub:
    """An IOPub channel that hands out the given messages, then is silent."""

    def __init__(self, *messages):
        self.messages = list(messages)
        self.timeouts = []

    def get_msg(self, timeout):
        self.timeouts.append(timeout)
        if not self.messages:
            raise queue.Empty
        return self.messages.pop(0)


def status(state, parent):
    return {"msg_type": "status", "content": {"execution_state": state}, "parent_header": {"msg_id": parent}}


def test_a_kernel_is_ready_when_idle_after_kernel_info_not_after_a_silence():
    iopub = FakeIOPub(
        {"msg_type": "iopub_welcome", "content": {}, "parent_header": {}},
        status("busy", "info-2"),
        status("idle", "an-old-request"),
        status("idle", "info-2"),
        status("busy", "later"),
    )
    assert warm_kernels.idle_after(iopub, {"info-1", "info-2"})
    assert iopub.messages == [status("busy", "later")], "it reads up to the idle status and no further"
    assert not warm_kernels.idle_after(FakeIOPub(status("busy", "info-1")), {"info-1"}), "IOPub missed the idle"
    assert not warm_kernels.idle_after(FakeIOPub(), {"info-1"}), "IOPub not connected: ask again"


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
import json, os, random, signal, sys
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
    "sigpipe": str(signal.getsignal(signal.SIGPIPE)),
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
    deadline = time.monotonic() + 60
    while not second["preloaded"] and time.monotonic() < deadline:  # the server imports between requests
        time.sleep(0.5)
        second, _ = run_probe(notebooks, warm_kernels.kernel_manager(kernel_name="python3"))

    server = warm_kernels.socket_path(str(notebooks), warm_kernels.kernel_environment())
    assert warm_kernels.server_running(server)
    for kernel in (first, second):
        assert kernel["parent"] != os.getpid(), "the kernel should come from the server, not from this process"
        assert kernel["cwd"] == str(notebooks) and kernel["marker"] == "stage environment"
        assert kernel["sigpipe"] == fresh["sigpipe"], "signal handling as in a fresh interpreter"
    assert first["parent"] == second["parent"] and first["pid"] != second["pid"]
    assert second["preloaded"] and not fresh["preloaded"]
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


def test_status_words_carry_exit_codes_and_signals():
    for status in (0, 1, 2, -signal.SIGINT, -signal.SIGTERM):
        assert warm_kernels.read_status_word(warm_kernels.status_word(status)) == status
    assert warm_kernels.read_status_word(b"") is None and warm_kernels.read_status_word(b"exit x") is None
    assert warm_kernels.exit_code(-signal.SIGINT) == 130 and warm_kernels.exit_code(3) == 3


def test_no_forked_step_without_a_server_or_when_switched_off(tmp_path, monkeypatch):
    env = warm_kernels.kernel_environment()
    assert warm_kernels.run_forked_step(str(tmp_path), env) is None  # no server serves this directory
    assert not warm_kernels.server_running(warm_kernels.socket_path(str(tmp_path), env)), "and none is started"
    assert warm_kernels.run_forked_step(str(tmp_path), {**env, "WARM_KERNELS": "0"}) is None


# A project with one stage whose notebook can wait and fail on request, and tells which
# process ran its kernel: the step processes of `python -m ...run_step` are what is tested.
STEP_NOTEBOOK_CELLS = [
    ("wait = 0\nfail = False", ["parameters"]),
    (
        "import json, os, time\n"
        "from pathlib import Path\n"
        "out = Path('../reports/01_business_case')\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'kernel.json').write_text(json.dumps({'parent': os.getppid()}))\n"
        "time.sleep(wait)\n"
        "if fail:\n"
        "    raise ValueError('asked to fail')\n"
        "(out / 'result.json').write_text(json.dumps({'answer': 42}))",
        [],
    ),
]


@pytest.fixture(scope="module")
def step_project(tmp_path_factory) -> Path:
    """The project, its stage run once: that run starts the kernel server the tests' runs are forked from."""
    root = tmp_path_factory.mktemp("steps")
    write_params(root, wait=0, fail=False)
    (root / "dvc.yaml").write_text(
        "stages:\n  business_case:\n    cmd: python -m {{ cookiecutter.package_name }}.runtime.run_step business_case\n"
        "    params: [business_case]\n    outs: [reports/01_business_case]\n",
        encoding="utf-8",
    )
    notebook = nbformat.v4.new_notebook()
    for source, tags in STEP_NOTEBOOK_CELLS:
        notebook.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (root / "notebooks").mkdir()
    nbformat.write(notebook, root / "notebooks" / "01_business_case.ipynb")
    first = run_step_process(root)
    assert first.returncode == 0 and "own step process" in first.stdout, first.stdout + first.stderr
    return root


def write_params(root: Path, **params) -> None:
    lines = "".join(f"  {name}: {json.dumps(value)}\n" for name, value in params.items())
    (root / "params.yaml").write_text("business_case:\n" + lines, encoding="utf-8")


def run_step_process(root: Path, *args: str, **params) -> subprocess.CompletedProcess:
    if params:
        write_params(root, **params)
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.runtime.run_step", *(args or ["business_case"])]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=False)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux)."""
    children = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def report_files(root: Path) -> dict[str, bytes]:
    reports = root / "reports" / "01_business_case"
    return {p.name: p.read_bytes() for p in sorted(reports.iterdir()) if p.name != "kernel.json"}


@linux_only
def test_a_step_process_is_forked_once_the_server_runs_and_reports_the_same(step_project):
    before = report_files(step_project)
    forked = run_step_process(step_project, wait=0, fail=False)
    assert forked.returncode == 0, forked.stderr
    line = r"business_case: reports/01_business_case/01_business_case.ipynb \(\d+\.\d s, \d+\.\d s in cells, "
    assert re.fullmatch(line + r"warm kernel, forked step process\)\n", forked.stdout), forked.stdout
    assert report_files(step_project) == before, "a forked step writes what the first, its own process, wrote"


@linux_only
def test_a_forked_step_passes_on_its_failure_and_exit_status(step_project):
    failed = run_step_process(step_project, wait=0, fail=True)
    assert failed.returncode == 1
    assert "ERROR [business_case]: ValueError: asked to fail" in failed.stderr
    assert not (step_project / "reports" / "01_business_case").exists(), "its half-written outputs are removed"
    assert (step_project / "reports" / "failed" / "01_business_case.ipynb").is_file()
    usage = run_step_process(step_project, "no_such_stage")
    assert usage.returncode == 2 and "invalid choice: 'no_such_stage'" in usage.stderr


def start_step_process(root: Path, wait: int) -> tuple[subprocess.Popen, int]:
    """A step process running its notebook's waiting cell, and the pid of the server that forked it."""
    shutil.rmtree(root / "reports" / "01_business_case", ignore_errors=True)
    write_params(root, wait=wait, fail=False)
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.runtime.run_step", "business_case"]
    # Ctrl-C's default action, as in a terminal (a process started in the background inherits it ignored)
    client = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started = root / "reports" / "01_business_case" / "kernel.json"
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    server = json.loads(started.read_text())["parent"]
    assert len(children_of(server)) == 2, "the server has forked the step process and its kernel"
    return client, server


def wait_for_no_children(pid: int, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while children_of(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return children_of(pid)


@linux_only
def test_ctrl_c_ends_a_forked_step_as_it_ends_one_in_its_own_process(step_project):
    client, server = start_step_process(step_project, wait=3)
    client.send_signal(signal.SIGINT)
    _, stderr = client.communicate(timeout=60)
    # as in its own process: the KeyboardInterrupt comes when the running cell ends, the
    # half-written outputs are removed, and the process ends by SIGINT
    assert client.returncode == -signal.SIGINT and "KeyboardInterrupt" in stderr, stderr
    assert not (step_project / "reports" / "01_business_case").exists(), "its half-written outputs are removed"
    assert wait_for_no_children(server) == [], "neither the step process nor its kernel is left running"


@linux_only
def test_sigterm_ends_a_forked_step_and_its_kernel_at_once(step_project):
    client, server = start_step_process(step_project, wait=120)
    started = time.monotonic()
    client.terminate()
    client.communicate(timeout=30)
    assert client.returncode == -signal.SIGTERM
    assert wait_for_no_children(server) == [], "neither the step process nor its kernel is left running"
    assert time.monotonic() - started < 15, "not after the two-minute cell"
