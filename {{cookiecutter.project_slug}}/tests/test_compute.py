"""compute: the one switch between in-process work and a Dask cluster, and the same numbers on both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import compute, config, modeling


def _square_and_threads(value: int) -> tuple[int, int]:
    from threadpoolctl import threadpool_info

    threads = {info["num_threads"] for info in threadpool_info()} or {1}
    return value * value, max(threads)


def test_compute_defaults_to_in_process():
    cfg = config.Compute.from_params({})
    assert cfg.scheduler is None and cfg.workers == 2
    assert config.Compute.from_params({"compute": {"scheduler": None, "workers": 2}}).scheduler is None
    with compute.cluster(cfg) as client:
        assert client is None
    with compute.parallel(cfg) as client:
        assert client is None


@pytest.mark.parametrize(
    "scheduler", ["local", "tcp://10.0.0.5:8786", "scheduler.example:8786", "shared/scheduler.json"]
)
def test_schedulers_accepted(scheduler):
    assert config.Compute.from_params({"compute": {"scheduler": scheduler}}).scheduler == scheduler


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"scheduler": "lcoal"}, "compute.scheduler: Value error, must be empty (in process), 'local'"),
        ({"scheduler": 8786}, "compute.scheduler: Value error, must be empty"),
        ({"workers": 0}, "compute.workers: Input should be greater than or equal to 1"),
        ({"memory_limit": "lots"}, "compute.memory_limit: Value error, must be 'auto', 0"),
        ({"schedular": "local"}, "compute.schedular: Extra inputs are not permitted"),
    ],
)
def test_a_wrong_compute_section_names_its_key(section, message):
    with pytest.raises(config.ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        config.Compute.from_params({"compute": section})


def test_memory_limits():
    for value in ("auto", 0, "0", "400MB", "2GiB", "1.5 GB", 400_000_000):
        assert config.Compute.from_params({"compute": {"memory_limit": value}}).memory_limit == value


def test_a_missing_scheduler_file_names_the_key(tmp_path):
    cfg = config.Compute(scheduler="missing.json")
    with pytest.raises(config.ConfigError, match="compute.scheduler: the scheduler file .*missing.json"):
        with compute.cluster(cfg, tmp_path):
            pass


def test_run_keeps_the_order_and_the_pipelines_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert compute.run(_square_and_threads, [(i,) for i in range(5)]) == [(i * i, 1) for i in range(5)]


def test_a_local_cluster_gives_the_same_numbers():
    """A cross-validated search on two worker processes equals the in-process one."""
    rng = np.random.default_rng(0)
    n = 600
    x = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float), "group": rng.choice(["a", "b"], n)})
    y = (x["age"] + rng.normal(0, 15, n) > 50).astype(int).to_numpy()
    spec = {
        "target": "y",
        "numeric_features": ["age"],
        "categorical_features": ["group"],
        "feature_columns": ["age", "group"],
    }
    pipeline = modeling.candidate_pipelines(spec, 0)["logistic_regression"]
    space = {"C": [0.01, 1.0]}

    here = modeling.tune(pipeline, space, x, y, None, folds=3, iterations=2, seed=0)
    with compute.parallel(config.Compute(scheduler="local", workers=2, memory_limit="1GiB")) as client:
        assert client is not None and len(client.nthreads()) == 2
        there = modeling.tune(pipeline, space, x, y, None, folds=3, iterations=2, seed=0)
    assert here == there
