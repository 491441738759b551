"""Where the heavy work runs: in the step's own process, or on a Dask cluster (``compute:`` in params.yaml). Adapt with care: steps 06, 08, 10 and ``predict`` run their fits and batches through it.

One switch, ``compute.scheduler`` (see :class:`.config.Compute`): empty runs everything in the
step's process, as always; ``local`` starts a ``distributed.LocalCluster`` for the step and stops
it after; an address (``tcp://host:8786``) or a scheduler file joins a cluster that runs anyway
(dask-kubernetes, dask-jobqueue, a hosted one: see the README's "Running on a cluster").

The code that spreads work does not know where it runs. It builds its independent calls (one
cross-validation fit, one mitigation fit) and hands them to :func:`run`,
which is ``joblib.Parallel``: one after another in this process, unless a :func:`parallel` block
is active, in which case joblib's Dask backend sends them to the cluster's workers::

    with compute.parallel(step.compute):
        result = modeling.train_and_select(...)

The same numbers either way: every call carries its own seed (nothing depends on the order in
which calls run or on which worker runs them), and runs on as many native threads as the step
itself (:func:`pipeline_threads`), because floating-point sums depend on how they are split
across threads. Dask itself is imported only when a scheduler is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .config import Compute, ConfigError


def pipeline_threads() -> int:
    """The native threads (OpenMP, BLAS) of the pipeline's kernels: ``OMP_NUM_THREADS`` (its first level), else 1."""
    first = (os.environ.get("OMP_NUM_THREADS") or "1").split(",")[0].strip()  # OpenMP allows "4,2" (nested levels)
    return int(first) if first.isdigit() and int(first) > 0 else 1


def settings(root: Path) -> Compute:
    """The project's ``compute:`` section, checked (ConfigError names the key)."""
    from .project import load_params

    return Compute.from_params(load_params(root))


def _memory_limit(value: str | int) -> str | int | None:
    return None if str(value).strip() == "0" else value


@contextmanager
def cluster(cfg: Compute, root: Path | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` of the configured cluster for the block, or None without a scheduler.

    ``local`` starts a LocalCluster of ``cfg.workers`` worker processes (``threads_per_worker``,
    ``memory_limit`` each; on free ports, logs at ERROR so that nothing reaches a notebook's output)
    and stops it at the end of the block. An address or a scheduler file connects to a running
    scheduler and leaves it running. A scheduler that cannot be reached is a ConfigError naming
    ``compute.scheduler``.
    """
    if cfg.scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if cfg.scheduler == "local":
        with (
            LocalCluster(
                n_workers=cfg.workers,
                threads_per_worker=cfg.threads_per_worker,
                memory_limit=_memory_limit(cfg.memory_limit),
                processes=True,
                # a free port for the scheduler's HTTP server (and dashboard, with bokeh installed): another
                # cluster's 8787 would make distributed warn, and a warning would land in a notebook's output
                dashboard_address=":0",
                worker_dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as local,
            Client(local) as client,
        ):
            yield client
        return
    try:
        if cfg.scheduler.endswith(".json"):
            path = Path(cfg.scheduler)
            if not path.is_absolute() and root is not None:
                path = root / path
            if not path.is_file():
                raise ConfigError(f"compute.scheduler: the scheduler file {str(path)!r} does not exist")
            client = Client(scheduler_file=str(path), timeout="20s")
        else:
            client = Client(cfg.scheduler, timeout="20s")
    except ConfigError:
        raise
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"compute.scheduler: cannot reach the scheduler {cfg.scheduler!r}: {exc}") from None
    with client:
        _check_environment(client, cfg.scheduler)
        yield client


def _check_environment(client: Any, address: str) -> None:
    """The scheduler and every worker import this package, or a ConfigError says so.

    They unpickle the tasks, which are this package's functions: without it the scheduler logs
    an error and the task graph never runs (the step would wait forever).
    """
    import importlib

    package = __name__.rpartition(".")[0]
    try:
        client.run_on_scheduler(importlib.import_module, package)
        client.run(importlib.import_module, package)
    except ImportError as exc:
        raise ConfigError(
            f"compute.scheduler: the cluster at {address!r} cannot import {package!r} ({exc}): install this "
            "project's package on its scheduler and workers (README: Running on a cluster)"
        ) from None


_ACTIVE: ContextVar[Any] = ContextVar("compute_client", default=None)  # the client of the parallel() block


@contextmanager
def parallel(cfg: Compute, root: Path | None = None) -> Iterator[Any]:
    """:func:`cluster` for the block, and every :func:`run` inside it goes to the cluster's workers through
    joblib's Dask backend (``parallel_backend("dask")``, scoped to that run's own calls).

    Scoped: joblib loops that are not :func:`run`'s (scikit-learn's ColumnTransformer fits its few
    transformers with joblib) stay in this process. Shipping such a small fit costs more than the
    fit, and a model fitted in pieces elsewhere comes back as copies: the same numbers, but a model
    file whose shared objects differ from the in-process one (skops records which objects are
    shared), so its bytes would differ.
    """
    with cluster(cfg, root) as client:
        token = _ACTIVE.set(client)
        try:
            yield client
        finally:
            _ACTIVE.reset(token)


class _OnThreads:
    """A call run on a fixed number of native threads, its own joblib loops in order (picklable: it travels)."""

    def __init__(self, func: Callable[..., Any], threads: int):
        self.func, self.threads = func, threads
        self.__name__ = getattr(func, "__name__", type(func).__name__)  # the task's name on the cluster's dashboard

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import joblib
        from threadpoolctl import threadpool_limits

        # joblib loops inside the call (a ColumnTransformer's fit) run here, in order, as in the step's process
        with threadpool_limits(limits=self.threads), joblib.parallel_config(backend="sequential"):
            return self.func(*args, **kwargs)


def run(func: Callable[..., Any], calls: Iterable[tuple[Any, ...]]) -> list[Any]:
    """``[func(*args) for args in calls]``, in order: in this process, or on the cluster inside :func:`parallel`.

    Large arguments shared by the calls (a training frame) are sent to the workers once.
    """
    import joblib

    task = joblib.delayed(_OnThreads(func, pipeline_threads()))
    client = _ACTIVE.get()
    if client is None:
        return list(joblib.Parallel()(task(*args) for args in calls))
    with joblib.parallel_config(backend="dask", client=client, n_jobs=-1):
        return list(joblib.Parallel()(task(*args) for args in calls))
