"""Bring your own data: projects pointed at datasets shaped unlike Adult, and every bad input.

Four generated projects (tests/datasets.py: boolean, 1/2, 0/1 and string targets; numeric and
categorical sensitive features; 300 categories; odd column names; 2% positives; CSV and Parquet)
each get only their ``data:`` section (and the two ``monitoring`` keys the README tells users
to set) edited, and run the whole chain with ``dvc repro``, concurrently. A fifth project runs
only the first stages and takes every bad input of the data contract in turn: each must stop
at the first stage that can see it with one message naming the key or column and the value,
leave no half-written outputs, and let ``dvc repro`` go on once the input is fixed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import STEPS, bake, changed_stages, dvc, package_of, project_env, report, report_dir, run
from datasets import DATASETS, Dataset, churn

pytestmark = pytest.mark.e2e  # one xdist worker runs the whole file (conftest.SAME_WORKER)
ADULT_ONLY = (">50K", "hours_per_week", "capital_gain", "native_country", "`sex`", "`race`")


# dataset: (released, evidence, the gates that refused it), from the data's size and signal (tests/datasets.py)
EXPECTED_VERDICTS = {
    "clinic": (False, "inconclusive", ["cost_vs_baseline"]),  # 120 test rows
    "churn": (True, "pass", []),
    "fraud": (False, "inconclusive", ["cost_vs_baseline"]),  # 2% positives
    "grants": (False, "inconclusive", ["cost_vs_baseline"]),  # 360 test rows
}


def notebook_text(project: Path, stage: str) -> str:
    """Everything the executed notebook of a stage displays (Markdown, text, streams)."""
    name = report_dir(project, stage).name
    notebook = json.loads((report_dir(project, stage) / f"{name}.ipynb").read_text())
    parts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts.append("".join(data.get("text/markdown", data.get("text/plain", ""))))
            parts.append("".join(output.get("text", "")))
    return "\n".join(parts)


def edit_params(project: Path, change: Callable[[dict], None]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")


def point_at(project: Path, dataset: Dataset) -> None:
    """What a user does: copy the file into data/raw/ and edit the data section (and two monitoring keys)."""
    dataset.write(project / "data" / "raw")

    def change(params: dict) -> None:
        params["data"] = dataset.data_section()
        params["monitoring"].update(dataset.monitoring_section())

    edit_params(project, change)


def repro_concurrently(projects: dict[str, Path]) -> dict[str, float]:
    """`dvc repro` in every project at once; every one must succeed. Returns seconds per project."""
    started = time.perf_counter()
    # one OpenMP thread each: several chains on a few cores with a thread per core make scikit-learn's
    # gradient boosting spin on barriers and run many times slower (minutes instead of seconds)
    running = {
        name: subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=project,
                               env={**project_env(project), "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, project in projects.items()
    }
    seconds, failures = {}, []
    for name, process in running.items():
        output, _ = process.communicate(timeout=3600)
        seconds[name] = time.perf_counter() - started
        if process.returncode != 0:
            failures.append(f"{name}: dvc repro failed ({process.returncode}):\n{output[-4000:]}")
    assert not failures, "\n\n".join(failures)
    return seconds


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test dataset in its own generated project, after a full `dvc repro`."""
    reuse = os.environ.get("TEMPLATE_TESTS_OWN_DATA_PROJECTS")
    if reuse:  # developer shortcut: copies of projects reproduced before, in <dir>/<dataset>[/<slug>]
        copies = {}
        for name in DATASETS:
            source = next(p.parent for p in [Path(reuse) / name / "dvc.yaml", *sorted((Path(reuse) / name).glob("*/dvc.yaml"))] if p.is_file())
            copies[name] = tmp_path_factory.mktemp(f"own_{name}") / source.name
            shutil.copytree(source, copies[name], symlinks=True)
        return copies
    projects = {}
    for name, dataset in DATASETS.items():
        projects[name] = bake(tmp_path_factory.mktemp(f"own_{name}"))
        point_at(projects[name], dataset)
    seconds = repro_concurrently(projects)
    print("full chains, concurrently: " + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()))
    return projects


