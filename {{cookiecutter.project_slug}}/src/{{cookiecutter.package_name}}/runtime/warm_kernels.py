"""Warm kernels: start a step's kernel by forking a process that has already imported the stack.

Every step runs in a kernel of its own, so no state leaks from one step into the next. A
new Python process, though, pays again for importing pandas, scikit-learn, scipy,
fairlearn, matplotlib and the kernel machinery: 1.5 to 6 s per stage, most of what the
chain costs beyond running the same code in one process. A *kernel server* pays for those
imports once. It imports every module that the package and the notebooks import at their
top level, then forks one process per kernel. The forked kernel is still a new kernel: a
new process in a session of its own, with the stage's environment and working directory,
freshly seeded ``random`` and ``numpy.random`` generators, and without the project's own
package, which the notebook imports from the current ``src/``.

The step process itself (``python -m ...run_step STAGE``, papermill's side) comes from the
server too, once one is running: it forwards its arguments, module path, environment,
working directory and standard streams to a process forked with papermill imported, passes
on the signals it gets (Ctrl-C, SIGTERM, SIGHUP) and exits with that process's status. That
saves papermill's imports (about half a second) in every stage but the first, which starts
the server and runs in its own process as before.

Lifecycle. ``run_step`` asks for a server when a stage starts its kernel; if none serves
this key yet it starts one (detached, logging to ``<key>.log`` beside its socket) and the
kernel comes from it as soon as it listens, about half a second later. A server serves one
key: the project's notebooks directory, the Python executable, the environment (without
the variables that change between the stages of one run) and the list of installed
distributions. Another environment, or a ``pip install``, gets a new server; the old one
exits once it has been idle for ``IDLE_SECONDS`` (no request and no kernel alive). It also
exits when its notebooks directory disappears or another server takes its socket.

Where it applies: Linux, the standard ``python3`` kernel of the interpreter running the step.
``WARM_KERNELS=0`` in the environment turns it off. Then, and whenever the server cannot be
reached in time, the kernel starts as a fresh process, as it always did.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import queue
import random
import select
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

RUNTIME = (__spec__.name if __spec__ else __name__).rpartition(".")[0]  # <package>.runtime
PACKAGE = RUNTIME.partition(".")[0]
SWITCH_VARIABLE = "WARM_KERNELS"
IDLE_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 15.0
# Variables that differ between the stages of one run (or the phases of one test) and
# that no library reads when it is imported: they do not split the server key.
PER_STAGE_VARIABLES = frozenset({"DVC_STAGE", "JPY_PARENT_PID", "PYTEST_CURRENT_TEST", "_"})
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_MACHINERY = ("ipykernel.kernelapp", "IPython.display")
# Preloaded first once the server listens: what every kernel imports as it starts (the
# debugger, ~0.15 s), and what every step process imports (papermill, ~0.5 s).
STARTUP_MODULES = ("ipykernel.debugger", "papermill")
# A killed kernel is gone within milliseconds; jupyter_client looks every 100 ms.
SHUTDOWN_POLL_SECONDS = 0.01
MAX_REQUEST_BYTES = 1 << 20
# the standard streams each kind of request passes, in order (a kernel's stdin is /dev/null)
REQUEST_STREAMS = {"kernel": (1, 2), "step": (0, 1, 2)}


# ---------------------------------------------------------------- which server, where


def enabled(env: Mapping[str, str]) -> bool:
    """Whether kernels may come from a server here (Linux, and not switched off)."""
    switched_off = env.get(SWITCH_VARIABLE, "1").strip().lower() in {"0", "false", "no", "off"}
    return sys.platform == "linux" and not switched_off


def installed_distributions() -> list[str]:
    """Entries of the site-packages directories: they change with every install or upgrade."""
    directories = {*site.getsitepackages(), site.getusersitepackages()}
    entries = []
    for directory in sorted(directories):
        with contextlib.suppress(OSError):
            entries += [f"{directory}/{name}" for name in sorted(os.listdir(directory))]
    return entries


def server_key(cwd: str | os.PathLike[str], env: Mapping[str, str]) -> str:
    """What a server depends on: its own code, the kernel's directory, interpreter, environment, packages."""
    server_code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    parts = [server_code, os.path.realpath(sys.executable), sys.version, os.path.realpath(cwd)]
    parts += sorted(f"{name}={value}" for name, value in env.items() if name not in PER_STAGE_VARIABLES)
    parts += installed_distributions()
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()[:24]


