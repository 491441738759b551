"""Benchmark the generated project's lifecycle and print a table of figures.

    python benchmarks/run.py                      # generation, full and no-op repro, in-process floor
    python benchmarks/run.py --repeat 3           # medians over three runs (these machines are noisy)
    python benchmarks/run.py --sizes 30000 100000 # also the whole chain on resampled data of these sizes
    python benchmarks/run.py --scale-only --sizes 100000 --compute none,local1,local2 --score-sizes 1000000
    python benchmarks/run.py --score-only --compute none,local1,local2 --score-sizes 1000000 10000000

Figures (medians over --repeat runs):
1. generation time (cookiecutter plus hooks);
2. full `dvc repro` wall time, and per stage (as reported by run_step), with the time its
   notebook's cells ran (papermill's per-cell timings) and the rest: the stage's fixed
   overhead inside run_step (kernel start, papermill, reading and writing the notebook);
3. the floor: the same notebooks' code cells with the same parameters, run in sequence in
   ONE Python process with no kernel, no papermill and no DVC, (a) as scripts (figures never
   rendered) and (b) also rendering the outputs as the kernel does for the report (figures to
   PNG, tables to HTML); the ratios of 2 to each, and the per-stage overhead (2 minus each);
   and what DVC and the step process's start add per stage beyond what run_step reports,
   which with the part of 2 outside the cells is the whole fixed overhead of a stage;
4. no-op `dvc repro`;
4b. forced `dvc repro --force` with warm kernels (the default) and with WARM_KERNELS=0 (a fresh
   kernel and step process per stage), one after the other on the same project: what the warm
   kernels save;
5. with --sizes: the full chain on synthetic data drawn from the default data (new rows,
   keeping the sensitive-group mix and base rates, see resample()) at each size: wall time
   and peak memory per stage, and the growth exponent between consecutive sizes;
6. with --sizes and --compute none,local1,local2: side by side for each size, the chain (total
   wall time, the largest process's peak memory) and batch scoring of a Parquet dataset of that
   many rows (`predict DIR OUTDIR --model models/model.skops`, files of 100,000 rows) in process (none) and on a LocalCluster
   of one or two workers (localN: compute.scheduler local, N workers), with each mode's growth
   exponent, and whether the chain's metrics are the same bytes as in process;
7. with --score-only [--compute ...] --score-sizes 1000000 10000000: batch scoring alone on the
   default project, per mode and size: wall time, rows/s, peak memory, growth exponent, and the
   speedup over one worker.
Nothing here asserts a time; it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
PACKAGE = "income_outreach"
# e.g. "modeling: reports/06_modeling/06_modeling.ipynb (20.1 s, 19.4 s in cells, warm kernel, forked step process)"
STAGE_LINE = re.compile(r"^(\w+): reports/\S+ \(([\d.]+) s(?:, ([\d.]+) s in cells)?(?:, [\w ]+)*\)$", re.MULTILINE)


def env_for(project: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    # the floor runs on the one OpenMP thread the step kernels get by default (run_step's
    # KERNEL_ENVIRONMENT_DEFAULTS), so the two are compared on equal terms
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)  # raised below, with output
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def generate(workdir: Path) -> tuple[float, Path]:
    out = Path(tempfile.mkdtemp(dir=workdir))
    elapsed, _ = timed([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE)], workdir)
    return elapsed, out / "income-outreach"


def stage_times(output: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in STAGE_LINE.finditer(output)}


def cells_times(output: str) -> dict[str, float]:
    """How long each stage's cells ran, where run_step says so."""
    return {m.group(1): float(m.group(3)) for m in STAGE_LINE.finditer(output) if m.group(3)}


