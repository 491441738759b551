import asyncio
import gc
import json
import socket
import time
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette may warn about its httpx transport
    from fastapi.testclient import TestClient

from pydantic import TypeAdapter  # noqa: E402

from {{ cookiecutter.package_name }} import api_schema, artifacts, deployment, scoring, service  # noqa: E402

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


def parse(client_app_adapter, body):
    return api_schema.parse_body(client_app_adapter, body)


@pytest.fixture(scope="module")
def adapter(metadata_module):
    record = api_schema.record_type(metadata_module)
    return TypeAdapter(api_schema.request_type(record, MAX_RECORDS))


@pytest.fixture(scope="module")
def metadata_module(make_spec, make_metadata):
    return make_metadata(make_spec())


def test_parse_body_accepts_one_record_or_a_list(adapter):
    one = json.dumps(RECORD).encode()
    assert api_schema.parse_body(adapter, one) == [RECORD]
    assert api_schema.parse_body(adapter, b"[" + one + b"," + one + b"]") == [RECORD, RECORD]
    with pytest.raises(api_schema.BodyError, match="not valid JSON"):
        api_schema.parse_body(adapter, b"{")
    with pytest.raises(api_schema.BodyError, match="list of objects"):
        api_schema.parse_body(adapter, b"[1]")
    with pytest.raises(api_schema.BodyError, match="at most 5"):
        api_schema.parse_body(adapter, json.dumps([RECORD] * 6).encode())


# --- the typed API: OpenAPI shows every field, 422 names it ------------------------------


def test_openapi_documents_every_field_with_type_categories_and_range(client, spec):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    record = schemas["Record"]
    assert set(record["properties"]) == set(spec["columns"])
    assert record["additionalProperties"] is False
    assert set(record["required"]) == {"age", "hours", "job"}  # sex only when the model decides by group
    age = record["properties"]["age"]
    assert age["type"] == "number" and age["minimum"] == 0 and age["maximum"] == pytest.approx(69 + 51)
    hours = record["properties"]["hours"]["anyOf"]  # nullable: a number or null
    assert {"type": "null"} in hours
    job = record["properties"]["job"]["anyOf"][0]
    assert job["enum"] == spec["columns"]["job"]["categories"]
    assert "training range 18 to 69" in record["properties"]["age"]["description"]
    assert "Predictions" in schemas and "Prediction" in schemas
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "422"} <= set(body["responses"])


@pytest.mark.parametrize(
    "record, field",
    [
        ({**RECORD, "age": 500}, "age"),
        ({**RECORD, "age": -1}, "age"),
        ({**RECORD, "age": None}, "age"),  # never missing in training
        ({**RECORD, "age": True}, "age"),
        ({**RECORD, "sex": "Other"}, "sex"),
    ],
)
def test_a_field_outside_the_schema_is_422_naming_record_and_field(client, record, field):
    response = post(client, [RECORD, record])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith(f"record 1: field {field!r}"), error
    assert response.json()["detail"][0]["loc"][-1] == field


def test_an_invalid_query_parameter_is_422_naming_it(client):
    response = client.post("/predict?explain=maybe", json=RECORD)
    assert response.status_code == 422
    assert "explain" in response.json()["error"]


# --- limits before the body is read --------------------------------------------------------


def asgi_call(app, headers, chunks, delay=0.0):
    """Drive the ASGI app with a body in ``chunks``; returns (status, body, chunks the app pulled)."""
    pulled, sent = [], []

    async def receive():
        if len(pulled) < len(chunks):
            if delay:
                await asyncio.sleep(delay)
            pulled.append(chunks[len(pulled)])
            return {"type": "http.request", "body": pulled[-1], "more_body": len(pulled) < len(chunks)}
        await asyncio.sleep(3600)  # the client has nothing more to send

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), len(pulled)


@pytest.fixture(scope="module")
def small_app(bundle_path):
    return service.create_app(bundle_path, max_records=MAX_RECORDS, max_bytes=4096, timeout=2.0)


