import json
import warnings
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }} import cli, config, model_card, prediction_log, service  # noqa: E402

RECORD = {"age": 37, "hours": 40.0, "job": "engineer", "sex": "Female"}
META = {"model_name": "logistic_regression", "version": "1.0.0"}


def scored(n, offset=0):
    return pd.DataFrame(
        {
            "score": [0.1 * (i % 10) for i in range(n)],
            "decision": [i % 2 for i in range(n)],
            "label": [">50K" if i % 2 else "<=50K" for i in range(n)],
        }
    )


def log_rows(log, request_id, records, ids=None, when=None):
    return log.write(log.rows(request_id, "serve", META, records, scored(len(records)), ids, when))


def count(url):
    with prediction_log.open_engine(url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(prediction_log.PREDICTIONS)).scalar()


# --- where the log is, and its schema ------------------------------------------------------


def test_the_url_comes_from_the_environment_else_the_setting_else_a_file_under_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv(prediction_log.URL_ENV)
    assert prediction_log.resolve_url(None, tmp_path) == f"sqlite:///{tmp_path / 'data/log/predictions.sqlite'}"
    assert prediction_log.resolve_url("postgresql+psycopg://u@db/log", tmp_path) == "postgresql+psycopg://u@db/log"
    # a relative SQLite URL is under the project, wherever the command runs; an absolute one is used as given
    assert prediction_log.resolve_url("sqlite:///data/x.sqlite", tmp_path) == f"sqlite:///{tmp_path / 'data/x.sqlite'}"
    assert prediction_log.resolve_url("sqlite:////srv/log.sqlite", tmp_path) == "sqlite:////srv/log.sqlite"
    with pytest.raises(prediction_log.PredictionLogError, match="--no-log"):
        prediction_log.resolve_url("sqlite:///data/x.sqlite", None)
    with pytest.raises(prediction_log.PredictionLogError, match="--no-log"):
        prediction_log.resolve_url("data/log/x.sqlite", None)
    monkeypatch.setenv(prediction_log.URL_ENV, "postgresql+psycopg://team:secret@db/log")
    assert prediction_log.resolve_url("data/log/x.sqlite", tmp_path).endswith("@db/log")
    assert "secret" not in prediction_log.shown_url("postgresql+psycopg://team:secret@db/log")


def test_the_serving_section_is_checked_and_has_defaults():
    cfg = config.Serving.from_params({})
    assert cfg.prediction_log == prediction_log.DEFAULT_URL and cfg.log_hash_columns == []
    assert config.Serving.from_params({"serving": {"log_drop_columns": "sex"}}).log_drop_columns == ["sex"]
    with pytest.raises(config.ConfigError, match="serving.prediction_logs"):
        config.Serving.from_params({"serving": {"prediction_logs": "typo"}})


def test_the_schema_is_created_once_and_an_older_one_is_migrated(prediction_log_url, monkeypatch):
    engine = prediction_log.open_engine(prediction_log_url)
    assert prediction_log.schema_version(engine) == prediction_log.SCHEMA_VERSION
    assert prediction_log.ensure_schema(engine) == prediction_log.SCHEMA_VERSION  # found current: nothing to do
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == prediction_log.BUSY_TIMEOUT_S * 1000
    later = prediction_log.SCHEMA_VERSION + 1
    monkeypatch.setattr(prediction_log, "SCHEMA_VERSION", later)
    monkeypatch.setitem(
        prediction_log.MIGRATIONS, later, lambda conn: conn.exec_driver_sql("ALTER TABLE predictions ADD note TEXT")
    )
    assert prediction_log.ensure_schema(engine) == later - 1
    assert prediction_log.schema_version(engine) == later
    assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
    assert prediction_log.ensure_schema(engine) == later  # migrated once


def test_a_newer_schema_than_the_code_is_refused(prediction_log_url):
    engine = prediction_log.open_engine(prediction_log_url)
    with engine.begin() as conn:
        conn.execute(prediction_log.SCHEMA_TABLE.update().values(version=99))
    with pytest.raises(prediction_log.PredictionLogError, match="newer"):
        prediction_log.ensure_schema(engine)