def floor(project: Path, render_outputs: bool = False) -> dict[str, float]:
    """Run every notebook's code cells, parameters injected, in one process; seconds per stage.

    With ``render_outputs`` the process also does the output work a kernel does for the
    report: each cell's figures rendered to PNG (``bbox_inches="tight"``, as the inline
    backend does) and closed; displayed objects and each cell's last expression turned into
    their rich representation (HTML, Markdown), not just printed. Without it, this is the
    notebooks exported to scripts: figures are drawn on Agg but never rendered.
    """
    driver = f'''
import ast, io, json, os, sys, time, yaml
from pathlib import Path
sys.path.insert(0, "src")
os.environ["MPLBACKEND"] = "Agg"
import matplotlib.pyplot as plt
from {PACKAGE} import run_step
from {PACKAGE}.project import STEPS, load_params, step_name
import IPython.display
RENDER = {render_outputs!r}

def rich(*objects, **_):
    for obj in objects:
        for method in ("_repr_html_", "_repr_markdown_", "_repr_png_"):
            if callable(getattr(obj, method, None)):
                getattr(obj, method)()
                break
        else:
            repr(obj)

def render_figures():
    for number in plt.get_fignums():
        plt.figure(number).savefig(io.BytesIO(), format="png", bbox_inches="tight")
    plt.close("all")

root = Path.cwd()
params = load_params(root)
times = {{}}
os.chdir(root / "notebooks")
for stage in STEPS:
    name = step_name(stage)
    notebook = json.loads((root / "notebooks" / f"{{name}}.ipynb").read_text())
    given = run_step.stage_parameters(run_step.load_stage(root, stage), params)
    namespace = {{"__name__": "__main__", "display": rich if RENDER else IPython.display.display}}
    started = time.perf_counter()
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        last = tree.body.pop() if RENDER and tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, name, "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
            if value is not None:
                rich(value)
        if RENDER:
            render_figures()
        if "parameters" in cell.get("metadata", {{}}).get("tags", []):
            namespace.update(given)
    times[stage] = time.perf_counter() - started
print(json.dumps(times))
'''
    _, out = timed([sys.executable, "-c", driver], project, env_for(project))
    return json.loads(out.strip().splitlines()[-1])


SWAP_PROBABILITY = 0.5


def resample(project: Path, rows: int, seed: int = 0, parts: int = 0) -> None:
    """Replace the raw data by ``rows`` synthetic rows drawn from it, keeping the group mix.

    Rows are drawn within each (sex, race, income) stratum, so the sensitive-group mix and each
    group's base rate stay those of the default data. Each drawn row then takes every other column,
    with probability ``SWAP_PROBABILITY``, from another random row of its stratum, and the numeric
    columns get a little noise: the rows are new, not copies. (A plain resample with replacement
    only repeats the default data's rows: step 05 keeps identical rows together in one split, so
    the splits would hold the default data's distinct rows many times over, not new data.)

    ``parts`` > 0: the rows go to a directory of that many Parquet files (drawn one file at a time,
    so that 10,000,000 rows never sit in this process's memory), and ``data.path`` names it: the
    steps read it partition by partition.
    """
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(project / "data/raw/adult.csv.gz")
    params = project / "params.yaml"
    text = params.read_text()
    if parts:
        folder = project / "data/raw/adult_parts"
        folder.mkdir()
        edges = np.linspace(0, rows, parts + 1).astype(int)
        for i in range(parts):
            chunk = synthetic_rows(raw, int(edges[i + 1] - edges[i]), np.random.default_rng([seed, i]), seed + i)
            chunk.to_parquet(folder / f"part-{i:04d}.parquet", index=False)
        text = text.replace("  path: data/raw/adult.csv.gz", "  path: data/raw/adult_parts", 1)
    else:
        synthetic_rows(raw, rows, np.random.default_rng(seed), seed).to_csv(project / "data/raw/adult.csv.gz", index=False)
    params.write_text(text)  # step 05 keeps every row (identical ones together): every stage sees the stated rows


