"""The serving benchmark's own logic (fast): its statistics and the table it prints.

The benchmark's timings are never asserted; what is checked is that it reports what it measured.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve.py"
spec = importlib.util.spec_from_file_location("benchmark_serve", SCRIPT)
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


def test_percentile_interpolates_as_numpy_does():
    np = pytest.importorskip("numpy")
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 10, 50, 90, 99, 100):
        assert benchmark.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert benchmark.percentile([], 50) != benchmark.percentile([], 50)  # nan: nothing measured


def test_summarize_reports_throughput_and_tail_latency():
    summary = benchmark.summarize([0.010] * 99 + [0.200], wall_s=0.5, errors=2)
    assert summary["requests"] == 100 and summary["requests_per_s"] == pytest.approx(200)
    assert summary["p50_ms"] == pytest.approx(10) and summary["max_ms"] == pytest.approx(200)
    assert 10 < summary["p99_ms"] < 200 and summary["errors"] == 2


def test_the_table_has_the_issues_rows_with_the_measured_values():
    figures = {
        "sequential": benchmark.summarize([0.004] * 10, wall_s=0.04),
        "concurrent_8": benchmark.summarize([0.02] * 100, wall_s=0.25),
        "concurrent_32": {**benchmark.summarize([0.05] * 100, wall_s=0.3), "errors": 3},
        "health_during_large": {**benchmark.summarize([0.002, 0.004], 1.0), "large_ms": 812.0},
        "floor": {"score_ms": 9.5, "predict_proba_ms": 6.25, "model": "Pipeline", "validate_ms": 1.25},
    }
    table = benchmark.format_table(figures).splitlines()
    assert len(table) == 2 + 5
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table[2:]}
    assert rows["sequential, p50"] == "4.0 ms (250 requests/s)"
    assert rows["8 concurrent clients"] == "400 requests/s, p99 20 ms"
    assert rows["32 concurrent clients"] == "333 requests/s, p99 50 ms (3 errors)"
    assert rows["`GET /health` while a 10,000-record request runs"].startswith("p50 3.0 ms, max 4.0 ms (2 probes;")
    assert "812 ms" in rows["`GET /health` while a 10,000-record request runs"]
    assert rows["in-process `scoring.score`, one record"] == (
        "9.5 ms, of which the model pipeline's own `predict_proba` 6.2 ms and the rest 3.2 ms "
        "(Pipeline; validating the record 1.2 ms)"
    )


def test_wrk_loads_with_the_given_clients_and_bodies_and_its_figures_are_read(monkeypatch):
    seen = {}

    def fake_wrk(cmd, env, **kwargs):
        seen["cmd"], seen["bodies"] = cmd, Path(env["BENCHMARK_BODIES"]).read_bytes()
        seen["script"] = Path(cmd[cmd.index("-s") + 1]).read_text()
        line = '{"requests": 6000, "seconds": 20.0, "p50_ms": 40.0, "p99_ms": 90.0, "max_ms": 120.0, "non_200": 2, "socket_errors": 1}'
        return subprocess.CompletedProcess(cmd, 0, stdout=f"Running 20s test\nBENCHMARK {line}\n", stderr="")

    monkeypatch.setattr(benchmark.subprocess, "run", fake_wrk)
    figures = benchmark.wrk_load("http://127.0.0.1:8123", [b'[{"a": 1}]', b'[{"a": 2}]'], clients=32, seconds=20)
    assert seen["cmd"][:4] == ["wrk", "-t2", "-c32", "-d20s"] and seen["cmd"][-1] == "http://127.0.0.1:8123"
    assert seen["bodies"] == b'[{"a": 1}]\n[{"a": 2}]\n' and 'wrk.format("POST", "/predict"' in seen["script"]
    assert figures["requests_per_s"] == 300 and figures["p99_ms"] == 90 and figures["errors"] == 3


def test_the_service_is_started_as_the_readme_says(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.scripts]\nmy_pkg = "my_pkg.cli:main"\n')
    package = benchmark.package_of(tmp_path)
    assert package == "my_pkg"
    monkeypatch.setattr(benchmark.shutil, "which", lambda name: None)  # not installed: the module, on src
    cmd, env = benchmark.serve_command(tmp_path, package, 8123, ["--workers", "2"])
    assert cmd[1:] == ["-m", "my_pkg.cli", "serve", "--host", "127.0.0.1", "--port", "8123", "--workers", "2"]
    assert env["PYTHONPATH"] == str(tmp_path / "src")
    monkeypatch.setattr(benchmark.shutil, "which", lambda name: f"/venv/bin/{name}")
    cmd, _ = benchmark.serve_command(tmp_path, package, 8123, [])
    assert cmd == ["/venv/bin/my_pkg", "serve", "--host", "127.0.0.1", "--port", "8123"]
