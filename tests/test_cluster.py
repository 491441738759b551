"""Past one machine (issue 22): the heavy steps on a Dask cluster give the very bytes of the in-process
run, and a Parquet dataset larger than a worker's memory is scored in parts on it.

One real ``distributed.LocalCluster`` of two worker processes, started here as a team's cluster
runs anyway; the project points ``compute.scheduler`` at its address, and the scheduler and the
workers import the project's package (its ``src`` on their path), as the README asks of a real cluster.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import changed_stages, dvc, package_of, run

pytestmark = pytest.mark.e2e
WORKER_MEMORY = "600MiB"  # per worker; the stack and the model take 300 to 400 MB of it
# Every file steps 06 and 08 write (step 08's report holds its executed notebook).
STEP_OUTPUTS = ("reports/06_modeling", "reports/08_fairness_assessment", "reports/metrics", "reports/plots", "models")
MEASUREMENTS = {"reports/metrics/latency.json"}  # step 07's latencies: not rerun here, and run-to-run anyway


@pytest.fixture(scope="module")
def cluster(reproduced_project):
    """Two worker processes with WORKER_MEMORY each; workers above 95% of it are restarted by their nanny.

    The settings hold for the cluster's whole life, not only its start: a worker the nanny restarts
    reads Dask's configuration and inherits the environment again (with a block around the start
    only, a restarted worker paused at 80% of its memory, which the stack alone can pass: every task
    waited, this test's scoring and then the next one's, on a loaded CI machine).
    """
    import dask
    from distributed import Client, LocalCluster

    # the scheduler (here, in this process) unpickles the graphs too: it needs the package as the workers do
    sys.path.insert(0, str(reproduced_project / "src"))
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(reproduced_project / "src") + (os.pathsep + saved if saved else "")
    try:  # a paused worker would wait forever: the nanny's 95% restart is the limit
        with dask.config.set({"distributed.worker.memory.pause": False}):
            local = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                memory_limit=WORKER_MEMORY,
                dashboard_address=":0",  # the scheduler's HTTP server on a free port (None still takes 8787)
                silence_logs=logging.ERROR,
            )
            client = Client(local)
            yield local, client
            client.close()
            local.close()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
        sys.path.remove(str(reproduced_project / "src"))


def predict(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    return run([sys.executable, "-m", f"{package_of(project)}.cli", "predict", *args], project, timeout=timeout, env=env)


@pytest.fixture()
def shared_project(reproduced_project):
    """The reproduced project other tests share: its params.yaml is restored after the test."""
    params = reproduced_project / "params.yaml"
    saved = params.read_text()
    yield reproduced_project
    params.write_text(saved)


def point_at(project: Path, scheduler: str) -> None:
    """Set compute.scheduler in the project's params.yaml (the section's other keys stay)."""
    params = project / "params.yaml"
    text, count = re.subn(r"(?m)^(compute:\n(?:  .*\n|\s*\n)*?)  scheduler:.*$", rf"\1  scheduler: {scheduler}", params.read_text())
    assert count == 1, "params.yaml has no compute.scheduler"
    params.write_text(text)


def results(project: Path) -> dict[str, bytes]:
    files = [p for folder in STEP_OUTPUTS for p in sorted((project / folder).rglob("*")) if p.is_file()]
    return {str(p.relative_to(project)): p.read_bytes() for p in files if str(p.relative_to(project)) not in MEASUREMENTS}


def task_prefixes(client) -> set[str]:
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def peak_memory(client) -> dict[str, int]:
    """Each worker's peak resident memory so far (bytes)."""

    def peak() -> int:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    return client.run(peak)


def cluster_state(client) -> str:
    """What the scheduler holds per worker, each worker's memory, and the workers' last log lines."""
    try:
        processing = {w: len(tasks) for w, tasks in client.processing().items()}
        memory = client.run(lambda dask_worker: dask_worker.monitor.get_process_memory())
        logs = client.get_worker_logs(n=15)
    except Exception as exc:  # the cluster itself is gone
        return f"cluster state unavailable: {type(exc).__name__}: {exc}"
    lines = [f"{w}: {processing.get(w, 0)} tasks, {memory.get(w, 0) / 2**20:.0f} MiB" for w in memory]
    lines += [f"{w} | {level} {message}" for w, entries in logs.items() for level, message in entries]
    return "\n".join(lines)


