"""The OpenAPI description (SPEC sections 1.4 and 2) and a schemathesis run of the whole
API against it: no 5xx, and every response conforms to what is documented."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.types import Receive, Scope, Send

from app.config import ProcessRoles, Settings
from app.errors import PROBLEM_MEDIA_TYPE
from app.main import create_app
from app.schemas.feedback import EXAMPLE_EVENT
from tests.conftest import auth

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Error responses that are deliberately not problem details: the readiness probe's 503
# carries the same body as its 200, naming the failing check (SPEC 8).
NOT_PROBLEMS = {("get", "/readyz", "503")}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/")
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def component_validator(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    """A validator for one component schema, its references resolved within the document."""
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


# --- the document -----------------------------------------------------------------------


async def test_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    errors = [error.message for error in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    # the meta-schema does catch a broken document
    broken = {k: v for k, v in document.items() if k != "info"}
    assert not OPENAPI_31_VALIDATOR.is_valid(broken)
    assert document["info"]["title"] == "Feedback loop service"
    assert "Authorization: Bearer" in document["info"]["description"]


async def test_documented_operations(document: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented >= {
        ("post", "/v1/feedback"),
        ("post", "/v1/feedback/batch"),
        ("get", "/v1/feedback"),
        ("get", "/v1/feedback/{feedback_id}"),
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", "/v1/api-keys/{key_id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    for method, path, operation in operations(document):
        assert operation.get("summary"), (method, path)
        assert operation.get("tags"), (method, path)
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


async def test_every_error_is_documented_as_problem_details(document: dict[str, Any]) -> None:
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors"}

    for method, path, operation in operations(document):
        responses: dict[str, Any] = operation["responses"]
        assert "default" in responses, (method, path)
        error_codes = [code for code in responses if code == "default" or code[0] in "45"]
        for code in error_codes:
            if (method, path, code) in NOT_PROBLEMS:
                continue
            content = responses[code].get("content")
            assert content == {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}, (method, path, code)
            assert responses[code]["description"], (method, path, code)
        takes_input = "requestBody" in operation or bool(operation.get("parameters"))
        assert ("422" in responses) == takes_input, (method, path)
        if operation.get("security"):
            assert {"401", "403"} <= set(responses), (method, path)
        success = [code for code in responses if code[0] == "2"]
        assert success, (method, path)


async def test_security_scheme_is_http_bearer(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["ApiKey"]
    assert schemes["ApiKey"]["type"] == "http"
    assert schemes["ApiKey"]["scheme"] == "bearer"
    assert "fbk_" in schemes["ApiKey"]["description"]
    for method, path, operation in operations(document):
        if operation.get("security"):
            assert operation["security"] == [{"ApiKey": []}], (method, path)
        if path.startswith(("/v1/feedback", "/v1/api-keys")):
            assert operation.get("security") == [{"ApiKey": []}], (method, path)
        if path in {"/healthz", "/readyz", "/metrics"}:
            assert "security" not in operation, (method, path)


async def test_event_and_batch_schemas_with_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    event = schemas["FeedbackEventIn"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"event_id", "occurred_at", "channel"}
    assert event["example"] == EXAMPLE_EVENT
    batch = schemas["BatchRequest"]
    assert batch["example"] == {"events": [EXAMPLE_EVENT]}
    assert batch["properties"]["events"]["maxItems"] == 1000
    assert batch["properties"]["events"]["minItems"] == 1
    assert batch["properties"]["events"]["items"] == {
        "$ref": "#/components/schemas/FeedbackEventIn"
    }

    # the examples conform to their own schemas, and the schemas are not vacuous
    event_validator = component_validator(document, "FeedbackEventIn")
    assert [e.message for e in event_validator.iter_errors(EXAMPLE_EVENT)] == []
    assert not event_validator.is_valid({**EXAMPLE_EVENT, "unknown": 1})
    assert not event_validator.is_valid({**EXAMPLE_EVENT, "channel": "fax"})
    batch_validator = component_validator(document, "BatchRequest")
    assert batch_validator.is_valid(batch["example"])
    assert not batch_validator.is_valid({"events": []})

    ingest = document["paths"]["/v1/feedback"]["post"]["requestBody"]
    assert ingest["required"] is True
    assert ingest["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeedbackEventIn"
    }
    assert ingest["content"]["application/json"]["example"] == EXAMPLE_EVENT
    batch_body = document["paths"]["/v1/feedback/batch"]["post"]["requestBody"]
    assert batch_body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }


async def test_documented_responses_match_the_models(document: dict[str, Any]) -> None:
    feedback = document["paths"]["/v1/feedback"]
    assert set(feedback["post"]["responses"]) >= {"200", "202", "409", "413", "422"}
    page = resolve(
        document, feedback["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert set(page["properties"]) == {"items", "next_cursor"}
    list_params = {p["name"] for p in feedback["get"]["parameters"]}
    assert list_params == {
        "channel",
        "location_id",
        "customer_id",
        "source",
        "from",
        "to",
        "nps_min",
        "nps_max",
        "sentiment",
        "has_ticket",
        "q",
        "limit",
        "cursor",
    }
    created = document["paths"]["/v1/api-keys"]["post"]["responses"]["201"]
    created_schema = resolve(document, created["content"]["application/json"]["schema"])
    assert set(created_schema["properties"]) == {
        "id",
        "name",
        "scopes",
        "location_ids",
        "key",
        "created_at",
    }
    listed = resolve(
        document,
        document["paths"]["/v1/api-keys"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ],
    )
    item = resolve(document, listed["properties"]["items"]["items"])
    assert "key" not in item["properties"]
    assert "key_prefix" in item["properties"]
    assert "404" in document["paths"]["/v1/feedback/{feedback_id}"]["get"]["responses"]
    assert "404" in document["paths"]["/v1/api-keys/{key_id}"]["delete"]["responses"]


async def test_docs_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


# --- schemathesis -----------------------------------------------------------------------
#
# Schemathesis turns the schema into one test per operation when this module is collected,
# before any fixture runs, so the schema comes from an app that is never started (the
# document does not depend on settings). The requests go to an app on the test database,
# built by a fixture and reached through a forwarding ASGI callable; schemathesis runs its
# lifespan on its own event loop. (``schemathesis.pytest.from_fixture`` would avoid the
# forwarding, but fails on pytest 9: it sets ``request.node._nodeid``.)

MASTER_KEY = "fbk_" + secrets.token_urlsafe(24)


class AppUnderTest:
    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the 'api' fixture is not active")
        await self.app(scope, receive, send)


APP_UNDER_TEST = AppUnderTest()
# POST /v1/integrations/{name}/test calls an integration's real URL, which generated
# configs make arbitrary hosts (tests talk only to 127.0.0.1): it is covered by
# tests/test_integrations_api.py against a local server instead.
# GET /v1/stream never ends when it succeeds, and schemathesis reads whole bodies: its
# answers and refusals are tested over a real connection in tests/test_stream.py.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi()).exclude(
    path=["/v1/integrations/{name}/test", "/v1/stream"]
)
schema.app = APP_UNDER_TEST
# Authenticated by a webhook signature, not an API key: its 401s are tested in
# tests/test_closed_loop.py; here it only must never fail with a 5xx or off-schema.
SIGNED_NOT_KEYED = "/v1/inbound/"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]


@dataclass
class Api:
    http: Any  # schemathesis' in-process requests.Session
    master_id: str

    def fresh_admin_key(self) -> tuple[str, str]:
        response = self.http.post(
            "/v1/api-keys",
            json={"name": "schemathesis case", "scopes": ["admin"]},
            headers=auth(MASTER_KEY),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return str(body["id"]), str(body["key"])


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    APP_UNDER_TEST.app = create_app(
        Settings(
            _env_file=None,
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("schemathesis"),
            bootstrap_admin_key=SecretStr(MASTER_KEY),  # created by the lifespan
            # Generated integration URLs name arbitrary hosts: accepted without the DNS
            # lookups of the SSRF guard, and never called (no dispatcher runs here).
            allow_private_targets=True,
        ),
        ProcessRoles(consumer=False, dispatcher=False),
    )
    try:
        with asgi.get_client(cast(Any, APP_UNDER_TEST)) as http:
            listed = http.get("/v1/api-keys", params={"limit": 500}, headers=auth(MASTER_KEY))
            assert listed.status_code == 200, listed.text
            [master_id] = [
                item["id"]
                for item in listed.json()["items"]
                if item["name"] == "bootstrap admin" and MASTER_KEY.startswith(item["key_prefix"])
            ]
            yield Api(http=http, master_id=master_id)
    finally:
        asgi.shutdown_lifespans()
        APP_UNDER_TEST.app = None


@schema.parametrize()
@settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], api: Api) -> None:
    # Every case gets an admin key of its own: a generated DELETE /v1/api-keys/{key_id}
    # may revoke it, never the key that hands out the others.
    key_id, key = api.fresh_admin_key()
    if case.path_parameters and str(case.path_parameters.get("key_id")) == api.master_id:
        case.path_parameters["key_id"] = key_id
    response = case.call_and_validate(headers=auth(key), checks=CHECKS)
    sent = response.request.headers.get("Authorization")
    if case.path.startswith(SIGNED_NOT_KEYED):
        return
    if sent == f"Bearer {key}":
        # a valid, unrestricted admin key is never refused
        assert response.status_code not in (401, 403), response.text
    else:
        # schemathesis dropped or garbled the credentials on purpose
        assert response.status_code == 401, response.text
