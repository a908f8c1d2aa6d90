"""The outbox dispatcher end to end (SPEC section 6, "Integrations and delivery"): real
dispatchers on the session database send to the fake vendor server on 127.0.0.1.

Integrations are created with the real API of a second app whose settings allow
private targets (the session app's SSRF guard rightly refuses 127.0.0.1), so the
secrets used below are the ones the API shows once. Dispatchers run in this process
with short retry delays, except for the crash test, which SIGKILLs a real
``feedback-service dispatch`` process mid-request.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.config import ProcessRoles, Settings
from app.dependencies import AppState
from app.integrations import signing
from app.main import create_app
from app.workers.dispatcher import DeliveryDispatcher, make_http_client, webhook_id
from tests.conftest import auth, make_event
from tests.fixtures.server import ServiceRunner, scratch_dir, service_runner
from tests.fixtures.vendors import (  # noqa: F401 (fixtures)
    FRESHDESK_API_KEY,
    HUBSPOT_ACCESS_TOKEN,
    SALESFORCE_ACCESS_TOKEN,
    ZENDESK_API_TOKEN,
    ZENDESK_EMAIL,
    FakeVendorServer,
    RecordedRequest,
    ScriptedResponse,
    vendor_server_fixture,
    vendor_server_session_fixture,
)

ZENDESK_TICKETS = "/zendesk/api/v2/tickets"
SALESFORCE_CASES = "/salesforce/services/data/v62.0/sobjects/Case"
HUBSPOT_TICKETS = "/hubspot/crm/v3/objects/tickets"
FRESHDESK_TICKETS = "/freshdesk/api/v2/tickets"

Json = dict[str, Any]


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
async def private_app(app: FastAPI, settings: Settings) -> AsyncIterator[FastAPI]:
    """The service as deployed next to its helpdesk: private targets allowed. No
    dispatcher: each test runs its own."""
    allowed = settings.model_copy(update={"allow_private_targets": True, "db_pool_size": 6})
    application = create_app(allowed, ProcessRoles(dispatcher=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def admin(private_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the private-targets app (integrations are created through it)."""
    transport = httpx.ASGITransport(app=private_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://private") as http:
        yield http


def dispatcher_settings(state: AppState, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allow_private_targets": True,
        "delivery_retry_schedule": "0.2,0.4,0.6",
        "dispatcher_poll_interval_s": 0.1,
        "dispatcher_concurrency": 2,
    }
    values.update(overrides)
    return state.settings.model_copy(update=values)


@asynccontextmanager
async def dispatching(
    state: AppState, sent: list[str] | None = None, **overrides: Any
) -> AsyncIterator[DeliveryDispatcher]:
    """A dispatcher for the block; ``sent`` collects the URL of every request it makes."""
    settings = dispatcher_settings(state, **overrides)
    http = make_http_client(settings)
    if sent is not None:

        async def record(request: httpx.Request) -> None:
            sent.append(str(request.url))

        http.event_hooks["request"].append(record)
    dispatcher = DeliveryDispatcher(settings, state.database, http)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        await http.aclose()


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Vendor:
    """How one kind is configured against the fake server and what it stores."""

    kind: str
    records: str  # the fake server's prefix, where its records are kept
    create_path: str
    update_method: str
    created: Json  # fields of the vendor record after the create (a subset)
    updated: Json  # after PATCH {"status": "waiting", "priority": "urgent"}
    statuses: tuple[int, int]  # the vendor's answers to the create and the update


VENDORS = {
    "zendesk": Vendor(
        "zendesk",
        "zendesk",
        ZENDESK_TICKETS,
        "PUT",
        {
            "priority": "high",
            "status": "new",
            "requester": {"name": "Ana Roth", "email": "ana@example.com"},
        },
        {"priority": "urgent", "status": "pending"},
        (201, 200),
    ),
    "salesforce": Vendor(
        "salesforce",
        "salesforce",
        SALESFORCE_CASES,
        "PATCH",
        {
            "Priority": "High",
            "Status": "New",
            "Origin": "Web",
            "SuppliedEmail": "ana@example.com",
            "SuppliedName": "Ana Roth",
        },
        {"Priority": "High", "Status": "Working"},
        (201, 204),
    ),
    "hubspot": Vendor(
        "hubspot",
        "hubspot",
        HUBSPOT_TICKETS,
        "PATCH",
        {"hs_ticket_priority": "HIGH", "hs_pipeline": "0", "hs_pipeline_stage": "1"},
        {"hs_ticket_priority": "HIGH", "hs_pipeline_stage": "2"},
        (201, 200),
    ),
    "freshdesk": Vendor(
        "freshdesk",
        "freshdesk",
        FRESHDESK_TICKETS,
        "PUT",
        {"priority": 3, "status": 2, "email": "ana@example.com"},
        {"priority": 4, "status": 3},
        (201, 200),
    ),
}


def integration_body(
    vendor: FakeVendorServer, name: str, kind: str, events: list[str] | None
) -> Json:
    configs: dict[str, tuple[Json, Json]] = {
        "zendesk": (
            {"base_url": vendor.zendesk_url, "email": ZENDESK_EMAIL},
            {"api_token": ZENDESK_API_TOKEN},
        ),
        "salesforce": (
            {"instance_url": vendor.salesforce_url},
            {"access_token": SALESFORCE_ACCESS_TOKEN},
        ),
        "hubspot": ({"base_url": vendor.hubspot_url}, {"access_token": HUBSPOT_ACCESS_TOKEN}),
        "freshdesk": ({"base_url": vendor.freshdesk_url}, {"api_key": FRESHDESK_API_KEY}),
        "webhook": ({"url": vendor.webhook_url(name)}, {}),
    }
    config, secrets = configs[kind]
    body: Json = {"name": name, "kind": kind, "config": config, "secrets": secrets}
    if events is not None:
        body["events"] = events
    return body


async def create_integration(
    admin: httpx.AsyncClient,
    key: str,
    vendor: FakeVendorServer,
    name: str,
    kind: str = "webhook",
    events: list[str] | None = None,
) -> Json:
    """POST /v1/integrations; the 201 body with the secrets shown once."""
    response = await admin.post(
        "/v1/integrations", json=integration_body(vendor, name, kind, events), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def post(client: httpx.AsyncClient, key: str, event: Json) -> Json:
    response = await client.post("/v1/feedback", json=event, headers=auth(key))
    assert response.status_code == 202, response.text
    body: Json = response.json()
    return body


async def patch(client: httpx.AsyncClient, key: str, ticket_id: str, body: Json) -> Json:
    response = await client.patch(f"/v1/tickets/{ticket_id}", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    result: Json = response.json()
    return result


async def get_ticket(client: httpx.AsyncClient, key: str, ticket_id: str) -> Json:
    response = await client.get(f"/v1/tickets/{ticket_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    result: Json = response.json()
    return result


async def deliveries(state: AppState) -> list[Json]:
    async with state.sessionmaker() as session:
        result = await session.execute(
            text(
                "SELECT d.id, i.name AS integration, d.event_type, d.ticket_id, d.status, "
                "d.attempts, d.last_status_code, d.last_error, d.next_attempt_at, "
                "d.last_attempt_at FROM deliveries d JOIN integrations i "
                "ON i.id = d.integration_id ORDER BY d.id"
            )
        )
        return [dict(row) for row in result.mappings()]


async def attempts_log(client: httpx.AsyncClient, key: str, delivery_id: int) -> list[Json]:
    response = await client.get(f"/v1/deliveries/{delivery_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    log: list[Json] = response.json()["attempts_log"]
    return log


async def attempt_rows(state: AppState) -> int:
    async with state.sessionmaker() as session:
        value = (await session.execute(text("SELECT count(*) FROM delivery_attempts"))).scalar()
    return int(value or 0)


def all_delivered(state: AppState, expected: int | None = None) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await deliveries(state)
        if expected is not None and len(rows) != expected:
            return False
        return bool(rows) and all(row["status"] == "delivered" for row in rows)

    return check


def status_of(state: AppState, delivery_id: int, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(
            row["id"] == delivery_id and row["status"] == status for row in await deliveries(state)
        )

    return check


def ids_of(requests: list[RecordedRequest], header: str = "webhook-id") -> list[str]:
    return [request.headers[header] for request in requests]


# -- each vendor, create then update -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VENDORS))
async def test_vendor_create_then_update_uses_the_learned_id(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    kind: str,
) -> None:
    spec = VENDORS[kind]
    name = f"{kind}-eu"
    await create_integration(admin, admin_key, vendor_server, name, kind)
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("v-1"))
        ticket_id = opened["ticket_id"]
        await eventually(all_delivered(state, 1), what="the create delivered")
        [(external_id, record)] = vendor_server.records(spec.records).items()
        assert {k: record.get(k) for k in spec.created} == spec.created
        ticket = await get_ticket(client, admin_key, ticket_id)
        assert [(r["integration"], r["external_id"]) for r in ticket["external_refs"]] == [
            (name, external_id)
        ]
        last = ticket["timeline"][-1]
        assert (last["kind"], last["detail"]) == (
            "external_ref",
            f"Created in {name} as {external_id}",
        )
        await patch(client, admin_key, ticket_id, {"status": "waiting", "priority": "urgent"})
        await eventually(all_delivered(state, 2), what="the update delivered")
    create, update = vendor_server.requests()
    assert (create.method, create.path) == ("POST", spec.create_path)
    assert (update.method, update.path) == (spec.update_method, f"{spec.create_path}/{external_id}")
    records = vendor_server.records(spec.records)
    assert list(records) == [external_id]  # the same record, updated; no second one
    assert {k: records[external_id].get(k) for k in spec.updated} == spec.updated
    if kind == "zendesk":
        assert str(record["external_id"]) == ticket_id
        assert ticket["external_refs"][0]["url"] == (
            f"{vendor_server.zendesk_url}/agent/tickets/{external_id}"
        )
    rows = await deliveries(state)
    assert [(r["event_type"], r["attempts"], r["last_status_code"]) for r in rows] == [
        ("ticket.created", 1, spec.statuses[0]),
        ("ticket.updated", 1, spec.statuses[1]),
    ]
    # The external ref is recorded once, not again by the update.
    ticket = await get_ticket(client, admin_key, ticket_id)
    assert len(ticket["external_refs"]) == 1
    assert [e["kind"] for e in ticket["timeline"]].count("external_ref") == 1


async def test_webhook_is_signed_with_the_secret_shown_once_and_a_stable_id(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    created = await create_integration(admin, admin_key, vendor_server, "hook")
    secret = created["signing_secret"]
    assert secret.startswith("whsec_")
    assert created["inbound_secret"].startswith("whsec_")
    assert created["inbound_secret"] != secret
    shown_again = await admin.get("/v1/integrations/hook", headers=auth(admin_key))
    assert secret not in shown_again.text
    path = "/webhooks/hook"
    vendor_server.script("POST", path, ScriptedResponse(status=500))
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("wh-1"))
        await eventually(all_delivered(state, 2), what="both delivered")
        await patch(client, admin_key, opened["ticket_id"], {"status": "waiting"})
        await eventually(all_delivered(state, 3), what="the update delivered")
    rows = await deliveries(state)
    assert [r["event_type"] for r in rows] == [
        "feedback.received",
        "ticket.created",
        "ticket.updated",
    ]
    requests = vendor_server.requests("POST", path)
    by_id: dict[str, list[RecordedRequest]] = {}
    for request in requests:
        by_id.setdefault(request.headers["webhook-id"], []).append(request)
    assert sorted(by_id) == sorted(webhook_id(r["id"]) for r in rows)
    assert sorted(len(sent) for sent in by_id.values()) == [1, 1, 2]  # one retried (500)
    for request in requests:
        signing.verify(secret, request.headers, request.body)  # raises when wrong
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
        with pytest.raises(signing.InvalidSignatureError):
            signing.verify(created["inbound_secret"], request.headers, request.body)
    retried = next(sent for sent in by_id.values() if len(sent) == 2)
    assert retried[0].body == retried[1].body
    bodies = {webhook_id(r["id"]): by_id[webhook_id(r["id"])][-1].json for r in rows}
    received, ticket_created, ticket_updated = (bodies[webhook_id(r["id"])] for r in rows)
    assert received["type"] == "feedback.received"
    assert received["data"]["event_id"] == "wh-1"
    assert received["data"]["ticket_id"] == opened["ticket_id"]
    assert ticket_created["type"] == "ticket.created"
    assert ticket_created["data"]["id"] == opened["ticket_id"]
    assert ticket_created["data"]["status"] == "open"
    assert ticket_created["data"]["feedback_ids"] == [opened["id"]]
    assert ticket_updated["type"] == "ticket.updated"
    assert ticket_updated["data"]["status"] == "waiting"
    assert set(ticket_created) == {"type", "timestamp", "data"}
    assert datetime.fromisoformat(ticket_created["timestamp"].replace("Z", "+00:00"))
    # Webhooks learn no external id.
    assert (await get_ticket(client, admin_key, opened["ticket_id"]))["external_refs"] == []


# -- retries ---------------------------------------------------------------------------------


async def test_retries_then_success_with_the_attempts_log(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    vendor_server.script(
        "POST", ZENDESK_TICKETS, ScriptedResponse(status=503), ScriptedResponse(status=503)
    )
    async with dispatching(state):
        await post(client, admin_key, make_event("rt-1"))
        await eventually(all_delivered(state, 1), what="delivered after two 503s")
    [row] = await deliveries(state)
    assert (row["attempts"], row["last_status_code"], row["last_error"]) == (3, 201, None)
    log = await attempts_log(client, admin_key, row["id"])
    assert [(a["outcome"], a["status_code"], a["error"]) for a in log] == [
        ("retry", 503, "HTTP 503 Service Unavailable"),
        ("retry", 503, "HTTP 503 Service Unavailable"),
        ("delivered", 201, None),
    ]
    requests = vendor_server.requests("POST", ZENDESK_TICKETS)
    assert len(requests) == 3
    # The same idempotency key on every try: Zendesk creates one ticket.
    assert set(ids_of(requests, "idempotency-key")) == {webhook_id(row["id"])}
    assert len(vendor_server.records("zendesk")) == 1
    # Schedule 0.2 s then 0.4 s (±20%, counted from the start of the failed attempt's
    # transaction), plus up to one 0.1 s poll; generous upper bounds for a busy machine.
    first_gap = requests[1].received_at - requests[0].received_at
    second_gap = requests[2].received_at - requests[1].received_at
    assert 0.12 <= first_gap < 1.0, first_gap
    assert 0.25 <= second_gap < 1.5, second_gap


async def test_every_retryable_status_is_retried_until_the_schedule_ends(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    path = "/webhooks/hook"
    statuses = [408, 425, 502, 504]
    vendor_server.script("POST", path, *(ScriptedResponse(status=s) for s in statuses))
    async with dispatching(state, delivery_retry_schedule="0.1,0.1,0.1"):
        await post(client, admin_key, make_event("ex-1"))
        [row] = await deliveries(state)
        await eventually(status_of(state, row["id"], "dead"), what="dead after the last retry")
        await asyncio.sleep(0.3)  # a few polls: nothing more is sent
    [row] = await deliveries(state)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("dead", 4, 504)
    assert row["last_error"] == "HTTP 504 Gateway Timeout"
    log = await attempts_log(client, admin_key, row["id"])
    assert [(a["outcome"], a["status_code"]) for a in log] == [
        ("retry", 408),
        ("retry", 425),
        ("retry", 502),
        ("dead", 504),
    ]
    assert len(vendor_server.requests("POST", path)) == 4
    listed = await client.get(
        "/v1/deliveries", params={"status": "dead", "integration": "hook"}, headers=auth(admin_key)
    )
    assert [item["id"] for item in listed.json()["items"]] == [str(row["id"])]


@pytest.mark.parametrize("retry_after_status", [429, 503])
async def test_retry_after_is_honoured_instead_of_the_schedule(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    retry_after_status: int,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    path = "/webhooks/hook"
    vendor_server.script(
        "POST", path, ScriptedResponse(status=retry_after_status, headers={"Retry-After": "1"})
    )
    async with dispatching(state):
        await post(client, admin_key, make_event("ra-1"))

        async def retried_once() -> bool:
            rows = await deliveries(state)
            return bool(rows) and rows[0]["attempts"] == 1

        await eventually(retried_once, what="the first attempt")
        [row] = await deliveries(state)
        assert (row["status"], row["last_status_code"]) == ("pending", retry_after_status)
        # Due one second after the attempt, not the schedule's 0.2 s (±20%).
        wait = (row["next_attempt_at"] - row["last_attempt_at"]).total_seconds()
        assert 0.99 <= wait <= 1.01, wait
        await eventually(all_delivered(state, 1), what="delivered after Retry-After")
    first, second = vendor_server.requests("POST", path)
    assert second.received_at - first.received_at >= 0.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_a_timeout_is_retried_with_the_same_message_id(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    path = "/webhooks/hook"
    vendor_server.script("POST", path, ScriptedResponse(status=None, delay_s=1.0))
    async with dispatching(state, delivery_timeout_s=0.3):
        await post(client, admin_key, make_event("to-1"))
        await eventually(all_delivered(state, 1), what="delivered after a timeout")
    [row] = await deliveries(state)
    log = await attempts_log(client, admin_key, row["id"])
    assert [(a["outcome"], a["status_code"], a["error"]) for a in log] == [
        ("retry", None, "timed out (ReadTimeout)"),
        ("delivered", 204, None),
    ]
    assert ids_of(vendor_server.requests("POST", path)) == [webhook_id(row["id"])] * 2


# -- permanent failures, holding back, replay --------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 301])
async def test_other_statuses_are_dead_at_once(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    status: int,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    headers = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 301 else {}
    vendor_server.script("POST", "/webhooks/hook", ScriptedResponse(status=status, headers=headers))
    async with dispatching(state):
        await post(client, admin_key, make_event("pd-1"))
        [row] = await deliveries(state)
        await eventually(status_of(state, row["id"], "dead"), what="dead")
    [row] = await deliveries(state)
    assert (row["attempts"], row["last_status_code"]) == (1, status)
    assert row["last_error"] == f"HTTP {status} {httpx.codes.get_reason_phrase(status)}"
    assert len(vendor_server.requests()) == 1  # the redirect was not followed


async def test_a_dead_delivery_holds_back_its_tickets_later_ones_until_retried(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    vendor_server.script(
        "POST",
        ZENDESK_TICKETS,
        ScriptedResponse(status=422, json={"error": "RecordInvalid", "description": "x"}),
    )
    async with dispatching(state):
        first = await post(client, admin_key, make_event("hb-1"))
        ticket_id = first["ticket_id"]
        [created] = await deliveries(state)
        await eventually(status_of(state, created["id"], "dead"), what="the create dead")
        await patch(client, admin_key, ticket_id, {"priority": "urgent"})
        await post(client, admin_key, make_event("hb-2", text="Still no answer."))
        # Another ticket to the same integration is not held back.
        other = await post(
            client, admin_key, make_event("hb-3", customer={"id": "C-2", "email": "b@x.io"})
        )
        rows = await deliveries(state)
        other_row = next(r for r in rows if r["ticket_id"] == int(other["ticket_id"]))
        await eventually(status_of(state, other_row["id"], "delivered"), what="other ticket")
        await asyncio.sleep(0.3)  # several polls: the held ones stay
        rows = await deliveries(state)
        held = [r for r in rows if r["ticket_id"] == int(ticket_id)]
        assert [(r["event_type"], r["status"], r["attempts"]) for r in held] == [
            ("ticket.created", "dead", 1),
            ("ticket.updated", "pending", 0),
            ("ticket.updated", "pending", 0),
        ]
        assert held[0]["last_status_code"] == 422
        assert held[0]["last_error"] == "HTTP 422 Unprocessable Entity"
        assert [r.method for r in vendor_server.requests()] == ["POST", "POST"]

        not_dead = await client.post(
            f"/v1/deliveries/{held[1]['id']}/retry", headers=auth(admin_key)
        )
        assert not_dead.status_code == 409
        missing = await client.post("/v1/deliveries/999999/retry", headers=auth(admin_key))
        assert missing.status_code == 404
        retried = await client.post(
            f"/v1/deliveries/{held[0]['id']}/retry", headers=auth(admin_key)
        )
        assert retried.status_code == 200, retried.text
        assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
        await eventually(all_delivered(state, 4), what="everything delivered after the retry")
    requests = vendor_server.requests()
    assert [r.method for r in requests] == ["POST", "POST", "POST", "PUT", "PUT"]
    zendesk_id = str(requests[2].json["ticket"]["external_id"])
    assert zendesk_id == ticket_id
    [(learned, _)] = [
        (zid, record)
        for zid, record in vendor_server.records("zendesk").items()
        if str(record["external_id"]) == ticket_id
    ]
    assert [r.path for r in requests[3:]] == [f"{ZENDESK_TICKETS}/{learned}"] * 2
    assert requests[3].json["ticket"]["priority"] == "urgent"
    assert requests[2].received_at <= requests[3].received_at <= requests[4].received_at
    log = await attempts_log(client, admin_key, held[0]["id"])
    assert [(a["outcome"], a["status_code"]) for a in log] == [("dead", 422), ("delivered", 201)]


# -- outages, crashes, concurrency -----------------------------------------------------------


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_vendor_down_for_a_while_then_back_delivers_every_ticket_exactly_once(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    down = {"base_url": f"http://127.0.0.1:{closed_port()}/zendesk", "email": ZENDESK_EMAIL}
    changed = await admin.patch(
        "/v1/integrations/zendesk-eu", json={"config": down}, headers=auth(admin_key)
    )
    assert changed.status_code == 200, changed.text
    events = [make_event(f"dn-{n}", customer={"id": f"C-dn-{n}"}) for n in range(6)]
    batch = await client.post(
        "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
    )
    assert batch.status_code == 200, batch.text
    ticket_ids = {item["ticket_id"] for item in batch.json()["results"]}
    assert len(ticket_ids) == 6
    async with dispatching(state, delivery_retry_schedule="0.2,0.3,0.4,0.5,0.5,0.5,0.5,0.5"):

        async def each_failed_twice() -> bool:
            rows = await deliveries(state)
            return len(rows) == 6 and all(r["attempts"] >= 2 for r in rows)

        await eventually(each_failed_twice, what="two failed attempts each")
        rows = await deliveries(state)
        assert {(r["status"], r["last_error"]) for r in rows} == {
            ("pending", "network error (ConnectError)")
        }
        # A change meanwhile: its update waits for its create, then uses the learned id.
        changed_ticket = sorted(ticket_ids, key=int)[0]
        await patch(client, admin_key, changed_ticket, {"priority": "urgent"})
        # Back, but shaky at first: three more 503s.
        vendor_server.script("POST", ZENDESK_TICKETS, *[ScriptedResponse(status=503)] * 3)
        up = {"base_url": vendor_server.zendesk_url, "email": ZENDESK_EMAIL}
        changed = await admin.patch(
            "/v1/integrations/zendesk-eu", json={"config": up}, headers=auth(admin_key)
        )
        assert changed.status_code == 200, changed.text
        await eventually(all_delivered(state, 7), within=15, what="all delivered")
    records = vendor_server.records("zendesk")
    assert len(records) == 6
    [update] = vendor_server.requests("PUT")
    [(changed_id, changed_record)] = [
        (zid, r) for zid, r in records.items() if str(r["external_id"]) == changed_ticket
    ]
    assert update.path == f"{ZENDESK_TICKETS}/{changed_id}"
    assert changed_record["priority"] == "urgent"
    creates_of_changed = [
        r
        for r in vendor_server.requests("POST", ZENDESK_TICKETS)
        if str(r.json["ticket"]["external_id"]) == changed_ticket
    ]
    assert creates_of_changed
    assert creates_of_changed[-1].received_at <= update.received_at
    assert sorted(str(r["external_id"]) for r in records.values()) == sorted(ticket_ids)
    assert len(vendor_server.requests("POST", ZENDESK_TICKETS)) == 6 + 3
    for ticket_id in ticket_ids:
        refs = (await get_ticket(client, admin_key, ticket_id))["external_refs"]
        assert len(refs) == 1
        assert str(records[refs[0]["external_id"]]["external_id"]) == ticket_id


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[ServiceRunner, Path]]:
    """Runs ``feedback-service`` processes; their FEEDBACK_DATA_DIR (unused: they use
    the session database)."""
    with scratch_dir("dispatch-kill") as home, service_runner(tmp_path / "service") as started:
        yield started, home / "data"


async def test_a_killed_dispatch_process_is_resumed_with_the_same_message(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    database_url: str,
    runner: tuple[ServiceRunner, Path],
) -> None:
    """A real crash: a ``feedback-service dispatch`` process is SIGKILLed while both
    vendors are still answering. Its connections die with it, PostgreSQL rolls the
    claims back and releases the row locks, nothing is recorded; the next dispatcher
    sends both again with the same message id (the webhook receiver de-duplicates on
    webhook-id; Zendesk on the Idempotency-Key, so one Zendesk ticket exists)."""
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    slow = ScriptedResponse(status=None, delay_s=1.5)
    vendor_server.script("POST", "/webhooks/hook", slow)
    vendor_server.script("POST", ZENDESK_TICKETS, slow)
    opened = await post(client, admin_key, make_event("kill-1"))
    env = {
        "FEEDBACK_DATABASE_URL": database_url,
        "FEEDBACK_ALLOW_PRIVATE_TARGETS": "true",
        "FEEDBACK_DISPATCHER_POLL_INTERVAL_S": "0.1",
        "FEEDBACK_DISPATCHER_CONCURRENCY": "2",
        "FEEDBACK_DELIVERY_RETRY_SCHEDULE": "0.2,0.4,0.6",
    }
    services, data_dir = runner
    process = services.start(data_dir, env=env, command=("dispatch",), wait=False)
    try:
        deadline = time.monotonic() + 30
        while len(vendor_server.requests()) < 2:
            assert process.running(), process.output()
            assert time.monotonic() < deadline, process.output()
            await asyncio.sleep(0.02)
    finally:
        assert process.kill() == -9
    killed_at = time.time()
    hook_first, zendesk_first = (
        vendor_server.requests("POST", "/webhooks/hook")[0],
        vendor_server.requests("POST", ZENDESK_TICKETS)[0],
    )

    async def unlocked_and_untouched() -> bool:
        rows = await deliveries(state)
        return all((r["status"], r["attempts"]) == ("pending", 0) for r in rows)

    await eventually(unlocked_and_untouched, what="claims rolled back")
    assert await attempt_rows(state) == 0
    async with dispatching(state):
        await eventually(all_delivered(state, 2), what="delivered by the next dispatcher")
    rows = await deliveries(state)
    ids = {r["integration"]: webhook_id(r["id"]) for r in rows}
    assert ids_of(vendor_server.requests("POST", "/webhooks/hook")) == [ids["hook"]] * 2
    assert ids_of(vendor_server.requests("POST", ZENDESK_TICKETS), "idempotency-key") == (
        [ids["zendesk-eu"]] * 2
    )
    assert hook_first.headers["webhook-id"] == ids["hook"]
    assert zendesk_first.headers["idempotency-key"] == ids["zendesk-eu"]
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)] * 2
    assert await attempt_rows(state) == 2
    # Let the killed request's slow answer finish (it hits the idempotency key).
    await asyncio.sleep(max(0.0, zendesk_first.received_at + 1.7 - time.time()))
    assert time.time() > killed_at
    records = vendor_server.records("zendesk")
    assert len(records) == 1
    ticket = await get_ticket(client, admin_key, opened["ticket_id"])
    assert [r["external_id"] for r in ticket["external_refs"]] == list(records)


async def test_two_dispatchers_deliver_every_message_exactly_once_and_in_ticket_order(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook")
    customers = 50
    for round_ in range(2):  # opens 50 tickets, then attaches one event to each
        events = [
            make_event(f"two-{round_}-{n}", customer={"id": f"C-two-{n}"}) for n in range(customers)
        ]
        response = await client.post(
            "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
        )
        assert response.status_code == 200, response.text
    total = 4 * customers  # feedback.received x2, ticket.created, ticket.updated
    sent_by: tuple[list[str], list[str]] = ([], [])
    async with (
        dispatching(state, sent_by[0], dispatcher_concurrency=4),
        dispatching(state, sent_by[1], dispatcher_concurrency=4),
    ):
        await eventually(all_delivered(state, total), within=40, what="all delivered")
    requests = vendor_server.requests("POST", "/webhooks/hook")
    rows = await deliveries(state)
    assert sorted(ids_of(requests)) == sorted(webhook_id(r["id"]) for r in rows)
    assert len(set(ids_of(requests))) == total
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    assert len(sent_by[0]) + len(sent_by[1]) == total
    assert [bool(sent) for sent in sent_by] == [True, True]  # both took part
    # Per ticket: the create reached the receiver before the update.
    arrival = {r.headers["webhook-id"]: r.received_at for r in requests}
    by_ticket: dict[int, dict[str, float]] = {}
    for row in rows:
        if row["ticket_id"] is not None:
            by_ticket.setdefault(row["ticket_id"], {})[row["event_type"]] = arrival[
                webhook_id(row["id"])
            ]
    assert len(by_ticket) == customers
    for ticket_id, times in by_ticket.items():
        assert times["ticket.created"] <= times["ticket.updated"], ticket_id


async def test_an_update_never_overtakes_its_slow_create(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    vendor_server.script("POST", ZENDESK_TICKETS, ScriptedResponse(status=None, delay_s=1.0))
    async with dispatching(state, dispatcher_concurrency=4):
        opened = await post(client, admin_key, make_event("ov-1"))
        await vendor_server.wait_for_requests(1, method="POST", path=ZENDESK_TICKETS)
        # While the create is in flight, two changes queue two updates.
        await patch(client, admin_key, opened["ticket_id"], {"priority": "urgent"})
        await patch(client, admin_key, opened["ticket_id"], {"status": "waiting"})
        await eventually(all_delivered(state, 3), what="all delivered")
    create, first_update, second_update = vendor_server.requests()
    [zendesk_id] = vendor_server.records("zendesk")
    assert create.method == "POST"
    assert [(r.method, r.path) for r in (first_update, second_update)] == [
        ("PUT", f"{ZENDESK_TICKETS}/{zendesk_id}")
    ] * 2
    # Only after the create's answer (1 s) came back, and in order.
    assert first_update.received_at - create.received_at >= 0.95
    assert first_update.received_at <= second_update.received_at
    assert first_update.json["ticket"]["priority"] == "urgent"
    assert second_update.json["ticket"]["status"] == "pending"
    assert vendor_server.records("zendesk")[zendesk_id]["status"] == "pending"


# -- guards and switches ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["webhook", "zendesk"])
async def test_ssrf_guard_refuses_private_targets_at_send_time(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    kind: str,
) -> None:
    # At create time the guard of a normally configured service refuses it outright.
    refused = await client.post(
        "/v1/integrations",
        json=integration_body(vendor_server, "target", kind, ["ticket.created"]),
        headers=auth(admin_key),
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["type"] == "unsafe_target"
    assert "loopback" in error["msg"]
    # Created where private targets were allowed, sent by a dispatcher where they are not.
    await create_integration(
        admin, admin_key, vendor_server, "target", kind, events=["ticket.created"]
    )
    async with dispatching(state, allow_private_targets=False):
        await post(client, admin_key, make_event("ssrf-1"))
        [row] = await deliveries(state)
        await eventually(status_of(state, row["id"], "dead"), what="dead")
    [row] = await deliveries(state)
    assert (row["attempts"], row["last_status_code"]) == (1, None)
    assert row["last_error"] == (
        "target address is loopback; private targets need FEEDBACK_ALLOW_PRIVATE_TARGETS=true"
    )
    assert vendor_server.requests() == []


async def test_a_disabled_integrations_deliveries_wait_until_it_is_enabled(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    admin: httpx.AsyncClient,
) -> None:
    await create_integration(admin, admin_key, vendor_server, "hook", events=["ticket.created"])
    await create_integration(admin, admin_key, vendor_server, "live", events=["ticket.created"])
    await post(client, admin_key, make_event("dis-1"))
    off = await client.patch(
        "/v1/integrations/hook", json={"enabled": False}, headers=auth(admin_key)
    )
    assert off.status_code == 200, off.text
    async with dispatching(state):
        rows = await deliveries(state)
        live = next(r for r in rows if r["integration"] == "live")
        await eventually(status_of(state, live["id"], "delivered"), what="the enabled one")
        await asyncio.sleep(0.4)  # four polls
        waiting = next(r for r in await deliveries(state) if r["integration"] == "hook")
        assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
        assert vendor_server.requests("POST", "/webhooks/hook") == []
        on = await client.patch(
            "/v1/integrations/hook", json={"enabled": True}, headers=auth(admin_key)
        )
        assert on.status_code == 200, on.text
        await eventually(all_delivered(state, 2), what="sent once enabled")
    [sent] = vendor_server.requests("POST", "/webhooks/hook")
    assert sent.headers["webhook-id"] == webhook_id(waiting["id"])


def metric_samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_metrics_count_attempts_by_outcome_and_show_the_outbox(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    # Names used by no other test: the counters live for the whole session.
    await create_integration(
        admin, admin_key, vendor_server, "metrics-ok", events=["ticket.created"]
    )
    await create_integration(
        admin, admin_key, vendor_server, "metrics-bad", events=["ticket.created"]
    )
    vendor_server.script("POST", "/webhooks/metrics-ok", ScriptedResponse(status=503))
    vendor_server.script("POST", "/webhooks/metrics-bad", ScriptedResponse(status=400))
    async with dispatching(state):
        await post(client, admin_key, make_event("met-1"))

        async def settled() -> bool:
            return {r["status"] for r in await deliveries(state)} == {"delivered", "dead"}

        await eventually(settled, what="one delivered, one dead")
    await post(client, admin_key, make_event("met-2", customer={"id": "C-met-2"}))

    def attempts(integration: str, outcome: str) -> tuple[str, frozenset[tuple[str, str]]]:
        labels = frozenset({("integration", integration), ("outcome", outcome)})
        return ("feedback_delivery_attempts_total", labels)

    def depth(status: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return ("feedback_outbox_deliveries", frozenset({("status", status)}))

    expected = {
        attempts("metrics-ok", "retry"): 1.0,
        attempts("metrics-ok", "delivered"): 1.0,
        attempts("metrics-bad", "dead"): 1.0,
    }
    samples = metric_samples((await client.get("/metrics")).text)
    assert {k: samples.get(k) for k in expected} == expected
    assert samples.get(attempts("metrics-bad", "retry")) is None
    assert (
        samples[
            ("feedback_delivery_latency_seconds_count", frozenset({("integration", "metrics-ok")}))
        ]
        == 1.0
    )
    # The outbox gauge is refreshed by each dispatcher when it starts (then every 5 s).
    # With both integrations disabled, met-2's two deliveries stay pending meanwhile.
    for name in ("metrics-ok", "metrics-bad"):
        off = await client.patch(
            f"/v1/integrations/{name}", json={"enabled": False}, headers=auth(admin_key)
        )
        assert off.status_code == 200, off.text
    want = {depth("pending"): 2.0, depth("delivered"): 1.0, depth("dead"): 1.0}
    async with dispatching(state):

        async def gauge_refreshed() -> bool:
            found = metric_samples((await client.get("/metrics")).text)
            return {k: found.get(k) for k in want} == want

        await eventually(gauge_refreshed, what="the outbox gauge")


# -- status flowing back, end to end ---------------------------------------------------------


async def test_inbound_resolution_by_the_learned_id_reaches_only_the_other_integrations(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    zendesk = await create_integration(admin, admin_key, vendor_server, "zendesk-eu", "zendesk")
    await create_integration(
        admin, admin_key, vendor_server, "hook", events=["ticket.created", "ticket.resolved"]
    )
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("ib-1"))
        await eventually(all_delivered(state, 2), what="created everywhere")
        [zendesk_id] = vendor_server.records("zendesk")
        raw = b'{"external_id": "' + zendesk_id.encode() + b'", "status": "solved"}'
        timestamp = int(time.time())
        headers = {
            "webhook-id": "zd-trigger-1",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.sign(
                zendesk["inbound_secret"], "zd-trigger-1", timestamp, raw
            ),
            "content-type": "application/json",
        }
        response = await client.post("/v1/inbound/zendesk-eu", content=raw, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "ticket_id": opened["ticket_id"],
            "status": "resolved",
            "changed": True,
        }
        await eventually(all_delivered(state, 3), what="the resolution delivered")
        await asyncio.sleep(0.3)  # nothing else follows
    rows = await deliveries(state)
    assert [(r["integration"], r["event_type"]) for r in rows] == [
        ("zendesk-eu", "ticket.created"),
        ("hook", "ticket.created"),
        ("hook", "ticket.resolved"),
    ]
    hook_types = [r.json["type"] for r in vendor_server.requests("POST", "/webhooks/hook")]
    assert hook_types == ["ticket.created", "ticket.resolved"]
    assert [r.method for r in vendor_server.requests(path=ZENDESK_TICKETS)] == ["POST"]
    assert vendor_server.requests("PUT") == []