def test_steps_06_and_08_on_the_cluster_write_the_same_bytes(reproduced_project, cluster, tmp_path):
    local, client = cluster
    project = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, project, symlinks=True)
    before = results(project)
    point_at(project, local.scheduler_address)
    assert changed_stages(project) == "", "a change of compute.scheduler alone made stages stale"
    dvc(project, "repro", "--force", "--single-item", "modeling")
    assert any("fold_score" in p for p in task_prefixes(client)), "the search's fits did not run on the cluster"
    dvc(project, "repro", "--force", "--single-item", "fairness_assessment")
    prefixes = task_prefixes(client)
    decision = json.loads((project / "reports/08_fairness_assessment/release_decision.json").read_text())
    assert decision["mitigation"] != "none", "the default data no longer needs a mitigation: nothing fitted it"
    assert any("mitigate" in p for p in prefixes), "the mitigation fits did not run on the cluster"
    after = results(project)
    assert after.keys() == before.keys()
    changed = [path for path in before if after[path] != before[path]]
    assert not changed, f"on the cluster, steps 06 and 08 changed {len(changed)} files: {changed[:10]}"
    assert changed_stages(project) == ""


def test_a_parquet_dataset_larger_than_a_worker_is_scored_in_parts(shared_project, cluster, tmp_path):
    """Rows resampled from the test split into 72 files (3.6M rows); the parts equal one-file scoring."""
    local, client = cluster
    project = shared_project
    point_at(project, local.scheduler_address)
    records = pd.read_parquet(project / "data/processed/test.parquet").drop(columns=["income"])
    dataset = tmp_path / "batches"
    dataset.mkdir()
    files, rows = 72, 50_000  # 3,600,000 rows, about 615 MiB in memory
    for i in range(files):
        records.sample(rows, replace=True, random_state=i).reset_index(drop=True).to_parquet(
            dataset / f"batch-{i:03d}.parquet", index=False
        )
    in_memory = files * pd.read_parquet(dataset / "batch-000.parquet").memory_usage(deep=True).sum()
    limit = min(client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit).values())
    assert in_memory > limit, f"the dataset ({in_memory / 2**20:.0f} MiB in memory) must exceed a worker's {limit / 2**20:.0f} MiB"
    model = ["--model", "models/model.skops"]  # step 07's artifact: the release's per-record draws are slower to score
    try:
        # 3M rows on 500 MiB workers: 39 s on an idle 2-core machine, 93 s beside three busy processes
        out = predict(project, str(dataset), str(tmp_path / "scored"), "--no-log", *model, timeout=360)
    except Exception:  # once, on a loaded CI machine, this waited to its timeout: say where the cluster was
        print(cluster_state(client))
        raise
    assert f"scored {files * rows:,} records" in out.stdout, out.stdout
    peaks = peak_memory(client)
    print(
        f"{files * rows:,} rows, {in_memory / 2**20:.0f} MiB in memory; worker limit {limit / 2**20:.0f} MiB, "
        f"peaks {', '.join(f'{p / 2**20:.0f}' for p in peaks.values())} MiB"
    )
    assert max(peaks.values()) < limit, f"a worker's peak memory {max(peaks.values()) / 2**20:.0f} MiB passed its limit"
    scored = pd.read_parquet(tmp_path / "scored")
    assert len(scored) == files * rows
    for i in (0, files - 1):  # a sample of files scored alone, in process, as before
        one = tmp_path / f"one-{i}.parquet"
        predict(project, str(dataset / f"batch-{i:03d}.parquet"), str(one), "--no-log", *model)
        pd.testing.assert_frame_equal(scored.iloc[i * rows : (i + 1) * rows].reset_index(drop=True), pd.read_parquet(one))


def test_a_logged_dataset_is_logged_in_bulk_per_partition(shared_project, cluster, tmp_path):
    local, _ = cluster
    project = shared_project
    point_at(project, local.scheduler_address)
    records = pd.read_parquet(project / "data/processed/test.parquet").drop(columns=["income"]).head(3_000)
    dataset = tmp_path / "batches"
    dataset.mkdir()
    for i in range(3):
        records.iloc[i * 1_000 : (i + 1) * 1_000].to_parquet(dataset / f"part-{i}.parquet", index=False)
    log = tmp_path / "log.sqlite"
    env = {f"{package_of(project).upper()}_PREDICTION_LOG_URL": f"sqlite:///{log}"}
    out = predict(project, str(dataset / "*.parquet"), str(tmp_path / "scored"), env=env)
    assert "logged as requests" in out.stdout, out.stdout
    scored = pd.read_parquet(tmp_path / "scored")
    with sqlite3.connect(log) as db:
        logged = pd.read_sql("SELECT request_id, record_index, score, decision FROM predictions", db)
    assert len(logged) == len(scored) == 3_000
    merged = scored.merge(logged, on=["request_id", "record_index"], suffixes=("", "_logged"))
    assert len(merged) == 3_000 and (merged["score"] == merged["score_logged"]).all()
    assert (merged["decision"] == merged["decision_logged"]).all()