NAMES = list(DATASETS)


# --- own data: the whole chain ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_step_runs_and_reports_on_the_users_data(own, name):
    project = own[name]
    for stage in STEPS:
        text = notebook_text(project, stage)
        notebook = json.loads((report_dir(project, stage) / f"{report_dir(project, stage).name}.ipynb").read_text())
        errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}/{stage}: a cell raised"
        leftovers = [word for word in ADULT_ONLY if word in text]
        assert not leftovers, f"{name}/{stage}: the report mentions Adult's {leftovers}"
        warnings = [line for line in text.splitlines() if "Warning:" in line]
        assert not warnings, f"{name}/{stage}: {warnings}"
    assert not (project / "reports" / "failed").exists()
    assert changed_stages(project) == ""


@pytest.mark.parametrize("name", NAMES)
def test_the_contract_is_understood(own, name):
    project, dataset = own[name], DATASETS[name]
    frame = dataset.frame()
    target, label = dataset.contract["target"], dataset.contract["positive_label"]
    positive_share = float((frame[target].astype(str).str.lower() == str(label).lower()).mean())
    charter = report(project, "business_case", "charter.json")
    assert charter["prevalence"] == pytest.approx(positive_share)
    spec = report(project, "data_selection", "dataset_spec.json")
    assert spec["target"] == target and spec["sensitive_features"] == dataset.contract["sensitive_features"]
    assert str(spec["positive_label"]).lower() == str(label).lower()
    assert spec["negative_label"] != spec["positive_label"]
    selected = pd.read_parquet(project / "data/interim/selected.parquet")
    assert set(selected[target].unique()) == {0, 1}
    assert selected[target].mean() == pytest.approx(positive_share)
    assert set(selected.columns) >= set(frame.columns) - set(spec["excluded_columns"])
    dictionary = pd.read_csv(report_dir(project, "data_selection") / "data_dictionary.csv").set_index("column")
    for column in frame.columns[frame.isna().any()]:
        assert dictionary.loc[column, "missing_rate"] > 0, f"{name}: missing values of {column!r} not reported"
    # numeric sensitive features are binned in step 03, and the binning is reported
    numeric_sensitive = [f for f in spec["sensitive_features"] if pd.api.types.is_numeric_dtype(frame[f])]
    assert sorted(spec["sensitive_bins"]) == sorted(numeric_sensitive)
    text = notebook_text(project, "data_selection")
    for feature in numeric_sensitive:
        assert f"`{feature}`: " + ", ".join(f"{e:g}" for e in spec["sensitive_bins"][feature]) in text
        groups = pd.read_csv(report_dir(project, "data_bias_plan") / "representation.csv")
        assert len(groups[groups["feature"] == feature]) == len(spec["sensitive_bins"][feature]) - 1


def test_dataset_specific_roles(own):
    churn_spec = report(own["churn"], "data_selection", "dataset_spec.json")
    churn_dictionary = pd.read_csv(report_dir(own["churn"], "data_selection") / "data_dictionary.csv").set_index("column")
    assert "zip.code" in churn_spec["categorical_features"]
    assert "high cardinality (300 categories" in churn_dictionary.loc["zip.code", "flags"]
    grants_spec = report(own["grants"], "data_selection", "dataset_spec.json")
    assert grants_spec["excluded_columns"]["application id"] == "data.id_columns"
    assert "field code" in grants_spec["categorical_features"]  # data.categorical_columns
    assert "resubmission" in grants_spec["categorical_features"]  # booleans are categories
    assert grants_spec["positive_label"] == "funded" and grants_spec["negative_label"] == "rejected"
    # columns recorded after the outcome are caught as leakage, however the export names them
    excluded = grants_spec["excluded_columns"]
    assert "leakage" in excluded["payout (€)"] and "leakage" in excluded["days to decision"], excluded
    assert "datetime" in excluded["decision sent"]  # text that reads as dates
    assert excluded["score (copy)"] == "duplicate of `review score`" and "review score" in grants_spec["numeric_features"]
    assert excluded["notes"] == "empty (no value present)"
    assert "`notes`: empty (no value present)" in (report_dir(own["grants"], "data_selection") / "datasheet.md").read_text()
    assert report(own["clinic"], "data_selection", "dataset_spec.json")["positive_label"] is True
    assert report(own["churn"], "data_selection", "dataset_spec.json")["positive_label"] == 2