# --- writing and reading -------------------------------------------------------------------


def test_decisions_round_trip_with_their_time_model_record_and_ids(prediction_log_url):
    log = prediction_log.Log(prediction_log_url)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    records = [RECORD, {**RECORD, "hours": float("nan"), "job": None}]
    log_rows(log, "r1", records, ids=[{"person": 7}, {"person": 8.0}], when=when)
    frame = prediction_log.read_window(prediction_log_url)
    assert list(frame["request_id"]) == ["r1", "r1"] and list(frame["record_index"]) == [0, 1]
    assert (frame["logged_at"] == pd.Timestamp(when)).all() and str(frame["logged_at"].dt.tz) == "UTC"
    assert list(frame["model_version"]) == ["1.0.0"] * 2 and list(frame["source"]) == ["serve"] * 2
    assert frame.loc[0, "age"] == 37 and frame.loc[0, "job"] == "engineer"
    assert pd.isna(frame.loc[1, "hours"]) and pd.isna(frame.loc[1, "job"])  # logged as null, read as missing
    assert list(frame["ids"]) == [{"person": 7}, {"person": 8}]
    assert frame["outcome"].isna().all() and frame["outcome_positive"].isna().all()


def test_read_window_since_and_latest(prediction_log_url):
    log = prediction_log.Log(prediction_log_url)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for day in range(5):
        log_rows(log, f"day{day}", [RECORD], when=start + timedelta(days=day))
    window = prediction_log.read_window(prediction_log_url, start + timedelta(days=1), start + timedelta(days=3))
    assert list(window["request_id"]) == ["day1", "day2"]
    naive = prediction_log.read_window(prediction_log_url, datetime(2024, 1, 4))  # naive means UTC
    assert list(naive["request_id"]) == ["day3", "day4"]
    assert list(prediction_log.read_since(prediction_log_url, after_id=int(window["id"].iloc[-1]))["request_id"]) == [
        "day3",
        "day4",
    ]
    assert list(prediction_log.read_latest(prediction_log_url, 2)["request_id"]) == ["day3", "day4"]
    assert prediction_log.read_window(prediction_log_url, labelled=True).empty


def test_a_request_is_written_whole_or_not_at_all(prediction_log_url):
    log = prediction_log.Log(prediction_log_url)
    log_rows(log, "dup", [RECORD])
    with pytest.raises(prediction_log.PredictionLogError, match="did not take 2 decisions") as caught:
        log_rows(log, "dup", [RECORD, RECORD])  # record 0 of 'dup' exists: the second row must not land either
    assert "engineer" not in str(caught.value)  # the message never carries the records
    assert count(prediction_log_url) == 1


def test_privacy_hashes_and_drops_the_listed_columns_in_records_and_ids(prediction_log_url):
    privacy = prediction_log.Privacy(hash_columns=("sex", "person"), drop_columns=("age",))
    log = prediction_log.Log(prediction_log_url, privacy)
    log_rows(log, "p", [RECORD, {**RECORD, "sex": "Male"}], ids=[{"person": 1}, {"person": 2}])
    frame = prediction_log.read_window(prediction_log_url)
    assert "age" not in frame.columns and set(frame["job"]) == {"engineer"}
    assert frame.loc[0, "sex"] == prediction_log.hashed("sex", "Female") != frame.loc[1, "sex"]
    assert frame.loc[0, "sex"].startswith("sha256:") and "Female" not in json.dumps(frame["ids"].tolist())
    assert prediction_log.hashed("sex", "Female", b"key") != prediction_log.hashed("sex", "Female")
    assert prediction_log.hashed("id", 7.0) == prediction_log.hashed("id", 7)  # 7 from a CSV with gaps is 7.0


def test_privacy_reads_its_key_from_the_environment(monkeypatch):
    monkeypatch.setenv(prediction_log.KEY_ENV, "k")
    assert prediction_log.Privacy.from_settings(["sex"], []).key == b"k"


# --- outcomes ------------------------------------------------------------------------------


