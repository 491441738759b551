"""The prediction log as step 09 sees it: the snapshot stage, windows, sustained breaches, alerts."""

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import config, live, monitoring, prediction_log

META = {"model_name": "logistic_regression", "version": "1.0.0"}
MONITORING = {
    "production_dir": "data/production",
    "simulation_source": "x.csv",
    "batch_size": 100,
    "drift_shift_batch": 0,
    "drift_shift_feature": "age",
    "drift_shift_scale": 1.0,
    "group_mix_batch": 0,
    "label_shift_batch": 0,
    "psi_warning": 0.1,
    "window": "day",
    "windows": 3,
    "sustained_breaches": 2,
    "breach_windows": 3,
    "seed": 0,
}


def monitoring_cfg(**changes) -> config.Monitoring:
    return config.Monitoring.checked({**MONITORING, **changes})


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project directory: params.yaml with a monitoring section; the log at the default place."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"monitoring": MONITORING}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv(prediction_log.URL_ENV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def log_decisions(root, times, outcomes=None):
    """One logged decision per time (one request each); ``outcomes`` attached by request id."""
    log = prediction_log.Log(prediction_log.resolve_url(None, root))
    for n, when in enumerate(times):
        record = {"age": 30 + n % 20, "job": "engineer" if n % 2 else "nurse"}
        result = pd.DataFrame(
            {"score": [0.01 * (n % 100)], "decision": [n % 2], "label": [">50K" if n % 2 else "<=50K"]}
        )
        log.write(log.rows(f"r{n}", "serve", META, [record], result, None, when))
    if outcomes is not None:
        frame = pd.DataFrame({"request_id": [f"r{n}" for n in range(len(outcomes))], "income": outcomes})
        prediction_log.attach_outcomes(log.engine, frame, "income", ">50K")


def test_a_breach_is_sustained_when_k_of_the_last_n_windows_breach_the_latest_among_them():
    assert monitoring.sustained([False, True, False, True, True], 2, 3)
    assert not monitoring.sustained([True, True, True, False], 2, 3)  # the latest window is healthy
    assert not monitoring.sustained([True, False, False, True], 2, 3)  # one breach in the last three
    assert monitoring.sustained([True], 1, 1) and not monitoring.sustained([], 1, 1)


def test_one_noisy_window_is_reported_but_does_not_recommend_retraining(metadata):
    judged = [{"row": {"batch": f"w{n}"}, "reasons": ["feature_drift: x"] if n == 2 else []} for n in range(5)]
    status = monitoring.status(judged, metadata, monitoring_cfg())
    assert status["reasons"] == ["w2: feature_drift: x"] and status["retrain_recommended"] is False
    judged[3]["reasons"] = judged[4]["reasons"] = ["quality"]
    status = monitoring.status(judged, metadata, monitoring_cfg())
    assert status["retrain_recommended"] is True and status["recent_breaches"] == ["w2", "w3", "w4"]


def test_more_breaches_than_windows_is_a_config_error():
    with pytest.raises(config.ConfigError, match="sustained_breaches"):
        monitoring_cfg(sustained_breaches=4, breach_windows=3)
    with pytest.raises(config.ConfigError, match="monitoring.window"):
        monitoring_cfg(window="month")


def test_the_simulated_shift_lasts_and_the_other_disturbances_are_one_batch(spec):
    source = pd.DataFrame({"age": range(1000), "sex": ["Female", "Male"] * 500, spec["target"]: [0, 1] * 500})
    batches = monitoring.simulate_batches(
        source,
        spec,
        200,
        0,
        shift_batch=2,
        shift_feature="age",
        shift_scale=2.0,
        group_mix_batch=3,
        label_shift_batch=4,
    )
    injected = [what for _, _, what in batches]
    assert injected[0] == "none" and all(i.startswith("age × 2") for i in injected[1:])
    assert "sex mix" in injected[2] and "positive label rate raised" in injected[3] and injected[4] == "age × 2"


def test_windows_of_rows_count_back_from_the_latest_decision():
    decisions = pd.DataFrame({"score": range(10)})
    cut = live.windows(decisions, monitoring_cfg(window=100, windows=8))
    assert [len(rows) for _, rows in cut] == [10]
    decisions = pd.DataFrame({"score": range(250)})
    cut = live.windows(decisions, monitoring_cfg(window=100, windows=2))
    assert [(name, len(rows)) for name, rows in cut] == [("rows_000051-000150", 100), ("rows_000151-000250", 100)]


def test_windows_of_days_and_weeks_are_calendar_windows_in_utc():
    times = pd.to_datetime(["2026-11-29 23:59", "2026-11-30 00:00", "2026-12-01 10:00", "2026-12-01 11:00"], utc=True)
    decisions = pd.DataFrame({"logged_at": times, "score": range(4)})
    days = live.windows(decisions, monitoring_cfg(window="day"))
    assert [(name, len(rows)) for name, rows in days] == [("2026-11-29", 1), ("2026-11-30", 1), ("2026-12-01", 2)]
    weeks = live.windows(decisions, monitoring_cfg(window="week"))  # 2026-11-30 is a Monday
    assert [(name, len(rows)) for name, rows in weeks] == [("week_of_2026-11-23", 1), ("week_of_2026-11-30", 3)]


def test_the_snapshot_without_a_log_is_empty_and_creates_no_database(root):
    summary = live.snapshot(root)
    assert summary["decisions"] == 0 and summary["log"] == "none yet"
    assert not (root / prediction_log.DEFAULT_PATH).exists()
    assert live.read_snapshot(root).empty and live.log_batches(root, {"target": "income"}, monitoring_cfg()) is None