def socket_directory() -> Path:
    """A directory only this user can enter (socket paths must stay short: 108 bytes)."""
    directory = Path(tempfile.gettempdir()) / f"{PACKAGE}-kernels-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{directory} must belong to this user and be private (mode 700)")
    return directory


def socket_path(cwd: str | os.PathLike[str], env: Mapping[str, str]) -> Path:
    return socket_directory() / f"{server_key(cwd, env)}.sock"


# ---------------------------------------------------------------- asking for a kernel


def request_kernel(
    arguments: list[str], cwd: str, env: Mapping[str, str], timeout: float = CONNECT_TIMEOUT_SECONDS
) -> int | None:
    """The pid of a kernel forked with ``arguments`` (``-f CONNECTION_FILE ...``), or None: start a fresh one then.

    Starts the server when none serves this key yet. The kernel writes to this process's
    standard output and error, and exits when this process does.
    """
    try:
        path = socket_path(cwd, env)
    except OSError as exc:
        print(f"warm kernels unavailable ({exc}); the kernel starts fresh", file=sys.stderr)
        return None
    request = {"kind": "kernel", "arguments": list(arguments), "cwd": cwd, "env": dict(env), "parent_pid": os.getpid()}
    deadline = time.monotonic() + timeout
    server = None
    while time.monotonic() < deadline:
        try:
            return _send_request(path, request)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        except OSError as exc:
            print(f"the kernel server did not answer ({exc}); the kernel starts fresh", file=sys.stderr)
            return None
        status = None if server is None else server.poll()
        if status not in (None, 0):
            print(
                f"the kernel server failed (see {path.with_suffix('.log')}); the kernel starts fresh", file=sys.stderr
            )
            return None
        # none started yet, or ours found the lock taken (exit 0) by a server that may have exited since
        if (server is None or status == 0) and not server_running(path):
            server = start_server(path, cwd, env)
        time.sleep(0.02)
    print(f"the kernel server did not listen within {timeout:.0f} s; the kernel starts fresh", file=sys.stderr)
    return None


def kernel_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment jupyter_client gives a python kernel: ``env`` (this one) without PYTHONEXECUTABLE."""
    return {name: value for name, value in (os.environ if env is None else env).items() if name != "PYTHONEXECUTABLE"}


def start_server_unless_running(cwd: str, env: Mapping[str, str]) -> None:
    """Start the server ahead of the request, so that it listens by the time the kernel is wanted."""
    if not enabled(env):
        return
    try:
        path = socket_path(cwd, env)
        if not server_running(path):
            start_server(path, cwd, env)
    except OSError as exc:
        print(f"warm kernels unavailable ({exc}); the kernel starts fresh", file=sys.stderr)


def server_running(path: Path) -> bool:
    """Whether a server holds ``path``'s lock (it does from its start to its exit)."""
    import fcntl  # POSIX only, like everything past enabled()

    try:
        lock = open(path.with_suffix(".lock"))  # noqa: SIM115 - closed below; never created here
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def send_request(client: socket.socket, path: Path, request: dict[str, Any]) -> None:
    """Connect ``client`` to the server at ``path`` and send ``request`` with the streams its kind passes."""
    client.settimeout(CONNECT_TIMEOUT_SECONDS)
    client.connect(str(path))
    socket.send_fds(client, [json.dumps(request).encode()], list(REQUEST_STREAMS[request["kind"]]))


def _send_request(path: Path, request: dict[str, Any]) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
        send_request(client, path, request)
        reply = client.recv(64)
    if not reply.isdigit():
        raise ConnectionRefusedError(f"the kernel server answered {reply!r}")
    return int(reply)