def test_a_leak_kept_on_purpose_is_too_good_to_be_true_and_stops_the_release(own, tmp_path):
    project = tmp_path / own["grants"].name
    shutil.copytree(own["grants"], project, symlinks=True)
    edit_params(project, lambda params: params["data"].update(keep_columns=["days to decision"]))
    dvc(project, "repro", "modeling")
    modeling = report(project, "modeling", "modeling.json")
    assert modeling["test_metrics"]["roc_auc"] > 0.99
    assert not modeling["releasable"]
    alarm = next(r for r in modeling["reasons"] if r.startswith("leakage_alarm"))
    assert "carried by `days to decision`" in alarm, alarm


@pytest.mark.parametrize("name", NAMES)
def test_models_learn_the_signal_and_gates_are_decided(own, name):
    project = own[name]
    modeling = report(project, "modeling", "modeling.json")
    metrics = modeling["test_metrics"]
    assert metrics["roc_auc"] > 0.7, f"{name}: the model did not learn the planted signal"
    assert metrics["roc_auc"] > modeling["baselines_test_metrics"]["majority_class"]["roc_auc"]
    assert 0 < modeling["threshold"] <= 1.01
    # the verdicts a reviewer would give (issue 28): each model beats the simplest honest model on evidence;
    # the cost saving is shown on churn's 900 test rows, too uncertain on the smaller or rarer ones (the
    # release waits, and says why); fairness groups are too small to compare at these sizes (not assessed)
    gates = {g["gate"]: g for g in modeling["gates"]}
    assert gates["model_quality"]["verdict"] == "pass" and gates["model_quality"]["low"] > -0.01, gates["model_quality"]
    release = report(project, "fairness_assessment", "release_decision.json")
    released, evidence, reasons = EXPECTED_VERDICTS[name]
    assert (release["released"], release["evidence"]) == (released, evidence), release["reasons"]
    assert [r.split(":")[0] for r in release["reasons"]] == reasons, release["reasons"]
    assert all("inconclusive" in r and "holds the threshold" in r for r in release["reasons"])
    for gate in release["gates"]:
        if gate["gate"].startswith("equalized_odds["):
            assert gate["verdict"] == "not assessed" and "more rows" in gate["note"], gate
    status = report(project, "monitoring", "monitoring_status.json")
    assert isinstance(status["retrain_recommended"], bool) and isinstance(status["reasons"], list)
    assert status["batches"], f"{name}: no batch monitored"
    decision = report(project, "retraining", "retraining_decision.json")
    assert isinstance(decision["promoted"], bool) and decision["reasons"]


@pytest.mark.parametrize("name", NAMES)
def test_monitoring_simulates_from_the_test_split(own, name):
    project, dataset = own[name], DATASETS[name]
    status = report(project, "monitoring", "monitoring_status.json")
    test_rows = len(pd.read_parquet(project / "data/processed/test.parquet"))
    assert sum(b["rows"] for b in status["batches"]) <= test_rows
    text = notebook_text(project, "monitoring")
    assert "simulated from `data/processed/test.parquet`" in text
    shifted = [b for b in status["batches"] if b["injected"].startswith(dataset.drift_feature)]
    if len(status["batches"]) >= 3:
        assert shifted, f"{name}: no batch with {dataset.drift_feature!r} shifted"
    else:
        assert "with injected drift do not exist" in text


