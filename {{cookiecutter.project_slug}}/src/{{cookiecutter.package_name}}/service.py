"""HTTP service: ``GET /health``, ``POST /predict``, ``GET /metrics`` (FastAPI, served by uvicorn). Adapt with care: the README's API and its tests rely on it.

``/predict`` takes one JSON record or a JSON list of records, typed from the data spec in
the artifact (see ``/docs``). Every problem with a request is answered 4xx with the reason
in ``error``: 400 malformed JSON or a body that is not records, 401 a missing or wrong
token (when one is required), 408 a body slower than the request timeout, 413 too many
records or bytes, 422 a record that does not fit the schema (naming the record and the
field). ``?explain=true`` adds, per record, the features that pushed its score up or down.

Throughput: the event loop only reads bodies and answers; scoring runs in one scoring
thread per process, and requests that arrive while it is busy are scored together in its
next call (adaptive batching: a one-record request costs the model's fixed overhead once
per batch, not once per request; an idle service scores a request at once). This relies on
a record's decision depending on the record alone, which the template's models guarantee
(issue: decisions that do not depend on the batch). ``serve --workers N`` runs N such
processes.

Limits act before the body is read: a ``Content-Length`` over ``max_bytes`` is refused at
once, a body without one is counted as it streams and refused as soon as it passes the
limit; nothing over the limit is buffered. A request that takes longer than ``timeout``
seconds is answered 408 (body still arriving) or 503 (scoring).

Every decision is logged (:mod:`.prediction_log`) before it is answered, with the request id
the answer carries (``request_id`` in the body, ``X-Request-ID`` in the headers); the
decisions of one scoring call are written in one transaction. A write that fails is
answered 503 (``prediction_log_unavailable``) and nothing is served; a refused request
(4xx) is not logged. A request whose answer never reached its caller (a timeout after the
write, a dropped connection) can be in the log: the log holds every decision answered, and
at most those few more. ``create_app(prediction_log=None)`` (``serve --no-log``) logs nothing.

Access: when a token is set (``{{ cookiecutter.package_name | upper }}_TOKEN``), every route
but ``/health`` needs ``Authorization: Bearer <token>`` (compared in constant time; the
token is never logged). ``serve`` refuses to listen beyond loopback without one.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api_schema
from .access import TOKEN_ENV, check_exposure, is_loopback  # noqa: F401 (the service's access rules)
from .prediction_log import Log, PredictionLogError, Privacy, new_request_id
from .scoring import RANGE_MARGIN, InputError, load_bundle, required_columns, score, validate_input

MAX_RECORDS = 10_000
MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 30.0
MAX_BATCH_RECORDS = 1_000
SETTINGS_ENV = "{{ cookiecutter.package_name | upper }}_SERVE_SETTINGS"
OPEN_PATHS = ("/health",)
ROUTES = ("/health", "/predict", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")
SMALL_BODY = 64 * 1024  # bodies up to this size are parsed on the event loop (microseconds)


@dataclass
class Settings:
    """What ``serve`` passes to every worker process (the token travels apart, in its own variable)."""

    model: str
    max_records: int = MAX_RECORDS
    max_bytes: int = MAX_BYTES
    timeout: float = TIMEOUT_S
    range_margin: float = RANGE_MARGIN
    reference: str | None = None
    threads: int = 1
    prediction_log: str | None = None  # a SQLAlchemy URL; None: log nothing (serve --no-log)
    log_hash_columns: list[str] = field(default_factory=list)
    log_drop_columns: list[str] = field(default_factory=list)


def error_body(message: str, detail: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps({"error": message, **({"detail": detail} if detail else {})}).encode()


class Refused(Exception):
    """A request answered with a 4xx (or 503) and counted by reason in the metrics."""

    def __init__(self, status: int, reason: str, message: str, detail: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.reason, self.detail = status, reason, detail

    def response(self) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return Response(error_body(str(self), self.detail), self.status, headers, media_type="application/json")


class Metrics:
    """Prometheus metrics of one app; with several workers, summed over them (multiprocess mode).

    ``serve --workers N`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the
    workers start, so any worker's ``/metrics`` reports all of them.
    """

    def __init__(self, model: str, version: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        kw = {"registry": self.registry}
        self.requests = Counter("http_requests", "HTTP requests answered", ["route", "method", "status"], **kw)
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to answer",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            **kw,
        )
        self.refusals = Counter("predict_refusals", "Requests refused, by reason", ["reason"], **kw)
        self.records = Counter("predict_records", "Records scored", **kw)
        self.decisions = Counter("predict_decisions", "Decisions served, by label", ["label"], **kw)
        self.model = Gauge(
            "model_info", "The model in service (1)", ["model", "version"], multiprocess_mode="max", **kw
        )
        self.model.labels(model, version).set(1)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: bearer token, body limit before reading, request timeout, request metrics."""

    def __init__(self, app: Any, *, token: str | None, max_bytes: int, timeout: float, metrics: Metrics):
        self.app, self.max_bytes, self.timeout, self.metrics = app, max_bytes, timeout, metrics
        self.expected = f"Bearer {token}".encode() if token else None

    def check(self, scope: dict[str, Any]) -> None:
        headers = dict(scope["headers"])
        if self.expected is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                raise Refused(401, "unauthorized", "this service needs the header 'Authorization: Bearer <token>'")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise Refused(400, "malformed_body", "Content-Length is not a number")
            if int(length) > self.max_bytes:
                raise Refused(
                    413, "body_too_large", f"request body is {int(length)} bytes; at most {self.max_bytes} are accepted"
                )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, state = time.perf_counter(), {"status": 500, "sent": False, "received": 0, "complete": False}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
            await send(message)

        async def receiving() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    raise BodyTooLarge()
                state["complete"] = not message.get("more_body", False)
            return message

        try:
            self.check(scope)
            try:
                async with asyncio.timeout(self.timeout) as deadline:
                    await self.app(scope, receiving, sending)
            except BodyTooLarge:
                raise Refused(
                    413,
                    "body_too_large",
                    f"request body passed {self.max_bytes} bytes; at most {self.max_bytes} are accepted",
                ) from None
            except TimeoutError:
                if not deadline.expired():
                    raise
                waiting = dict(scope["headers"]).get(b"content-length", b"0") != b"0" and not state["complete"]
                raise Refused(
                    408 if waiting else 503,
                    "timeout",
                    f"the request took longer than {self.timeout:g} s"
                    + (" to arrive" if waiting else " to score; retry, or send fewer records"),
                ) from None
        except Refused as refused:
            self.metrics.refusals.labels(refused.reason).inc()
            if not state["sent"]:
                await refused.response()(scope, receive, sending)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.requests.labels(route, scope["method"], str(state["status"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


class Batcher:
    """One scoring thread; requests that wait for it are scored together in its next call."""

    def __init__(
        self,
        bundle: dict[str, Any],
        metrics: Metrics,
        max_records: int = MAX_BATCH_RECORDS,
        threads: int = 1,
        log: Log | None = None,
    ):
        self.bundle, self.metrics, self.max_records, self.log = bundle, metrics, max_records, log
        # OpenMP's thread count is per thread: limit it in the scoring thread itself. A request
        # scores a small batch: native thread pools gain little there and, on a busy machine,
        # their spinning threads turn a 60 ms answer into a second. Scale with processes.
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="scoring", initializer=_limit_threads, initargs=(threads,)
        )
        self.waiting: list[tuple[tuple[str, list[dict[str, Any]]], asyncio.Future]] = []
        self.busy = False

    async def score(self, records: list[dict[str, Any]], request_id: str | None = None) -> bytes:
        """The JSON answer to one request, its decisions logged under ``request_id`` (a new one if None)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(((request_id or new_request_id(), records), future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch, size = [], 0
                while self.waiting and (not batch or size + len(self.waiting[0][0][1]) <= self.max_records):
                    batch.append(self.waiting.pop(0))
                    size += len(batch[-1][0][1])
                outcomes = await loop.run_in_executor(self.executor, self._score, [r for r, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its request timed out meanwhile
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.busy = False

    def _score(self, requests: list[tuple[str, list[dict[str, Any]]]]) -> list[bytes | Exception]:
        """The JSON answer of every ``(request id, records)``, scored in one call, logged in one transaction."""
        results = self._results([records for _, records in requests])
        if self.log is not None:
            rows = [
                row
                for (request_id, records), result in zip(requests, results, strict=True)
                if not isinstance(result, Exception)
                for row in self.log.rows(request_id, "serve", self.bundle["metadata"], records, result)
            ]
            try:
                self.log.write(rows)
            except PredictionLogError as exc:
                results = [r if isinstance(r, Exception) else _log_failure(exc) for r in results]
        return [
            r if isinstance(r, Exception) else _predictions(r, request_id)
            for (request_id, _), r in zip(requests, results, strict=True)
        ]

    def _results(self, requests: list[list[dict[str, Any]]]) -> list[pd.DataFrame | Exception]:
        """Every request's scored frame, from one call (one by one if that call fails: only bad requests fail)."""
        try:
            result = self._predict([r for records in requests for r in records])
        except Exception:
            if len(requests) == 1:
                return [self._failure(requests[0])]
            return [self._results([records])[0] for records in requests]
        results, start = [], 0
        for records in requests:
            results.append(result.iloc[start : start + len(records)])
            start += len(records)
        return results

    def _predict(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        frame, clean = _frame(self.bundle, records)
        result = score(self.bundle, frame, clean=clean)
        self.metrics.records.inc(len(result))
        for label, count in result["label"].value_counts().items():
            self.metrics.decisions.labels(str(label)).inc(int(count))
        return result

    def _failure(self, records: list[dict[str, Any]]) -> Exception:
        try:
            self._predict(records)
        except InputError as exc:
            return Refused(422, "invalid_record", str(exc))
        except Exception as exc:  # never a 5xx for what a client sent: say what failed
            return Refused(422, "invalid_record", f"cannot score these records: {type(exc).__name__}: {exc}")
        return Refused(422, "invalid_record", "cannot score these records")


def _log_failure(exc: Exception) -> Refused:
    import logging

    logging.getLogger(__name__).error("prediction log write failed: %s", exc)
    return Refused(
        503, "prediction_log_unavailable", f"the decision could not be logged, so it is not served; retry ({exc})"
    )


def _limit_threads(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _frame(bundle: dict[str, Any], records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records accepted by the API schema as a frame of the columns the model takes, validated.

    Columns the model does not take (sensitive features of a model that does not decide by
    group) were checked by the schema when given, and are left out here.
    """
    frame = pd.DataFrame.from_records(records, columns=required_columns(bundle["metadata"]))
    return frame, validate_input(frame, bundle["metadata"])


def _predictions(result: pd.DataFrame, request_id: str, explanations: list[dict[str, Any]] | None = None) -> bytes:
    rows = [
        {"score": float(s), "decision": int(d), "label": str(lab)}
        for s, d, lab in zip(result["score"], result["decision"], result["label"], strict=True)
    ]
    if explanations is not None:
        rows = [{**row, "explanation": e} for row, e in zip(rows, explanations, strict=True)]
    return json.dumps({"request_id": request_id, "predictions": rows}).encode()


def create_app(
    model_path: str | Path,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_S,
    token: str | None = None,
    range_margin: float = RANGE_MARGIN,
    reference: str | Path | pd.DataFrame | None = None,
    threads: int = 1,
    prediction_log: str | None = None,
    log_hash_columns: list[str] | tuple[str, ...] = (),
    log_drop_columns: list[str] | tuple[str, ...] = (),
) -> FastAPI:
    """The service for one artifact. ``reference``: training rows for explanations (a file or a frame).

    ``prediction_log``: the SQLAlchemy URL of the log every decision is written to (None: none);
    ``log_hash_columns`` and ``log_drop_columns`` keep those columns out of it.
    """
    bundle = load_bundle(model_path)
    log = _open_log(prediction_log, log_hash_columns, log_drop_columns)
    meta = bundle["metadata"]
    metrics = Metrics(str(meta["model_name"]), str(meta["version"]))
    record = api_schema.record_type(meta, range_margin)
    adapter = TypeAdapter(api_schema.request_type(record, max_records))
    body_schema, components = api_schema.openapi_body(adapter)
    batcher = Batcher(bundle, metrics, threads=threads, log=log)
    # the first call of a pipeline imports and allocates lazily (seconds): pay it before the first request
    warm_frame, warm_clean = _frame(bundle, [api_schema.example_record(meta)])
    score(bundle, warm_frame, clean=warm_clean)
    explainer = None
    if reference is not None:
        from .explain import Explainer, load_reference

        explainer = Explainer(bundle, reference if isinstance(reference, pd.DataFrame) else load_reference(reference))

    app = FastAPI(
        title=f"{meta['model_name']} scoring service",
        version=str(meta["version"]),
        description=(
            f"Scores records for the decision '{meta['positive_label']}' with model {meta['model_name']} "
            f"version {meta['version']}. Every field of a record is documented under Record."
        ),
    )
    health_body = api_schema.Health(
        status="ok",
        model=str(meta["model_name"]),
        version=str(meta["version"]),
        training_data_md5=meta.get("training_data_md5"),
        threshold=bundle["threshold"],
    ).model_dump()

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        metrics.refusals.labels(exc.reason).inc()
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        where = " ".join(str(p) for p in errors[0]["loc"])
        metrics.refusals.labels("invalid_parameter").inc()
        return Refused(422, "invalid_parameter", f"{where}: {errors[0]['msg']}").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/health", response_model=api_schema.Health)
    async def health() -> dict[str, Any]:
        return health_body

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def prometheus_metrics() -> Response:
        payload, content_type = metrics.exposition()
        return Response(payload, media_type=content_type)

    @app.post(
        "/predict",
        response_model=api_schema.Predictions,
        responses=api_schema.response_schemas(max_records),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def predict(request: Request, explain: bool = False) -> Response:
        """Score one record or a list of records; ``explain=true`` says why each score is what it is."""
        body = await request.body()
        try:
            if len(body) <= SMALL_BODY:
                records = api_schema.parse_body(adapter, body)
            else:
                records = await run_in_threadpool(api_schema.parse_body, adapter, body)
        except api_schema.BodyError as exc:
            reason = {400: "malformed_body", 413: "too_many_records"}.get(exc.status, "invalid_record")
            raise Refused(exc.status, reason, str(exc)) from None
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise Refused(
                422, "invalid_record", api_schema.describe_errors(errors), api_schema.public_errors(errors)
            ) from None
        request_id = new_request_id()
        if explain:
            if explainer is None:
                raise Refused(409, "no_reference", "explanations need reference records: start serve with --reference")
            payload = await run_in_threadpool(_explained, bundle, explainer, records, request_id, log)
        else:
            payload = await batcher.score(records, request_id)
        return Response(payload, media_type="application/json", headers={"X-Request-ID": request_id})

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Guard, token=token, max_bytes=max_bytes, timeout=timeout, metrics=metrics)
    app.state.batcher, app.state.metrics, app.state.log = batcher, metrics, log
    return app


def _open_log(url: str | None, hash_columns: Any, drop_columns: Any) -> Log | None:
    if url is None:
        return None
    return Log(url, Privacy.from_settings(hash_columns, drop_columns))


def _explained(
    bundle: dict[str, Any],
    explainer: Any,
    records: list[dict[str, Any]],
    request_id: str,
    log: Log | None = None,
) -> bytes:
    try:
        frame, clean = _frame(bundle, records)
        result = score(bundle, frame, clean=clean)
    except InputError as exc:
        raise Refused(422, "invalid_record", str(exc)) from None
    explanations = explainer.explain(clean)
    if log is not None:
        try:
            log.write(log.rows(request_id, "serve", bundle["metadata"], records, result))
        except PredictionLogError as exc:
            raise _log_failure(exc) from None
    return _predictions(result, request_id, explanations)


def run(app: str, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, workers=..., **options)``, with every worker's connections free of Nagle's delay.

    uvicorn binds the listening socket of ``--workers N`` (N > 1) with protocol 0, and asyncio
    sets ``TCP_NODELAY`` only on accepted connections whose socket says ``IPPROTO_TCP``: each
    answer on a keep-alive connection then waits about 40 ms for the client's delayed ACK
    (uvicorn issue 3149, still so in 0.54; one worker is not affected). The listener is handed
    to uvicorn's own supervisor with its protocol set.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers <= 1:
        uvicorn.run(app, workers=1, **options)
        return
    config = uvicorn.Config(app, workers=workers, **options)
    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()


def tcp_listener(sock: socket.socket) -> socket.socket:
    """The same listening socket, as a socket object whose connections asyncio knows to be TCP."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto == socket.IPPROTO_TCP:
        return sock
    listener = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    listener.set_inheritable(True)
    return listener


def app_from_env() -> FastAPI:
    """The app of one worker process, from what ``serve`` put in the environment."""
    settings = Settings(**json.loads(os.environ[SETTINGS_ENV]))
    _limit_threads(settings.threads)
    options = {k: v for k, v in asdict(settings).items() if k != "model"}
    app = create_app(settings.model, token=os.environ.get(TOKEN_ENV) or None, **options)
    # The model, the reference rows and the libraries are about 230,000 objects that live as long
    # as the worker; each full collection walked them all (about 120 ms, the slowest answers under
    # load). They are moved out of the collector's reach; what requests allocate is still collected.
    gc.collect()
    gc.freeze()
    return app
