"""Run the HTTP service for real on loopback and talk to it (used by step 07 and the tests). Adapt with care: steps 07 and 10 rely on it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def request(
    url: str, payload: bytes | None = None, timeout: float = 30.0, headers: dict[str, str] | None = None
) -> tuple[int, Any, float]:
    """One HTTP request (POST when there is a payload): status, decoded JSON body, milliseconds."""
    req = urllib.request.Request(
        url,
        data=payload,
        method="POST" if payload is not None else "GET",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    elapsed = (time.perf_counter() - started) * 1000
    try:
        return status, json.loads(body), elapsed
    except json.JSONDecodeError:
        return status, body.decode(errors="replace"), elapsed


@contextmanager
def running_service(
    model_path: str | Path,
    host: str = "127.0.0.1",
    startup_timeout: float = 180.0,  # a busy machine (a CI runner, tests in parallel) imports slowly
    workers: int | None = None,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    log_url: str | None = None,
) -> Iterator[str]:
    """Start ``<package> serve`` in a child process on a free port; yield its base URL; stop it.

    ``workers`` (default: serve's own, the cores), ``env`` (added to this environment, e.g. the
    token) and ``args`` (more serve options) go to the command. The URL names ``host``, or
    127.0.0.1 when ``host`` is the wildcard address 0.0.0.0. The service logs its decisions to
    the prediction log at ``log_url`` only: without one (the steps' rehearsal traffic: step 07's
    checks, step 10's canary) it runs with ``--no-log``, so the production log holds production.
    """
    port = free_port(host)
    cmd = [
        sys.executable,
        "-m",
        "{{ cookiecutter.package_name }}.cli",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--model",
        str(model_path),
        *(["--workers", str(workers)] if workers else []),
        *args,
        *([] if log_url else ["--no-log"]),
    ]
    from .prediction_log import URL_ENV

    env = {**os.environ, **(env or {}), **({URL_ENV: log_url} if log_url else {})}
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the service exited with code {process.returncode}: {process.stderr.read().strip()}"
                )
            try:
                if request(f"{url}/health", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not answer {url}/health within {startup_timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def latency_profile(
    url: str, records: list[dict[str, Any]], batch_size: int, requests: int, seed: int, warmup: int = 5
) -> dict[str, float]:
    """Send ``requests`` POSTs of ``batch_size`` records each; p50, p99 and mean in milliseconds.

    The first ``warmup`` requests (lazy imports, first allocations in the server) are
    sent but not timed, as a load test would.
    """
    rng = np.random.default_rng(seed)
    timings = []
    for index in range(warmup + requests):
        pick = rng.choice(len(records), size=min(batch_size, len(records)), replace=False)
        status, body, elapsed = request(f"{url}/predict", json.dumps([records[i] for i in pick]).encode())
        if status != 200:
            raise RuntimeError(f"/predict answered {status}: {body}")
        if index >= warmup:
            timings.append(elapsed)
    return {
        "p50_latency_ms": float(np.percentile(timings, 50)),
        "p99_latency_ms": float(np.percentile(timings, 99)),
        "mean_latency_ms": float(np.mean(timings)),
        "requests": requests,
        "warmup_requests": warmup,
        "batch_size": batch_size,
    }


def _empty_answers(records: int) -> dict[str, Any]:
    return {"scores": np.full(records, np.nan), "decisions": np.full(records, -1), "rejected": [], "timings": []}


def serve_side_by_side(urls: dict[str, str], records: list[dict[str, Any]], batch_size: int) -> dict[str, dict]:
    """Send every request of ``batch_size`` records to each running service in ``urls``, in one pass.

    The services take turns answering first, so neither always meets a warmer machine. Returns per
    service the scores and decisions it served (NaN and -1 where it rejected), the numbers of the
    requests it rejected, and each request's milliseconds.
    """
    answers = {name: _empty_answers(len(records)) for name in urls}
    for number, start in enumerate(range(0, len(records), batch_size)):
        chunk = records[start : start + batch_size]
        payload = json.dumps(chunk).encode()
        order = list(urls) if number % 2 == 0 else list(reversed(urls))
        for name in order:
            status, body, elapsed = request(f"{urls[name]}/predict", payload)
            answer = answers[name]
            answer["timings"].append(elapsed)
            if status == 200:
                rows = slice(start, start + len(chunk))
                answer["scores"][rows] = [p["score"] for p in body["predictions"]]
                answer["decisions"][rows] = [p["decision"] for p in body["predictions"]]
            else:
                answer["rejected"].append(number)
    return answers


def canary(
    champion_path: str | Path,
    challenger_path: str | Path,
    records: list[dict[str, Any]],
    expected_scores: np.ndarray,
    batch_size: int,
    max_latency_ms: float,
    min_agreement: float = 0.8,
) -> dict[str, Any]:
    """Serve champion and challenger at the same time on the same records and compare their answers.

    Both services run at once and every request goes to both (:func:`serve_side_by_side`). The
    challenger passes when it served at least one record (a canary that served nothing proves
    nothing, even when the champion rejected everything too), rejected no request the champion
    accepted, served finite scores equal to its offline scores (``expected_scores``: no
    training/serving skew), took the champion's decision on at least ``min_agreement`` of the
    records both served, and answered within ``max_latency_ms`` at the 99th percentile. The score
    difference and the latency against the champion are measured beside. Returns the measurements
    and the verdict; the latencies, which differ from run to run, only under ``latency`` (the
    reproducible record keeps the latency check's verdict, the figures go to a file of their own).
    """
    # one worker each: the canary compares answers and latencies, it does not load-test (each worker imports the stack)
    with (
        running_service(champion_path, workers=1) as champion_url,
        running_service(challenger_path, workers=1) as challenger_url,
    ):
        answers = serve_side_by_side({"champion": champion_url, "challenger": challenger_url}, records, batch_size)
    champion, challenger = answers["champion"], answers["challenger"]
    served = ~np.isnan(challenger["scores"])
    both = served & ~np.isnan(champion["scores"])
    skew = float(np.max(np.abs(challenger["scores"][served] - np.asarray(expected_scores, float)[served]), initial=0.0))
    gap = np.abs(challenger["scores"][both] - champion["scores"][both])
    mean_gap = float(gap.mean()) if gap.size else np.nan
    agreement = float(np.mean(challenger["decisions"][both] == champion["decisions"][both])) if both.any() else np.nan
    p99 = {name: float(np.percentile(a["timings"], 99)) if a["timings"] else np.nan for name, a in answers.items()}
    only_challenger = sorted(set(challenger["rejected"]) - set(champion["rejected"]))
    checks = {
        "the challenger served records": bool(served.any()),
        "no request rejected that the champion accepted": not only_challenger,
        "served scores are finite": bool(np.isfinite(challenger["scores"][served]).all()),
        "served scores equal offline scores": skew < 1e-9,
        f"decisions agree with the champion's on at least {min_agreement:.0%}": agreement >= min_agreement,
        f"p99 latency within {max_latency_ms:g} ms": p99["challenger"] <= max_latency_ms,
    }
    failed = [name for name, ok in checks.items() if not ok]
    return {
        "records": len(records),
        "requests": len(challenger["timings"]),
        "rejected_requests": {name: len(a["rejected"]) for name, a in answers.items()},
        "served_records": int(served.sum()),
        "served_by_both": int(both.sum()),
        "decision_agreement": agreement,
        "mean_score_difference_vs_champion": mean_gap,
        "max_score_difference_vs_champion": float(gap.max()) if gap.size else np.nan,
        "max_score_difference": skew,
        "latency": {"p99_latency_ms": p99["challenger"], "champion_p99_latency_ms": p99["champion"]},
        "passed": not failed,
        "failed_checks": failed,
        "summary": (
            f"{int(served.sum()):,} of {len(records):,} records served by the challenger, {int(both.sum()):,} by both "
            f"(rejected requests: champion {len(champion['rejected'])}, challenger {len(challenger['rejected'])}); "
            f"decisions agree on {agreement:.1%}, mean |challenger - champion| score {mean_gap:.3f}; "
            f"max |served - offline| {skew:.1e}; p99 latency "
            + ("within" if p99["challenger"] <= max_latency_ms else "over")
            + f" {max_latency_ms:g} ms"
        ),
    }


# ---------------------------------------------------------------- step 07's checks of the artifact


def bundle_metadata(modeling: dict[str, Any], spec: dict[str, Any], train_path: Path, version: str) -> dict[str, Any]:
    """What travels with the model in its skops file: schema, version, training-data hash, step 06's verdict."""
    import pandas as pd

    from .profiling import feature_columns, input_columns
    from .project import file_md5

    training_md5 = file_md5(train_path)
    return {
        "model_name": modeling["model"],
        "version": f"{version}+{training_md5[:8]}",
        "params": modeling["params"],
        "schema": {c: spec["columns"][c] for c in input_columns(spec)},
        "feature_columns": feature_columns(spec),
        "sensitive_features": spec["sensitive_features"],
        "sensitive_bins": spec["sensitive_bins"],
        "positive_label": spec["positive_label"],
        "negative_label": spec["negative_label"],
        # the training file's other columns, so that a file of its shape scores outside the project too
        "target": spec["target"],
        "excluded_columns": spec["excluded_columns"],
        "training_data_md5": training_md5,
        "train_rows": len(pd.read_parquet(train_path, columns=[spec["target"]])),
        "metrics": modeling["test_metrics"],
        "releasable": modeling["releasable"],
        "reasons": modeling["reasons"],
        "needs_sensitive_features": False,
    }


def fresh_process_scores(model_path: Path, data_path: Path) -> np.ndarray:
    """Scores of ``data_path`` from the artifact loaded in a new Python process (nothing shared with this one)."""
    code = (
        "import sys, pandas as pd; from {{ cookiecutter.package_name }}.scoring import load_bundle, score; "
        "b = load_bundle(sys.argv[1], allow_unreleased=True); "
        "print(score(b, pd.read_parquet(sys.argv[2]), allow_extra=True, allow_unseen=True)['score']"
        ".to_json(orient='values', double_precision=15))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_path), str(data_path)], capture_output=True, text=True, check=True
    )
    return np.array(json.loads(done.stdout))


def predict_with_cli(model_path: Path, input_path: Path, output_path: Path) -> Any:
    """Score ``input_path`` with ``<package> predict`` as a user would (not logged: a rehearsal); the scored frame.

    A partitioned input (a directory of Parquet parts) is scored as a dataset: ``output_path`` is
    then a directory of parts under the same name, read back in the input's order.
    """
    import pandas as pd

    from .tables import remove

    remove(output_path)

    cmd = [sys.executable, "-m", "{{ cookiecutter.package_name }}.cli", "predict", str(input_path), str(output_path)]
    done = subprocess.run(
        [*cmd, "--model", str(model_path), "--allow-extra", "--allow-unseen", "--no-log"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`predict` failed ({done.returncode}): {done.stderr.strip()}")
    return pd.read_parquet(output_path)


def exercise_service(
    model_path: Path,
    records: list[dict[str, Any]],
    missing_column: str,
    batch_size: int,
    latency_requests: int,
    seed: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Start the service, send good and bad requests, time batches: (what it answered, latency measurements).

    The answers are the same on every run; the latencies are not, so they are returned apart
    (step 07 writes them to ``reports/metrics/latency.json``, which no stage depends on).
    """
    with running_service(model_path, workers=1) as url:  # one process answers as the others would
        _, health, _ = request(f"{url}/health")
        single, _, _ = request(f"{url}/predict", json.dumps(records[0]).encode())
        batch, many, _ = request(f"{url}/predict", json.dumps(records[:batch_size]).encode())
        malformed, _, _ = request(f"{url}/predict", b"{not json")
        incomplete = {k: v for k, v in records[0].items() if k != missing_column}
        refused, refusal, _ = request(f"{url}/predict", json.dumps([incomplete]).encode())
        latency = latency_profile(url, records, batch_size, latency_requests, seed)
    answers = {
        "health": health,
        "single_status": single,
        "batch_status": batch,
        "batch_scores": [p["score"] for p in many["predictions"]] if batch == 200 else [],
        "malformed_json_status": malformed,
        "missing_column_status": refused,
        "missing_column_reason": refusal.get("error") if isinstance(refusal, dict) else str(refusal),
    }
    return answers, latency