def synthetic_rows(raw, rows: int, rng, seed: int):
    """``rows`` new rows drawn from ``raw`` within each (sex, race, income) stratum (see :func:`resample`)."""
    import numpy as np
    import pandas as pd

    strata = ["sex", "race", "income"]
    pieces = []
    for _, group in raw.groupby(strata):
        n = max(1, round(rows * len(group) / len(raw)))
        drawn = group.iloc[rng.integers(0, len(group), n)].reset_index(drop=True)
        for column in raw.columns.difference(strata):
            donors = group[column].to_numpy()[rng.integers(0, len(group), n)]
            drawn[column] = np.where(rng.random(n) < SWAP_PROBABILITY, donors, drawn[column].to_numpy())
        pieces.append(drawn)
    sample = pd.concat(pieces, ignore_index=True)
    for column in ("age", "hours_per_week", "education_num"):
        noise = rng.normal(0, 0.05 * raw[column].std(), len(sample))
        sample[column] = np.clip(np.round(sample[column] + noise), raw[column].min(), raw[column].max()).astype(int)
    return sample[raw.columns].sample(frac=1, random_state=seed)


def peak_memory_per_stage(project: Path, until: str | None = None) -> dict[str, tuple[float, float]]:
    """Run each stage alone (in order): wall time and peak RSS (MB) of its largest process.

    Each stage runs under a fresh wrapper process, so RUSAGE_CHILDREN covers that stage only.
    The kernels start fresh (WARM_KERNELS=0): a warm kernel is the kernel server's child, not
    this wrapper's descendant, and its memory would go uncounted. So these times include each
    kernel's imports, a few seconds per stage: conservative.
    """
    env = {**env_for(project), "WARM_KERNELS": "0"}
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = {}
    stages = subprocess.run([sys.executable, "-c", f"from {PACKAGE}.project import STEPS; print(' '.join(STEPS))"],
                            cwd=project, env=env, capture_output=True, text=True, check=True).stdout.split()
    for stage in stages:
        _, printed = timed([sys.executable, "-c", wrapper, sys.executable, "-m", f"{PACKAGE}.runtime.run_step", stage], project, env)
        seconds, peak = printed.split()[-2:]
        out[stage] = (float(seconds), float(peak))
        print(f"  {stage}: {float(seconds):.1f} s, {float(peak):.0f} MB", flush=True)
        if stage == until:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--scale-only", action="store_true", help="skip figures 1-4 (needs --sizes)")
    parser.add_argument(
        "--score-only", action="store_true", help="only figure 7: batch scoring of --score-sizes rows per --compute mode"
    )
    parser.add_argument(
        "--compute", default="", help="with --sizes: none,local1,local2 (in process; LocalCluster of 1 or 2 workers)"
    )
    parser.add_argument(
        "--score-sizes", type=int, nargs="*", default=None, help="with --compute: rows to batch-score (default: --sizes)"
    )
    parser.add_argument(
        "--partitioned", type=int, default=0, metavar="FILES",
        help="with --sizes: the data as a directory of FILES Parquet files (steps 03-05 read it partition by partition)",
    )
    parser.add_argument("--until", default=None, metavar="STAGE", help="with --sizes: stop after this stage")
    args = parser.parse_args()
    if args.score_only:
        modes = compute_modes(args.compute or "none,local1,local2")
        compare_scoring(Path(tempfile.mkdtemp(prefix="bench-")), modes, args.score_sizes or [1_000_000])
        return 0
    if args.scale_only:
        args.repeat = 0
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    gen, full, noop, floors, rendered, stages, cells, warm, fresh = [], [], [], [], [], [], [], [], []
    for _ in range(args.repeat):
        g, project = generate(work)
        gen.append(g)
        env = env_for(project)
        t, out = timed([sys.executable, "-m", "dvc", "repro"], project, env)
        full.append(t)
        stages.append(stage_times(out))
        cells.append(cells_times(out))
        noop.append(timed([sys.executable, "-m", "dvc", "repro"], project, env)[0])
        warm.append(timed([sys.executable, "-m", "dvc", "repro", "--force"], project, env)[0])
        fresh.append(timed([sys.executable, "-m", "dvc", "repro", "--force"], project, {**env, "WARM_KERNELS": "0"})[0])
        floors.append(floor(project))
        rendered.append(floor(project, render_outputs=True))
    if args.repeat:
        print_default_figures(args.repeat, gen, full, noop, floors, rendered, stages, cells, warm, fresh)
    if args.compute:
        compare_compute(work, args.sizes, compute_modes(args.compute), args.score_sizes or args.sizes)
    else:
        scale(work, args.sizes, args.partitioned, args.until)
    return 0


