"""Customers (SPEC section 5): the journey across channels (order, summary, keyset
pages, scopes and locations) and the right to erasure (feedback, the contact record,
tickets and their notes, pending and sent delivery payloads; metrics unchanged; replays
stay erased; restricted admins), against the real PostgreSQL of the fixtures.

A journey's tickets are created "now" by the default rules; where a test needs them at
a known place in time it moves ``created_at`` in the database, which is what the
journey orders them by."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import KeyFactory, assert_problem, auth, get_json
from tests.fixtures.vendors import (  # noqa: F401 (fixtures)
    FakeVendorServer,
    vendor_server_fixture,
    vendor_server_session_fixture,
)
from tests.test_loop_delivery import add_webhook, add_zendesk, dispatching, eventually

Json = dict[str, Any]
BASE = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)

# Ana's personal data: each string occurs nowhere else in the data set, so finding one
# anywhere after erasure is a leak.
EMAIL, PHONE, NAME, LOCALE = "ana.roth@example.com", "+4915550123456", "Ana Roth", "de-AT"
ANA = {"id": "C-ana", "email": EMAIL, "phone": PHONE, "name": NAME, "locale": LOCALE}
PRAISE = "The staff were lovely and helpful, thank you so much for the quick service!"
COMPLAINT = "Ana Roth here: the queue was endless and the cashier was rude to me."
ORDER, RECEIPT = "ORD-ana-7781", "RCPT-ana-5521"
NOTE_ON_T1 = f"Called {NAME} back on {PHONE}; refunded."
NOTE_ON_T2 = f"Left a message for {EMAIL}."
ANA_SECRETS = (EMAIL, PHONE, NAME, "C-ana", LOCALE, "lovely and helpful", "cashier", ORDER, RECEIPT)


def at(days: float) -> str:
    return (BASE + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def event(event_id: str, days: float, channel: str, **fields: Any) -> Json:
    return {"event_id": event_id, "occurred_at": at(days), "channel": channel, **fields}


def ana(event_id: str, days: float, channel: str, **fields: Any) -> Json:
    return event(event_id, days, channel, customer=ANA, **fields)


def nps(value: int) -> list[Json]:
    return [{"metric": "nps", "value": value}]


def cursor_of(*values: Any) -> str:
    """A cursor as the service writes them (base64url of a JSON array); the standard
    library's encoder, as orjson refuses integers past 64 bits."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Ana across six channels and three kinds of location (store-a, store-b, none). a2