def test_label_by_request_id_is_idempotent_and_reports_unknown_ids(prediction_log_url):
    log = prediction_log.Log(prediction_log_url)
    log_rows(log, "a", [RECORD])
    log_rows(log, "b", [RECORD, RECORD])
    outcomes = pd.DataFrame(
        {
            "request_id": ["a", "b", "b", "zzz"],
            "record_index": [0, 0, 1, 0],
            "income": [">50K", "<=50K", ">50K", ">50K"],
        }
    )
    first = prediction_log.attach_outcomes(log.engine, outcomes, "income", ">50K")
    assert (first.matched, first.updated, first.unchanged, first.unknown) == (3, 3, 0, ["zzz/0"])
    assert "1 match no logged decision (zzz/0)" in first.summary
    before = prediction_log.fingerprint(prediction_log_url)
    again = prediction_log.attach_outcomes(log.engine, outcomes, "income", ">50K")
    assert (again.updated, again.unchanged) == (0, 3)
    assert prediction_log.fingerprint(prediction_log_url) == before  # nothing changed: no new labelling time
    frame = prediction_log.read_window(prediction_log_url, labelled=True)
    assert list(frame["outcome"]) == [">50K", "<=50K", ">50K"] and list(frame["outcome_positive"]) == [
        True,
        False,
        True,
    ]
    corrected = prediction_log.attach_outcomes(log.engine, outcomes.head(1).assign(income="<=50K"), "income", ">50K")
    assert corrected.updated == 1 and prediction_log.fingerprint(prediction_log_url) != before


def test_label_of_a_request_of_several_records_needs_the_record_index(prediction_log_url):
    log = prediction_log.Log(prediction_log_url)
    log_rows(log, "b", [RECORD, RECORD])
    with pytest.raises(ValueError, match="record_index"):
        prediction_log.attach_outcomes(
            log.engine, pd.DataFrame({"request_id": ["b"], "income": [">50K"]}), "income", ">50K"
        )
    with pytest.raises(ValueError, match="no column 'income'"):
        prediction_log.attach_outcomes(log.engine, pd.DataFrame({"request_id": ["b"]}), "income", ">50K")
    with pytest.raises(ValueError, match="needs a 'request_id' column"):
        prediction_log.attach_outcomes(log.engine, pd.DataFrame({"who": [1], "income": [">50K"]}), "income", ">50K")


def test_label_by_the_contracts_id_columns_matches_hashed_ids(prediction_log_url):
    privacy = prediction_log.Privacy(hash_columns=("person",))
    log = prediction_log.Log(prediction_log_url, privacy)
    log_rows(log, "x", [RECORD, RECORD], ids=[{"person": 1}, {"person": 2}])
    outcomes = pd.DataFrame({"person": [2.0, 3.0], "income": [">50K", "<=50K"]})  # a float id as pandas reads it
    report = prediction_log.attach_outcomes(log.engine, outcomes, "income", ">50K", ["person"], privacy)
    assert (report.matched, report.updated, report.matched_by) == (1, 1, "person") and len(report.unknown) == 1
    frame = prediction_log.read_window(prediction_log_url)
    assert list(frame["outcome"].fillna("-")) == ["-", ">50K"]


# --- the service and the command line ------------------------------------------------------


