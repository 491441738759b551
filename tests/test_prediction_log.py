"""The prediction log of the default project, on SQLite and on a real PostgreSQL server (issue 20).

The same assertions run on both backends: the service with two workers logs exactly the
decisions it answered under concurrent load; a service killed mid-load and restarted loses
none of them; refused requests are not logged; a write that fails is a 5xx; `label` attaches
outcomes idempotently and reports the ids it does not know. PostgreSQL is Debian's, started
in a temporary directory with its own `initdb` and `pg_ctl` (as the `postgres` user when the
tests run as root, which PostgreSQL refuses to run as).
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import package_of, project_env, run

pytestmark = pytest.mark.e2e

WORKERS = 2
REQUESTS = 300  # answered concurrently by the two workers
CLIENTS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ a PostgreSQL server of our own


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).resolve().parent
    pytest.fail("no PostgreSQL server binaries (initdb): `make test` installs Debian's postgresql as root; else apt-get install postgresql")


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_server():
    """A PostgreSQL server on a free loopback port, in a temporary directory; its base URL."""
    binaries = postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="prediction-log-pg-"))  # not under pytest's root-only temp dir
    data, port = home / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    subprocess.run(
        as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True, capture_output=True, text=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=on"
    start = as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"])
    done = subprocess.run(start, capture_output=True, text=True)
    assert done.returncode == 0, f"pg_ctl start failed: {done.stderr}\n{(home / 'log').read_text() if (home / 'log').exists() else ''}"
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    """A new, empty prediction log on each backend (a database of its own on the server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log' / 'predictions.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    name = f"log_{tmp_path.name.lower().replace('-', '_')[:40]}_{os.getpid()}"
    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return f"{server}/{name}"


def logged(url: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql("SELECT request_id, record_index, source, outcome FROM predictions", conn)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the project and its service


@pytest.fixture(scope="module")
def project(reproduced_project) -> Path:
    return reproduced_project


@pytest.fixture(scope="module")
def records(project) -> list[dict]:
    """Held-out records with the fields the API takes (as its OpenAPI schema lists them)."""
    spec = json.loads((project / "reports/03_data_selection/dataset_spec.json").read_text())
    test = pd.read_parquet(project / "data/processed/test.parquet")
    fields = [c for c in test.columns if c in spec["columns"] and c != spec["target"]]
    return json.loads(test[fields].head(400).to_json(orient="records"))


class Service:
    """`<package> serve --workers 2` in its own process group (so that a kill takes every worker)."""

    def __init__(self, project: Path, url: str, port: int | None = None):
        self.project, self.url, self.port = project, url, port or free_port()
        cmd = [sys.executable, "-m", f"{package_of(project)}.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(WORKERS), "--no-explain"]
        env = {**project_env(project), f"{package_of(project).upper()}_PREDICTION_LOG_URL": url}
        self.process = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}: {self.process.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, "serve did not answer /health within 180 s"
            time.sleep(0.2)
        self.wait_for_workers()

    def healthy(self) -> bool:
        try:
            return post(f"{self.base}/health", None)[0] == 200
        except OSError:
            return False

    def wait_for_workers(self) -> None:
        """Both workers up: uvicorn answers as soon as one is, and the other may still be loading."""
        deadline = time.monotonic() + 120
        while len(_children(self.process.pid)) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def post(url: str, body: object | None, timeout: float = 60) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def payload(records: list[dict], number: int) -> list[dict]:
    """Request ``number``: one to three records; every tenth is refused (an age no one has)."""
    chosen = [records[(number * 3 + k) % len(records)] for k in range(1 + number % 3)]
    return [{**chosen[0], "age": 10_000}] if number % 10 == 9 else chosen


# ------------------------------------------------------------------ the tests


def test_serve_logs_every_answered_decision_under_load_through_a_kill_and_fails_loudly(project, records, log_url):
    """One service per backend (each start costs seconds), three checks in turn:

    1. two workers, concurrent requests: the rows logged are exactly the decisions answered, refusals none;
    2. SIGKILL to serve and its workers mid-load, a restart on the same port: no answered decision is missing;
    3. the log's table dropped under the running service: a 503, no decision answered; refusals stay 4xx.
    """
    backend = log_url.split(":")[0]
    service = Service(project, log_url)
    try:
        answered, refused = concurrent_load(service, records)
        assert set(refused) == {422} and len(refused) == REQUESTS // 10, refused[:5]
        rows = logged(log_url)
        assert len(rows) == sum(answered.values()), "rows logged != decisions answered"
        assert rows.groupby("request_id").size().to_dict() == answered
        assert set(rows["source"]) == {"serve"}
        print(f"{backend}: {len(answered)} concurrent requests answered with {sum(answered.values())} decisions, "
              f"{len(rows)} rows logged; {len(refused)} refused (422), none logged")

        service, before, during = load_through_a_kill(service, records)
        rows = logged(log_url)
        per_request = rows.groupby("request_id").size().to_dict()
        everything = {**answered, **during}
        missing = [rid for rid, n in everything.items() if per_request.get(rid) != n]
        assert not missing, f"{len(missing)} answered requests are not (wholly) in the log"
        extra = len(rows) - sum(everything.values())
        assert 0 <= extra <= 3 * CLIENTS, f"{extra} rows beyond the answered decisions (at most those in flight)"
        print(f"{backend}: killed after {before} answered requests under load, restarted; {len(during)} answered in "
              f"all, every one logged; {extra} rows of requests in flight at the kill (logged, never answered)")

        engine = sa.create_engine(log_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE predictions")  # the database lost its table under the service
        engine.dispose()
        status, body = post(f"{service.base}/predict", records[:2])
        assert status == 503 and "not served" in body["error"] and "predictions" not in body
        assert post(f"{service.base}/predict", [{**records[0], "age": 10_000}])[0] == 422
    finally:
        service.stop()


def concurrent_load(service: Service, records: list[dict]) -> tuple[dict[str, int], list[int]]:
    """REQUESTS requests from CLIENTS threads at once: records per answered request id, refused statuses."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda n: post(f"{service.base}/predict", payload(records, n)), range(REQUESTS)))
    answered = {body["request_id"]: len(body["predictions"]) for status, body in answers if status == 200}
    return answered, [status for status, _ in answers if status != 200]


def load_through_a_kill(service: Service, records: list[dict], each_side: int = 100):
    """Clients keep sending while the service is killed and restarted: (new service, answered before, answered)."""
    answered: dict[str, int] = {}
    stop = threading.Event()

    def client(number: int) -> None:
        while not stop.is_set():
            try:
                status, body = post(f"http://127.0.0.1:{service.port}/predict", payload(records, number), timeout=30)
            except (OSError, ValueError, http.client.HTTPException):  # the kill (mid-answer too), or the restart
                # not yet listening: no answer, nothing owed
                time.sleep(0.05)
            else:
                if status == 200:
                    answered[body["request_id"]] = len(body["predictions"])
            number += CLIENTS

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS // 2)]
    for thread in threads:
        thread.start()
    try:
        while len(answered) < each_side:
            time.sleep(0.02)
        service.kill()  # SIGKILL to serve and both workers, mid-load
        before = len(answered)
        service = Service(service.project, service.url, port=service.port)
        while len(answered) < before + each_side:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return service, before, answered


def test_predict_logs_and_label_attaches_outcomes_once_and_reports_unknown_ids(project, records, log_url, tmp_path):
    pkg = package_of(project)
    env = {f"{pkg.upper()}_PREDICTION_LOG_URL": log_url}
    test = pd.read_parquet(project / "data/processed/test.parquet").head(50)
    test.to_parquet(tmp_path / "batch.parquet")
    done = run([sys.executable, "-m", f"{pkg}.cli", "predict", str(tmp_path / "batch.parquet"), str(tmp_path / "out.csv")],
               project, env=env)
    request_id = done.stdout.split("logged as request ")[1].split()[0]
    outcomes = pd.DataFrame({"request_id": request_id, "record_index": range(50), "income": test["income"].to_numpy()})
    outcomes = pd.concat([outcomes, pd.DataFrame({"request_id": ["no-such-request"], "record_index": [0], "income": [">50K"]})])
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    label = [sys.executable, "-m", f"{pkg}.cli", "label", str(tmp_path / "outcomes.csv")]
    first = run(label, project, check=False, env=env)
    assert first.returncode == 1, first.stderr
    assert "50 decisions matched, 50 labelled now" in first.stdout and "1 of 51 outcomes match no logged decision" in first.stderr
    again = run(label, project, check=False, env=env)
    assert again.returncode == 1 and "0 labelled now, 50 already had this outcome" in again.stdout
    rows = logged(log_url)
    assert len(rows) == 50 and set(rows["source"]) == {"predict"}
    assert rows.sort_values("record_index")["outcome"].tolist() == test["income"].astype(str).tolist()
