"""The HTTP API fuzzed against its own OpenAPI schema with schemathesis.

Schemathesis generates requests from ``/openapi.json`` (records that fit the schema, and
ones that break it: wrong types, values out of range, unknown categories, missing and
extra fields, odd query parameters) and checks each answer: never a 5xx, answers that
conform to the documented status codes and response schemas, invalid data refused,
valid data accepted, and every 422 naming the field (or parameter) at fault.
"""

import re
import tempfile
import warnings
from pathlib import Path

import pytest
from conftest import fit_pipeline, synthetic_frame, synthetic_metadata, synthetic_spec

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("httpx", reason="the ASGI transport needs httpx")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from {{ cookiecutter.package_name }} import artifacts, scoring, service  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


MODEL_DIR = tempfile.TemporaryDirectory(prefix="api-fuzz-")  # removed when the test process ends


def serving_app():
    """The service around a small fitted model (built at import: schemathesis needs the schema then)."""
    spec = synthetic_spec()
    bundle = scoring.make_bundle(fit_pipeline(synthetic_frame(), spec), 0.5, synthetic_metadata(spec))
    path = artifacts.save(bundle, Path(MODEL_DIR.name) / "model.skops")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return service.create_app(path, max_records=20, reference=synthetic_frame(n=200))


# 413 (more records than the limit, documented as maxItems) is this API's refusal of such a body
REFUSALS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", serving_app(), config=CONFIG)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_holds_to_its_schema(case):
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error, response.text
        if response.status_code == 422:  # names the field (a column, or the query parameter)
            assert re.search(r"^record \d+: field '[^']+'|column '[^']+'|^query explain|no records", error), error
