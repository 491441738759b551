"""Own data in one command: the generated README's `dvc exp run -S ...` line, run as written, on data the test makes."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import STEPS, bake, project_env, report, report_dir, run

pytestmark = pytest.mark.e2e


def loans(rows: int = 1500, seed: int = 11) -> pd.DataFrame:
    """Loan defaults: yes/no target, two categorical sensitive features, none of Adult's columns."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], rows)
    region = rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2])
    income = rng.lognormal(10.3, 0.5, rows).round(-1)
    debt = rng.uniform(0, 0.8, rows).round(3)
    years = rng.integers(0, 30, rows)
    purpose = rng.choice(["car", "home", "study", "other"], rows)
    logit = 4 * debt - 0.5 * np.log(income / 30000) - 0.04 * years + np.where(purpose == "other", 0.7, 0.0) - 1.2
    defaulted = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"gender": gender, "region": region, "income": income, "debt_ratio": debt,
                         "years_employed": years, "purpose": purpose, "defaulted": np.where(defaulted, "yes", "no")})


def readme_one_liner(project) -> str:
    """The `dvc exp run` command of the README's 'Bring your own data', as a user would copy it."""
    section = (project / "README.md").read_text().split("## Bring your own data", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    return next(line for line in block.replace("\\\n", " ").splitlines() if line.startswith("dvc exp run"))


def test_the_readmes_one_command_runs_the_lifecycle_on_other_data(tmp_path):
    project = bake(tmp_path)
    loans().to_csv(project / "data/raw/loans.csv", index=False)
    run(["git", "add", "data/raw/loans.csv"], project)  # step 1 of the README, without a DVC remote
    command = (
        readme_one_liner(project)
        .replace("data/raw/<file>.csv", "data/raw/loans.csv")
        .replace("<column>", "defaulted")
        .replace("<value>", "yes")
        .replace("[<col>, <col>]", "[gender, region]")
    )
    assert "<" not in command, f"a placeholder is left: {command}"
    result = subprocess.run(["bash", "-c", command], cwd=project, env=project_env(project), capture_output=True, text=True)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    for stage in STEPS:
        assert any(report_dir(project, stage).glob("*.ipynb")), f"{stage} did not run"
    spec = report(project, "data_selection", "dataset_spec.json")
    assert spec["target"] == "defaulted" and spec["sensitive_features"] == ["gender", "region"]
    status = report(project, "monitoring", "monitoring_status.json")
    assert status["batches"], "step 09 judged no batch"
    assert report(project, "retraining", "retraining_decision.json")["reasons"]
