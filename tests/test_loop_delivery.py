"""Closing the loop end to end: rules and routing at ingest, deliveries by real
dispatchers to a real local HTTP server behaving like the vendors, and status flowing
back through signed inbound webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from app.config import Settings
from app.dependencies import AppState
from app.integrations import signing
from app.integrations.signing import generate_secret
from app.workers.dispatcher import DeliveryDispatcher, make_http_client
from tests.conftest import auth, make_event
from tests.fixtures.vendors import (  # noqa: F401 (fixtures)
    ZENDESK_API_TOKEN,
    ZENDESK_EMAIL,
    FakeVendorServer,
    ScriptedResponse,
    vendor_server_fixture,
    vendor_server_session_fixture,
)

ZENDESK_TICKETS = "/zendesk/api/v2/tickets"


def dispatcher_settings(state: AppState, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allow_private_targets": True,
        "delivery_retry_schedule": "0.2,0.3,0.4",
        "dispatcher_poll_interval_s": 0.05,
        "dispatcher_concurrency": 2,
    }
    values.update(overrides)
    return state.settings.model_copy(update=values)


@asynccontextmanager
async def dispatching(state: AppState, **overrides: Any) -> AsyncIterator[DeliveryDispatcher]:
    settings = dispatcher_settings(state, **overrides)
    http = make_http_client(settings)
    dispatcher = DeliveryDispatcher(settings, state.database, http)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        await http.aclose()


async def add_integration(
    state: AppState,
    name: str,
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    events: list[str] | None = None,
) -> str:
    """Stored directly: the API's SSRF guard (rightly) refuses 127.0.0.1 in the shared
    app. Returns the inbound secret."""
    inbound = generate_secret()
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO integrations (name, kind, enabled, events, config, secrets, "
                "inbound_secret) VALUES (:name, :kind, true, :events, CAST(:config AS jsonb), "
                "CAST(:secrets AS jsonb), :inbound)"
            ),
            {
                "name": name,
                "kind": kind,
                "events": events or ["ticket.created", "ticket.updated", "ticket.resolved"],
                "config": orjson.dumps(config).decode(),
                "secrets": orjson.dumps(secrets).decode(),
                "inbound": inbound,
            },
        )
    return inbound


async def add_zendesk(state: AppState, vendor: FakeVendorServer, name: str = "zendesk-eu") -> str:
    return await add_integration(
        state,
        name,
        "zendesk",
        {"base_url": vendor.zendesk_url, "email": ZENDESK_EMAIL},
        {"api_token": ZENDESK_API_TOKEN},
    )


async def add_webhook(
    state: AppState, vendor: FakeVendorServer, name: str = "hook", events: list[str] | None = None
) -> tuple[str, str]:
    """Returns (signing secret, inbound secret)."""
    signing_secret = generate_secret()
    inbound = await add_integration(
        state,
        name,
        "webhook",
        {"url": vendor.webhook_url(name)},
        {"signing_secret": signing_secret},
        events,
    )
    return signing_secret, inbound


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def deliveries(state: AppState) -> list[dict[str, Any]]:
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


async def all_delivered(state: AppState) -> bool:
    rows = await deliveries(state)
    return bool(rows) and all(row["status"] == "delivered" for row in rows)


async def post(client: httpx.AsyncClient, key: str, event: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/feedback", json=event, headers=auth(key))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


# -- rules and routing at ingest -----------------------------------------------------------


async def test_detractor_opens_a_routed_ticket_and_the_next_one_attaches(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    put = await client.put(
        "/v1/locations/store-berlin-01",
        json={"name": "Berlin", "owner": "maria@example.com", "team": "berlin-ops"},
        headers=auth(admin_key),
    )
    assert put.status_code == 200, put.text
    first = await post(client, admin_key, make_event("d-1"))
    second = await post(client, admin_key, make_event("d-2", text="Again no help at all."))
    happy = await post(
        client,
        admin_key,
        make_event("p-1", scores=[{"metric": "nps", "value": 10}], customer={"id": "C-2"}),
    )
    assert first["ticket_id"] == second["ticket_id"] is not None
    assert happy["ticket_id"] is None

    ticket = (await client.get(f"/v1/tickets/{first['ticket_id']}", headers=auth(admin_key))).json()
    assert ticket["reason"] == "Strong detractors"
    assert ticket["priority"] == "high"
    assert (ticket["assignee"], ticket["team"]) == ("maria@example.com", "berlin-ops")
    assert ticket["feedback_ids"] == [first["id"], second["id"]]
    assert [entry["kind"] for entry in ticket["timeline"]] == ["created", "feedback_attached"]
    feedback = (await client.get(f"/v1/feedback/{second['id']}", headers=auth(admin_key))).json()
    assert feedback["ticket_id"] == first["ticket_id"]


async def test_custom_rule_by_keyword_channel_and_location_wins_by_position(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    rule = {
        "name": "Berlin refunds",
        "enabled": True,
        "position": 10,
        "conditions": {
            "channels": ["in_store"],
            "location_ids": ["store-berlin-01"],
            "keywords_any": ["refund"],
        },
        "action": {"priority": "urgent", "assignee": "refunds@example.com", "sla_hours": 4},
    }
    created = await client.post("/v1/rules", json=rule, headers=auth(admin_key))
    assert created.status_code == 201, created.text
    refund = await post(client, admin_key, make_event("r-1", text="I want a REFUND now!"))
    refunded = await post(
        client, admin_key, make_event("r-2", text="They refunded me.", customer={"id": "C-9"})
    )
    elsewhere = await post(
        client,
        admin_key,
        make_event("r-3", text="refund", location_id="store-paris-02", customer={"id": "C-8"}),
    )
    tickets = {
        body["event_id"]: (
            await client.get(f"/v1/tickets/{body['ticket_id']}", headers=auth(admin_key))
        ).json()
        for body in (
            {**refund, "event_id": "r-1"},
            {**refunded, "event_id": "r-2"},
            {**elsewhere, "event_id": "r-3"},
        )
    }
    assert tickets["r-1"]["reason"] == "Berlin refunds"
    assert tickets["r-1"]["priority"] == "urgent"
    assert tickets["r-1"]["assignee"] == "refunds@example.com"
    # "refunded" is not the whole word; Paris is not Berlin: the default rule decides.
    assert tickets["r-2"]["reason"] == "Strong detractors"
    assert tickets["r-3"]["reason"] == "Strong detractors"


# -- deliveries ----------------------------------------------------------------------------


async def test_zendesk_create_then_update_uses_the_learned_id(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_zendesk(state, vendor_server)
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("z-1"))
        await eventually(lambda: all_delivered(state))
        patched = await client.patch(
            f"/v1/tickets/{opened['ticket_id']}",
            json={"status": "resolved", "note": "Refunded."},
            headers=auth(admin_key),
        )
        assert patched.status_code == 200, patched.text
        await vendor_server.wait_for_requests(2)
        await eventually(lambda: all_delivered(state))
    create, update = vendor_server.requests()
    assert (create.method, create.path) == ("POST", ZENDESK_TICKETS)
    external_id = str(create.json["ticket"]["external_id"])
    assert external_id == opened["ticket_id"]
    [(zendesk_id, record)] = vendor_server.records("zendesk").items()
    assert (update.method, update.path) == ("PUT", f"{ZENDESK_TICKETS}/{zendesk_id}")
    assert record["status"] == "solved"
    ticket = (
        await client.get(f"/v1/tickets/{opened['ticket_id']}", headers=auth(admin_key))
    ).json()
    assert [(r["integration"], r["external_id"]) for r in ticket["external_refs"]] == [
        ("zendesk-eu", zendesk_id)
    ]
    assert ticket["resolved_at"] is not None
    assert [row["event_type"] for row in await deliveries(state)] == [
        "ticket.created",
        "ticket.resolved",
    ]


async def test_webhook_is_signed_with_a_stable_message_id(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    secret, _ = await add_webhook(
        state, vendor_server, events=["feedback.received", "ticket.created"]
    )
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("w-1"))
        requests = await vendor_server.wait_for_requests(2)
    rows = await deliveries(state)
    assert sorted(r.headers["webhook-id"] for r in requests) == sorted(
        f"msg_{row['id']}" for row in rows
    )
    for request in requests:
        signing.verify(secret, request.headers, request.body)  # raises if wrong
    types = {request.json["type"]: request.json["data"] for request in requests}
    assert types["ticket.created"]["id"] == opened["ticket_id"]
    assert types["feedback.received"]["event_id"] == "w-1"
    assert types["feedback.received"]["ticket_id"] == opened["ticket_id"]


async def test_retries_then_success_and_retry_after_is_honoured(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_webhook(state, vendor_server)
    path = "/webhooks/hook"
    vendor_server.script(
        "POST",
        path,
        ScriptedResponse(status=503),
        ScriptedResponse(status=429, headers={"Retry-After": "1"}),
    )
    async with dispatching(state):
        await post(client, admin_key, make_event("rt-1"))
        await eventually(lambda: all_delivered(state), within=10)
    requests = vendor_server.requests("POST", path)
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    # The schedule's second delay is 0.3 s; the vendor asked for 1 s.
    assert requests[2].received_at - requests[1].received_at >= 0.95
    [row] = await deliveries(state)
    assert (row["attempts"], row["last_status_code"]) == (3, 204)
    async with state.sessionmaker() as session:
        outcomes = (
            await session.execute(
                text("SELECT outcome, status_code FROM delivery_attempts ORDER BY id")
            )
        ).all()
    assert [tuple(o) for o in outcomes] == [("retry", 503), ("retry", 429), ("delivered", 204)]


async def test_permanent_failure_is_dead_holds_later_ones_and_replays_in_order(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_webhook(state, vendor_server)
    path = "/webhooks/hook"
    vendor_server.script("POST", path, ScriptedResponse(status=422))
    async with dispatching(state):
        opened = await post(client, admin_key, make_event("dead-1"))

        async def created_is_dead() -> bool:
            rows = await deliveries(state)
            return bool(rows) and rows[0]["status"] == "dead"

        await eventually(created_is_dead)
        await post(client, admin_key, make_event("dead-2", text="Still waiting."))
        await asyncio.sleep(0.5)  # time enough for the update to go, were it allowed
        created, updated = await deliveries(state)
        assert (created["status"], created["last_status_code"]) == ("dead", 422)
        assert (updated["event_type"], updated["status"]) == ("ticket.updated", "pending")
        assert len(vendor_server.requests("POST", path)) == 1

        retried = await client.post(
            f"/v1/deliveries/{created['id']}/retry", headers=auth(admin_key)
        )
        assert retried.status_code == 200, retried.text
        await eventually(lambda: all_delivered(state))
    types = [r.json["type"] for r in vendor_server.requests("POST", path)]
    assert types == ["ticket.created", "ticket.created", "ticket.updated"]
    assert opened["ticket_id"] is not None


async def test_two_dispatchers_never_send_a_delivery_twice(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_webhook(state, vendor_server, events=["feedback.received"])
    batch = {"events": [make_event(f"two-{n}", customer={"id": f"C-{n}"}) for n in range(120)]}
    response = await client.post("/v1/feedback/batch", json=batch, headers=auth(admin_key))
    assert response.status_code == 200, response.text
    async with (
        dispatching(state, dispatcher_concurrency=4),
        dispatching(state, dispatcher_concurrency=4),
    ):
        await eventually(lambda: all_delivered(state), within=30)
    ids = [r.headers["webhook-id"] for r in vendor_server.requests("POST", "/webhooks/hook")]
    assert len(ids) == 120
    assert len(set(ids)) == 120


async def test_a_dispatcher_killed_mid_delivery_is_resumed_with_the_same_message_id(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    """The first dispatcher's worker is cancelled while the vendor is still answering
    (as if its process died): its transaction ends unrecorded, the row lock goes, and
    the next dispatcher sends the same message again."""
    await add_webhook(state, vendor_server)
    path = "/webhooks/hook"
    vendor_server.script("POST", path, ScriptedResponse(status=None, delay_s=2.0))
    settings = dispatcher_settings(state)
    http = make_http_client(settings)
    first = DeliveryDispatcher(settings, state.database, http)
    await first.start()
    try:
        await post(client, admin_key, make_event("kill-1"))
        await vendor_server.wait_for_requests(1, method="POST", path=path)
        for task in first._tasks:  # the crash: no graceful stop
            task.cancel()
        await asyncio.gather(*first._tasks, return_exceptions=True)
    finally:
        await http.aclose()
    [row] = await deliveries(state)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    async with dispatching(state):
        await eventually(lambda: all_delivered(state))
    ids = [r.headers["webhook-id"] for r in vendor_server.requests("POST", path)]
    assert ids == [f"msg_{row['id']}"] * 2


async def test_ssrf_guard_refuses_private_targets_at_send_time(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_webhook(state, vendor_server)
    async with dispatching(state, allow_private_targets=False):
        await post(client, admin_key, make_event("ssrf-1"))

        async def dead() -> bool:
            rows = await deliveries(state)
            return bool(rows) and rows[0]["status"] == "dead"

        await eventually(dead)
    [row] = await deliveries(state)
    assert "FEEDBACK_ALLOW_PRIVATE_TARGETS" in (row["last_error"] or "")
    assert vendor_server.requests() == []


# -- status flowing back ---------------------------------------------------------------------


def signed(secret: str, body: dict[str, Any], *, age_s: int = 0) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    timestamp = int(time.time()) - age_s
    headers = {
        "webhook-id": "msg_in_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(secret, "msg_in_1", timestamp, raw),
        "content-type": "application/json",
    }
    return raw, headers


async def test_inbound_status_is_verified_mapped_and_sent_to_the_other_targets(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    zendesk_inbound = await add_zendesk(state, vendor_server)
    await add_webhook(state, vendor_server)
    opened = await post(client, admin_key, make_event("in-1"))
    ticket_id = opened["ticket_id"]
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO ticket_external_refs (ticket_id, integration_id, external_id) "
                "SELECT :ticket, id, 'ZD-77' FROM integrations WHERE name = 'zendesk-eu'"
            ),
            {"ticket": int(ticket_id)},
        )
    url = "/v1/inbound/zendesk-eu"
    body = {"external_id": "ZD-77", "status": "solved", "actor": "agent@acme.example"}

    raw, headers = signed(zendesk_inbound, body)
    wrong = await client.post(url, content=raw, headers={**headers, "webhook-id": "other"})
    stale_raw, stale = signed(zendesk_inbound, body, age_s=600)
    too_old = await client.post(url, content=stale_raw, headers=stale)
    unsigned = await client.post(url, content=raw, headers={"content-type": "application/json"})
    assert (wrong.status_code, too_old.status_code, unsigned.status_code) == (401, 401, 401)

    accepted = await client.post(url, content=raw, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"ticket_id": ticket_id, "status": "resolved", "changed": True}
    again = await client.post(url, content=raw, headers=headers)
    assert again.json()["changed"] is False

    unknown_raw, unknown_headers = signed(
        zendesk_inbound, {"external_id": "nope", "status": "open"}
    )
    missing = await client.post(url, content=unknown_raw, headers=unknown_headers)
    assert missing.status_code == 404

    ticket = (await client.get(f"/v1/tickets/{ticket_id}", headers=auth(admin_key))).json()
    assert ticket["status"] == "resolved"
    assert ticket["resolved_at"] is not None
    resolved = [row for row in await deliveries(state) if row["event_type"] == "ticket.resolved"]
    assert [row["integration"] for row in resolved] == ["hook"]  # not back to Zendesk


@pytest.mark.parametrize(
    ("word", "status"),
    [("new", "open"), ("pending", "waiting"), ("hold", "waiting"), ("closed", "closed")],
)
async def test_inbound_vendor_words(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    vendor_server: FakeVendorServer,
    word: str,
    status: str,
) -> None:
    _, inbound = await add_webhook(state, vendor_server)
    opened = await post(client, admin_key, make_event("word-1"))
    raw, headers = signed(inbound, {"ticket_id": opened["ticket_id"], "status": word})
    response = await client.post("/v1/inbound/hook", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


async def test_vendor_down_for_a_while_then_back_delivers_every_ticket_once(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_zendesk(state, vendor_server)
    # Down: the next 12 creates fail (503, connection-like timeouts are covered by the
    # adapter tests); then it is back.
    vendor_server.script("POST", ZENDESK_TICKETS, *[ScriptedResponse(status=503)] * 12)
    batch = {"events": [make_event(f"down-{n}", customer={"id": f"C-down-{n}"}) for n in range(8)]}
    response = await client.post("/v1/feedback/batch", json=batch, headers=auth(admin_key))
    assert response.status_code == 200, response.text
    async with dispatching(state, delivery_retry_schedule="0.1,0.2,0.3,0.4,0.5"):
        await eventually(lambda: all_delivered(state), within=20)
    records = vendor_server.records("zendesk")
    assert len(records) == 8  # one Zendesk ticket per ticket, none twice
    assert sorted(str(r["external_id"]) for r in records.values()) == [str(n) for n in range(1, 9)]
    assert len(vendor_server.requests("POST", ZENDESK_TICKETS)) == 8 + 12


async def test_an_update_never_overtakes_its_slow_create(
    client: httpx.AsyncClient, admin_key: str, state: AppState, vendor_server: FakeVendorServer
) -> None:
    await add_zendesk(state, vendor_server)
    vendor_server.script("POST", ZENDESK_TICKETS, ScriptedResponse(status=None, delay_s=1.0))
    async with dispatching(state, dispatcher_concurrency=4):
        opened = await post(client, admin_key, make_event("slow-1"))
        await vendor_server.wait_for_requests(1, method="POST", path=ZENDESK_TICKETS)
        # While the create is in flight, the ticket changes: an update is queued.
        patched = await client.patch(
            f"/v1/tickets/{opened['ticket_id']}",
            json={"priority": "urgent"},
            headers=auth(admin_key),
        )
        assert patched.status_code == 200, patched.text
        await eventually(lambda: all_delivered(state))
    create, update = vendor_server.requests()
    assert create.method == "POST"
    assert update.method == "PUT"
    [zendesk_id] = vendor_server.records("zendesk")
    assert update.path == f"{ZENDESK_TICKETS}/{zendesk_id}"
    # Sent only after the create's slow answer (1 s) came back.
    assert update.received_at - create.received_at >= 0.95


async def test_concurrent_events_of_one_new_customer_share_one_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """Single POSTs and batches racing in separate transactions: the partial unique
    index lets only one open ticket per customer exist; the others attach to it."""
    singles = [
        client.post(
            "/v1/feedback",
            json=make_event(f"race-{n}", customer={"id": "C-race"}),
            headers=auth(admin_key),
        )
        for n in range(20)
    ]
    batches = [
        client.post(
            "/v1/feedback/batch",
            json={
                "events": [
                    make_event(f"race-b{b}-{n}", customer={"id": "C-race"}) for n in range(5)
                ]
            },
            headers=auth(admin_key),
        )
        for b in range(3)
    ]
    responses = await asyncio.gather(*singles, *batches)
    ticket_ids = {r.json()["ticket_id"] for r in responses[:20]}
    for batch in responses[20:]:
        ticket_ids |= {item["ticket_id"] for item in batch.json()["results"]}
    assert len(ticket_ids) == 1
    async with state.sessionmaker() as session:
        tickets = (await session.execute(text("SELECT count(*) FROM tickets"))).scalar_one()
        attached = (
            await session.execute(text("SELECT count(*) FROM feedback WHERE ticket_id IS NOT NULL"))
        ).scalar_one()
    assert (tickets, attached) == (1, 35)