def set_compute(project: Path, mode: str) -> None:
    """compute.scheduler empty (mode none) or local with N workers (mode localN), memory_limit auto."""
    import re as _re

    if mode != "none" and not _re.fullmatch(r"local\d+", mode):
        raise SystemExit(f"--compute: unknown mode {mode!r} (none, local1, local2, ...)")
    scheduler, workers = ("", 2) if mode == "none" else ("local", int(mode[5:]))
    params = project / "params.yaml"
    text = _re.sub(r"(?m)^  scheduler:.*$", f"  scheduler: {scheduler}", params.read_text(), count=1)
    text = _re.sub(r"(?m)^  workers: \d+", f"  workers: {workers}", text, count=1)
    params.write_text(text)


def batch_dataset(project: Path, rows: int, per_file: int = 100_000) -> Path:
    """``rows`` records for batch scoring: the test split's features resampled, in Parquet files of ``per_file``."""
    import pandas as pd

    records = pd.read_parquet(project / "data/processed/test.parquet")
    spec = json.loads((project / "reports/03_data_selection/dataset_spec.json").read_text())
    records = records.drop(columns=[spec["target"]])
    folder = project / "data" / "batch_benchmark"
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, per_file)):
        part = records.sample(min(per_file, rows - start), replace=True, random_state=i)
        part.reset_index(drop=True).to_parquet(folder / f"batch-{i:04d}.parquet", index=False)
    return folder


def timed_peak(cmd: list[str], project: Path) -> tuple[float, float]:
    """Wall time and the largest process's peak RSS (MB) of a command (its workers included)."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    _, printed = timed([sys.executable, "-c", wrapper, *cmd], project, {**env_for(project), "WARM_KERNELS": "0"})
    seconds, peak = next(line for line in reversed(printed.splitlines()) if re.fullmatch(r"[\d.]+ [\d.]+", line)).split()
    return float(seconds), float(peak)


def score_batch(project: Path, dataset: Path) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of ``predict DATASET data/batch_scored --no-log`` with step 07's artifact
    (on resampled data step 08's release may be refused by its gates)."""
    import shutil

    out = project / "data" / "batch_scored"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", f"{PACKAGE}.cli", "predict", str(dataset), str(out), "--no-log", "--model", "models/model.skops"]
    return timed_peak(cmd, project)


def growth_exponent(seconds: float, prev_seconds: float, rows: int, prev_rows: int) -> float:
    """k in seconds ~ rows**k between two sizes."""
    return math.log(seconds / prev_seconds) / math.log(rows / prev_rows)


def compute_modes(text: str) -> list[str]:
    """``none,local1,local2`` as a list."""
    return [m.strip() for m in text.split(",") if m.strip()]


def compare_compute(work: Path, sizes: list[int], modes: list[str], score_sizes: list[int]) -> None:
    """Figure 6: the chain and batch scoring per compute mode, side by side (``score_sizes[i]`` rows scored
    with the chain of ``sizes[i]`` rows)."""
    rows_out = []
    previous: dict[str, tuple[int, float, float]] = {}
    for rows, score_rows in zip(sizes, score_sizes, strict=True):
        _, project = generate(work)
        resample(project, rows)
        reference = None
        for mode in modes:
            set_compute(project, mode)
            print(f"\n{rows:,} rows, compute {mode}:", flush=True)
            figures = peak_memory_per_stage(project)
            chain = sum(t for t, _ in figures.values())
            chain_peak = max(p for _, p in figures.values())
            metrics = {p.name: p.read_bytes() for p in sorted((project / "reports/metrics").glob("*.json"))}
            metrics.pop("latency.json", None)  # step 07's run-to-run latencies
            reference = reference or metrics
            same = "same" if metrics == reference else "DIFFER: " + ", ".join(k for k in metrics if metrics[k] != reference.get(k))
            score_s, score_peak = score_batch(project, batch_dataset(project, score_rows))
            exponents = ["", ""]
            if mode in previous:
                prev_rows, prev_score_rows, prev_chain, prev_score = previous[mode]
                exponents = [
                    f"{growth_exponent(chain, prev_chain, rows, prev_rows):.2f}",
                    f"{growth_exponent(score_s, prev_score, score_rows, prev_score_rows):.2f}",
                ]
            previous[mode] = (rows, score_rows, chain, score_s)
            rows_out.append((rows, mode, chain, chain_peak, exponents[0], score_rows, score_s, score_peak, exponents[1], same))
    print(f"\n{'rows':>10s} {'compute':8s} {'chain s':>8s} {'peak MB':>8s} {'exp':>5s} {'scored':>10s} {'score s':>8s} {'peak MB':>8s} {'exp':>5s}  metrics vs in process")
    for rows, mode, chain, chain_peak, e1, score_rows, score_s, score_peak, e2, same in rows_out:
        print(f"{rows:10,d} {mode:8s} {chain:8.1f} {chain_peak:8.0f} {e1:>5s} {score_rows:10,d} {score_s:8.1f} {score_peak:8.0f} {e2:>5s}  {same}")
    print("peak MB: the largest single process (a stage's kernel or a Dask worker); load: " + os.popen("uptime").read().strip())


