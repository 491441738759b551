"""HTTP service: ``GET /health`` and ``POST /predict`` (FastAPI, served by uvicorn).

``/predict`` takes one JSON record or a JSON list of records. Every problem with
a request is answered 4xx with the reason: 400 malformed JSON, 413 too many
records or bytes, 422 records that do not fit the training schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .scoring import InputError, load_bundle, score

MAX_RECORDS = 10_000
MAX_BYTES = 10 * 1024 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def parse_records(body: bytes) -> list[dict[str, Any]]:
    """The request body as a list of records; raises ValueError naming the problem."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    records = [payload] if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("body must be a JSON object (one record) or a list of objects (records)")
    return records


def create_app(model_path: str | Path, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES) -> FastAPI:
    bundle = load_bundle(model_path)
    meta = bundle["metadata"]
    app = FastAPI(title=f"{meta['model_name']} scoring service", version=str(meta["version"]))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": meta["model_name"],
            "version": meta["version"],
            "training_data_md5": meta.get("training_data_md5"),
            "threshold": bundle["threshold"],
        }

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > max_bytes:
            return _error(413, f"request body is {len(body)} bytes; at most {max_bytes} are accepted")
        try:
            records = parse_records(body)
        except ValueError as exc:
            return _error(400, str(exc))
        if len(records) > max_records:
            return _error(413, f"{len(records)} records in one request; at most {max_records} are accepted")
        try:
            result = score(bundle, pd.DataFrame.from_records(records))
        except InputError as exc:
            return _error(422, str(exc))
        except Exception as exc:  # never a 5xx for what a client sent: say what failed
            return _error(422, f"cannot score these records: {type(exc).__name__}: {exc}")
        return JSONResponse({"predictions": result.to_dict(orient="records")})

    return app
