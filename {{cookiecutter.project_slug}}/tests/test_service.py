import json
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette may warn about its httpx transport
    from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }} import artifacts, scoring, service  # noqa: E402

MAX_RECORDS = 5
RECORD = {"age": 37, "hours": 40.0, "job": "engineer", "sex": "Female"}


@pytest.fixture(scope="module")
def client(bundle_path):
    return TestClient(service.create_app(bundle_path, max_records=MAX_RECORDS, max_bytes=4096))


def post(client, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/predict", content=body, headers={"Content-Type": "application/json"})


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == "logistic_regression" and body["version"] == "1.0.0"
    assert body["threshold"] == 0.5


def test_predict_one_record(client, bundle_path):
    response = post(client, RECORD)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 1 and set(predictions[0]) == {"score", "decision", "label"}
    expected = scoring.score(scoring.load_bundle(bundle_path), pd.DataFrame([RECORD]))
    assert predictions[0]["score"] == pytest.approx(expected["score"].iloc[0])
    assert predictions[0]["decision"] == expected["decision"].iloc[0]


def test_predict_many_records(client, records):
    payload = json.loads(records.head(MAX_RECORDS).to_json(orient="records"))  # NaN -> null
    response = post(client, payload)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == MAX_RECORDS
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)
    assert len({p["score"] for p in predictions}) > 1  # records are scored one by one, not copied


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b"42", b"[1, 2]", b'"text"', b"[{}, 3]"])
def test_malformed_json_is_400(client, body):
    response = post(client, body)
    assert response.status_code == 400
    assert "error" in response.json()


def test_too_many_records_is_413(client):
    response = post(client, [RECORD] * (MAX_RECORDS + 1))
    assert response.status_code == 413
    assert f"at most {MAX_RECORDS}" in response.json()["error"]


def test_too_many_bytes_is_413(client):
    response = post(client, {**RECORD, "job": "x" * 5000})
    assert response.status_code == 413
    assert "bytes" in response.json()["error"]


@pytest.mark.parametrize(
    "record, named",
    [
        ({"age": 37, "job": "engineer", "sex": "Female"}, "hours"),
        ({**RECORD, "age": "old"}, "age"),
        ({**RECORD, "job": "astronaut"}, "astronaut"),
        ({**RECORD, "zodiac": "leo"}, "zodiac"),
        ({**RECORD, "job": {"nested": 1}}, "job"),
    ],
)
def test_records_that_do_not_fit_the_schema_are_422(client, record, named):
    response = post(client, [record])
    assert response.status_code == 422
    assert named in response.json()["error"]


def test_an_empty_list_is_422(client):
    response = post(client, [])
    assert response.status_code == 422
    assert "no records" in response.json()["error"]


@pytest.mark.parametrize(
    "payload",
    [
        [{**RECORD, "age": None}],
        [{**RECORD, "age": 1e308}],
        [{**RECORD, "age": "1e400"}],
        [{**RECORD, "age": True}],
        [{**RECORD, "age": [1]}],
        [{**RECORD, "sex": None, "job": None, "hours": None}],
        [{**RECORD, "job": 3}],
        [{**RECORD, "sex": "Other"}],
        [RECORD, {"age": 1}],
        {"": 1},
    ],
)
def test_odd_requests_never_get_a_5xx(client, payload):
    response = post(client, payload)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        scores = [p["score"] for p in response.json()["predictions"]]
        assert np.isfinite(scores).all()
    else:
        assert response.json()["error"]


def test_create_app_refuses_an_unreleasable_model(tmp_path, pipeline, make_metadata, spec):
    meta = make_metadata(spec, releasable=False, reasons=["quality gate failed"])
    path = artifacts.save(scoring.make_bundle(pipeline, 0.5, meta), tmp_path / "m.skops")
    with pytest.raises(ValueError, match="quality gate failed"):
        service.create_app(path)


def test_parse_records():
    assert service.parse_records(b'{"a": 1}') == [{"a": 1}]
    assert service.parse_records(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="not valid JSON"):
        service.parse_records(b"{")
    with pytest.raises(ValueError, match="list of objects"):
        service.parse_records(b"[1]")
