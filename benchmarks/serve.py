"""Benchmark the generated project's HTTP service on loopback and print a table.

    python benchmarks/serve.py --project /tmp/x/income-outreach   # a generated, reproduced project
    python benchmarks/serve.py                                    # generates one and runs `dvc repro` first
    python benchmarks/serve.py --project DIR --workers 1          # options after the project go to `serve`

The service is started as the project's README says (``<package> serve --host 127.0.0.1
--port PORT``, the console command, or ``python -m <package>.cli`` with ``src`` on the path
when the project is not installed), and loaded with one-record requests drawn from the test
split, one keep-alive connection per client, by wrk (Debian's ``wrk``, a C load generator, when
installed; ``--load-generator httpx`` uses this script's asyncio client, which needs a core of its
own at a few hundred requests/s):

1. sequential: one client, p50 latency (and the requests/s that makes);
2. 8 and 32 concurrent clients: requests/s and p99 latency, and how many answers were not 200;
3. ``GET /health`` while one 10,000-record request is being scored: p50 and max latency;
4. the in-process floor: ``scoring.score`` of one record, and the model pipeline's own
   ``predict_proba`` (the part no service can avoid), in a fresh process.

Only loopback traffic, bounded in time (``--max-seconds`` per figure; httpx also by
``--requests``). Nothing is asserted; it prints numbers (this machine's load shows in them:
compare figures taken in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
LARGE = 10_000

FLOOR = r"""
import json, sys, time
import numpy as np, pandas as pd
from threadpoolctl import threadpool_limits
from {package} import scoring
from {package}.project import find_project_root

threadpool_limits(1)  # as `serve` does (--threads 1)
root = find_project_root()
bundle = scoring.load_bundle(scoring.default_model_path(root))
meta = bundle["metadata"]
records = pd.read_parquet(root / "data/processed/test.parquet").head(200)
frames = [records.iloc[[i]][scoring.required_columns(meta)] for i in range(len(records))]
model = bundle["model"]
pipeline = getattr(model, "pipeline", model)
features = scoring.validate_input(records, meta, allow_extra=True)[meta["feature_columns"]]
rows = [features.iloc[[i]] for i in range(len(features))]

def median_ms(call, items):
    call(items[0])
    times = []
    for item in items:
        started = time.perf_counter()
        call(item)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)

print(json.dumps({{
    "score_ms": median_ms(lambda f: scoring.score(bundle, f), frames),
    "validate_ms": median_ms(lambda f: scoring.validate_input(f, meta), frames),
    "predict_proba_ms": median_ms(pipeline.predict_proba, rows),
    "model": type(model).__name__ + (f" ({{model.kind}})" if hasattr(model, "kind") else ""),
}}))
"""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(latencies_s: list[float], wall_s: float, errors: int = 0) -> dict[str, float]:
    """Requests/s over the wall time, p50 and p99 in milliseconds, errors (answers other than 200)."""
    ms = [t * 1000 for t in latencies_s]
    return {
        "requests": len(ms),
        "requests_per_s": len(ms) / wall_s if wall_s > 0 else float("nan"),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "errors": errors,
    }


def format_table(figures: dict[str, dict[str, float]]) -> str:
    """The issue's table: one row per figure, the measured value beside the in-process floor."""
    seq, c8, c32 = figures["sequential"], figures["concurrent_8"], figures["concurrent_32"]
    health, floor = figures["health_during_large"], figures["floor"]

    def concurrent(f: dict[str, float]) -> str:
        errors = f" ({f['errors']:.0f} errors)" if f.get("errors") else ""
        return f"{f['requests_per_s']:.0f} requests/s, p99 {f['p99_ms']:.0f} ms{errors}"

    rows = [
        ("sequential, p50", f"{seq['p50_ms']:.1f} ms ({seq['requests_per_s']:.0f} requests/s)"),
        ("8 concurrent clients", concurrent(c8)),
        ("32 concurrent clients", concurrent(c32)),
        (
            f"`GET /health` while a {LARGE:,}-record request runs",
            (
                f"p50 {health['p50_ms']:.1f} ms, max {health['max_ms']:.1f} ms ({health['requests']:.0f} probes; "
                f"the large request took {health['large_ms']:.0f} ms)"
            ),
        ),
        (
            "in-process `scoring.score`, one record",
            (
                f"{floor['score_ms']:.1f} ms, of which the model pipeline's own `predict_proba` "
                f"{floor['predict_proba_ms']:.1f} ms and the rest {floor['score_ms'] - floor['predict_proba_ms']:.1f} ms "
                f"({floor['model']}; validating the record {floor['validate_ms']:.1f} ms)"
            ),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'':<{width}} | measured |", f"|{'-' * (width + 2)}|---|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


async def load(url: str, bodies: list[bytes], clients: int, requests: int, max_seconds: float) -> dict[str, float]:
    """``clients`` concurrent clients send ``requests`` POSTs in all (or stop after ``max_seconds``)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one_client() -> None:
            nonlocal errors
            for index in queue:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/predict", content=bodies[index % len(bodies)], headers={"Content-Type": "application/json"}
                    )
                except httpx.HTTPError:  # a connection dropped or timed out: an error, not the end of the run
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        await client.post("/predict", content=bodies[0], headers={"Content-Type": "application/json"})  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return summarize(latencies, wall, errors)


WRK_SCRIPT = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCHMARK_BODIES")) do bodies[#bodies + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"}, bodies[counter % #bodies + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHMARK {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "non_200": %d, "socket_errors": %d}\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` keep-alive connections of wrk (C, two threads at most) for ``seconds``, cycling ``bodies``."""
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-wrk-") as work:
        script, data = Path(work) / "post.lua", Path(work) / "bodies.jsonl"
        script.write_text(WRK_SCRIPT)
        data.write_bytes(b"\n".join(bodies) + b"\n")
        command = ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s"]
        result = subprocess.run(
            [*command, "-s", str(script), url],
            env={**os.environ, "BENCHMARK_BODIES": str(data)},
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCHMARK "))
    figures = json.loads(line.removeprefix("BENCHMARK "))
    return {
        **figures,
        "requests_per_s": figures["requests"] / figures["seconds"],
        "errors": figures["non_200"] + figures["socket_errors"],
    }


async def health_during_large(url: str, large: bytes, interval_s: float = 0.01) -> dict[str, float]:
    """Probe /health (new connections) while one large /predict request is being answered."""
    import httpx

    probes: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as big, httpx.AsyncClient(base_url=url, timeout=10) as small:
        started = time.perf_counter()
        task = asyncio.ensure_future(big.post("/predict", content=large, headers={"Content-Type": "application/json"}))
        await asyncio.sleep(0.05)  # the body is on its way
        while not task.done():
            t = time.perf_counter()
            try:
                response = await small.get("/health", headers={"Connection": "close"})
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and not task.done():
                probes.append(time.perf_counter() - t)
            await asyncio.sleep(interval_s)
        status = (await task).status_code
        large_ms = (time.perf_counter() - started) * 1000
    summary = summarize(probes, 1.0)
    return {**summary, "large_ms": large_ms, "large_status": status}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def package_of(project: Path) -> str:
    import tomllib

    return next(iter(tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]))


def serve_command(project: Path, package: str, port: int, extra: list[str]) -> tuple[list[str], dict[str, str]]:
    """The README's command: the console script if installed, else the same module on ``src``."""
    env = dict(os.environ)
    script = shutil.which(package)
    base = [script] if script else [sys.executable, "-m", f"{package}.cli"]
    if not script:
        env["PYTHONPATH"] = str(project / "src")
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port), *extra], env


def wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/health did not answer within {timeout:.0f} s")


def request_bodies(project: Path, package: str, count: int) -> tuple[list[bytes], bytes]:
    import pandas as pd
    import yaml

    target = yaml.safe_load((project / "params.yaml").read_text())["data"]["target"]
    test = pd.read_parquet(project / "data/processed/test.parquet").drop(columns=[target])
    spec = json.loads((project / "reports/03_data_selection/dataset_spec.json").read_text())
    inputs = list(spec["numeric_features"]) + list(spec["categorical_features"]) + list(spec["sensitive_features"])
    records = json.loads(test[inputs].to_json(orient="records"))
    ones = [json.dumps([r]).encode() for r in records[:count]]
    large = json.dumps([records[i % len(records)] for i in range(LARGE)]).encode()
    return ones, large


def in_process_floor(project: Path, package: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", FLOOR.format(package=package)],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"the in-process floor failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def reproduced_project(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(workdir), str(TEMPLATE)], check=True
    )
    project = next(p for p in workdir.iterdir() if p.is_dir())
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, check=True)
    return project


def measure(
    project: Path, requests: int, max_seconds: float, serve_args: list[str], generator: str = "wrk"
) -> dict[str, dict]:
    package = package_of(project)
    ones, large = request_bodies(project, package, count=min(requests, 2000))
    figures: dict[str, dict] = {"floor": in_process_floor(project, package)}
    port = free_port()
    cmd, env = serve_command(project, package, port, serve_args)
    process = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, process)
        for name, clients in (("sequential", 1), ("concurrent_8", 8), ("concurrent_32", 32)):
            if generator == "wrk":
                figures[name] = wrk_load(url, ones, clients, max_seconds)
            else:
                count = requests // 4 if clients == 1 else requests
                figures[name] = asyncio.run(load(url, ones, clients, count, max_seconds))
        figures["health_during_large"] = asyncio.run(health_during_large(url, large))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a generated project after `dvc repro` (default: make one)")
    parser.add_argument(
        "--load-generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="wrk (Debian's package; the default when installed) or this script's asyncio client, which spends "
        "a core of its own at a few hundred requests/s and so understates a 2-core service",
    )
    parser.add_argument("--requests", type=int, default=1000, help="httpx: requests per level (sequential: a quarter)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="duration (wrk) or time limit of each load figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args, serve_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as work:
        project = args.project.resolve() if args.project else reproduced_project(Path(work))
        figures = measure(project, args.requests, args.max_seconds, serve_args, args.load_generator)
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; serve {' '.join(serve_args) or '(defaults)'}; "
        f"load from {args.load_generator}, one-record requests on keep-alive connections"
    )
    print(format_table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