def start_server(path: Path, cwd: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A detached server for ``path``'s key: none of this process's files stay open in it."""
    with open(path.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"{RUNTIME}.warm_kernels", str(path), "--idle-seconds", str(IDLE_SECONDS)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )


# ---------------------------------------------------------------- asking for a step process

# (by name: Windows has no SIGHUP, and run_step imports this module there too)
FORWARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
START_WORD = b"start"


def run_forked_step(cwd: str, env: Mapping[str, str]) -> int | None:
    """Run this step process's work in a process forked by the server for ``cwd`` and ``env``; how it ended.

    ``cwd`` and ``env`` are what the stage's kernel will get, so the step is forked by the
    server that will fork its kernel. None means nothing ran: no server serves that key yet
    (the first stage of a run starts one), warm kernels are off, or the server would not
    fork; run the step here then. The forked process gets this process's ``sys.argv``,
    ``sys.path``, environment, working directory and standard streams, and ends when this
    process does. The signals in ``FORWARDED_SIGNALS`` that reach this process are passed on.
    The result is an exit status, or minus the signal that ended the step (Ctrl-C: -SIGINT),
    as ``Popen.returncode`` says it; ``end_as`` ends this process the same way.
    """
    if not enabled(env):
        return None
    request = {
        "kind": "step",
        "argv": sys.argv,
        "path": sys.path,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "parent_pid": os.getpid(),
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
        try:
            send_request(client, socket_path(cwd, env), request)
            reply = client.recv(64)
            if not reply.startswith(b"pid "):  # a refusal, or the server ended before forking
                return None
            # the forked process runs the step only on this word: without it (a timeout here,
            # this process gone) it exits, so the step never runs twice
            client.send(START_WORD)
        except OSError:  # no server (yet), or one that is gone or did not answer in time
            return None
        client.settimeout(None)
        return _wait_for_step(client, int(reply[4:]))


def _wait_for_step(client: socket.socket, pid: int) -> int:
    """Pass signals on to the forked step process ``pid`` until it reports its exit status."""
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        reply = client.recv(64)
    except OSError:
        reply = b""
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    status = read_status_word(reply)
    if status is not None:
        return status
    if received:  # ended by a signal passed on from here, before it could say so
        return -received[-1]
    print(f"the step process (pid {pid}, forked by the kernel server) ended without an exit status", file=sys.stderr)
    return 1


def end_as(status: int) -> NoReturn:
    """End this process as ``run_forked_step`` says the step ended: with its exit status, or by its signal.

    A process whose Ctrl-C ended in an unhandled KeyboardInterrupt ends by SIGINT, as Python
    does, so the shell and DVC see the same outcome as for a step run in its own process.
    """
    if status < 0:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        time.sleep(1)  # the signal ends the process before this returns
    sys.exit(exit_code(status))


def exit_code(status: int) -> int:
    """The exit code a shell reports for ``status``: itself, or 128 + the signal a negative status names."""
    return status if status >= 0 else 128 - status


def status_word(status: int) -> bytes:
    """How a step ended, as the forked step process tells the asking one: ``exit N`` or ``signal N``."""
    return f"exit {status}".encode() if status >= 0 else f"signal {-status}".encode()


def read_status_word(word: bytes) -> int | None:
    """The status ``status_word`` wrote (a negative one for a signal); None for anything else."""
    kind, _, number = word.partition(b" ")
    if kind in (b"exit", b"signal") and number.isdigit():
        return int(number) if kind == b"exit" else -int(number)
    return None


class ForkedKernel:
    """What jupyter_client needs of a ``Popen``, for a kernel that is the server's child, not ours."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = 0  # the server reaped it; its exit status is not ours to know
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.02)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def kernel_arguments(kernel_cmd: list[str]) -> list[str] | None:
    """The arguments after ``python -m ipykernel_launcher`` when the interpreter is this one, else None."""
    if len(kernel_cmd) < 5 or kernel_cmd[1:4] != ["-m", "ipykernel_launcher", "-f"]:
        return None
    if os.path.realpath(kernel_cmd[0]) != os.path.realpath(sys.executable):
        return None
    return kernel_cmd[3:]


