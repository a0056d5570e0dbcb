"""schemathesis against the committed OpenAPI document (docs/openapi.json), on the app with
in-memory parts: generated requests to every operation get no 5xx, only documented status
codes and content types, and bodies and headers that match the document.

Requests carry the operator's token (every tenant), so generated tenant ids reach the
handlers rather than stopping at 403."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .api_support import ApiHarness
from .kafka_support import REPO
from .tenant_support import build_deck

_HARNESS = ApiHarness(build_deck(), Path(tempfile.mkdtemp(prefix="api-schemathesis-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", _HARNESS.app)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_the_app_serves_the_committed_document():
    assert schema.raw_schema["info"]["title"] == "rating-engine account API"
    assert (REPO / "docs" / "openapi.json").exists()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_conforms_to_the_document(case):
    case.call_and_validate(headers=_HARNESS.auth(_HARNESS.operator), checks=CHECKS)
