"""The production loop of the default project, closed (issue 20): the service logs its decisions,
outcomes arrive later through `label`, and `make monitor` reads the log's windows and decides.

Held-out census records are served in requests of a hundred; from the 3,001st on, their weekly
hours are raised by 30% (a lasting shift). Monitoring windows are 1,000 decisions. A plain
`dvc repro` keeps the snapshot it has (nothing to do); the first `make monitor` sees the new
traffic without outcomes; `label` then attaches the outcomes and the next `make monitor` reruns
monitoring for them alone (no parameter changed), computes the online figures, recommends
retraining on the sustained breach, posts the alert to a webhook the test listens on, and step
10 decides; a last `make monitor` reads the log again and has nothing else to do.
"""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading

import pandas as pd
import pytest
import yaml

from conftest import changed_stages, dvc, package_of, report, run, stages_run
from test_prediction_log import Service, post

pytestmark = pytest.mark.e2e

WINDOW, WINDOWS, PER_REQUEST = 1000, 6, 100
SHIFT_FROM = 3000


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_port}/alerts", Receiver.received
    server.shutdown()


@pytest.fixture
def project_copy(reproduced_project, tmp_path):
    copy = tmp_path / reproduced_project.name
    shutil.copytree(reproduced_project, copy, symlinks=True)
    return copy


def monitor(project, env: dict[str, str]):
    """`make monitor`, the production schedule's command, with the tests' Python."""
    return run(["make", "monitor", f"PYTHON={sys.executable}"], project, env=env)


def held_out(project, fields: list[str]) -> pd.DataFrame:
    """Census records the model never saw, the lasting shift injected from SHIFT_FROM on."""
    rows = pd.read_csv(project / "data/external/adult_test.csv.gz").head(WINDOW * WINDOWS).reset_index(drop=True)
    rows.loc[SHIFT_FROM:, "hours_per_week"] = (rows.loc[SHIFT_FROM:, "hours_per_week"] * 1.3).round().clip(upper=99)
    return rows[[*fields, "income"]]


def test_served_decisions_are_monitored_by_window_and_outcomes_drive_retraining(project_copy, webhook):
    package, url = package_of(project_copy), webhook[0]
    log = f"sqlite:///{project_copy / 'data/log/predictions.sqlite'}"  # the default place
    spec = json.loads((project_copy / "reports/03_data_selection/dataset_spec.json").read_text())
    test_columns = pd.read_parquet(project_copy / "data/processed/test.parquet").columns
    records = held_out(project_copy, [c for c in test_columns if c in spec["columns"] and c != spec["target"]])

    service = Service(project_copy, log)
    answered = []
    try:
        for start in range(0, len(records), PER_REQUEST):
            chunk = records.iloc[start : start + PER_REQUEST]
            status, body = post(f"{service.base}/predict", json.loads(chunk.drop(columns="income").to_json(orient="records")))
            assert status == 200, body
            answered += [(body["request_id"], i) for i in range(len(body["predictions"]))]
    finally:
        service.stop()
    assert len(answered) == WINDOW * WINDOWS

    env = {f"{package.upper()}_ALERT_WEBHOOK": url}
    kept = dvc(project_copy, "repro", env=env)  # a plain repro keeps the snapshot it has: nothing to do
    assert stages_run(kept.stdout) == [] and changed_stages(project_copy) == "", kept.stdout
    params = yaml.safe_load((project_copy / "params.yaml").read_text())
    params["monitoring"].update(window=WINDOW, windows=WINDOWS)
    (project_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = monitor(project_copy, env)
    assert stages_run(first.stdout)[0] == "production_log", first.stdout
    assert {"monitoring", "retraining"} <= set(stages_run(first.stdout)), first.stdout
    status = report(project_copy, "monitoring", "monitoring_status.json")
    assert [b["rows"] for b in status["batches"]] == [WINDOW] * WINDOWS
    assert all("0 of 1,000 with outcome" in b["injected"] for b in status["batches"])

    outcomes = pd.DataFrame(answered, columns=["request_id", "record_index"]).assign(income=records["income"].to_numpy())
    outcomes.to_csv(project_copy / "outcomes.csv", index=False)
    labelled = run([sys.executable, "-m", f"{package}.cli", "label", "outcomes.csv"], project_copy,
                   env={f"{package.upper()}_PREDICTION_LOG_URL": log})
    assert "6,000 decisions matched, 6,000 labelled now" in labelled.stdout, labelled.stdout

    webhook[1].clear()
    second = monitor(project_copy, env)
    assert stages_run(second.stdout)[:2] == ["production_log", "monitoring"], second.stdout  # outcomes only: no parameter changed
    status = report(project_copy, "monitoring", "monitoring_status.json")
    windows = status["batches"]
    assert all("1,000 of 1,000 with outcome" in w["injected"] for w in windows), windows
    drifted = ["hours_per_week" in (w["drifted"] or "") for w in windows]
    assert drifted == [False] * 3 + [True] * 3, [(w["batch"], w["drifted"]) for w in windows]
    assert all(0.8 < w["roc_auc"] < 1 for w in windows), [w["roc_auc"] for w in windows]
    assert status["retrain_recommended"] is True and status["recent_breaches"] == [w["batch"] for w in windows[3:]]
    (alert,) = webhook[1]
    assert alert["source"] == "prediction log" and alert["retrain_recommended"] is True
    assert alert["reasons"] == status["reasons"]
    assert report(project_copy, "monitoring", "alert.json")["sent"] is True
    text = (project_copy / "reports/09_monitoring/09_monitoring.ipynb").read_text()
    assert "the prediction log: 6,000 decisions" in text and "served decisions' ROC AUC" in text
    decision = report(project_copy, "retraining", "retraining_decision.json")
    assert decision["triggered"] is True and decision["triggers"]["monitoring"] is True
    assert decision["monitoring_reasons"] == status["reasons"]
    print(f"loop: {len(answered)} decisions logged in {WINDOWS} windows; online ROC AUC "
          f"{[round(w['roc_auc'], 3) for w in windows]}; retraining recommended on {status['recent_breaches']}; "
          f"step 10 promoted: {decision['promoted']} ({'; '.join(decision['reasons'])[:200]})")

    # the ML Test Score's online items now rest on served decisions with outcomes, not on a simulation
    run([sys.executable, "-m", f"{package}.runtime.readiness"], project_copy)
    scored = {t["id"]: t for t in json.loads((project_copy / "reports/readiness.json").read_text())["tests"]}
    for test_id in ("model_2", "monitor_7"):
        assert scored[test_id]["status"] in ("automated", "failing"), (test_id, scored[test_id]["reason"])
    assert "6 of them production" in scored["monitor_7"]["reason"], scored["monitor_7"]["reason"]
    print("ML Test Score on live windows:", {t: (scored[t]["status"], scored[t]["reason"]) for t in ("model_2", "monitor_7")})

    third = monitor(project_copy, env)  # the log read again, the same snapshot: nothing else reruns
    assert stages_run(third.stdout) == ["production_log"], third.stdout
    assert changed_stages(project_copy) == ""