# Every file steps 03-05 write (their reports hold their executed notebooks).
DATA_STEP_OUTPUTS = (
    "data/interim",
    "data/processed",
    "models/feature_pipeline.skops",
    "reports/03_data_selection",
    "reports/04_data_bias_plan",
    "reports/05_data_pipeline",
)


def data_step_results(project: Path) -> dict[str, bytes]:
    files = [p for name in DATA_STEP_OUTPUTS for p in sorted((project / name).rglob("*")) if p.is_file()]
    files += [project / name for name in DATA_STEP_OUTPUTS if (project / name).is_file()]
    return {str(p.relative_to(project)): p.read_bytes() for p in files}


def test_partitioned_data_go_through_steps_03_to_05_on_the_cluster_and_feed_the_chain(reproduced_project, cluster, tmp_path):
    """Data given as a directory of Parquet files: steps 03-05 read them partition by partition, on the
    cluster the same bytes as in process; the splits are directories of parts the later steps read."""
    local, client = cluster
    project = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, project, symlinks=True)
    raw = pd.read_csv(project / "data/raw/adult.csv.gz")
    parts = project / "data/raw/adult_parts"
    parts.mkdir()
    rows_per_part = -(-len(raw) // 8)
    for i in range(8):
        raw.iloc[i * rows_per_part : (i + 1) * rows_per_part].to_parquet(parts / f"part-{i:03d}.parquet", index=False)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("path: data/raw/adult.csv.gz", "path: data/raw/adult_parts", 1))
    dvc(project, "repro", "data_pipeline", "data_bias_plan")
    in_process = data_step_results(project)

    for split in ("train", "validation", "test"):
        assert len(list((project / f"data/processed/{split}.parquet").glob("part-*.parquet"))) == 8, split
    splits = {s: pd.read_parquet(project / f"data/processed/{s}.parquet") for s in ("train", "validation", "test")}
    whole = pd.concat(splits.values(), ignore_index=True)
    assert len(whole) == len(raw), "rows were dropped"
    distinct = [set(map(tuple, part.astype(str).to_numpy())) for part in splits.values()]
    assert sum(map(len, distinct)) == len(set().union(*distinct)), "a row and its copy are in two splits"
    test_fraction = yaml.safe_load(params.read_text())["data_pipeline"]["test_fraction"]
    assert abs(len(splits["test"]) / len(whole) - test_fraction) < 0.005
    for name, part in splits.items():
        assert abs(part["income"].mean() - whole["income"].mean()) < 0.01, name
    spec = json.loads((project / "reports/03_data_selection/dataset_spec.json").read_text())
    assert spec == json.loads((reproduced_project / "reports/03_data_selection/dataset_spec.json").read_text()), (
        "the partitioned data's spec differs from the same rows read from one file"
    )

    point_at(project, local.scheduler_address)
    for stage in ("data_selection", "data_bias_plan", "data_pipeline"):
        dvc(project, "repro", "--force", "--single-item", stage)
    assert any("split_partition" in p for p in task_prefixes(client)), "the split did not run on the cluster"
    on_cluster = data_step_results(project)
    assert on_cluster.keys() == in_process.keys()
    changed = [path for path in in_process if on_cluster[path] != in_process[path]]
    assert not changed, f"on the cluster, steps 03-05 changed {len(changed)} files: {changed[:10]}"

    point_at(project, "")
    settings = yaml.safe_load(params.read_text())  # steps 06-10 read the parts: a small search is enough to show it
    settings["modeling"].update(search_iterations=1, cv_folds=2)
    params.write_text(yaml.safe_dump(settings, sort_keys=False))
    dvc(project, "repro")  # steps 06-10 on the partitioned splits
    card = (project / "reports/07_deployment/model_card.md").read_text()
    assert f"Test split of `data/processed/` ({len(splits['test']):,} rows)" in card
    assert json.loads((project / "reports/10_retraining/retraining_decision.json").read_text())["reasons"]
    assert changed_stages(project) == ""