def compare_scoring(work: Path, modes: list[str], score_sizes: list[int]) -> None:
    """Figure 7 (--score-only): batch scoring alone, per compute mode and size, on the default project.

    The project is reproduced once on its own data; each size's dataset is written once and scored in
    every mode. Speedup: one worker's time over this mode's, at the same size.
    """
    import shutil

    _, project = generate(work)
    timed([sys.executable, "-m", "dvc", "repro"], project, env_for(project))
    rows_out, seconds = [], {}
    for score_rows in score_sizes:
        dataset = batch_dataset(project, score_rows)
        for mode in modes:
            set_compute(project, mode)
            seconds[mode, score_rows], peak = score_batch(project, dataset)
            print(f"  {score_rows:,} rows, compute {mode}: {seconds[mode, score_rows]:.1f} s, {peak:.0f} MB", flush=True)
            rows_out.append((score_rows, mode, peak))
        shutil.rmtree(dataset)
    print(f"\n{'scored':>11s} {'compute':8s} {'score s':>8s} {'rows/s':>9s} {'peak MB':>8s} {'exp':>5s} {'vs local1':>9s}")
    for score_rows, mode, peak in rows_out:
        t = seconds[mode, score_rows]
        smaller = [r for r in score_sizes if r < score_rows and (mode, r) in seconds]
        exponent = f"{growth_exponent(t, seconds[mode, smaller[-1]], score_rows, smaller[-1]):.2f}" if smaller else ""
        one = seconds.get(("local1", score_rows))
        speedup = f"{one / t:.2f}x" if one and mode != "local1" else ""
        print(f"{score_rows:11,d} {mode:8s} {t:8.1f} {score_rows / t:9,.0f} {peak:8.0f} {exponent:>5s} {speedup:>9s}")
    print("peak MB: the largest single process (predict's, or a Dask worker's); load: " + os.popen("uptime").read().strip())


def outside_share_per_stage(full: list[float], stages: list[dict[str, float]]) -> float:
    """What DVC and the step process's start add to each stage: per run, the chain's wall time
    minus the stages' own times, over the stages; the median over runs. (Differences within a
    run: the median chain minus the per-stage medians mixes runs, and a noisy stage swings it.)
    """
    return statistics.median((total - sum(run.values())) / len(run) for total, run in zip(full, stages, strict=True))


