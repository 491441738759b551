"""The HTTP API's types, generated from the data spec stored in the deployed artifact. Adapt with care: the service and its tests rely on it.

:func:`record_type` turns the artifact's ``schema`` (step 03's column types, categories,
ranges and nullability) into a pydantic ``TypedDict``: one field per column, with its type,
its allowed categories (an enum) and its accepted range (:func:`scoring.accepted_range`),
so ``/docs`` and ``/openapi.json`` document every field and pydantic refuses what does not
fit before any pandas work. The rules are those of :func:`scoring.validate_input`, which
the service still runs on the accepted records: the batch command and the service agree.
"""

from __future__ import annotations

import numbers
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from .scoring import RANGE_MARGIN, accepted_range, required_columns

ONE, MANY = "record", "records"


def _no_booleans(value: Any) -> Any:
    """JSON true/false is not a number (pydantic would read it as 1/0)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _category_text(value: Any) -> Any:
    """A number or boolean given for a category stands for its text, as in the batch command."""
    if isinstance(value, (bool, numbers.Real)) and not isinstance(value, str):
        return str(value)
    return value


def _field(column: str, entry: dict[str, Any], required: bool, range_margin: float) -> Any:
    nullable = bool(entry.get("nullable", True))
    if entry["kind"] == "numeric":
        low, high = accepted_range(entry, range_margin)
        # the constraints before the validator, or pydantic leaves them out of the JSON schema
        kind: Any = Annotated[float, Field(ge=low, le=high, allow_inf_nan=False), BeforeValidator(_no_booleans)]
        what = (
            f"number{' (whole numbers in training)' if entry.get('integer') else ''}; training range "
            f"{entry['min']:g} to {entry['max']:g}, accepted {low:g} to {high:g}"
        )
    else:
        categories = entry.get("categories")
        kind = Annotated[Literal[tuple(categories)] if categories else str, BeforeValidator(_category_text)]
        what = f"category: one of {len(categories)}" if categories else "category (text)"
    if nullable:
        kind = kind | None
    description = f"{what}; {'may be null' if nullable else 'never missing in training: null is refused'}"
    annotated = Annotated[kind, Field(description=description)]
    return annotated if required else NotRequired[annotated]


def record_type(metadata: dict[str, Any], range_margin: float = RANGE_MARGIN) -> Any:
    """One scoring record as a TypedDict: the columns of the artifact's schema, nothing else."""
    required = set(required_columns(metadata))
    fields = {
        column: _field(column, entry, column in required, range_margin) for column, entry in metadata["schema"].items()
    }
    record = TypedDict("Record", fields)  # functional form: any column name is a key
    record.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        extra="forbid", title="Record", json_schema_extra={"examples": [example_record(metadata)]}
    )
    return record


def example_record(metadata: dict[str, Any]) -> dict[str, Any]:
    """A record that fits the schema: mid-range numbers, the first category of each column."""
    example: dict[str, Any] = {}
    for column, entry in metadata["schema"].items():
        if entry["kind"] == "numeric":
            middle = (float(entry["min"]) + float(entry["max"])) / 2
            example[column] = round(middle) if entry.get("integer") else middle
        else:
            example[column] = (entry.get("categories") or ["text"])[0]
    return example


def _shape(value: Any) -> str | None:
    return ONE if isinstance(value, dict) else MANY if isinstance(value, list) else None


def request_type(record: Any, max_records: int) -> Any:
    """The body of ``POST /predict``: one record, or a list of 1 to ``max_records`` records."""
    return Annotated[
        Annotated[record, Tag(ONE)] | Annotated[list[record], Tag(MANY), Field(min_length=1, max_length=max_records)],
        Discriminator(_shape, custom_error_type="body_shape", custom_error_message="not an object or a list"),
    ]


class Contribution(BaseModel):
    feature: str
    value: Any = Field(description="the record's value of the feature")
    contribution: float = Field(description="how much this value moved the score (positive: up)")