def test_a_declared_length_over_the_limit_is_refused_before_reading(small_app):
    status, body, pulled = asgi_call(small_app, [(b"content-length", b"100000000")], [b"[" * 1000] * 50)
    assert status == 413 and "100000000 bytes" in body["error"]
    assert pulled == 0


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(small_app):
    chunks = [b" " * 1000] * 100  # no Content-Length (chunked): 100 kB against a 4 kB limit
    status, body, pulled = asgi_call(small_app, [(b"transfer-encoding", b"chunked")], chunks)
    assert status == 413 and "4096" in body["error"]
    assert pulled == 5  # the chunk that passed 4096 bytes, and none after it


def test_a_body_slower_than_the_timeout_is_408(bundle_path):
    app = service.create_app(bundle_path, timeout=0.3)
    one = json.dumps(RECORD).encode()
    status, body, _ = asgi_call(app, [(b"content-length", str(len(one) * 2).encode())], [one[:5], one[5:]], delay=0.2)
    assert status == 408 and "0.3 s" in body["error"]


def test_scoring_slower_than_the_timeout_is_503(bundle_path, monkeypatch):
    app = service.create_app(bundle_path, timeout=0.3)
    batcher = app.state.batcher
    original = batcher._score
    monkeypatch.setattr(batcher, "_score", lambda requests: time.sleep(1) or original(requests))
    one = json.dumps(RECORD).encode()
    status, body, _ = asgi_call(app, [(b"content-length", str(len(one)).encode())], [one])
    assert status == 503 and "to score" in body["error"]


# --- concurrency: batched requests answer as if alone ---------------------------------------


def test_requests_scored_together_get_their_own_answers(bundle_path, records):
    app = service.create_app(bundle_path)
    batcher = app.state.batcher
    calls = []
    original = batcher._score
    batcher._score = lambda requests: calls.append(len(requests)) or original(requests)
    rows = json.loads(records.to_json(orient="records"))
    requests = [[rows[i]] for i in range(8)] + [[{**rows[0], "age": 10_000}], rows[8:12]]

    async def together():
        return await asyncio.gather(*(batcher.score(r) for r in requests), return_exceptions=True)

    answers = asyncio.run(together())
    assert max(calls) > 1  # some requests shared a call
    alone = scoring.score(scoring.load_bundle(bundle_path), pd.DataFrame(rows[:12]), allow_unseen=False)
    got = [json.loads(a)["predictions"] for a in answers[:8]] + [json.loads(answers[9])["predictions"]]
    scores = [p["score"] for ps in got for p in ps]
    np.testing.assert_allclose(scores, alone["score"].to_numpy())
    assert isinstance(answers[8], service.Refused) and answers[8].status == 422  # only the bad request fails
    assert "age" in str(answers[8])


def test_scoring_does_not_block_the_event_loop(bundle_path, records):
    """While a large request is scored, the loop answers at once (the scoring runs in its own thread)."""
    app = service.create_app(bundle_path)
    batcher = app.state.batcher
    original = batcher._score
    batcher._score = lambda requests: time.sleep(0.5) or original(requests)
    rows = json.loads(records.to_json(orient="records"))

    async def run():
        task = asyncio.ensure_future(batcher.score(rows))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await asyncio.sleep(0)
        lag = time.perf_counter() - started
        await task
        return lag

    assert asyncio.run(run()) < 0.1


# --- access: a token beyond loopback -------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(bundle_path):
    return TestClient(service.create_app(bundle_path, token="s3cret-token"))