def test_a_tiny_sensitive_group_is_warned_and_reported_not_a_crash(own):
    project = own["fraud"]  # region 'islands' has 8 rows
    representation = pd.read_csv(report_dir(project, "data_bias_plan") / "representation.csv")
    islands = representation[(representation["feature"] == "region") & (representation["group"] == "islands")]
    assert len(islands) == 1 and not islands["assessable"].iloc[0] and islands["rows"].iloc[0] == 8
    assert "Too small to assess" in notebook_text(project, "data_bias_plan") and "`islands`" in notebook_text(project, "data_bias_plan")
    table = pd.read_csv(report_dir(project, "fairness_assessment") / "group_metrics_region.csv").set_index("group")
    islands = table.loc["islands"]  # reported, with its (wide) Wilson interval and the rows it lacks
    text = notebook_text(project, "fairness_assessment")
    assert "Reported but not gated for equalized odds" in text
    assert f"`region` = `islands` ({int(islands['rows'])} rows" in text
    assert not islands["gated_demographic_parity"] and islands["rows_needed_demographic_parity"] > 0
    assert islands["selection_rate_high"] - islands["selection_rate_low"] > 0.2


def test_two_percent_positives(own):
    project = own["fraud"]
    assert report(project, "business_case", "charter.json")["prevalence"] < 0.03
    split = report(project, "data_pipeline", "data_pipeline.json")["splits"]
    assert all(part["positive_rate"] > 0 for part in split.values()), "a split lost every positive"
    assert report(project, "modeling", "modeling.json")["test_metrics"]["roc_auc"] > 0.7


def test_metrics_and_plots_with_odd_names(own):
    for name in ("grants", "clinic"):
        metrics = json.loads(dvc(own[name], "metrics", "show", "--json").stdout)
        assert "test_roc_auc" in json.dumps(metrics)
    plots = json.loads(dvc(own["grants"], "plots", "show", "--json", "reports/plots/selection_rate.csv").stdout)
    assert "Herkunft.region=Süd" in json.dumps(plots, ensure_ascii=False)
    selection = pd.read_csv(own["grants"] / "reports/plots/selection_rate.csv")
    assert {"Geschlecht=weiblich", "Herkunft.region=Übersee"} <= set(selection["group"])


# --- production batches with the user's data ------------------------------------------------