def post(client, payload):
    return client.post("/predict", content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def test_the_service_logs_each_answered_decision_under_the_request_id_it_returns(bundle_path, prediction_log_url):
    client = TestClient(service.create_app(bundle_path, prediction_log=prediction_log_url, log_drop_columns=["sex"]))
    one, many = post(client, RECORD), post(client, [RECORD, {**RECORD, "age": 50}])
    assert one.status_code == many.status_code == 200
    assert one.headers["X-Request-ID"] == one.json()["request_id"] != many.json()["request_id"]
    assert post(client, {**RECORD, "age": 10_000}).status_code == 422  # refused: not a decision, not logged
    assert post(client, {**RECORD, "color": "red"}).status_code == 422
    frame = prediction_log.read_window(prediction_log_url)
    assert list(frame["request_id"]) == [one.json()["request_id"]] + [many.json()["request_id"]] * 2
    assert list(frame["score"]) == [p["score"] for r in (one, many) for p in r.json()["predictions"]]
    assert list(frame["age"]) == [37, 37, 50] and "sex" not in frame.columns


def test_a_failed_log_write_is_a_503_and_nothing_is_served(bundle_path, prediction_log_url, monkeypatch):
    app = service.create_app(bundle_path, prediction_log=prediction_log_url)

    def broken(rows):
        raise prediction_log.PredictionLogError(
            "the prediction log did not take 1 decisions: OperationalError: disk full"
        )

    monkeypatch.setattr(app.state.log, "write", broken)
    response = post(TestClient(app), RECORD)
    assert response.status_code == 503 and "not served" in response.json()["error"]
    assert "predictions" not in response.json()
    assert count(prediction_log_url) == 0


def test_the_service_without_a_log_still_answers_with_a_request_id(bundle_path):
    response = post(TestClient(service.create_app(bundle_path)), RECORD)
    assert response.status_code == 200 and len(response.json()["request_id"]) == 32


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose contract declares the id column ``person``."""
    contract = {"target": "income", "positive_label": ">50K", "sensitive_features": ["sex"], "id_columns": ["person"]}
    (tmp_path / "params.yaml").write_text(json.dumps({"data": contract}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    spec = tmp_path / "reports" / "03_data_selection" / "dataset_spec.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"target": "income", "excluded_columns": {"person": "data.id_columns"}}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_predict_logs_its_decisions_with_the_id_columns_and_label_attaches_outcomes(
    project, frame, bundle_path, prediction_log_url, capsys
):
    frame.head(6).assign(person=range(100, 106)).to_csv(project / "in.csv", index=False)
    assert cli.main(["predict", "in.csv", "out.csv", "--model", str(bundle_path)]) == 0
    assert "logged as request" in capsys.readouterr().out
    logged = prediction_log.read_window(prediction_log_url)
    assert len(logged) == 6 and list(logged["ids"]) == [{"person": p} for p in range(100, 106)]
    assert set(logged["source"]) == {"predict"} and "income" not in logged.columns  # the target is not an input
    outcomes = frame.head(3).assign(person=range(100, 103))[["person", "income"]]
    outcomes.loc[3] = [999, ">50K"]
    outcomes.to_parquet(project / "outcomes.parquet")
    assert cli.main(["label", "outcomes.parquet"]) == 1  # one unknown id: said, and the exit status says it
    captured = capsys.readouterr()
    assert (
        "3 decisions matched, 3 labelled now" in captured.out
        and "after `make monitor`" in captured.out
        and "1 of 4 outcomes match no" in captured.err
    )
    assert cli.main(["label", "outcomes.parquet"]) == 1
    assert "0 labelled now, 3 already had this outcome" in capsys.readouterr().out
    assert prediction_log.fingerprint(prediction_log_url)["labelled"] == 3
    assert cli.main(["predict", "in.csv", "out2.csv", "--model", str(bundle_path), "--no-log"]) == 0
    assert prediction_log.fingerprint(prediction_log_url)["rows"] == 6


def test_predict_whose_log_fails_writes_no_output(project, frame, bundle_path, monkeypatch, capsys):
    frame.head(3).to_csv(project / "in.csv", index=False)
    monkeypatch.setattr(
        prediction_log, "write", lambda engine, rows: (_ for _ in ()).throw(prediction_log.PredictionLogError("down"))
    )
    assert cli.main(["predict", "in.csv", "out.csv", "--model", str(bundle_path)]) == 1
    assert "down; no output written" in capsys.readouterr().err and not (project / "out.csv").exists()


def test_the_model_card_says_what_the_log_keeps_out():
    text = model_card.prediction_log_section(
        config.Serving(log_hash_columns=["race"], log_drop_columns=["sex"]), ["sex", "race"]
    )
    assert "`race` hashed" in text and "`sex` dropped" in text and "## Prediction log" in text
    default = model_card.prediction_log_section(config.Serving(), ["sex", "race"])
    assert "logged as given" in default and "`sex`, `race`" in default