def idle_after(iopub: Any, requests: set[str], quiet_seconds: float = 0.2) -> bool:
    """Read ``iopub`` until the kernel says it is idle after one of ``requests``; False after a silence.

    The kernel ends its answer to every request with that status message, so once it has
    come nothing more is owed. A silence of ``quiet_seconds`` means IOPub is not connected
    yet (its subscription lost the messages): ask again.
    """
    while True:
        try:
            message = iopub.get_msg(timeout=quiet_seconds)
        except queue.Empty:
            return False
        idle = message.get("msg_type") == "status" and message.get("content", {}).get("execution_state") == "idle"
        if idle and message.get("parent_header", {}).get("msg_id") in requests:
            return True


def kernel_manager(**kwargs: Any):
    """A jupyter_client ``KernelManager`` that takes its kernel from the server when it can."""
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.manager import KernelManager

    class PromptKernelClient(BlockingKernelClient):
        """jupyter_client's blocking client, ready as soon as the kernel has answered and is idle.

        jupyter_client's own ``wait_for_ready`` ends by reading IOPub until it has been silent
        for 0.2 s: 0.2 s of every stage, and of every kernel start, spent waiting for nothing.
        """

        def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            asked: set[str] = set()
            while True:
                asked.add(self.kernel_info())
                try:
                    reply = self.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    reply = None
                if (
                    reply is not None
                    and reply["msg_type"] == "kernel_info_reply"
                    and idle_after(self.iopub_channel, asked)
                ):
                    self._handle_kernel_info_reply(reply)
                    return
                if not self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    class WarmKernelManager(KernelManager):
        warm_pid: int | None = None  # the forked kernel's pid; None for a fresh kernel

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            env, cwd = kw.get("env") or kernel_environment(), os.path.abspath(kw.get("cwd") or os.getcwd())
            arguments = kernel_arguments(kernel_cmd)
            pid = request_kernel(arguments, cwd, env) if arguments and enabled(env) else None
            if pid is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            self.warm_pid = pid
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = ForkedKernel(pid), pid, pid
            provisioner.cwd = cwd
            self._reconcile_connection_info(provisioner.connection_info)
            return None

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            await super()._async_wait(pollinterval=min(pollinterval, SHUTDOWN_POLL_SECONDS))

    return WarmKernelManager(client_factory=PromptKernelClient, **kwargs)


# ---------------------------------------------------------------- the server