def test_the_snapshot_keeps_the_latest_windows_and_changes_exactly_when_the_log_does(root):
    start = datetime(2026, 11, 25, 12, tzinfo=UTC)
    log_decisions(root, [start + timedelta(days=d, minutes=m) for d in range(5) for m in range(3)])
    summary = live.snapshot(root)
    assert summary == {
        "log": "data/log/predictions.sqlite",
        "window": "day",
        "windows": 3,
        "decisions": 9,
        "with_outcome": 0,
    }
    snapshot_bytes = (root / live.SNAPSHOT_DIR / live.DECISIONS).read_bytes()
    live.snapshot(root)
    assert (root / live.SNAPSHOT_DIR / live.DECISIONS).read_bytes() == snapshot_bytes  # nothing new: the same bytes
    log = prediction_log.Log(prediction_log.resolve_url(None, root))
    prediction_log.attach_outcomes(
        log.engine, pd.DataFrame({"request_id": ["r14"], "income": [">50K"]}), "income", ">50K"
    )
    assert live.snapshot(root)["with_outcome"] == 1
    assert (root / live.SNAPSHOT_DIR / live.DECISIONS).read_bytes() != snapshot_bytes


def test_a_window_of_the_log_is_a_batch_of_the_served_decisions_with_its_outcomes(root):
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    log_decisions(root, [start + timedelta(minutes=m) for m in range(4)], outcomes=[">50K", "<=50K"])
    live.snapshot(root)
    found = live.log_batches(root, {"target": "income"}, monitoring_cfg())
    ((name, batch, what),) = found.batches
    assert name == "2026-12-01" and "served by 1.0.0; 2 of 4 with outcome" == what
    assert list(batch.columns) == ["age", "job", "income"]
    assert batch["income"].tolist()[:2] == [1.0, 0.0] and batch["income"].iloc[2:].isna().all()
    assert found.served[name]["decision"].tolist() == [0, 1, 0, 1]
    assert "the prediction log: 4 decisions" in found.origin and found.notes == []
    cfg = monitoring_cfg(production_dir="prod")
    (root / "prod").mkdir()
    pd.DataFrame({"age": [30], "job": ["a"], "income": [">50K"]}).to_csv(root / "prod" / "batch.csv", index=False)
    beside_files = monitoring.production_batches(root, {"target": "income"}, {}, cfg)
    assert [name for name, _, _ in beside_files.batches] == ["2026-12-01"]  # the log's windows come first
    assert beside_files.notes == [
        "`prod` holds 1 batch file(s) that are not monitored: the prediction log has decisions, and its windows come first. "
        "Move the files away, or monitor them in a project whose log is empty."
    ]


def test_online_figures_stand_beside_the_offline_ones():
    report = pd.DataFrame({"batch": ["a", "b"], "roc_auc": [0.9, None], "expected_cost": [0.3, None]})
    table = live.online_vs_offline(report, {"roc_auc": 0.92, "expected_cost": 0.25})
    assert table["window"].tolist() == ["a"]
    assert table["roc_auc_change"].iloc[0] == pytest.approx(-0.02)
    assert table["expected_cost_change"].iloc[0] == pytest.approx(0.05)


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_port}/hook", Receiver.received
    server.shutdown()


STATUS = {"retrain_recommended": True, "rule": "2 of the last 3", "model_version": "1.0.0", "reasons": ["w3: drift"]}


def test_an_alert_is_posted_to_the_webhook_when_due(receiver):
    url, received = receiver
    sent = live.alert(STATUS, live=True, project="p", env={live.ALERT_ENV: url})
    assert sent["sent"] is True and sent["http_status"] == 204
    assert received == [{**sent["body"]}] and received[0]["reasons"] == ["w3: drift"]
    assert received[0]["source"] == "prediction log"


def test_no_alert_when_nothing_is_due_and_a_failed_webhook_is_reported(receiver):
    url, received = receiver
    healthy = {**STATUS, "retrain_recommended": False, "reasons": []}
    assert live.alert(healthy, live=True, project="p", env={live.ALERT_ENV: url}) is None
    noisy = {**STATUS, "retrain_recommended": False}  # a gate failed on live data: due even without retraining
    assert live.alert(noisy, live=True, project="p", env={live.ALERT_ENV: url})["sent"] is True
    assert live.alert(noisy, live=False, project="p", env={live.ALERT_ENV: url}) is None  # simulated: not live
    missing = live.alert(STATUS, live=True, project="p", env={})
    assert missing["sent"] is False and live.ALERT_ENV in missing["why"]
    failed = live.alert(STATUS, live=True, project="p", env={live.ALERT_ENV: "http://127.0.0.1:9/nothing"})
    assert failed["sent"] is False and failed["why"].startswith("the webhook failed")
    assert len(received) == 1


def test_a_champion_failing_on_recent_data_is_alerted_whatever_the_challenger(receiver):
    url, received = receiver
    decision = {"champion_version": "1.0", "champion_failing": ["equalized_odds[sex]: ..."], "passed_gates": False}
    sent = live.champion_alert(decision, project="p", env={live.ALERT_ENV: url})
    assert sent["sent"] is True and received[-1]["champion_failing"] == ["equalized_odds[sex]: ..."]
    assert received[-1]["step"] == "retraining"
    assert live.champion_alert({**decision, "champion_failing": []}, project="p", env={live.ALERT_ENV: url}) is None
