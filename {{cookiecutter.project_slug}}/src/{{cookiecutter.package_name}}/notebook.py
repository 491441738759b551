"""Small helpers every step notebook uses: where to write, how to show results. Adapt with care: every notebook uses it.

``step = start_step("modeling", cfg)`` finds the project root from wherever the
notebook runs, creates ``reports/06_modeling/`` and sets a plotting style, so
figures look alike across the ten reports. It also checks that ``cfg``, the values the
notebook's ``parameters`` cell gave, are what ``dvc repro`` gives the step (params.yaml): when
they differ (a notebook run in JupyterLab after params.yaml changed, or papermill with ``-p``),
the run says so first and writes under ``explorations/`` (see :mod:`.runtime.parameters`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .project import find_project_root, read_json, report_dir, step_name, write_json, write_text


@dataclass(frozen=True)
class Step:
    stage: str
    root: Path
    out: Path

    @property
    def name(self) -> str:
        return step_name(self.stage, self.root)

    def path(self, relative: str) -> Path:
        """A path relative to the project root."""
        return self.root / relative

    def report(self, stage: str, filename: str) -> Path:
        """A file another step wrote to its report directory."""
        return self.root / "reports" / step_name(stage, self.root) / filename

    @property
    def compute(self) -> Any:
        """The project's ``compute:`` section (:class:`.config.Compute`), for :func:`.compute.parallel`.

        Read from params.yaml, not injected: no stage declares it, since where a step computes
        does not change what it computes (a change of scheduler reruns nothing).
        """
        from .compute import settings

        return settings(self.root)

    def read_report(self, stage: str, filename: str) -> Any:
        return read_json(self.report(stage, filename))

    # The writers return None on purpose: a notebook cell ending with one then shows no
    # machine-specific path, so executed reports stay byte-identical wherever they run.
    def write_json(self, filename: str, data: Any) -> None:
        write_json(self.out / filename, data)

    def write_metrics(self, data: Any) -> None:
        """reports/metrics/<stage>.json: the figures DVC shows with `dvc metrics show`."""
        write_json(self.root / "reports" / "metrics" / f"{self.stage}.json", data)

    def write_measurements(self, name: str, data: Any) -> None:
        """reports/metrics/<name>.json: figures that change from run to run (latencies, timings).

        Declared as a DVC metric; no stage depends on it, so a rerun that measures other
        timings changes this file only, never a result downstream.
        """
        write_json(self.root / "reports" / "metrics" / f"{name}.json", data)

    def write_plot_data(self, filename: str, frame: pd.DataFrame) -> None:
        """reports/plots/<filename>: a CSV that `dvc plots show` draws."""
        write_text(self.root / "reports" / "plots" / filename, frame.to_csv(index=False))

    def write_text(self, filename: str, text: str) -> None:
        write_text(self.out / filename, text)

    def save_figure(self, fig: Any, filename: str) -> Path:
        """Save a matplotlib figure as PNG next to the report (deterministic bytes)."""
        path = self.out / filename
        fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
        return path


def start_step(stage: str, cfg: Any = None) -> Step:
    """Locate the project, create the step's report directory, set display options.

    With ``cfg`` (the stage's :class:`.config.StageConfig`), a run whose values differ from
    params.yaml is an exploration: it says so, naming each key and both values, and its step
    writes under ``explorations/NN_stage/`` instead of the pipeline's outputs.
    """
    import matplotlib

    show_figures_inline()
    use_the_pipelines_threads()
    matplotlib.rcParams.update(
        {"figure.figsize": (7, 4), "axes.grid": True, "grid.alpha": 0.3, "axes.titleweight": "bold"}
    )
    pd.set_option("display.max_columns", 50)
    pd.set_option("display.width", 140)
    root = find_project_root()
    from . import live
    from .runtime import parameters

    exploring = None if cfg is None else parameters.exploring(stage, cfg, root)
    live.MUTED = None
    if exploring is not None:
        print(exploring[1], file=sys.stderr)
        live.MUTED = (
            None if exploring[0] == root else "an exploration sends no alert (its parameters differ from params.yaml)"
        )
        root = exploring[0]
    return Step(stage=stage, root=root, out=report_dir(root, stage))


def use_the_pipelines_threads() -> None:
    """Run native code (OpenMP, BLAS) on as many threads as the pipeline's kernels: ``OMP_NUM_THREADS``, else 1.

    Floating-point sums depend on how they are split across threads: a JupyterLab kernel on every
    core found a threshold 6e-14 away from the pipeline's single-threaded one, and `dvc status`
    then called step 06 and everything after it stale. The same thread count, wherever the
    notebook runs, gives the same bytes; export OMP_NUM_THREADS to give both more cores.
    """
    from threadpoolctl import threadpool_limits

    from .compute import pipeline_threads

    threadpool_limits(limits=pipeline_threads())  # the calls a cluster runs get the same (compute.run)


def show_figures_inline() -> None:
    """In a Jupyter kernel, draw figures into the notebook whatever ``MPLBACKEND`` says.

    ipykernel picks the inline backend only when ``MPLBACKEND`` is unset; a JupyterLab started
    from a shell that exports ``MPLBACKEND=Agg`` would otherwise run every step without figures.
    """
    import matplotlib

    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel") and "inline" not in matplotlib.get_backend():
        shell.run_line_magic("matplotlib", "inline")


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(fmt(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def show(text: str) -> None:
    """Display Markdown in a notebook (plain print elsewhere)."""
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    display(Markdown(text))


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def thin_curve(columns: dict[str, np.ndarray], points: int = 200) -> pd.DataFrame:
    """At most ``points`` evenly spaced points of a curve, rounded: small, stable plot files."""
    frame = pd.DataFrame(columns)
    keep = np.unique(np.linspace(0, len(frame) - 1, min(len(frame), points)).astype(int))
    return frame.iloc[keep].round(5).reset_index(drop=True)