def top_level_imports(source: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` for each absolute import at the top level of ``source``."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return  # a notebook cell with IPython magics, or code being edited
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(alias.name for alias in node.names)


def modules_to_preload(package_dir: Path, notebooks_dir: Path) -> list[tuple[str, tuple[str, ...]]]:
    """What the package's modules and the notebooks import, except the package itself."""
    sources = [path.read_text(encoding="utf-8") for path in sorted(package_dir.rglob("*.py"))]
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        with contextlib.suppress(OSError, ValueError):
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            sources += ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
    wanted: dict[str, set[str]] = {}
    for source in sources:
        for module, names in top_level_imports(source):
            if module.partition(".")[0] not in {PACKAGE, "__future__"}:
                wanted.setdefault(module, set()).update(names)
    return [(module, tuple(sorted(names))) for module, names in sorted(wanted.items())]


def preload(module: str, names: tuple[str, ...] = ()) -> None:
    """Import ``module`` and resolve ``names`` (lazily loaded submodules such as scipy.stats)."""
    try:
        imported = importlib.import_module(module)
        for name in names:
            getattr(imported, name, None)
    except Exception as exc:  # the notebook will meet (and report) the same error itself
        print(f"preloading {module} failed: {exc!r}", file=sys.stderr, flush=True)


def compile_notebook_validator() -> None:
    """Build nbformat's validator of the current notebook schema, as papermill does (0.08 s) in every step."""
    try:
        from nbformat.validator import get_validator

        get_validator()
    except Exception as exc:  # the step process will build it, or meet the same error
        print(f"compiling the notebook validator failed: {exc!r}", file=sys.stderr, flush=True)


def warm_up_plan(package_dir: Path, notebooks_dir: Path) -> list[Callable[[], None]]:
    """What the server does between requests, in order: the step's and kernel's start-up needs first."""
    plan: list[Callable[[], None]] = [functools.partial(preload, module) for module in STARTUP_MODULES]
    plan.append(compile_notebook_validator)
    plan += [functools.partial(preload, *item) for item in modules_to_preload(package_dir, notebooks_dir)]
    return plan


def serve(path: Path, idle_seconds: float = IDLE_SECONDS) -> int:
    """Listen on ``path`` and fork a kernel or step process per request until idle; 0 if another server has the key."""
    import fcntl

    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the server's life
    for _ in range(50):  # a client's server_running() holds it for microseconds
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.01)
    else:
        lock.close()
        return 0
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # as every kernel's, whatever the caller's says (run_step)
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # debugpy's import-time warning, for this log only
    from . import skip_iri_format_checker  # here: the client side of this module stays light

    skip_iri_format_checker()  # as every step process does: papermill is preloaded here
    for module in KERNEL_MACHINERY:
        preload(module)
    pending = warm_up_plan(Path(__file__).resolve().parents[1], Path.cwd())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(16)
    identity = path.stat().st_ino
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels and step processes are reaped as they exit
    children: set[int] = set()
    last_busy = time.monotonic()
    try:
        while True:
            readable, _, _ = select.select([listener], [], [], 0 if pending else 1.0)
            if readable:
                try:
                    children.update(filter(None, [fork_child(listener, lock)]))
                except OSError as exc:  # the client went away; serve the next one
                    print(f"request failed: {exc!r}", file=sys.stderr, flush=True)
                last_busy = time.monotonic()
            elif pending:
                pending.pop(0)()
            else:
                children = {pid for pid in children if _alive(pid)}
                if children:
                    last_busy = time.monotonic()
                if time.monotonic() - last_busy > idle_seconds or _superseded(path, identity):
                    return 0
    finally:
        listener.close()
        remove_server_files(path, identity)
        lock.close()


def remove_server_files(path: Path, identity: int) -> None:
    """The socket (unless another server has taken it), the lock, and the log if it is empty."""
    with contextlib.suppress(OSError):
        if path.stat().st_ino == identity:
            path.unlink()
    with contextlib.suppress(OSError):
        path.with_suffix(".lock").unlink()
    with contextlib.suppress(OSError):
        if path.with_suffix(".log").stat().st_size == 0:
            path.with_suffix(".log").unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _superseded(path: Path, identity: int) -> bool:
    """The notebooks directory is gone, or the socket is no longer this server's."""
    try:
        return not Path.cwd().is_dir() or path.stat().st_ino != identity
    except (FileNotFoundError, OSError):
        return True


def fork_child(listener: socket.socket, lock: IO[str]) -> int | None:
    """Fork a kernel or a step process for the request waiting on ``listener``; its pid (None: a bad request).

    The child closes the server's listening socket and lock: they are the server's alone. The
    server answers a kernel request with the kernel's pid; a step process says its pid itself,
    then its exit status when it ends, on the same connection.
    """
    connection, _ = listener.accept()
    with connection:
        message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST_BYTES, 3)
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        kind = request.get("kind") if isinstance(request, dict) else None
        if kind not in REQUEST_STREAMS or len(fds) != len(REQUEST_STREAMS[kind]):
            connection.send(b"bad request")
            for fd in fds:
                os.close(fd)
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            if all(name.startswith("jemalloc_bg_thd") for name in other_threads()):
                # pyarrow's allocator thread (pandas loads pyarrow); jemalloc's fork handlers
                # make forking safe with it. Python >= 3.12 warns on any thread; others still warn.
                warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            listener.close()
            lock.close()
            if kind == "step":
                become_step_process(request, fds, connection)  # never returns
            connection.close()
            become_kernel(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        if kind == "kernel":
            connection.send(str(pid).encode())
    return pid


def other_threads() -> list[str]:
    """The names of this process's OS threads besides the main one (Linux)."""
    tasks = Path("/proc/self/task")
    return [(tasks / task / "comm").read_text().strip() for task in os.listdir(tasks) if int(task) != os.getpid()]


def become_new_process(request: dict[str, Any], fds: list[int], streams: tuple[int, ...]) -> None:
    """In a forked child: what a process started afresh for ``request`` would have.

    A session of its own, Python's default signal handling, ``fds`` as the standard
    ``streams`` (the others on /dev/null), the request's working directory and environment,
    no project modules, new random seeds, and an end when the process that asked ends.
    """
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start
    for target, fd in [*zip(streams, fds, strict=True), *((t, None) for t in (0, 1, 2) if t not in streams)]:
        fd = os.open(os.devnull, os.O_RDWR) if fd is None else fd
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    forget_package_modules()
    importlib.invalidate_caches()  # src/ may have new modules since the server started
    reseed_random_generators()
    exit_with_parent(int(request["parent_pid"]))


def live_as_child(life: Callable[[], int], on_end: Callable[[int], None] | None = None) -> NoReturn:
    """Spend a forked child's life in ``life``, ended as the interpreter ends a program, and never return.

    The status is what ``life`` returns or raises (SystemExit), 1 after any other exception (its
    traceback printed), and ``-SIGINT`` after a KeyboardInterrupt. The exit functions run and the
    streams are flushed, ``on_end`` hears the status, and the child exits with it.
    """
    code = 1
    try:
        code = life()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        if on_end is not None:
            with contextlib.suppress(BaseException):
                on_end(code)
        os._exit(exit_code(code))


def become_step_process(request: dict[str, Any], fds: list[int], connection: socket.socket) -> NoReturn:
    """In the forked child: run ``run_step`` as the asking ``python -m ...run_step`` would have, then report.

    How it ended goes back on ``connection`` (``exit N``, or ``signal 2`` after Ctrl-C); the asking
    process ends the same way (``end_as``).
    """
    with contextlib.suppress(OSError):
        connection.send(f"pid {os.getpid()}".encode())
        if connection.recv(64) == START_WORD:
            live_as_child(lambda: run_step_here(request, fds), lambda code: connection.send(status_word(code)))
    os._exit(1)  # the asking process gave up waiting, and runs the step itself


def run_step_here(request: dict[str, Any], fds: list[int]) -> int:
    become_new_process(request, fds, REQUEST_STREAMS["step"])
    sys.argv, sys.path[:] = list(request["argv"]), request["path"]
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=stream.isatty())  # as the interpreter sets them at start
    run_step = importlib.import_module(f"{RUNTIME}.run_step")
    return run_step.main(sys.argv[1:], forked=True)


def become_kernel(request: dict[str, Any], fds: list[int]) -> NoReturn:
    """In the forked child: turn into the kernel a fresh ``python -m ipykernel_launcher`` would be."""
    live_as_child(lambda: run_kernel_here(request, fds))


def run_kernel_here(request: dict[str, Any], fds: list[int]) -> int:
    parent = str(request["parent_pid"])
    env = {**request["env"], "JPY_PARENT_PID": parent}  # as jupyter_client's launcher sets it
    become_new_process({**request, "env": env}, fds, REQUEST_STREAMS["kernel"])
    from ipykernel import kernelapp

    # ipykernel read JPY_PARENT_PID when the server imported it: say it again
    arguments = [*request["arguments"], f"--IPKernelApp.parent_handle={parent}"]
    sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin, *arguments]
    kernelapp.launch_new_instance(argv=sys.argv[1:])
    return 0


def forget_package_modules() -> None:
    """Drop the project's own modules: the notebook imports them from the current src/."""
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def reseed_random_generators() -> None:
    """A fresh process seeds its global generators from the OS, so every kernel does too."""
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Like ipykernel's parent poller: the kernel ends when the process that asked for it does."""

    def watch() -> None:
        while _alive(parent_pid):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve warm kernels on a Unix socket (started by run_step).")
    parser.add_argument("socket", type=Path)
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS)
    args = parser.parse_args(argv)
    return serve(args.socket, args.idle_seconds)


if __name__ == "__main__":
    sys.exit(main())
