"""Customer journeys and erasure (SPEC section 5), and location-scoped access across
every read and write endpoint (SPEC section 2)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import KeyFactory, auth
from tests.test_loop_delivery import add_integration

PROBLEM = "application/problem+json"
EMAIL, PHONE, NAME = "ana.roth@example.com", "+4915550123456", "Ana Roth"
COMPLAINT = "The staff were rude and the manager Ana Roth complained about never came."


def event(event_id: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "channel": "web",
        "scores": [{"metric": "nps", "value": 9}],
    }
    return {**base, **fields}


def ana(event_id: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    customer = {"id": "C-ana", "email": EMAIL, "phone": PHONE, "name": NAME, "locale": "de-DE"}
    return event(event_id, occurred_at, customer=customer, **fields)


ANA_EVENTS = [
    ana("a1", "2025-05-01T09:00:00Z", channel="web", location_id="store-a",
        scores=[{"metric": "nps", "value": 9}], text="Lovely staff, thank you!"),
    ana("a2", "2025-05-02T09:00:00Z", channel="email", location_id="store-b",
        scores=[{"metric": "nps", "value": 2}], text=COMPLAINT, metadata={"receipt": "R-1"}),
    ana("a3", "2025-05-03T09:00:00Z", channel="sms", location_id="store-a",
        scores=[{"metric": "csat", "value": 4, "scale": 5}]),
    ana("a4", "2025-05-04T09:00:00Z", channel="web", location_id="store-a",
        scores=[{"metric": "nps", "value": 7}], tags=["delivery"]),
]  # fmt: skip
OTHER = event(
    "o1",
    "2025-05-02T10:00:00Z",
    location_id="store-a",
    customer={"id": "C-other", "email": "bo@example.org"},
    scores=[{"metric": "nps", "value": 1}],
    text="Nobody helped me at all.",
)


async def store(client: httpx.AsyncClient, key: str, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/feedback/batch", json={"events": events}, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


@pytest.fixture
async def stored(client: httpx.AsyncClient, admin_key: str) -> None:
    await store(client, admin_key, [*ANA_EVENTS, OTHER])


async def journey(
    client: httpx.AsyncClient, key: str, customer_id: str = "C-ana", **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/customers/{customer_id}/journey", params=params, headers=auth(key)
    )


# --- journeys ----------------------------------------------------------------------------


@pytest.mark.usefixtures("stored")
async def test_journey_lists_feedback_and_tickets_oldest_first(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await journey(client, admin_key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == "C-ana"
    kinds = [(item["type"], item.get("feedback", {}).get("event_id")) for item in body["items"]]
    # a2 (NPS 2) opened a ticket, created when it was ingested (now): last.
    assert kinds == [
        ("feedback", "a1"),
        ("feedback", "a2"),
        ("feedback", "a3"),
        ("feedback", "a4"),
        ("ticket", None),
    ]
    ticket = body["items"][-1]["ticket"]
    assert ticket["customer"]["id"] == "C-ana"
    assert ticket["feedback_ids"] == [body["items"][1]["feedback"]["id"]]
    assert body["items"][0]["at"] == "2025-05-01T09:00:00Z"
    assert body["summary"] == {
        "first_seen": "2025-05-01T09:00:00Z",
        "last_seen": "2025-05-04T09:00:00Z",
        "channels": {"web": 2, "email": 1, "sms": 1},
        "latest_nps": 7,  # a4; a3, newer than a2, has no NPS
        "open_tickets": 1,
    }
    assert body["next_cursor"] is None
    assert all(
        item["feedback"]["customer"]["id"] == "C-ana"
        for item in body["items"]
        if item["type"] == "feedback"
    )


@pytest.mark.usefixtures("stored")
async def test_journey_pages_lose_and_repeat_nothing(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await journey(client, admin_key, **params)).json()
        pages += 1
        seen += [item["type"] + ":" + item[item["type"]]["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    invalid = await journey(client, admin_key, cursor="not-a-cursor")
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == PROBLEM


@pytest.mark.usefixtures("stored")
async def test_journey_within_the_keys_scopes_and_locations(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    feedback_only = await make_key(Scope.FEEDBACK_READ)
    body = (await journey(client, feedback_only)).json()
    assert [item["type"] for item in body["items"]] == ["feedback"] * 4
    assert body["summary"]["open_tickets"] is None

    store_a = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-a"])
    body = (await journey(client, store_a)).json()
    # a2 and its ticket are store-b's.
    assert [item["feedback"]["event_id"] for item in body["items"]] == ["a1", "a3", "a4"]
    assert body["summary"]["channels"] == {"web": 2, "sms": 1}
    assert body["summary"]["open_tickets"] == 0

    store_c = await make_key(Scope.FEEDBACK_READ, locations=["store-c"])
    assert (await journey(client, store_c)).status_code == 404
    assert (await journey(client, feedback_only, "C-nobody")).status_code == 404
    writer = await make_key(Scope.FEEDBACK_WRITE)
    assert (await journey(client, writer)).status_code == 403
    assert (await client.get("/v1/customers/C-ana/journey")).status_code == 401


# --- erasure -----------------------------------------------------------------------------


async def snapshot_metrics(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    window = {"from": "2025-04-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}
    return [
        (await client.get("/v1/metrics", params={**window, **extra}, headers=auth(key))).json()
        for extra in ({}, {"group_by": "day"}, {"group_by": "location_id"}, {"group_by": "channel"})
    ]


async def test_erasure_blanks_the_customer_everywhere_and_keeps_the_metrics(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # A webhook subscribed to everything, so deliveries carry the customer's data; no
    # dispatcher runs here, so they stay pending, and one is marked sent below.
    await add_integration(
        state,
        "hook",
        "webhook",
        {"url": "https://hooks.example.com/feedback"},
        {"signing_secret": "whsec_" + "A" * 32},
        ["feedback.received", "ticket.created", "ticket.updated", "ticket.resolved"],
    )
    await store(client, admin_key, [*ANA_EVENTS, OTHER])
    tickets = (await client.get("/v1/tickets", headers=auth(admin_key))).json()["items"]
    ana_ticket = next(t for t in tickets if t["customer"] and t["customer"]["id"] == "C-ana")
    noted = await client.patch(
        f"/v1/tickets/{ana_ticket['id']}",
        json={"note": f"Called {NAME} on {PHONE}", "status": "in_progress"},
        headers=auth(admin_key),
    )
    assert noted.status_code == 200
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE deliveries SET status = 'delivered' "
                "WHERE id = (SELECT min(id) FROM deliveries)"
            )
        )
    before = await snapshot_metrics(client, admin_key)

    response = await client.delete("/v1/customers/C-ana", headers=auth(admin_key))
    assert response.status_code == 204
    assert response.content == b""

    assert await snapshot_metrics(client, admin_key) == before
    async with state.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT event_id, customer_id, customer_email, customer_phone, customer_name, "
                    "customer_locale, text, metadata, nps, csat, channel, location_id, tags "
                    "FROM feedback WHERE event_id LIKE 'a%' ORDER BY event_id"
                )
            )
        ).all()
        assert [r.event_id for r in rows] == ["a1", "a2", "a3", "a4"]
        for row in rows:
            assert (
                row.customer_id,
                row.customer_email,
                row.customer_phone,
                row.customer_name,
                row.customer_locale,
                row.text,
                row.metadata,
            ) == (None,) * 7
        assert [(r.nps, r.csat, r.channel, r.location_id) for r in rows] == [
            (9, None, "web", "store-a"),
            (2, None, "email", "store-b"),
            (None, 4, "sms", "store-a"),
            (7, None, "web", "store-a"),
        ]
        assert rows[3].tags == ["delivery"]
        customers = await session.execute(
            text("SELECT customer_id FROM customers ORDER BY customer_id")
        )
        assert [r.customer_id for r in customers] == ["C-other"]
        everything = (
            await session.execute(
                text(
                    "SELECT (SELECT json_agg(t)::text FROM tickets t) || "
                    "(SELECT json_agg(l)::text FROM ticket_timeline l) || "
                    "(SELECT json_agg(d.payload)::text FROM deliveries d)"
                )
            )
        ).scalar_one()
        for secret in (EMAIL, PHONE, NAME, "C-ana", "R-1", "Lovely staff", "manager"):
            assert secret not in everything, secret
        # The other customer is untouched.
        assert "bo@example.org" in everything
        assert "Nobody helped me" in everything
        statuses = (
            await session.execute(text("SELECT DISTINCT status FROM deliveries ORDER BY 1"))
        ).scalars()
        assert list(statuses) == ["delivered", "pending"]
        # Payloads keep their shape: the same keys, blanked.
        payloads = (
            await session.execute(
                text("SELECT event_type, payload::text FROM deliveries ORDER BY id")
            )
        ).all()
        for event_type, payload_text in payloads:
            payload = orjson.loads(payload_text)
            assert "data" in payload
            if event_type != "feedback.received":
                assert "customer" in payload["data"]
                assert "timeline" in payload["data"]
                assert all("text" in item for item in payload["feedback"])

    ticket = (await client.get(f"/v1/tickets/{ana_ticket['id']}", headers=auth(admin_key))).json()
    assert ticket["customer"] is None
    assert [e["detail"] for e in ticket["timeline"] if e["kind"] == "note"] == ["[erased]"]
    assert (await journey(client, admin_key)).status_code == 404
    other = (await journey(client, admin_key, "C-other")).json()
    assert other["items"][0]["feedback"]["customer"]["email"] == "bo@example.org"

    # Erasing again, or someone never seen: nothing to do, still 204.
    for customer in ("C-ana", "C-never-seen"):
        again = await client.delete(f"/v1/customers/{customer}", headers=auth(admin_key))
        assert again.status_code == 204
    # A replay of an erased event is a duplicate: the personal data does not come back.
    replay = await client.post("/v1/feedback", json=ANA_EVENTS[1], headers=auth(admin_key))
    assert replay.status_code == 200
    assert replay.json()["status"] == "duplicate"
    stored = await client.get(f"/v1/feedback/{replay.json()['id']}", headers=auth(admin_key))
    assert stored.json()["customer"] is None
    assert stored.json()["text"] is None


@pytest.mark.usefixtures("stored")
async def test_erasure_needs_admin_and_all_of_the_customers_locations(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState, admin_key: str
) -> None:
    reader = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_WRITE)
    denied = await client.delete("/v1/customers/C-ana", headers=auth(reader))
    assert denied.status_code == 403
    # Ana has feedback in store-a and store-b: an admin of store-a alone may not erase.
    store_a_admin = await make_key(Scope.ADMIN, locations=["store-a"])
    denied = await client.delete("/v1/customers/C-ana", headers=auth(store_a_admin))
    assert denied.status_code == 403
    assert denied.headers["content-type"] == PROBLEM
    async with state.sessionmaker() as session:
        kept = await session.execute(
            text("SELECT count(*) FROM feedback WHERE customer_id = 'C-ana'")
        )
        assert kept.scalar_one() == 4
    # C-other lies wholly in store-a.
    allowed = await client.delete("/v1/customers/C-other", headers=auth(store_a_admin))
    assert allowed.status_code == 204
    assert (await journey(client, admin_key, "C-other")).status_code == 404


# --- location-scoped access on every endpoint ---------------------------------------------


@pytest.mark.usefixtures("stored")
async def test_a_location_restricted_key_sees_counts_and_changes_only_its_locations(
    client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str
) -> None:
    key = await make_key(
        Scope.FEEDBACK_READ,
        Scope.FEEDBACK_WRITE,
        Scope.TICKETS_READ,
        Scope.TICKETS_WRITE,
        Scope.METRICS_READ,
        locations=["store-a"],
    )
    headers = auth(key)
    # Feedback: lists filtered, other locations' items are 404, asking for them is 403.
    listed = (await client.get("/v1/feedback", params={"limit": 500}, headers=headers)).json()
    assert {item["location_id"] for item in listed["items"]} == {"store-a"}
    assert sorted(item["event_id"] for item in listed["items"]) == ["a1", "a3", "a4", "o1"]
    everything = (await client.get("/v1/feedback", headers=auth(admin_key))).json()["items"]
    store_b_item = next(item for item in everything if item["location_id"] == "store-b")
    assert (
        await client.get(f"/v1/feedback/{store_b_item['id']}", headers=headers)
    ).status_code == 404
    assert (
        await client.get("/v1/feedback", params={"location_id": "store-b"}, headers=headers)
    ).status_code == 403
    # Writes for another location, single or in a batch, are refused.
    other_store = event("w1", "2025-05-05T09:00:00Z", location_id="store-b")
    assert (await client.post("/v1/feedback", json=other_store, headers=headers)).status_code == 403
    batch = await client.post("/v1/feedback/batch", json={"events": [other_store]}, headers=headers)
    assert batch.json()["rejected"] == 1
    # Tickets: o1's (store-a) is visible and changeable, a2's (store-b) does not exist.
    tickets = (await client.get("/v1/tickets", headers=headers)).json()["items"]
    assert {t["location_id"] for t in tickets} == {"store-a"}
    all_tickets = (await client.get("/v1/tickets", headers=auth(admin_key))).json()["items"]
    store_b_ticket = next(t for t in all_tickets if t["location_id"] == "store-b")
    assert (
        await client.get(f"/v1/tickets/{store_b_ticket['id']}", headers=headers)
    ).status_code == 404
    patched = await client.patch(
        f"/v1/tickets/{store_b_ticket['id']}", json={"status": "resolved"}, headers=headers
    )
    assert patched.status_code == 404
    assert (
        await client.patch(f"/v1/tickets/{tickets[0]['id']}", json={"note": "ok"}, headers=headers)
    ).status_code == 200
    assert (
        await client.get("/v1/tickets", params={"location_id": "store-b"}, headers=headers)
    ).status_code == 403
    # Metrics: its location only.
    window = {"from": "2025-04-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}
    body = (
        await client.get(
            "/v1/metrics", params={**window, "group_by": "location_id"}, headers=headers
        )
    ).json()
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [("store-a", 4)]
    assert body["total"]["responses"] == 4
    # Journeys: its location only.
    body = (await journey(client, key)).json()
    assert {item["feedback"]["location_id"] for item in body["items"]} == {"store-a"}