def print_default_figures(repeat, gen, full, noop, floors, rendered, stages, cells, warm, fresh) -> None:
    med = statistics.median

    def median_per_stage(runs: list[dict[str, float]]) -> dict[str, float]:
        return {stage: med(run[stage] for run in runs) for stage in runs[0]}

    per_stage, per_floor, per_rendered = map(median_per_stage, (stages, floors, rendered))
    # outside the cells: the part of each stage's time that does not grow with its work
    fixed = median_per_stage([{s: run[s] - cell[s] for s in cell} for run, cell in zip(stages, cells, strict=True)])
    fixed_median = med(fixed.values()) if fixed else math.nan
    floor_total, rendered_total = sum(per_floor.values()), sum(per_rendered.values())
    outside = outside_share_per_stage(full, stages)
    print(f"\nruns: {repeat} (medians)\n")
    rows = [
        ("generation (cookiecutter + hooks)", med(gen), 1),
        ("full dvc repro", med(full), 1),
        ("floor: scripts in one python (a)", floor_total, 1),
        ("floor (a) + outputs rendered (b)", rendered_total, 1),
        ("ratio full / (a)", med(full) / floor_total, 2),
        ("ratio full / (b)", med(full) / rendered_total, 2),
        ("DVC + step process start, per stage", outside, 1),
        ("run_step outside cells, stage median", fixed_median, 2),
        ("fixed overhead per stage, all included", fixed_median + outside, 2),
        ("no-op dvc repro", med(noop), 1),
        ("forced repro, warm kernels", med(warm), 1),
        ("forced repro, WARM_KERNELS=0", med(fresh), 1),
        ("saved by warm kernels", med(f - w for f, w in zip(fresh, warm, strict=True)), 1),
    ]
    print(f"{'figure':40s} {'seconds':>10s}")
    for label, value, digits in rows:
        print(f"{label:40s} {value:10.{digits}f}")
    print("(b) also renders each figure to PNG and each table to HTML, as the kernel does for the report")
    print("fixed overhead: run_step's time outside the notebook's cells (kernel start, papermill, notebook")
    print("  read and written), plus DVC and the step process's start; the kernels' imports run in cells")
    print(f"\n{'stage':22s} {'repro s':>8s} {'(a) s':>8s} {'(b) s':>8s} {'- (a) s':>8s} {'- (b) s':>8s} {'fixed s':>8s}")
    for stage, seconds in per_stage.items():
        a, b = per_floor.get(stage, math.nan), per_rendered.get(stage, math.nan)
        print(f"{stage:22s} {seconds:8.1f} {a:8.1f} {b:8.1f} {seconds - a:8.1f} {seconds - b:8.1f} "
              f"{fixed.get(stage, math.nan):8.2f}")
    print(f"{'median overhead':22s} {'':8s} {'':8s} {'':8s} "
          f"{med(per_stage[s] - per_floor[s] for s in per_stage):8.1f} "
          f"{med(per_stage[s] - per_rendered[s] for s in per_stage):8.1f} "
          f"{fixed_median:8.2f}")
    print("(repro s is the stage as run_step reports it; DVC and the step process's start are the line above)")
    sys.stdout.flush()


def scale(work: Path, sizes: list[int], parts: int = 0, until: str | None = None) -> None:
    previous = None
    for rows in sizes:
        _, project = generate(work)
        resample(project, rows, parts=parts)
        figures = peak_memory_per_stage(project, until)
        total = sum(t for t, _ in figures.values())
        print(f"\nscale {rows:,} rows: total {total:.1f} s")
        print(f"{'stage':22s} {'s':>8s} {'peak MB':>8s} {'exponent':>9s}")
        for stage, (seconds, peak) in figures.items():
            exponent = ""
            if previous:
                prev_rows, prev_figures = previous
                exponent = f"{growth_exponent(seconds, prev_figures[stage][0], rows, prev_rows):9.2f}"
            print(f"{stage:22s} {seconds:8.1f} {peak:8.0f} {exponent:>9s}")
        if until is None:
            print(paths_taken(project))
        sys.stdout.flush()
        previous = (rows, figures)


def paths_taken(project: Path) -> str:
    """Which way steps 08 and 10 went: their cost depends on it (compare sizes that went the same way)."""
    release = json.loads((project / "reports/08_fairness_assessment/release_decision.json").read_text())
    decision = json.loads((project / "reports/10_retraining/retraining_decision.json").read_text())
    step_08 = "released" if release["released"] else "not released (" + "; ".join(release.get("reasons", [])) + ")"
    step_10 = "challenger trained and judged" if "challenger" in decision else "no challenger (" + decision["reasons"][0] + ")"
    return f"step 08: {step_08}\nstep 10: {step_10}"


if __name__ == "__main__":
    sys.exit(main())
