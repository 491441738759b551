"""The benchmark's own logic (fast): the scale data it builds and what it reports about them.

The benchmark's timings are never asserted; what is checked is that it measures what it says.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
spec = importlib.util.spec_from_file_location("benchmark_run", SCRIPT)
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


@pytest.fixture
def project(default_project, tmp_path) -> Path:
    copy = tmp_path / default_project.name
    shutil.copytree(default_project, copy, symlinks=True)
    return copy


def shares(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(["sex", "race"]).size() / len(frame)


def base_rates(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(["sex", "race"])["income"].apply(lambda s: (s == ">50K").mean())


def test_scale_data_are_new_rows_with_the_default_datas_group_mix_and_base_rates(project):
    raw = pd.read_csv(project / "data/raw/adult.csv.gz")
    benchmark.resample(project, 60_000)
    data = pd.read_csv(project / "data/raw/adult.csv.gz")

    assert abs(len(data) - 60_000) <= raw.groupby(["sex", "race", "income"]).ngroups  # one rounding per stratum
    assert list(data.columns) == list(raw.columns) and data.dtypes.equals(raw.dtypes)
    pd.testing.assert_series_equal(shares(data), shares(raw), atol=1e-3)
    pd.testing.assert_series_equal(base_rates(data), base_rates(raw), atol=0.01)
    # new rows, not copies: few repeats, and most rows match no row of the source
    assert data.duplicated().mean() < raw.duplicated().mean() + 0.02  # the source repeats itself (10 %)
    copies = data.merge(raw.drop_duplicates(), how="inner", on=list(raw.columns))
    assert len(copies) < 0.05 * len(data)  # chance matches: Adult repeats 10 % of its own rows


def test_paths_taken_says_whether_step_08_released_and_step_10_challenged(tmp_path):
    for stage, name, content in [
        ("08_fairness_assessment", "release_decision.json", {"released": False, "reasons": ["gate a", "gate b"]}),
        ("10_retraining", "retraining_decision.json", {"reasons": ["no champion in service"]}),
    ]:
        (tmp_path / "reports" / stage).mkdir(parents=True)
        (tmp_path / "reports" / stage / name).write_text(json.dumps(content))
    assert benchmark.paths_taken(tmp_path).splitlines() == [
        "step 08: not released (gate a; gate b)",
        "step 10: no challenger (no champion in service)",
    ]
    (tmp_path / "reports/08_fairness_assessment/release_decision.json").write_text(json.dumps({"released": True}))
    (tmp_path / "reports/10_retraining/retraining_decision.json").write_text(
        json.dumps({"challenger": {"roc_auc": 0.9}, "reasons": ["promoted"]})
    )
    assert benchmark.paths_taken(tmp_path).splitlines() == [
        "step 08: released",
        "step 10: challenger trained and judged",
    ]


def test_stage_times_read_run_step_lines_old_and_new():
    output = (
        "Running stage 'business_case':\n"
        "business_case: reports/01_business_case/01_business_case.ipynb (5.1 s, 3.9 s in cells, warm kernel, "
        "own step process)\n"
        "success_criteria: reports/02_success_criteria/02_success_criteria.ipynb (0.6 s, 0.1 s in cells, "
        "warm kernel, forked step process)\n"
        "data_selection: reports/03_data_selection/03_data_selection.ipynb (2.5 s, warm kernel)\n"
        "modeling: reports/06_modeling/06_modeling.ipynb (27.9 s)\n"
        "note: reports/x.md is not a stage line (1.0 s)\n"
    )
    assert benchmark.stage_times(output) == {
        "business_case": 5.1,
        "success_criteria": 0.6,
        "data_selection": 2.5,
        "modeling": 27.9,
    }
    assert benchmark.cells_times(output) == {"business_case": 3.9, "success_criteria": 0.1}


def test_default_figures_table_reports_overhead_against_both_floors(capsys):
    stages = [{"modeling": 30.0, "monitoring": 10.0}, {"modeling": 32.0, "monitoring": 12.0}]
    script_floor = [{"modeling": 24.0, "monitoring": 6.0}] * 2
    rendered_floor = [{"modeling": 28.0, "monitoring": 9.0}] * 2
    cells = [{"modeling": 29.5, "monitoring": 9.0}, {"modeling": 31.0, "monitoring": 11.5}]
    benchmark.print_default_figures(
        2, [3.0, 3.0], [45.0, 47.0], [1.5, 1.7], script_floor, rendered_floor, stages, cells, [40.0, 44.0], [70.0, 71.0]
    )
    printed = capsys.readouterr().out
    lines = {line[:40].strip(): line[40:].split() for line in printed.splitlines() if line.strip()}
    assert lines["ratio full / (a)"] == ["1.53"]  # 46 / 30
    assert lines["ratio full / (b)"] == ["1.24"]  # 46 / 37
    assert lines["DVC + step process start, per stage"] == ["2.0"]  # (46 - (31 + 11)) / 2 stages
    # outside the cells: modeling 0.5 and 1.0 (median 0.75), monitoring 1.0 and 0.5 (0.75)
    assert lines["run_step outside cells, stage median"] == ["0.75"]
    assert lines["fixed overhead per stage, all included"] == ["2.75"]  # 0.75 + 2.0
    assert "modeling                   31.0     24.0     28.0      7.0      3.0     0.75" in printed
    assert lines["median overhead"] == ["6.0", "2.5", "0.75"]  # medians of (7, 5), (3, 2) and (0.75, 0.75)
    assert lines["forced repro, warm kernels"] == ["42.0"] and lines["forced repro, WARM_KERNELS=0"] == ["70.5"]
    assert lines["saved by warm kernels"] == ["28.5"]  # median of 30 and 27, each within its own run


def test_dvc_share_is_taken_within_each_run():
    full = [45.0, 52.0, 50.0]
    stages = [{"modeling": 30.0, "monitoring": 10.0}, {"modeling": 32.0, "monitoring": 12.0},
              {"modeling": 40.0, "monitoring": 8.0}]
    # per run (45 - 40) / 2, (52 - 44) / 2, (50 - 48) / 2; across runs, 50 - (32 + 10) would say 4.0
    assert benchmark.outside_share_per_stage(full, stages) == 2.5


def test_scale_stages_start_fresh_kernels_so_that_the_kernels_memory_counts(monkeypatch, tmp_path):
    envs = []

    def fake_timed(cmd, cwd, env):
        envs.append(env)
        return 1.0, "1.0 200"

    monkeypatch.setattr(benchmark.subprocess, "run", lambda *a, **k: SimpleNamespace(stdout="business_case modeling"))
    monkeypatch.setattr(benchmark, "timed", fake_timed)
    assert benchmark.peak_memory_per_stage(tmp_path) == {"business_case": (1.0, 200.0), "modeling": (1.0, 200.0)}
    assert [env["WARM_KERNELS"] for env in envs] == ["0", "0"]
