"""The delivery outbox over REST (SPEC section 6): listing with filters and pagination,
one delivery with its attempts, re-queuing dead deliveries (with the NOTIFY that wakes
the dispatchers), and who may see them.

Deliveries are inserted directly. The session app runs a dispatcher: pending rows here
are due only tomorrow, and every integration points at a loopback address, which the
session app's SSRF guard refuses without connecting anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.dependencies import AppState
from app.models.closed_loop import DeliveryAttemptRow, DeliveryRow, IntegrationRow, TicketRow
from app.models.enums import Channel, DeliveryStatus, Scope, TicketPriority, TicketStatus
from app.repositories.deliveries import DELIVERIES_CHANNEL
from app.workers.notifications import asyncpg_dsn
from tests.conftest import KeyFactory, assert_problem, auth

DELIVERY_KEYS = {
    "id",
    "integration",
    "event_type",
    "ticket_id",
    "feedback_id",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "next_attempt_at",
    "last_attempt_at",
    "delivered_at",
    "created_at",
}
NOW = datetime.now(UTC)
TOMORROW = NOW + timedelta(days=1)


@dataclass(frozen=True)
class Seeded:
    ticket_ids: list[int]
    # by label: alpha-created, alpha-updated-dead, beta-created-delivered,
    # beta-feedback-pending, alpha-other-ticket-dead
    delivery_ids: dict[str, int]


async def seed(state: AppState) -> Seeded:
    async with state.sessionmaker() as session, session.begin():
        integrations = [
            IntegrationRow(
                name=name,
                kind="webhook",
                enabled=True,
                events=["ticket.created", "ticket.updated", "feedback.received"],
                config={"url": f"http://127.0.0.1:9/{name}"},
                secrets={"signing_secret": "whsec_dGVzdHNlY3JldA=="},
                inbound_secret="whsec_aW5ib3VuZA==",
            )
            for name in ("alpha", "beta")
        ]
        tickets = [
            TicketRow(
                status=TicketStatus.OPEN,
                priority=TicketPriority.HIGH,
                reason="Strong detractors",
                channel=Channel.IN_STORE,
            )
            for _ in range(2)
        ]
        session.add_all([*integrations, *tickets])
        await session.flush()
        alpha, beta = (integration.id for integration in integrations)
        first, second = (ticket.id for ticket in tickets)

        def delivery(integration_id: int, event_type: str, **fields: Any) -> DeliveryRow:
            row = DeliveryRow(
                integration_id=integration_id,
                event_type=event_type,
                payload={"data": {}},
                occurred_at=NOW,
                **fields,
            )
            session.add(row)
            return row

        rows = {
            "alpha-created": delivery(
                alpha,
                "ticket.created",
                ticket_id=first,
                status=DeliveryStatus.PENDING,
                attempts=2,
                next_attempt_at=TOMORROW,
                last_attempt_at=NOW,
                last_status_code=503,
                last_error="HTTP 503 Service Unavailable",
            ),
            "alpha-updated-dead": delivery(
                alpha,
                "ticket.updated",
                ticket_id=first,
                status=DeliveryStatus.DEAD,
                attempts=9,
                next_attempt_at=NOW,
                last_attempt_at=NOW,
                last_status_code=500,
                last_error="HTTP 500 Internal Server Error",
            ),
            "beta-created-delivered": delivery(
                beta,
                "ticket.created",
                ticket_id=first,
                status=DeliveryStatus.DELIVERED,
                attempts=1,
                next_attempt_at=NOW,
                last_attempt_at=NOW,
                last_status_code=201,
                delivered_at=NOW,
            ),
            "beta-feedback-pending": delivery(
                beta,
                "feedback.received",
                feedback_id=77,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=TOMORROW,
            ),
            "alpha-other-ticket-dead": delivery(
                alpha,
                "ticket.created",
                ticket_id=second,
                status=DeliveryStatus.DEAD,
                attempts=1,
                next_attempt_at=NOW,
                last_attempt_at=NOW,
                last_status_code=400,
                last_error="HTTP 400 Bad Request",
            ),
        }
        await session.flush()
        dead = rows["alpha-updated-dead"]
        for second_offset, outcome, status_code, error in (
            (0, "retry", 500, "HTTP 500 Internal Server Error"),
            (5, "retry", None, "timed out (ReadTimeout)"),
            (35, "dead", 500, "HTTP 500 Internal Server Error"),
        ):
            session.add(
                DeliveryAttemptRow(
                    delivery_id=dead.id,
                    at=NOW - timedelta(minutes=1) + timedelta(seconds=second_offset),
                    outcome=outcome,
                    status_code=status_code,
                    error=error,
                    duration_ms=120 + second_offset,
                )
            )
        return Seeded(ticket_ids=[first, second], delivery_ids={k: v.id for k, v in rows.items()})


async def listed(client: httpx.AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/deliveries", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    items: list[dict[str, Any]] = body["items"]
    return items


# --- listing ----------------------------------------------------------------------------


async def test_list_shows_every_delivery_newest_first(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    seeded = await seed(state)
    items = await listed(client, admin_key)
    ids = seeded.delivery_ids
    assert [item["id"] for item in items] == [str(i) for i in sorted(ids.values(), reverse=True)]
    assert all(set(item) == DELIVERY_KEYS for item in items)
    dead = next(item for item in items if item["id"] == str(ids["alpha-updated-dead"]))
    assert dead == {
        "id": str(ids["alpha-updated-dead"]),
        "integration": "alpha",
        "event_type": "ticket.updated",
        "ticket_id": str(seeded.ticket_ids[0]),
        "feedback_id": None,
        "status": "dead",
        "attempts": 9,
        "last_status_code": 500,
        "last_error": "HTTP 500 Internal Server Error",
        "next_attempt_at": dead["next_attempt_at"],
        "last_attempt_at": dead["last_attempt_at"],
        "delivered_at": None,
        "created_at": dead["created_at"],
    }
    assert datetime.fromisoformat(dead["last_attempt_at"]) == NOW
    feedback = next(item for item in items if item["id"] == str(ids["beta-feedback-pending"]))
    assert (feedback["feedback_id"], feedback["ticket_id"]) == ("77", None)
    assert datetime.fromisoformat(feedback["next_attempt_at"]) == TOMORROW
    delivered = next(item for item in items if item["id"] == str(ids["beta-created-delivered"]))
    assert datetime.fromisoformat(delivered["delivered_at"]) == NOW
    assert "payload" not in str(items)


async def test_filters_combine(client: httpx.AsyncClient, admin_key: str, state: AppState) -> None:
    seeded = await seed(state)
    ids = seeded.delivery_ids

    def labels(items: list[dict[str, Any]]) -> set[str]:
        by_id = {str(v): k for k, v in ids.items()}
        return {by_id[item["id"]] for item in items}

    assert labels(await listed(client, admin_key, status="dead")) == {
        "alpha-updated-dead",
        "alpha-other-ticket-dead",
    }
    assert labels(await listed(client, admin_key, integration="beta")) == {
        "beta-created-delivered",
        "beta-feedback-pending",
    }
    assert labels(await listed(client, admin_key, ticket_id=seeded.ticket_ids[0])) == {
        "alpha-created",
        "alpha-updated-dead",
        "beta-created-delivered",
    }
    assert labels(
        await listed(
            client, admin_key, status="dead", integration="alpha", ticket_id=seeded.ticket_ids[1]
        )
    ) == {"alpha-other-ticket-dead"}
    assert await listed(client, admin_key, integration="gamma") == []
    assert await listed(client, admin_key, ticket_id=999_999) == []


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"status": "failed"}, ["query", "status"]),
        ({"integration": "Not Valid"}, ["query", "integration"]),
        ({"ticket_id": 0}, ["query", "ticket_id"]),
        ({"ticket_id": "abc"}, ["query", "ticket_id"]),
        ({"limit": 501}, ["query", "limit"]),
        ({"cursor": "bm9wZQ"}, ["query", "cursor"]),
        ({"cursor": "WyJ4Il0"}, ["query", "cursor"]),
    ],
)
async def test_invalid_queries(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, Any], loc: list[str]
) -> None:
    response = await client.get("/v1/deliveries", params=params, headers=auth(admin_key))
    assert [error["loc"] for error in assert_problem(response, 422)["errors"]] == [loc]


async def test_pagination(client: httpx.AsyncClient, admin_key: str, state: AppState) -> None:
    seeded = await seed(state)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/deliveries", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(i) for i in sorted(seeded.delivery_ids.values(), reverse=True)]
    # a filtered listing pages within its filter
    first = await client.get(
        "/v1/deliveries", params={"status": "dead", "limit": 1}, headers=auth(admin_key)
    )
    second = await client.get(
        "/v1/deliveries",
        params={"status": "dead", "limit": 1, "cursor": first.json()["next_cursor"]},
        headers=auth(admin_key),
    )
    assert [first.json()["items"][0]["id"], second.json()["items"][0]["id"]] == [
        str(seeded.delivery_ids["alpha-other-ticket-dead"]),
        str(seeded.delivery_ids["alpha-updated-dead"]),
    ]
    assert second.json()["next_cursor"] is None


# --- one delivery -----------------------------------------------------------------------


async def test_one_delivery_with_its_attempts(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    seeded = await seed(state)
    delivery_id = seeded.delivery_ids["alpha-updated-dead"]
    response = await client.get(f"/v1/deliveries/{delivery_id}", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == DELIVERY_KEYS | {"attempts_log"}
    summary = next(
        item for item in await listed(client, admin_key) if item["id"] == str(delivery_id)
    )
    assert {k: v for k, v in body.items() if k != "attempts_log"} == summary
    log = body["attempts_log"]
    assert [(a["outcome"], a["status_code"], a["error"], a["duration_ms"]) for a in log] == [
        ("retry", 500, "HTTP 500 Internal Server Error", 120),
        ("retry", None, "timed out (ReadTimeout)", 125),
        ("dead", 500, "HTTP 500 Internal Server Error", 155),
    ]
    assert all(set(a) == {"at", "outcome", "status_code", "error", "duration_ms"} for a in log)
    assert datetime.fromisoformat(log[0]["at"]) == NOW - timedelta(minutes=1)

    other = seeded.delivery_ids["beta-feedback-pending"]
    empty = await client.get(f"/v1/deliveries/{other}", headers=auth(admin_key))
    assert empty.json()["attempts_log"] == []

    assert_problem(await client.get("/v1/deliveries/999999", headers=auth(admin_key)), 404)
    assert_problem(await client.get("/v1/deliveries/abc", headers=auth(admin_key)), 404)


# --- retry ------------------------------------------------------------------------------


@pytest.fixture
async def notifications(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Payloads of NOTIFYs on the dispatchers' channel, from a raw LISTEN connection."""
    received: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(asyncpg_dsn(make_url(database_url)))

    def on_notify(_connection: object, _pid: int, _channel: str, payload: object) -> None:
        received.put_nowait(str(payload))

    await connection.add_listener(DELIVERIES_CHANNEL, on_notify)
    try:
        yield received
    finally:
        await connection.close()


