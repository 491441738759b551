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
import hashlib
import importlib
import importlib.util
import json
import os
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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

PACKAGE = (__spec__.name if __spec__ else __name__).rpartition(".")[0]
SWITCH_VARIABLE = "WARM_KERNELS"
IDLE_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 15.0
# Variables that differ between the stages of one run (or the phases of one test) and
# that no library reads when it is imported: they do not split the server key.
PER_STAGE_VARIABLES = frozenset({"DVC_STAGE", "JPY_PARENT_PID", "PYTEST_CURRENT_TEST", "_"})
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_MACHINERY = ("ipykernel.kernelapp", "IPython.display")
MAX_REQUEST_BYTES = 1 << 20


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
    request = {"arguments": list(arguments), "cwd": cwd, "env": dict(env), "parent_pid": os.getpid()}
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


def kernel_environment() -> dict[str, str]:
    """The environment jupyter_client gives a python kernel: this one without PYTHONEXECUTABLE."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONEXECUTABLE"}


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


def _send_request(path: Path, request: dict[str, Any]) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
        client.settimeout(CONNECT_TIMEOUT_SECONDS)
        client.connect(str(path))
        socket.send_fds(client, [json.dumps(request).encode()], [1, 2])
        reply = client.recv(64)
    if not reply.isdigit():
        raise ConnectionRefusedError(f"the kernel server answered {reply!r}")
    return int(reply)


def start_server(path: Path, cwd: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A detached server for ``path``'s key: none of this process's files stay open in it."""
    with open(path.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"{PACKAGE}.warm_kernels", str(path), "--idle-seconds", str(IDLE_SECONDS)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )


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


def kernel_manager(**kwargs: Any):
    """A jupyter_client ``KernelManager`` that takes its kernel from the server when it can."""
    from jupyter_client.manager import KernelManager

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

    return WarmKernelManager(**kwargs)


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
    sources = [path.read_text(encoding="utf-8") for path in sorted(package_dir.glob("*.py"))]
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


def serve(path: Path, idle_seconds: float = IDLE_SECONDS) -> int:
    """Listen on ``path`` and fork a kernel per request until idle; 0 if another server has the key."""
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
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)  # what ipykernel sets before matplotlib loads
    for module in KERNEL_MACHINERY:
        preload(module)
    pending = modules_to_preload(Path(__file__).resolve().parent, Path.cwd())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(16)
    identity = path.stat().st_ino
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped as they exit
    kernels: set[int] = set()
    last_busy = time.monotonic()
    try:
        while True:
            readable, _, _ = select.select([listener], [], [], 0 if pending else 1.0)
            if readable:
                try:
                    kernels.update(filter(None, [fork_kernel(listener, lock)]))
                except OSError as exc:  # the client went away; serve the next one
                    print(f"request failed: {exc!r}", file=sys.stderr, flush=True)
                last_busy = time.monotonic()
            elif pending:
                preload(*pending.pop(0))
            else:
                kernels = {pid for pid in kernels if _alive(pid)}
                if kernels:
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


def fork_kernel(listener: socket.socket, lock: IO[str]) -> int | None:
    """Fork a kernel for the request waiting on ``listener``; the kernel's pid (None: a bad request).

    The kernel closes the server's listening socket and lock: they are the server's alone.
    """
    connection, _ = listener.accept()
    with connection:
        message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST_BYTES, 2)
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict) or len(fds) != 2:
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
            connection.close()
            listener.close()
            lock.close()
            become_kernel(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        connection.send(str(pid).encode())
    return pid


def other_threads() -> list[str]:
    """The names of this process's OS threads besides the main one (Linux)."""
    tasks = Path("/proc/self/task")
    return [(tasks / task / "comm").read_text().strip() for task in os.listdir(tasks) if int(task) != os.getpid()]


def become_kernel(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: turn into the kernel a fresh ``python -m ipykernel_launcher`` would be."""
    code = 1
    try:
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for target, fd in zip((1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        parent = str(request["parent_pid"])
        os.environ["JPY_PARENT_PID"] = parent  # as jupyter_client's launcher sets it
        forget_package_modules()
        reseed_random_generators()
        exit_with_parent(int(parent))
        from ipykernel import kernelapp

        # ipykernel read JPY_PARENT_PID when the server imported it: say it again
        arguments = [*request["arguments"], f"--IPKernelApp.parent_handle={parent}"]
        sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin, *arguments]
        kernelapp.launch_new_instance(argv=sys.argv[1:])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


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