def test_with_a_token_every_route_but_health_needs_it(guarded):
    assert guarded.get("/health").status_code == 200
    for method, path in (("post", "/predict"), ("get", "/metrics"), ("get", "/openapi.json"), ("get", "/docs")):
        response = getattr(guarded, method)(path, **({"json": RECORD} if method == "post" else {}))
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in response.text
    wrong = guarded.post("/predict", json=RECORD, headers={"Authorization": "Bearer s3cret-tokem"})
    assert wrong.status_code == 401
    right = guarded.post("/predict", json=RECORD, headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_is_loopback(host, loopback):
    assert service.is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_a_token():
    service.check_exposure("127.0.0.1", None)
    service.check_exposure("0.0.0.0", "a-token")
    with pytest.raises(ValueError, match=service.TOKEN_ENV):
        service.check_exposure("0.0.0.0", None)
    with pytest.raises(ValueError, match="without a token"):
        service.check_exposure("0.0.0.0", "")


def test_served_on_all_addresses_with_a_token_loopback_requests_need_it_too(bundle_path):
    token = "a-long-random-token"
    env = {service.TOKEN_ENV: token}
    with deployment.running_service(bundle_path, host="0.0.0.0", workers=1, env=env) as url:
        assert url.startswith("http://127.0.0.1:")
        assert deployment.request(f"{url}/health")[0] == 200
        assert deployment.request(f"{url}/predict", json.dumps(RECORD).encode())[0] == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert deployment.request(f"{url}/predict", json.dumps(RECORD).encode(), headers=auth)[0] == 200
        assert deployment.request(f"{url}/metrics", headers=auth)[0] == 200


# --- metrics ---------------------------------------------------------------------------


async def accepted_connection_has_nodelay(listener) -> bool:
    """Whether asyncio turned Nagle's algorithm off on a connection accepted from ``listener``."""
    seen = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            seen.set_result(bool(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        writer.close()
        server.close()


def test_the_workers_listener_answers_without_nagles_delay():
    """``serve --workers N`` listens on uvicorn's bound socket; its connections must get TCP_NODELAY
    (without it every keep-alive answer waited about 40 ms: sequential p50 64 ms against 19 ms)."""
    import uvicorn

    listener = service.tcp_listener(uvicorn.Config("unused:app", host="127.0.0.1", port=0).bind_socket())
    assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()
    assert asyncio.run(accepted_connection_has_nodelay(listener))


def test_a_worker_process_moves_its_startup_objects_out_of_the_collectors_reach(bundle_path, monkeypatch):
    """A full collection walked the model and libraries in every worker (about 120 ms under load)."""
    monkeypatch.setenv(service.SETTINGS_ENV, json.dumps({"model": str(bundle_path)}))
    monkeypatch.setattr(service, "_limit_threads", lambda threads: None)  # not in the test process
    gc.unfreeze()
    try:
        app = service.app_from_env()
        assert gc.get_freeze_count() > 10_000
        assert post(TestClient(app), RECORD).status_code == 200
    finally:
        gc.unfreeze()


def test_metrics_count_requests_refusals_decisions_and_name_the_model(bundle_path):
    client = TestClient(service.create_app(bundle_path, max_records=MAX_RECORDS))
    assert post(client, [RECORD, RECORD]).status_code == 200
    assert post(client, b"{not json").status_code == 400
    assert post(client, [RECORD] * (MAX_RECORDS + 1)).status_code == 413
    assert post(client, [{**RECORD, "age": "old"}]).status_code == 422
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'predict_refusals_total{reason="malformed_body"} 1.0' in text
    assert 'predict_refusals_total{reason="too_many_records"} 1.0' in text
    assert 'predict_refusals_total{reason="invalid_record"} 1.0' in text
    assert "predict_records_total 2.0" in text
    assert "predict_decisions_total{" in text
    assert 'model_info{model="logistic_regression",version="1.0.0"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.1",route="/predict"}' in text


# --- why this decision ---------------------------------------------------------------------


def test_explain_returns_each_records_contributions(bundle_path, frame, records):
    client = TestClient(service.create_app(bundle_path, reference=frame))
    rows = json.loads(records.head(3).to_json(orient="records"))
    plain = post(client, rows).json()["predictions"]
    response = client.post("/predict?explain=true", json=rows)
    assert response.status_code == 200
    explained = response.json()["predictions"]
    for p, e in zip(plain, explained, strict=True):
        assert e["score"] == pytest.approx(p["score"]) and e["decision"] == p["decision"]
        contributions = e["explanation"]["contributions"]
        assert {c["feature"] for c in contributions} == {"age", "hours", "job"}
        total = e["explanation"]["base_score"] + sum(c["contribution"] for c in contributions)
        assert total == pytest.approx(e["score"], abs=1e-9)


def test_explain_without_reference_records_says_how_to_get_them(client):
    response = client.post("/predict?explain=true", json=RECORD)
    assert response.status_code == 409 and "--reference" in response.json()["error"]