class Explanation(BaseModel):
    base_score: float = Field(description="the average score over the reference records")
    contributions: list[Contribution] = Field(description="every feature, largest effect first")


class Prediction(BaseModel):
    score: float = Field(
        ge=0,
        le=1,
        description="the model's score for the positive outcome: it ranks records and is compared with the decision "
        "threshold; not a calibrated probability for every group (the model card gives its calibration per group)",
    )
    decision: int = Field(ge=0, le=1, description="1: the positive decision")
    label: str
    explanation: Explanation | None = Field(None, description="with explain=true: why this score")


class Predictions(BaseModel):
    model_config = ConfigDict(title="Predictions")
    request_id: str = Field(
        description="this request's id in the prediction log (also the X-Request-ID header): give it to `label` with the outcomes"
    )
    predictions: list[Prediction]


class ErrorReply(BaseModel):
    error: str = Field(description="what is wrong, naming the record and the field")
    detail: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: str
    model: str
    version: str
    training_data_md5: str | None = None
    threshold: float


def response_schemas(max_records: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of ``/predict``, for OpenAPI."""
    reply = {"model": ErrorReply}
    return {
        400: {**reply, "description": "malformed JSON, or a body that is not a record or a list of records"},
        401: {**reply, "description": "missing or wrong bearer token (when the service requires one)"},
        408: {**reply, "description": "the body did not arrive within the request timeout"},
        413: {**reply, "description": f"body over the byte limit, or more than {max_records} records"},
        422: {**reply, "description": "a record does not fit the schema: the error names the record and the field"},
        503: {**reply, "description": "scoring did not finish within the request timeout"},
    }


def _where(loc: tuple[Any, ...]) -> tuple[int | None, str | None]:
    """(record index, field) of a pydantic error location within the body."""
    parts = [p for p in loc if p not in (ONE, MANY, "body")]
    index = parts[0] if parts and isinstance(parts[0], int) else (0 if ONE in loc else None)
    names = [p for p in parts if isinstance(p, str)]
    return index, (names[0] if names else None)


class BodyError(ValueError):
    """The body is not a record or a list of records (400), or holds too many (413), or none."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def describe_errors(errors: list[dict[str, Any]]) -> str:
    """One sentence naming the first failing record and field, e.g. ``record 3: field 'age': ...``."""
    first = errors[0]
    index, name = _where(tuple(first["loc"]))
    where = ([f"record {index}"] if index is not None else []) + ([f"field {name!r}"] if name else [])
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    given = f", got {_short(first['input'])}" if first["type"] != "missing" and "input" in first else ""
    return f"{': '.join(where) or 'body'}: {first['msg']}{given}{more}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def public_errors(errors: list[dict[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    """Errors without the offending input echoed back (it may be large), at most ``limit``."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors[:limit]]


def parse_body(adapter: TypeAdapter, body: bytes) -> list[dict[str, Any]]:
    """The body as a list of records, or raises BodyError (400, 413, 422) / ValidationError (422)."""
    try:
        parsed = adapter.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            index, name = _where(tuple(error["loc"]))
            if error["type"] == "json_invalid":
                raise BodyError(400, f"body is not valid JSON: {error['msg']}") from None
            if error["type"] == "body_shape" or (name is None and error["type"] in ("dict_type", "typed_dict_type")):
                raise BodyError(400, "body must be a JSON object (one record) or a list of objects (records)") from None
            if error["type"] == "too_long" and name is None:
                limit = error["ctx"]["max_length"]
                raise BodyError(
                    413, f"{error['ctx']['actual_length']} records in one request; at most {limit} are accepted"
                ) from None
            if error["type"] == "too_short" and name is None:
                raise BodyError(422, "input has no records") from None
        raise
    return [parsed] if isinstance(parsed, dict) else parsed


def openapi_body(adapter: TypeAdapter) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema for OpenAPI, and the component schemas it refers to."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})
