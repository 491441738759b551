"""Methods a reviewer would sign (issue 17), end to end on the default project.

Item 4: drift that sees a zero-inflated column. capital_gain is 92% zeros in the default data;
quantile bins with ties removed made it one bin whose PSI stayed near 0 whatever happened to it.
A monitoring batch whose non-zero share is doubled must be named as drifted by step 09, and an
unchanged batch must not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import dvc

pytestmark = pytest.mark.e2e


@pytest.fixture
def project_copy(reproduced_project: Path, tmp_path: Path) -> Path:
    """A copy to change without disturbing the shared reproduced project."""
    copy = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True)
    return copy


def doubled_non_zero_share(batch: pd.DataFrame, column: str, pool: np.ndarray, seed: int) -> pd.DataFrame:
    """The batch with as many zeros of ``column`` again turned into non-zero values drawn from ``pool``."""
    rng = np.random.default_rng(seed)
    out = batch.copy()
    zeros = out.index[out[column] == 0]
    flip = rng.choice(zeros, size=int((out[column] > 0).sum()), replace=False)
    out.loc[flip, column] = rng.choice(pool, size=len(flip))
    return out


def test_a_zero_inflated_shift_in_a_production_batch_is_named_by_step_09(project_copy):
    project = project_copy
    train = pd.read_parquet(project / "data/processed/train.parquet")
    held_out = pd.read_parquet(project / "data/processed/test.parquet")
    assert (train["capital_gain"] == 0).mean() > 0.9  # the premise: a column of about 92% zeros
    control = held_out.sample(2000, random_state=1).reset_index(drop=True)
    shifted = doubled_non_zero_share(
        held_out.sample(2000, random_state=2).reset_index(drop=True),
        "capital_gain",
        train.loc[train["capital_gain"] > 0, "capital_gain"].to_numpy(),
        seed=7,
    )
    before = (held_out["capital_gain"] > 0).mean()
    assert (shifted["capital_gain"] > 0).mean() == pytest.approx(2 * before, rel=0.25)
    production = project / "data/production"
    production.mkdir(parents=True, exist_ok=True)
    control.to_csv(production / "2026-01_control.csv", index=False)
    shifted.to_csv(production / "2026-02_capital_gain.csv", index=False)
    dvc(project, "repro", "monitoring")

    report = pd.read_csv(project / "reports/09_monitoring/monitoring_report.csv").set_index("batch")
    drifted = report["drifted"].fillna("").astype(str).str.split(", ")
    assert "capital_gain" in drifted["2026-02_capital_gain.csv"], report.loc["2026-02_capital_gain.csv"].to_dict()
    assert "capital_gain" not in drifted["2026-01_control.csv"], report.loc["2026-01_control.csv"].to_dict()
    status = json.loads((project / "reports/09_monitoring/monitoring_status.json").read_text())
    assert any(
        r.startswith("2026-02_capital_gain.csv: feature_drift") and "capital_gain" in r for r in status["reasons"]
    ), status["reasons"]
    assert not any(r.startswith("2026-01_control.csv: feature_drift") for r in status["reasons"]), status["reasons"]