async def test_retry_requeues_a_dead_delivery_and_wakes_dispatchers(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    notifications: asyncio.Queue[str],
) -> None:
    seeded = await seed(state)
    delivery_id = seeded.delivery_ids["alpha-updated-dead"]
    before = datetime.now(UTC)
    response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == DELIVERY_KEYS
    assert body["id"] == str(delivery_id)
    assert body["status"] == "pending"
    assert body["attempts"] == 0
    assert body["last_error"] == "HTTP 500 Internal Server Error"  # kept until next attempt
    assert body["last_status_code"] == 500
    due = datetime.fromisoformat(body["next_attempt_at"])
    assert before - timedelta(seconds=5) <= due <= datetime.now(UTC) + timedelta(seconds=1)

    payload = await asyncio.wait_for(notifications.get(), timeout=5)
    assert payload == ""
    async with state.sessionmaker() as session:
        attempts_log = (
            await session.execute(
                select(DeliveryAttemptRow.id).where(DeliveryAttemptRow.delivery_id == delivery_id)
            )
        ).all()
    assert len(attempts_log) >= 3  # the history stays


async def test_only_dead_deliveries_can_be_retried(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    notifications: asyncio.Queue[str],
) -> None:
    seeded = await seed(state)
    for label, status in (
        ("alpha-created", "pending"),
        ("beta-created-delivered", "delivered"),
    ):
        delivery_id = seeded.delivery_ids[label]
        response = await client.post(f"/v1/deliveries/{delivery_id}/retry", headers=auth(admin_key))
        body = assert_problem(response, 409)
        assert body["type"] == "/problems/conflict"
        assert status in body["detail"]
    async with state.sessionmaker() as session:
        result = await session.execute(select(DeliveryRow.id, DeliveryRow.status))
        statuses = {delivery_id: status for delivery_id, status in result}
    assert statuses[seeded.delivery_ids["alpha-created"]] == DeliveryStatus.PENDING
    assert statuses[seeded.delivery_ids["beta-created-delivered"]] == DeliveryStatus.DELIVERED
    assert_problem(await client.post("/v1/deliveries/999999/retry", headers=auth(admin_key)), 404)
    # refused retries roll back: nobody is woken
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notifications.get(), timeout=0.3)


# --- who may -----------------------------------------------------------------------------


async def test_auth(
    client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str, state: AppState
) -> None:
    seeded = await seed(state)
    dead = seeded.delivery_ids["alpha-updated-dead"]
    requests = [
        ("GET", "/v1/deliveries"),
        ("GET", f"/v1/deliveries/{dead}"),
        ("POST", f"/v1/deliveries/{dead}/retry"),
    ]
    for method, path in requests:
        response = await client.request(method, path)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    everything_but_admin = await make_key(*(scope for scope in Scope if scope is not Scope.ADMIN))
    restricted_admin = await make_key(Scope.ADMIN, locations=["store-berlin-01"])
    for key in (everything_but_admin, restricted_admin):
        for method, path in requests:
            response = await client.request(method, path, headers=auth(key))
            assert assert_problem(response, 403)["type"] == "/problems/forbidden", (method, path)
    still_dead = await client.get(f"/v1/deliveries/{dead}", headers=auth(admin_key))
    assert still_dead.json()["status"] == "dead"