# (NPS 2) opens T1, which is resolved before the second batch; a3 (CSAT 1 of 5) then
# opens T2. a4 is the newest with an NPS (a5, a6 have none); a5 and a6 share an instant.
ANA_FIRST = [
    ana("a1", 0, "web", location_id="store-a", touchpoint="checkout", source="survey-web",
        scores=nps(9), text=PRAISE, language="en", tags=["staff"], metadata={"order": ORDER}),
    ana("a2", 1, "email", location_id="store-b", journey_stage="purchase", scores=nps(2),
        text=COMPLAINT, language="en", metadata={"receipt": RECEIPT, "nested": {"n": 1}}),
]  # fmt: skip
ANA_SECOND = [
    ana("a3", 2, "sms", location_id="store-a", scores=[{"metric": "csat", "value": 1}]),
    ana("a4", 3, "chat", scores=nps(7), tags=["delivery"]),
    ana("a5", 4, "voice", location_id="store-a", scores=[{"metric": "csat", "value": 5}]),
    ana("a6", 4, "web", location_id="store-b",
        scores=[{"metric": "ces", "value": 6, "scale": 7}]),
]  # fmt: skip
# Others, interleaved in time and place: never part of Ana's journey or erasure.
OTHERS = [
    event("o1", 1.5, "web", location_id="store-a", scores=nps(1),
          customer={"id": "C-other", "email": "bo@example.org", "name": "Bo Berg"},
          text="Nobody helped me at the desk."),
    # Customer ids are case-sensitive: C-ANA is somebody else.
    event("x1", 0.5, "web", location_id="store-a", scores=nps(10),
          customer={"id": "C-ANA", "email": "someone.else@example.net"}),
    event("n1", 2.5, "sms", location_id="store-b", scores=nps(0), text="Terrible."),
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stored:
    feedback: dict[str, str]  # event_id -> id
    t1: str  # Ana's first ticket (resolved), from a2
    t2: str  # Ana's open ticket, from a3
    other_ticket: str  # C-other's


async def ingest(client: httpx.AsyncClient, key: str, events: Sequence[Json]) -> dict[str, Json]:
    response = await client.post(
        "/v1/feedback/batch", json={"events": list(events)}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == len(events), body
    return {result["event_id"]: result for result in body["results"]}


async def patch_ticket(client: httpx.AsyncClient, key: str, ticket_id: str, body: Json) -> Json:
    response = await client.patch(f"/v1/tickets/{ticket_id}", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    result: Json = response.json()
    return result


async def store_first(client: httpx.AsyncClient, key: str) -> dict[str, Json]:
    return await ingest(client, key, [*ANA_FIRST, *OTHERS])


async def store_second(client: httpx.AsyncClient, key: str, t1: str) -> dict[str, Json]:
    # One open ticket per customer: T1 is resolved first, so a3 opens a ticket of its own.
    await patch_ticket(client, key, t1, {"status": "resolved", "note": NOTE_ON_T1})
    return await ingest(client, key, ANA_SECOND)


def stored_from(*batches: dict[str, Json]) -> Stored:
    results = {event_id: result for batch in batches for event_id, result in batch.items()}
    t1, t2 = results["a2"]["ticket_id"], results["a3"]["ticket_id"]
    assert t1 is not None
    assert t2 is not None
    assert t1 != t2
    return Stored(
        feedback={event_id: result["id"] for event_id, result in results.items()},
        t1=t1,
        t2=t2,
        other_ticket=results["o1"]["ticket_id"],
    )


async def set_ticket_created_at(state: AppState, ticket_id: str, when: str) -> None:
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE tickets SET created_at = :when WHERE id = :id"),
            {"when": datetime.fromisoformat(when), "id": int(ticket_id)},
        )


@pytest.fixture
async def stored(client: httpx.AsyncClient, admin_key: str, state: AppState) -> Stored:
    """Ana's journey with T1 at the very instant of a2 (a feedback/ticket tie) and T2
    half a day after a3."""
    first = await store_first(client, admin_key)
    result = stored_from(first, await store_second(client, admin_key, first["a2"]["ticket_id"]))
    await set_ticket_created_at(state, result.t1, at(1))
    await set_ticket_created_at(state, result.t2, at(2.5))
    return result


async def journey(
    client: httpx.AsyncClient, key: str | None, customer_id: str = "C-ana", **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/customers/{customer_id}/journey",
        params=params,
        headers=auth(key) if key is not None else {},
    )


async def journey_body(
    client: httpx.AsyncClient, key: str, customer_id: str = "C-ana", **params: Any
) -> Json:
    response = await journey(client, key, customer_id, **params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def labels(body: Json, stored: Stored) -> list[str]:
    """Items as readable labels: feedback by event_id, tickets as T1/T2."""
    names = {stored.t1: "T1", stored.t2: "T2"}
    return [
        item["feedback"]["event_id"]
        if item["type"] == "feedback"
        else names.get(item["ticket"]["id"], item["ticket"]["id"])
        for item in body["items"]
    ]


def item_key(item: Json) -> tuple[str, str]:
    return item["type"], item[item["type"]]["id"]


async def all_pages(
    client: httpx.AsyncClient, key: str, limit: int, customer_id: str = "C-ana"
) -> list[Json]:
    """Every page of a journey, following next_cursor."""
    pages: list[Json] = []
    cursor: str | None = None
    while True:
        params: Json = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = await journey_body(client, key, customer_id, **params)
        pages.append(page)
        assert len(pages) <= 100, "pagination does not end"
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


# --- journeys: order and content ---------------------------------------------------------


async def test_journey_is_every_feedback_and_ticket_oldest_first(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    body = await journey_body(client, admin_key)
    assert body["customer_id"] == "C-ana"
    # T1 was created at a2's very instant: feedback first. a5 and a6 share an instant:
    # ingest order. T2 sits between a3 and a4 by its created_at.
    assert labels(body, stored) == ["a1", "a2", "T1", "a3", "T2", "a4", "a5", "a6"]
    assert body["next_cursor"] is None
    assert [item["at"] for item in body["items"]] == [
        at(0), at(1), at(1), at(2), at(2.5), at(3), at(4), at(4)
    ]  # fmt: skip
    # Each item is the same representation the feedback and tickets endpoints give.
    for item in body["items"]:
        kind = item["type"]
        collection = "feedback" if kind == "feedback" else "tickets"
        single = await client.get(f"/v1/{collection}/{item[kind]['id']}", headers=auth(admin_key))
        assert single.status_code == 200, single.text
        assert item[kind] == single.json()
        if kind == "feedback":
            assert item["at"] == item["feedback"]["occurred_at"]
            assert item["feedback"]["customer"]["id"] == "C-ana"
        else:
            assert item["at"] == item["ticket"]["created_at"]
            assert item["ticket"]["customer"]["id"] == "C-ana"
    tickets = {item["ticket"]["id"]: item["ticket"] for item in body["items"] if "ticket" in item}
    assert tickets[stored.t1]["status"] == "resolved"
    assert tickets[stored.t1]["feedback_ids"] == [stored.feedback["a2"]]
    assert tickets[stored.t2]["status"] == "open"
    assert tickets[stored.t2]["feedback_ids"] == [stored.feedback["a3"]]


async def test_journey_summary_covers_the_whole_journey(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    body = await journey_body(client, admin_key, limit=1)
    assert body["summary"] == {
        "first_seen": at(0),
        "last_seen": at(4),
        "channels": {"web": 2, "email": 1, "sms": 1, "chat": 1, "voice": 1},
        # a4's: a5 and a6 are newer but have no NPS.
        "latest_nps": 7,
        # T2; T1 is resolved.
        "open_tickets": 1,
    }


async def test_summary_latest_nps_is_null_without_any_nps_and_counts_every_open_status(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    customer = {"id": "C-no-nps"}
    opened = await ingest(
        client,
        admin_key,
        [
            event("q1", 0, "web", customer=customer, scores=[{"metric": "csat", "value": 1}]),
            event("q2", 1, "review", customer=customer, scores=[{"metric": "rating", "value": 4}]),
        ],
    )
    ticket_id = opened["q1"]["ticket_id"]
    summary = (await journey_body(client, admin_key, "C-no-nps"))["summary"]
    assert summary["latest_nps"] is None
    assert summary["channels"] == {"web": 1, "review": 1}
    for status, open_tickets in (("in_progress", 1), ("waiting", 1), ("closed", 0)):
        await patch_ticket(client, admin_key, ticket_id, {"status": status})
        summary = (await journey_body(client, admin_key, "C-no-nps"))["summary"]
        assert summary["open_tickets"] == open_tickets, status


async def test_other_customers_are_never_part_of_a_journey(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    body = await journey_body(client, admin_key)
    assert len(body["items"]) == 8
    for item in body["items"]:
        kind = item["type"]
        assert item[kind]["customer"]["id"] == "C-ana"
    assert {item_key(item) for item in body["items"]}.isdisjoint(
        {("feedback", stored.feedback[e]) for e in ("o1", "x1", "n1")}
        | {("ticket", stored.other_ticket)}
    )
    # The look-alike id has a journey of its own, holding only its own feedback.
    lookalike = await journey_body(client, admin_key, "C-ANA")
    assert labels(lookalike, stored) == ["x1"]
    assert lookalike["summary"]["channels"] == {"web": 1}
    assert lookalike["summary"]["latest_nps"] == 10
    assert lookalike["summary"]["open_tickets"] == 0
    other = await journey_body(client, admin_key, "C-other")
    assert [item["type"] for item in other["items"]] == ["feedback", "ticket"]
    assert other["items"][1]["ticket"]["id"] == stored.other_ticket


async def test_unknown_customer_is_404(client: httpx.AsyncClient, admin_key: str) -> None:
    assert_problem(await journey(client, admin_key, "C-nobody"), 404)
    # Anonymous feedback belongs to nobody's journey.
    await ingest(client, admin_key, [event("anon", 0, "web", scores=nps(8))])
    assert_problem(await journey(client, admin_key, "C-nobody"), 404)


async def test_customer_ids_with_reserved_url_characters(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """Any text up to 128 characters is a valid customer.id; URL-encoded, each one is
    reachable, "/" included."""
    ids = ["shop/42", "a b?c#d%e", "Kund\u00e9-\u00fc", "x/journey"]
    await ingest(
        client,
        admin_key,
        [
            event(f"r{n}", n, "web", customer={"id": customer_id}, scores=nps(9))
            for n, customer_id in enumerate(ids)
        ],
    )
    for n, customer_id in enumerate(ids):
        body = await journey_body(client, admin_key, quote(customer_id, safe=""))
        assert body["customer_id"] == customer_id
        assert [item["feedback"]["event_id"] for item in body["items"]] == [f"r{n}"]
    erased = await client.delete("/v1/customers/shop%2F42", headers=auth(admin_key))
    assert erased.status_code == 204
    assert_problem(await journey(client, admin_key, "shop%2F42"), 404)
    # Only that customer: "x/journey" (whose erasure path ends like a journey's) stays.
    assert (await journey(client, admin_key, "x%2Fjourney")).status_code == 200
    erased = await client.delete("/v1/customers/x%2Fjourney", headers=auth(admin_key))
    assert erased.status_code == 204
    assert_problem(await journey(client, admin_key, "x%2Fjourney"), 404)


# --- journeys: pages -----------------------------------------------------------------------


async def test_pages_of_every_size_lose_and_repeat_nothing(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    whole = await journey_body(client, admin_key, limit=500)
    expected = [item_key(item) for item in whole["items"]]
    assert len(expected) == 8
    # Every size: page edges fall on the feedback/ticket tie (a2|T1), between a ticket
    # and feedback (T2|a4) and on the feedback tie (a5|a6).
    for limit in range(1, 10):
        pages = await all_pages(client, admin_key, limit)
        assert len(pages) == max(1, math.ceil(8 / limit)), limit
        assert all(len(page["items"]) == limit for page in pages[:-1]), limit
        got = [item_key(item) for page in pages for item in page["items"]]
        assert got == expected, limit
        assert all(page["summary"] == whole["summary"] for page in pages), limit
        assert [item for page in pages for item in page["items"]] == whole["items"]


async def test_pages_within_a_keys_view(
    client: httpx.AsyncClient, make_key: KeyFactory, stored: Stored
) -> None:
    store_a = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-a"])
    feedback_only = await make_key(Scope.FEEDBACK_READ)
    for key, expected in (
        (store_a, ["a1", "a3", "T2", "a5"]),
        (feedback_only, ["a1", "a2", "a3", "a4", "a5", "a6"]),
    ):
        for limit in (1, 2, 3):
            pages = await all_pages(client, key, limit)
            assert [name for page in pages for name in labels(page, stored)] == expected


async def test_default_page_is_50_items(client: httpx.AsyncClient, admin_key: str) -> None:
    customer = {"id": "C-many"}
    many = [event(f"m{n:02}", n / 24, "web", customer=customer, scores=nps(9)) for n in range(51)]
    await ingest(client, admin_key, many)
    first = await journey_body(client, admin_key, "C-many")
    assert len(first["items"]) == 50
    assert first["next_cursor"] is not None
    rest = await journey_body(client, admin_key, "C-many", cursor=first["next_cursor"])
    assert [item["feedback"]["event_id"] for item in rest["items"]] == ["m50"]
    assert rest["next_cursor"] is None
    assert (await journey_body(client, admin_key, "C-many", limit=500))["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
async def test_limit_out_of_range_is_422(
    client: httpx.AsyncClient, admin_key: str, stored: Stored, limit: str
) -> None:
    body = assert_problem(await journey(client, admin_key, limit=limit), 422)
    assert body["errors"][0]["loc"] == ["query", "limit"]


NOON = "2025-05-01T12:00:00+00:00"


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not-a-cursor", id="not-base64-json"),
        pytest.param("%%%", id="not-base64"),
        pytest.param(cursor_of(), id="empty-list"),
        pytest.param(
            base64.urlsafe_b64encode(b'{"at": "2025-05-01T12:00:00+00:00"}').decode(),
            id="object",
        ),
        pytest.param(cursor_of(NOON, 1), id="a-list-cursor"),  # of feedback or tickets
        pytest.param(cursor_of(NOON, 0, 1, 2), id="four-values"),
        pytest.param(cursor_of("2025-05-01T12:00:00", 0, 1), id="no-offset"),
        pytest.param(cursor_of("yesterday", 0, 1), id="not-a-time"),
        pytest.param(cursor_of(20250501, 0, 1), id="time-as-number"),
        pytest.param(cursor_of(NOON, 2, 1), id="kind-2"),
        pytest.param(cursor_of(NOON, -1, 1), id="kind-minus-1"),
        pytest.param(cursor_of(NOON, "0", 1), id="kind-as-string"),
        pytest.param(cursor_of(NOON, 0.5, 1), id="kind-as-float"),
        pytest.param(cursor_of(NOON, True, 1), id="kind-as-boolean"),
        pytest.param(cursor_of(NOON, 0, -1), id="negative-id"),
        pytest.param(cursor_of(NOON, 0, "1"), id="id-as-string"),
        pytest.param(cursor_of(NOON, 0, 1.0), id="id-as-float"),
        # These three reached asyncpg and were 500s.
        pytest.param(cursor_of(NOON, 0, 2**63), id="id-past-bigint"),
        pytest.param(cursor_of(NOON, 0, 10**30), id="id-past-64-bits"),
        pytest.param(cursor_of("0001-01-01T00:00:00+05:00", 0, 1), id="before-year-1-in-utc"),
        pytest.param(cursor_of("9999-12-31T23:59:59-05:00", 0, 1), id="after-9999-in-utc"),
    ],
)
async def test_invalid_cursor_is_422(
    client: httpx.AsyncClient, admin_key: str, stored: Stored, cursor: str
) -> None:
    body = assert_problem(await journey(client, admin_key, cursor=cursor), 422)
    assert body["errors"] == [
        {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}
    ]


async def test_overlong_cursor_is_422(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    body = assert_problem(await journey(client, admin_key, cursor="A" * 513), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


async def test_valid_cursors_at_the_edges_of_time_give_pages(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    # Before everything: the whole journey; after everything: an empty last page.
    start = await journey_body(client, admin_key, cursor=cursor_of("0001-01-01T00:00:00Z", 0, 0))
    assert labels(start, stored) == ["a1", "a2", "T1", "a3", "T2", "a4", "a5", "a6"]
    end = await journey_body(
        client, admin_key, cursor=cursor_of("9999-12-31T23:59:59+00:00", 1, 2**63 - 1)
    )
    assert end["items"] == []
    assert end["next_cursor"] is None
    assert end["summary"]["latest_nps"] == 7
    # A cursor written with another offset names the same instant.
    after_a2 = cursor_of("2025-05-02T11:00:00+02:00", 0, int(stored.feedback["a2"]))
    body = await journey_body(client, admin_key, cursor=after_a2)
    assert labels(body, stored)[:2] == ["T1", "a3"]


# --- journeys: scopes and locations ----------------------------------------------------------


async def test_a_key_without_tickets_read_sees_no_tickets(
    client: httpx.AsyncClient, make_key: KeyFactory, stored: Stored
) -> None:
    key = await make_key(Scope.FEEDBACK_READ)
    body = await journey_body(client, key)
    assert labels(body, stored) == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert body["summary"]["open_tickets"] is None
    assert body["summary"]["latest_nps"] == 7
    # A ticket id inside a feedback item is not a ticket: ticket_id stays as stored.
    a2 = next(item for item in body["items"] if item["feedback"]["event_id"] == "a2")
    assert a2["feedback"]["ticket_id"] == stored.t1


async def test_location_restricted_keys_see_only_their_locations(
    client: httpx.AsyncClient, make_key: KeyFactory, stored: Stored
) -> None:
    store_a = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-a"])
    body = await journey_body(client, store_a)
    assert labels(body, stored) == ["a1", "a3", "T2", "a5"]
    assert body["summary"] == {
        "first_seen": at(0),
        "last_seen": at(4),
        "channels": {"web": 1, "sms": 1, "voice": 1},
        "latest_nps": 9,  # a4 (NPS 7) has no location: not store-a's
        "open_tickets": 1,
    }

    store_b = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-b"])
    body = await journey_body(client, store_b)
    assert labels(body, stored) == ["a2", "T1", "a6"]
    assert body["summary"] == {
        "first_seen": at(1),
        "last_seen": at(4),
        "channels": {"email": 1, "web": 1},
        "latest_nps": 2,
        "open_tickets": 0,  # T1 is resolved; T2 is store-a's
    }

    both = await make_key(Scope.FEEDBACK_READ, locations=["store-a", "store-b"])
    body = await journey_body(client, both)
    assert labels(body, stored) == ["a1", "a2", "a3", "a5", "a6"]
    assert body["summary"]["latest_nps"] == 2
    assert body["summary"]["open_tickets"] is None

    # Nothing of Ana is visible: as if she did not exist.
    store_c = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-c"])
    assert_problem(await journey(client, store_c), 404)


async def test_journey_needs_a_valid_key_with_feedback_read(
    client: httpx.AsyncClient, make_key: KeyFactory, stored: Stored
) -> None:
    for response in (
        await journey(client, None),
        await journey(client, "fbk_" + "x" * 32),
        await client.get("/v1/customers/C-ana/journey", headers={"Authorization": "Basic eDp5"}),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    others = await make_key(
        Scope.FEEDBACK_WRITE, Scope.TICKETS_READ, Scope.TICKETS_WRITE, Scope.METRICS_READ
    )
    assert_problem(await journey(client, others), 403)
    # Also for a customer that does not exist: the scope is checked first.
    assert_problem(await journey(client, others, "C-nobody"), 403)


# --- erasure ----------------------------------------------------------------------------------

LONG_WINDOW = {"from": "2025-04-01T00:00:00Z"}
MAY = {"from": "2025-04-28T00:00:00Z", "to": "2025-06-01T00:00:00Z"}


async def metrics_views(client: httpx.AsyncClient, key: str, to: str) -> list[Json]:
    """Totals and every grouping, for the feedback's month (by day) and for a range that
    also holds the tickets (opened today)."""
    views: list[Json] = []
    long_window = {**LONG_WINDOW, "to": to}
    for window, group_bys in (
        (MAY, [None, "day", "week", "channel", "location_id", "touchpoint", "journey_stage"]),
        (long_window, [None, "month", "location_id", "source", "channel"]),
    ):
        for group_by in group_bys:
            params = {**window, **({"group_by": group_by} if group_by else {})}
            response = await client.get("/v1/metrics", params=params, headers=auth(key))
            assert response.status_code == 200, response.text
            views.append(response.json())
    filtered = await client.get(
        "/v1/metrics",
        params={**MAY, "location_id": "store-a", "channel": ["web", "sms"]},
        headers=auth(key),
    )
    assert filtered.status_code == 200, filtered.text
    views.append(filtered.json())
    return views


async def table_rows(state: AppState, table: str, order: str = "1") -> list[Json]:
    async with state.sessionmaker() as session:
        # Table and order come from this module, never from input.
        query = f"SELECT coalesce(json_agg(t ORDER BY {order}), '[]')::text FROM {table} t"  # noqa: S608
        result = await session.execute(text(query))
        rows: list[Json] = orjson.loads(result.scalar_one())
        return rows


async def database_text(state: AppState) -> str:
    """Everything stored about feedback, customers, tickets and deliveries, as text."""
    parts = [
        orjson.dumps(await table_rows(state, table)).decode()
        for table in (
            "feedback",
            "customers",
            "tickets",
            "ticket_timeline",
            "ticket_external_refs",
            "deliveries",
            "delivery_attempts",
            "feedback_daily_rollup",
        )
    ]
    return "\n".join(parts)


async def delivery_rows(state: AppState) -> dict[int, Json]:
    return {row["id"]: row for row in await table_rows(state, "deliveries", "id")}


def erased_feedback(document: Json) -> Json:
    return {**document, "customer": None, "text": None, "metadata": None}


def erased_ticket(document: Json) -> Json:
    timeline = [
        {**entry, "detail": "[erased]"} if entry["kind"] == "note" else entry
        for entry in document["timeline"]
    ]
    return {**document, "customer": None, "timeline": timeline}


def expected_payload(row: Json) -> Json:
    """A delivery payload as erasure should leave it: the same shape, Ana blanked."""
    payload: Json = row["payload"]
    if row["event_type"] == "feedback.received":
        return {**payload, "data": erased_feedback(payload["data"])}
    return {
        **payload,
        "data": erased_ticket(payload["data"]),
        "feedback": [erased_feedback(item) for item in payload["feedback"]],
    }


def shape(payload: Json) -> list[Any]:
    """The keys of a delivery payload, of its data, and of each feedback item and
    timeline entry in it: what a receiver's parser relies on."""
    data = payload["data"]
    return [
        sorted(payload),
        sorted(data),
        [sorted(item) for item in payload.get("feedback", [])],
        [sorted(entry) for entry in data.get("timeline", [])],
    ]


async def delivered_count(state: AppState, expected: int) -> bool:
    """At least ``expected`` deliveries were sent; none died (what erasure leaves must
    still be sendable)."""
    rows = await table_rows(state, "deliveries", "id")
    assert all(row["status"] != "dead" for row in rows), rows
    return sum(1 for row in rows if row["status"] == "delivered") >= expected


async def erase(client: httpx.AsyncClient, key: str, customer_id: str = "C-ana") -> None:
    response = await client.delete(f"/v1/customers/{customer_id}", headers=auth(key))
    assert response.status_code == 204, response.text
    assert response.content == b""


async def test_erasure_blanks_the_customer_everywhere_and_changes_nothing_else(
    client: httpx.AsyncClient,
    admin_key: str,
    make_key: KeyFactory,
    state: AppState,
    vendor_server: FakeVendorServer,
) -> None:
    # A webhook for every event type and a helpdesk for ticket events: the first batch
    # is delivered by a real dispatcher; what follows stays pending until after erasure.
    await add_webhook(
        state,
        vendor_server,
        events=["feedback.received", "ticket.created", "ticket.updated", "ticket.resolved"],
    )
    await add_zendesk(state, vendor_server)
    async with dispatching(state):
        first = await store_first(client, admin_key)
        # feedback.received for all five; ticket.created for T1, C-other's and n1's, twice.
        await eventually(lambda: delivered_count(state, 11), within=30)
    second = await store_second(client, admin_key, first["a2"]["ticket_id"])
    ids = stored_from(first, second)
    await patch_ticket(client, admin_key, ids.t2, {"note": NOTE_ON_T2, "status": "in_progress"})
    await patch_ticket(client, admin_key, ids.other_ticket, {"note": "Called Bo back."})
    sent_before = len(vendor_server.requests())

    ana_feedback = [ids.feedback[e] for e in ("a1", "a2", "a3", "a4", "a5", "a6")]
    others = [ids.feedback[e] for e in ("o1", "x1", "n1")]
    feedback_before = {
        i: await get_json(client, admin_key, f"/v1/feedback/{i}") for i in ana_feedback + others
    }
    ana_tickets = {
        t: await get_json(client, admin_key, f"/v1/tickets/{t}") for t in (ids.t1, ids.t2)
    }
    other_ticket = await get_json(client, admin_key, f"/v1/tickets/{ids.other_ticket}")
    assert [e["kind"] for e in ana_tickets[ids.t1]["timeline"]].count("note") == 1
    deliveries_before = await delivery_rows(state)
    ana_deliveries = {
        i
        for i, row in deliveries_before.items()
        if row["feedback_id"] in map(int, ana_feedback)
        or row["ticket_id"] in (int(ids.t1), int(ids.t2))
    }
    # Both kinds are there to erase: sent ones (a1, a2, T1's create) and pending ones.
    assert {deliveries_before[i]["status"] for i in ana_deliveries} == {"delivered", "pending"}
    # Sent: feedback.received a1, a2 and T1's ticket.created (webhook, Zendesk); pending:
    # T1's ticket.resolved, T2's ticket.created and ticket.updated (both each) and
    # feedback.received a3-a6.
    assert len(ana_deliveries) == 2 + 2 + 2 + 2 + 2 + 4
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    store_a = await make_key(Scope.METRICS_READ, locations=["store-a"])
    metrics_before = [
        await metrics_views(client, admin_key, tomorrow),
        await metrics_views(client, store_a, tomorrow),
    ]
    customers_before = await table_rows(state, "customers", "customer_id")
    assert [row["customer_id"] for row in customers_before] == ["C-ANA", "C-ana", "C-other"]
    everything_before = await database_text(state)
    assert all(secret in everything_before for secret in ANA_SECRETS)

    await erase(client, admin_key)

    # Nothing of Ana is left anywhere in the database...
    everything = await database_text(state)
    for secret in ANA_SECRETS:
        assert secret not in everything, secret
    # ... and every feedback row of hers lost exactly its identifiers, text and metadata.
    async with state.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT id, customer_id, customer_email, customer_phone, customer_name, "
                    "customer_locale, text, metadata FROM feedback WHERE id = ANY(:ids)"
                ),
                {"ids": [int(i) for i in ana_feedback]},
            )
        ).all()
        assert len(rows) == 6
        assert all(tuple(row)[1:] == (None,) * 7 for row in rows)
        left = await session.execute(
            text("SELECT count(*) FROM feedback WHERE customer_id = 'C-ana'")
        )
        assert left.scalar_one() == 0
        tickets_left = await session.execute(
            text("SELECT count(*) FROM tickets WHERE customer_id = 'C-ana'")
        )
        assert tickets_left.scalar_one() == 0
    for i in ana_feedback:
        after = await get_json(client, admin_key, f"/v1/feedback/{i}")
        assert after == erased_feedback(feedback_before[i])
    # Scores, channel, location, language, sentiment and tags stay.
    a1 = await get_json(client, admin_key, f"/v1/feedback/{ids.feedback['a1']}")
    assert (a1["scores"], a1["channel"], a1["location_id"]) == (
        [{"metric": "nps", "value": 9, "scale": None}],
        "web",
        "store-a",
    )
    assert (a1["language"], a1["tags"], a1["touchpoint"], a1["source"]) == (
        "en",
        ["staff"],
        "checkout",
        "survey-web",
    )
    assert a1["sentiment"] is not None
    assert a1["sentiment"]["label"] == "positive"
    assert a1["ticket_id"] is None
    a2 = await get_json(client, admin_key, f"/v1/feedback/{ids.feedback['a2']}")
    assert a2["ticket_id"] == ids.t1
    listed = await client.get(
        "/v1/feedback", params={"customer_id": "C-ana"}, headers=auth(admin_key)
    )
    assert listed.json()["items"] == []

    # The contact record is gone; the others' stay as they were.
    assert await table_rows(state, "customers", "customer_id") == [
        row for row in customers_before if row["customer_id"] != "C-ana"
    ]

    # Tickets: no customer, notes "[erased]", everything else as it was.
    for ticket_id, before in ana_tickets.items():
        after = await get_json(client, admin_key, f"/v1/tickets/{ticket_id}")
        assert after["customer"] is None
        assert [e["detail"] for e in after["timeline"] if e["kind"] == "note"] == ["[erased]"]
        assert {**after, "updated_at": None} == {**erased_ticket(before), "updated_at": None}
    listed_tickets = await client.get("/v1/tickets", headers=auth(admin_key))
    for ticket in listed_tickets.json()["items"]:
        if ticket["id"] in (ids.t1, ids.t2):
            assert ticket["customer"] is None

    # Deliveries, sent or pending: the same shape, Ana blanked, nothing else changed.
    deliveries_after = await delivery_rows(state)
    assert deliveries_after.keys() == deliveries_before.keys()
    for delivery_id, before_row in deliveries_before.items():
        after_row = deliveries_after[delivery_id]
        if delivery_id in ana_deliveries:
            assert shape(after_row["payload"]) == shape(before_row["payload"])
            assert after_row == {**before_row, "payload": expected_payload(before_row)}
        else:
            assert after_row == before_row
        payload_text = orjson.dumps(after_row["payload"]).decode()
        if delivery_id in ana_deliveries:
            for secret in ANA_SECRETS:
                assert secret not in payload_text, (delivery_id, secret)

    # Metrics are exactly as before, for every grouping and for a restricted key.
    assert [
        await metrics_views(client, admin_key, tomorrow),
        await metrics_views(client, store_a, tomorrow),
    ] == metrics_before

    # Other customers are untouched.
    for i in others:
        assert await get_json(client, admin_key, f"/v1/feedback/{i}") == feedback_before[i]
    assert await get_json(client, admin_key, f"/v1/tickets/{ids.other_ticket}") == other_ticket
    assert "Called Bo back." in everything
    assert "bo@example.org" in everything

    # Ana has no journey any more.
    assert_problem(await journey(client, admin_key), 404)

    # The pending deliveries are still sent, and what goes out carries nothing of Ana.
    async with dispatching(state):
        await eventually(lambda: delivered_count(state, len(deliveries_after)), within=30)
    sent_after = vendor_server.requests()[sent_before:]
    # Every pending one (a retry under load may add a request, never remove one).
    assert len(sent_after) >= len(deliveries_after) - 11
    for request in sent_after:
        body = request.body.decode()
        for secret in ANA_SECRETS:
            assert secret not in body, (request.path, secret)


async def test_erasing_again_or_an_unknown_customer_is_204(
    client: httpx.AsyncClient, admin_key: str, state: AppState, stored: Stored
) -> None:
    await erase(client, admin_key)
    after_first = await database_text(state)
    await erase(client, admin_key)
    await erase(client, admin_key, "C-never-seen")
    assert await database_text(state) == after_first


async def test_a_replayed_erased_event_is_a_duplicate_and_stays_erased(
    client: httpx.AsyncClient, admin_key: str, state: AppState, stored: Stored
) -> None:
    await erase(client, admin_key)
    after = await database_text(state)
    # Single and batch replays of the very events: duplicates, nothing stored again, no
    # ticket opened (Ana's tickets no longer hold her id), no contact record restored.
    replay = await client.post("/v1/feedback", json=ANA_FIRST[1], headers=auth(admin_key))
    assert replay.status_code == 200, replay.text
    assert replay.json() == {
        "id": stored.feedback["a2"],
        "event_id": "a2",
        "status": "duplicate",
        "ticket_id": stored.t1,
    }
    batch = await client.post(
        "/v1/feedback/batch", json={"events": [*ANA_FIRST, *ANA_SECOND]}, headers=auth(admin_key)
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["duplicates"] == 6
    assert await database_text(state) == after
    fetched = await get_json(client, admin_key, f"/v1/feedback/{stored.feedback['a2']}")
    assert (fetched["customer"], fetched["text"], fetched["metadata"]) == (None, None, None)
    # Different content under an erased event_id is still a conflict, and stores nothing.
    changed = {**ANA_FIRST[1], "text": "Something else entirely."}
    conflict = await client.post("/v1/feedback", json=changed, headers=auth(admin_key))
    assert_problem(conflict, 409)
    assert await database_text(state) == after
    assert_problem(await journey(client, admin_key), 404)


async def test_a_customer_who_comes_back_after_erasure_starts_afresh(
    client: httpx.AsyncClient, admin_key: str, stored: Stored
) -> None:
    await erase(client, admin_key)
    await ingest(client, admin_key, [ana("b1", 10, "web", location_id="store-a", scores=nps(8))])
    body = await journey_body(client, admin_key)
    assert [item["feedback"]["event_id"] for item in body["items"]] == ["b1"]
    assert body["summary"]["first_seen"] == at(10)
    assert body["summary"]["open_tickets"] == 0


async def test_erasure_needs_admin(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState, stored: Stored
) -> None:
    before = await database_text(state)
    everything_but_admin = await make_key(
        Scope.FEEDBACK_READ,
        Scope.FEEDBACK_WRITE,
        Scope.TICKETS_READ,
        Scope.TICKETS_WRITE,
        Scope.METRICS_READ,
    )
    assert_problem(
        await client.delete("/v1/customers/C-ana", headers=auth(everything_but_admin)), 403
    )
    unauthenticated = await client.delete("/v1/customers/C-ana")
    assert_problem(unauthenticated, 401)
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert await database_text(state) == before


async def test_a_restricted_admin_erases_only_customers_wholly_within_its_locations(
    client: httpx.AsyncClient,
    make_key: KeyFactory,
    admin_key: str,
    state: AppState,
    stored: Stored,
) -> None:
    before = await database_text(state)
    ana_journey = await journey_body(client, admin_key)
    # Ana has data in store-a, store-b and without a location (a4): no restricted admin
    # covers all of it, not even one of both stores.
    for locations in (["store-a"], ["store-b"], ["store-a", "store-b"]):
        restricted = await make_key(Scope.ADMIN, locations=locations)
        denied = await client.delete("/v1/customers/C-ana", headers=auth(restricted))
        assert_problem(denied, 403)
        assert await database_text(state) == before, locations

    store_a_admin = await make_key(Scope.ADMIN, locations=["store-a"])
    # C-other (feedback and ticket) and C-ANA lie wholly in store-a.
    await erase(client, store_a_admin, "C-other")
    await erase(client, store_a_admin, "C-ANA")
    # Nothing of theirs anywhere, and nobody else touched.
    after = await database_text(state)
    for gone in ("C-other", "bo@example.org", "Bo Berg", "Nobody helped me", "C-ANA",
                 "someone.else@example.net"):  # fmt: skip
        assert gone not in after, gone
    ticket = await get_json(client, admin_key, f"/v1/tickets/{stored.other_ticket}")
    assert ticket["customer"] is None
    assert await journey_body(client, admin_key) == ana_journey
    # A customer it does not know has nothing elsewhere either: 204, nothing done.
    await erase(client, store_a_admin, "C-never-seen")
    assert await database_text(state) == after