def test_production_batches_good_and_with_a_different_schema(own):
    """Labelled batches in data.production_dir are monitored; a batch whose schema differs stops step 09."""
    project = own["churn"]
    production = project / "data" / "production"
    fresh = churn(rows=800, seed=99)  # new customers from the same population, labels coded 1/2 as in training
    fresh.iloc[:400].to_csv(production / "2024-01.csv", index=False)
    fresh.iloc[400:].assign(comment="extra column").to_parquet(production / "2024-02.parquet", index=False)
    dvc(project, "repro")
    status = report(project, "monitoring", "monitoring_status.json")
    assert [b["batch"] for b in status["batches"]] == ["2024-01.csv", "2024-02.parquet"]
    assert all(b["label_rate"] is not None and 0.1 < b["label_rate"] < 0.6 for b in status["batches"])
    release = (project / "models/release.skops").read_bytes()
    modeling = (report_dir(project, "modeling") / "modeling.json").read_bytes()

    bad_cases = {
        "missing column": (fresh.drop(columns=["zip.code"]), "column 'zip.code'"),
        "text in a numeric column": (fresh.assign(**{"tenure months": "long"}), "'tenure months'"),
        "a third label": (fresh.assign(**{"churn status": 3}), "3"),
    }
    for case, (batch, expected) in bad_cases.items():
        batch.head(300).to_csv(production / "2024-03.csv", index=False)
        result = dvc(project, "repro", check=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR [")]
        assert result.returncode != 0, case
        assert len(errors) == 1 and errors[0].startswith("ERROR [monitoring]:"), (case, result.stderr[-2000:])
        assert "2024-03.csv" in errors[0] and expected in errors[0], (case, errors[0])
        assert not report_dir(project, "monitoring").exists(), f"{case}: half-written monitoring report left"
        assert (project / "models/release.skops").read_bytes() == release
        assert (report_dir(project, "modeling") / "modeling.json").read_bytes() == modeling
    (production / "2024-03.csv").unlink()
    result = dvc(project, "repro")
    assert "Running stage 'monitoring'" not in result.stdout, "the good run was not restored from the cache"
    assert report(project, "monitoring", "monitoring_status.json") == status


def test_monitoring_params_left_at_their_adult_values(own):
    """The Adult source left in place gives way to the test split, said in the report; a source of this data
    that lacks a model input is a clear error; an absent drift feature is replaced."""
    project = own["fraud"]
    good_params = (project / "params.yaml").read_bytes()
    status = report(project, "monitoring", "monitoring_status.json")

    edit_params(project, lambda p: p["monitoring"].update(simulation_source="data/external/adult_test.csv.gz"))
    dvc(project, "repro", "monitoring")
    text = notebook_text(project, "monitoring")
    assert "(`data/external/adult_test.csv.gz`) is other data (it has no `is_fraud`" in text, text[-3000:]
    assert "simulated from `data/processed/test.parquet`" in text

    holdout = pd.read_parquet(project / "data/processed/test.parquet").drop(columns=["amount"])
    holdout.to_csv(project / "data/external/fraud_holdout.csv", index=False)
    edit_params(project, lambda p: p["monitoring"].update(simulation_source="data/external/fraud_holdout.csv"))
    result = dvc(project, "repro", "monitoring", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR [")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("ERROR [monitoring]: DataContractError: monitoring.simulation_source: "
                                "'data/external/fraud_holdout.csv' lacks the training column 'amount'"), errors[0]
    assert "data/processed/test.parquet" in errors[0]
    assert (project / "models/release.skops").is_file() and not report_dir(project, "monitoring").exists()

    edit_params(project, lambda p: p["monitoring"].update(simulation_source="data/processed/test.parquet",
                                                          drift_shift_feature="hours_per_week"))
    dvc(project, "repro", "monitoring")
    assert ("`monitoring.drift_shift_feature` = `hours_per_week` is not a numeric feature of the model; "
            "the drift is injected into `amount` instead.") in notebook_text(project, "monitoring")
    shifted = report(project, "monitoring", "monitoring_status.json")["batches"][2]
    assert shifted["injected"] == "amount × 1.3"

    (project / "params.yaml").write_bytes(good_params)
    dvc(project, "repro")
    assert report(project, "monitoring", "monitoring_status.json") == status


# --- scoring the user's data: the batch command and the service -------------------------------


def test_batch_scorer_and_service_on_odd_column_names(own, tmp_path):
    project = own["churn"]
    model = "models/model.skops"
    test = pd.read_parquet(project / "data/processed/test.parquet")
    records = test.drop(columns=["churn status"])
    inputs = {
        "ok.parquet": records,
        "missing.csv": records.drop(columns=["zip.code"]),
        "extra.csv": records.assign(note="x"),
        "wrong_type.csv": records.assign(**{"tenure months": "ten"}),
        "unseen.csv": records.assign(plan="platinum"),
        "empty.csv": records.head(0),
    }
    for file, frame in inputs.items():
        (frame.to_parquet if file.endswith(".parquet") else frame.to_csv)(tmp_path / file, index=False)
    expected = {
        "missing.csv": "missing column 'zip.code'",
        "extra.csv": "unexpected column 'note'",
        "wrong_type.csv": "column 'tenure months': value 'ten'",
        "unseen.csv": "column 'plan': unseen category 'platinum'",
        "empty.csv": "no data rows",
    }

    def predict(file: str, *extra: str) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", f"{package_of(project)}.cli", "predict", str(tmp_path / file), str(tmp_path / "out.csv"),
                    "--model", model, *extra], project, check=False)

    released = report(project, "modeling", "modeling.json")["releasable"]
    if not released:
        result = predict("ok.parquet")
        assert result.returncode == 1 and "not releasable" in result.stderr
        return
    assert predict("ok.parquet").returncode == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == len(records)
    for file, message in expected.items():
        result = predict(file)
        assert result.returncode == 1 and message in result.stderr, (file, result.stderr)
    assert predict("extra.csv", "--allow-extra").returncode == 0
    assert predict("unseen.csv", "--allow-unseen").returncode == 0

    code = (
        "import json, sys, pandas as pd\n"
        "from fastapi.testclient import TestClient\n"
        f"from {package_of(project)}.service import create_app\n"
        f"client = TestClient(create_app('{model}', max_records=50))\n"
        "rows = json.loads(pd.read_parquet('data/processed/test.parquet').drop(columns=['churn status']).head(60).to_json(orient='records'))\n"
        "def post(body):\n"
        "    r = client.post('/predict', content=json.dumps(body).encode())\n"
        "    return [r.status_code, r.json().get('error', '')]\n"
        "out = {'ok': post(rows[:3]), 'too_many': post(rows), 'empty': post([]),\n"
        "       'wrong_type': post([dict(rows[0], **{'support calls': 'many'})]),\n"
        "       'missing': post([{k: v for k, v in rows[0].items() if k != 'zip.code'}]),\n"
        "       'extra': post([dict(rows[0], note='x')]), 'unseen': post([dict(rows[0], plan='platinum')])}\n"
        "print(json.dumps(out))\n"
    )
    out = json.loads(run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])
    assert out["ok"][0] == 200
    assert out["too_many"][0] == 413 and "60 records" in out["too_many"][1]
    assert out["empty"][0] == 422 and "no records" in out["empty"][1]
    assert out["wrong_type"][0] == 422 and "'support calls'" in out["wrong_type"][1]
    assert out["missing"][0] == 422 and "'zip.code'" in out["missing"][1]
    assert out["extra"][0] == 422 and "'note'" in out["extra"][1]
    assert out["unseen"][0] == 422 and "'platinum'" in out["unseen"][1]


# --- bad input: one clear message, nothing lost, and dvc repro goes on after the fix ----------


@pytest.fixture(scope="module")
def contract_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project on the small clinic dataset, reproduced up to data_selection (cheap stages only)."""
    project = bake(tmp_path_factory.mktemp("contract"))
    point_at(project, DATASETS["clinic"])
    dvc(project, "repro", "data_selection")
    return project


def _write(project: Path, name: str, frame: pd.DataFrame | bytes) -> str:
    path = project / "data" / "raw" / name
    if isinstance(frame, bytes):
        path.write_bytes(frame)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return f"data/raw/{name}"


def _truncated_parquet(project: Path) -> str:
    path = _write(project, "truncated.parquet", DATASETS["clinic"].frame())
    payload = (project / path).read_bytes()
    (project / path).write_bytes(payload[: len(payload) // 2])
    return path


CLINIC = DATASETS["clinic"].frame
# id: (change of the data section given the project, stage that must stop, words the one ERROR line must hold)
BAD_INPUTS: dict[str, tuple[Callable[[Path], dict], str, list[str]]] = {
    "missing file": (lambda p: {"path": "data/raw/no such file.csv"}, "dvc", ["no such file.csv"]),
    "binary garbage named .csv": (lambda p: {"path": _write(p, "garbage.csv", bytes(range(256)) * 40)},
                                  "business_case", ["data.path", "data/raw/garbage.csv", "cannot read"]),
    "truncated parquet": (lambda p: {"path": _truncated_parquet(p)},
                          "business_case", ["data.path", "data/raw/truncated.parquet", "cannot read"]),
    "empty file": (lambda p: {"path": _write(p, "empty.csv", b"")}, "business_case", ["data.path", "data/raw/empty.csv", "is empty"]),
    "header only": (lambda p: {"path": _write(p, "header.csv", CLINIC().head(0))},
                    "business_case", ["data.path", "data/raw/header.csv", "no data rows"]),
    "target missing": (lambda p: {"target": "readmission"}, "business_case", ["data.target", "'readmission'", "not in the data"]),
    "positive label not a value": (lambda p: {"positive_label": "maybe"},
                                   "business_case", ["data.positive_label", "'maybe'", "False, True"]),
    "target with one class": (lambda p: {"path": _write(p, "one.csv", CLINIC().assign(readmitted=True))},
                              "business_case", ["data.target", "'readmitted'", "one class only (True)"]),
    "target with three classes": (
        lambda p: {"path": _write(p, "three.csv", CLINIC().assign(
            readmitted=np.where(np.arange(400) % 3 == 0, "unknown", CLINIC()["readmitted"].astype(str))))},
        "business_case", ["data.target", "'readmitted'", "3 classes", "'unknown'"]),
    "sensitive feature missing": (lambda p: {"sensitive_features": ["Patient age", "Geschlecht"]},
                                  "business_case", ["data.sensitive_features", "'Geschlecht'", "not in the data"]),
    "empty sensitive feature": (lambda p: {"path": _write(p, "nan.csv", CLINIC().assign(**{"Patient age": np.nan}))},
                                "data_selection", ["data.sensitive_features", "'Patient age'", "entirely empty"]),
    "duplicated column names": (
        lambda p: {"path": _write(p, "dup.csv", CLINIC().set_axis(
            ["Patient age", "ward", "größe", "visits.last_year", "ward", "readmitted"], axis=1))},
        "business_case", ["data.path", "duplicated column names", "'ward'"]),
    "drop column missing": (lambda p: {"drop_columns": ["Notes"]}, "data_selection", ["data.drop_columns", "'Notes'"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_stops_with_one_clear_message_and_nothing_lost(contract_project, case):
    project = contract_project
    make, stage, words = BAD_INPUTS[case]
    good_params = (project / "params.yaml").read_bytes()
    cache_before = {p.relative_to(project) for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()}
    later = (project / "data/interim/selected.parquet").read_bytes()
    change = make(project)
    edit_params(project, lambda params: params["data"].update(change))

    result = dvc(project, "repro", "data_selection", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    if stage == "dvc":  # DVC checks the ${data.path} dependency before any stage runs
        assert len(errors) == 1 and "failed to reproduce 'business_case'" in errors[0], result.stderr
        assert "Running stage" not in result.stdout
    else:
        ours = [line for line in errors if line.startswith("ERROR [")]
        assert len(ours) == 1 and ours[0].startswith(f"ERROR [{stage}]: DataContractError: "), result.stderr
        errors = ours
        assert not report_dir(project, stage).exists(), "half-written outputs of the failed stage were left"
        assert (project / "reports/failed" / f"{report_dir(project, stage).name}.ipynb").is_file()
    for word in words:
        assert word in errors[0], f"{case}: {word!r} not in {errors[0]!r}"
    if stage == "data_selection":
        assert (report_dir(project, "business_case") / "charter.json").is_file()
    elif (project / "data/interim/selected.parquet").exists():
        assert (project / "data/interim/selected.parquet").read_bytes() == later
    cache_after = {p.relative_to(project) for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()}
    assert cache_before <= cache_after, "the DVC cache lost objects"

    (project / "params.yaml").write_bytes(good_params)  # the fix
    fixed = dvc(project, "repro", "data_selection")
    assert "Running stage" not in fixed.stdout, f"{case}: the good results were recomputed instead of restored"
    assert (project / "data/interim/selected.parquet").read_bytes() == later
    assert "up to date" in dvc(project, "status", "business_case", "data_selection").stdout


def test_dvc_exp_run_with_set_params(contract_project):
    """`dvc exp run -S data.path=... -S data.target=...` points the pipeline at other data."""
    project = contract_project
    grants = DATASETS["grants"]
    grants.write(project / "data" / "raw")
    # DVC parses -S values with Hydra's override grammar: spaces and non-ASCII letters need quotes
    dvc(project, "exp", "run", "data_selection", "-S", f"data.path={grants.path}", "-S", "data.target='décision'",
        "-S", "data.positive_label=funded", "-S", "data.sensitive_features=[Geschlecht, Herkunft.region]",
        "-S", "data.id_columns=['application id']", "-S", "data.categorical_columns=['field code']")
    spec = report(project, "data_selection", "dataset_spec.json")
    assert spec["target"] == "décision" and spec["positive_label"] == "funded"
    assert spec["sensitive_features"] == ["Geschlecht", "Herkunft.region"]
    charter = report(project, "business_case", "charter.json")
    assert charter["data_path"] == grants.path
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    assert "décision" in json.dumps(shown, ensure_ascii=False)
