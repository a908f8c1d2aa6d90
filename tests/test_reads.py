"""Reading feedback: GET /v1/feedback (filters, order, keyset pagination, limits) and
GET /v1/feedback/{id}, always within the API key's locations (SPEC sections 2 and 5)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import KeyFactory, assert_problem, auth, make_event

BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
Params = dict[str, str | int | list[str]]


def at(hours: float) -> str:
    return (BASE + timedelta(hours=hours)).isoformat()


def cursor_of(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


async def seed(
    client: httpx.AsyncClient, key: str, events: Sequence[dict[str, Any]]
) -> dict[str, str]:
    """Store events through the batch endpoint; returns {event_id: id}."""
    response = await client.post(
        "/v1/feedback/batch", json={"events": list(events)}, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == len(events), body
    return {result["event_id"]: result["id"] for result in body["results"]}


async def list_event_ids(client: httpx.AsyncClient, key: str, params: Params) -> list[str]:
    response = await client.get("/v1/feedback", params={**params, "limit": 500}, headers=auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [item["event_id"] for item in body["items"]]


# --- the filter data set ----------------------------------------------------------------

DATASET = [
    make_event(
        "e1",
        occurred_at=at(1),
        channel="web",
        location_id="store-1",
        customer={"id": "C-1"},
        source="s-a",
        scores=[{"metric": "nps", "value": 9}],
        text="Great service, 100% satisfied",
    ),
    make_event(
        "e2",
        occurred_at=at(2),
        channel="sms",
        location_id="store-2",
        customer={"id": "C-2", "email": "bo@example.com"},
        source="s-b",
        scores=[{"metric": "nps", "value": 3}],
        text="the snake_case form broke",
    ),
    make_event(
        "e3",
        occurred_at=at(3),
        channel="in_store",
        location_id="store-1",
        customer={"id": "C-1"},
        source="s-a",
        scores=[{"metric": "nps", "value": 7}],
        text="SNAKEXCASE is not a word",
    ),
    make_event(
        "e4",
        occurred_at=at(4),
        channel="email",
        location_id=...,
        customer=...,
        source=...,
        scores=[{"metric": "csat", "value": 4}],
        text="Back\\slash and 1000 satisfied",
    ),
    make_event(
        "e5",
        occurred_at=at(5),
        channel="web",
        location_id="store-3",
        customer={"id": "C-3"},
        source="s-b",
        scores=[{"metric": "nps", "value": 0}],
        text=...,
    ),
    make_event(
        "e6",
        occurred_at=at(6),
        channel="voice",
        location_id="store-2",
        customer={"id": "C-2"},
        source="ivr",
        scores=[{"metric": "nps", "value": 10}],
        text="great SERVICE on the phone",
    ),
]
# Enrichment the ingest path may or may not compute: set explicitly for every row.
SENTIMENT = {
    "e1": ("positive", 0.8),
    "e2": ("negative", -0.7),
    "e3": ("neutral", 0.0),
    "e4": (None, None),
    "e5": (None, None),
    "e6": ("positive", 0.6),
}
TICKETS = {"e1": None, "e2": 101, "e3": None, "e4": None, "e5": 102, "e6": None}
ALL = ["e6", "e5", "e4", "e3", "e2", "e1"]


@pytest.fixture
async def dataset(client: httpx.AsyncClient, admin_key: str, state: AppState) -> dict[str, str]:
    ids = await seed(client, admin_key, DATASET)
    async with state.sessionmaker() as session, session.begin():
        for ticket_id in sorted({t for t in TICKETS.values() if t is not None}):
            await session.execute(
                text(
                    "INSERT INTO tickets (id, status, priority, reason, channel) "
                    "VALUES (:id, 'open', 'normal', 'test', 'web')"
                ),
                {"id": ticket_id},
            )
        for event_id, (label, score) in SENTIMENT.items():
            await session.execute(
                text(
                    "UPDATE feedback SET sentiment_label = :label, sentiment_score = :score, "
                    "ticket_id = :ticket WHERE event_id = :event_id"
                ),
                {"label": label, "score": score, "ticket": TICKETS[event_id], "event_id": event_id},
            )
    return ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ALL),
        ({"channel": "web"}, ["e5", "e1"]),
        ({"channel": ["web", "sms"]}, ["e5", "e2", "e1"]),
        ({"channel": "review"}, []),
        ({"location_id": "store-1"}, ["e3", "e1"]),
        ({"location_id": ["store-1", "store-2"]}, ["e6", "e3", "e2", "e1"]),
        ({"location_id": "nowhere"}, []),
        ({"customer_id": "C-1"}, ["e3", "e1"]),
        ({"customer_id": "c-1"}, []),
        ({"source": "s-b"}, ["e5", "e2"]),
        ({"from": at(3)}, ["e6", "e5", "e4", "e3"]),
        ({"to": at(3)}, ["e2", "e1"]),
        ({"from": at(2), "to": at(4)}, ["e3", "e2"]),
        ({"from": at(2.5), "to": at(3.5)}, ["e3"]),
        ({"from": "2025-03-01T17:00:00+02:00"}, ["e6", "e5", "e4", "e3"]),  # = at(3)
        ({"to": "2025-03-01T10:00:00-04:00"}, ["e1"]),  # = at(2)
        ({"from": at(3), "to": at(3)}, []),
        ({"nps_min": 7}, ["e6", "e3", "e1"]),
        ({"nps_max": 3}, ["e5", "e2"]),
        ({"nps_min": 3, "nps_max": 9}, ["e3", "e2", "e1"]),
        ({"nps_min": 0}, ["e6", "e5", "e3", "e2", "e1"]),  # e4 has no NPS
        ({"nps_min": 10, "nps_max": 10}, ["e6"]),
        ({"nps_min": 8, "nps_max": 2}, []),
        ({"sentiment": "positive"}, ["e6", "e1"]),
        ({"sentiment": "negative"}, ["e2"]),
        ({"sentiment": "neutral"}, ["e3"]),
        ({"has_ticket": "true"}, ["e5", "e2"]),
        ({"has_ticket": "false"}, ["e6", "e4", "e3", "e1"]),
        ({"q": "great"}, ["e6", "e1"]),
        ({"q": "GREAT service"}, ["e6", "e1"]),
        ({"q": "snake"}, ["e3", "e2"]),
        ({"q": "snake_case"}, ["e2"]),  # _ is literal, not "any character"
        ({"q": "_"}, ["e2"]),
        ({"q": "%"}, ["e1"]),  # % is literal, not "anything"
        ({"q": "100%"}, ["e1"]),
        ({"q": "0%"}, ["e1"]),
        ({"q": "1000"}, ["e4"]),
        ({"q": "\\"}, ["e4"]),
        ({"q": "k\\s"}, ["e4"]),
        ({"q": "satisfied"}, ["e4", "e1"]),
        ({"q": "nothing like this"}, []),
        ({"channel": "web", "nps_min": 5}, ["e1"]),
        ({"location_id": "store-2", "has_ticket": "true"}, ["e2"]),
        ({"customer_id": "C-2", "sentiment": "positive", "q": "phone"}, ["e6"]),
        ({"source": "s-a", "from": at(2), "channel": ["in_store", "web"]}, ["e3"]),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    admin_key: str,
    dataset: dict[str, str],
    params: Params,
    expected: list[str],
) -> None:
    assert await list_event_ids(client, admin_key, params) == expected


async def test_list_items_are_the_stored_representation(
    client: httpx.AsyncClient, admin_key: str, dataset: dict[str, str]
) -> None:
    listed = await client.get(
        "/v1/feedback", params={"customer_id": "C-2"}, headers=auth(admin_key)
    )
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [dataset["e6"], dataset["e2"]]
    for item in items:
        one = await client.get(f"/v1/feedback/{item['id']}", headers=auth(admin_key))
        assert one.status_code == 200
        assert one.json() == item
    e2 = items[1]
    assert e2 == {
        "id": dataset["e2"],
        "event_id": "e2",
        "occurred_at": "2025-03-01T14:00:00Z",
        "received_at": e2["received_at"],
        "ingested_via": "rest",
        "channel": "sms",
        "source": "s-b",
        "customer": {
            "id": "C-2",
            "email": "bo@example.com",
            "phone": None,
            "name": None,
            "locale": None,
        },
        "location_id": "store-2",
        "touchpoint": "checkout",
        "journey_stage": "purchase",
        "scores": [{"metric": "nps", "value": 3, "scale": None}],
        "text": "the snake_case form broke",
        "language": "de",
        "sentiment": {"label": "negative", "score": -0.7},
        "tags": ["queue"],
        "metadata": {"receipt": "R-88812"},
        "ticket_id": "101",
    }
    assert datetime.fromisoformat(e2["received_at"]).tzinfo is not None


async def test_occurred_at_is_returned_in_utc(client: httpx.AsyncClient, admin_key: str) -> None:
    ids = await seed(client, admin_key, [make_event("tz", occurred_at="2025-03-01T10:15:00+05:30")])
    one = await client.get(f"/v1/feedback/{ids['tz']}", headers=auth(admin_key))
    assert one.json()["occurred_at"] == "2025-03-01T04:45:00Z"


# --- filter validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2025-03-01T12:00:00"}, ["query", "from"]),  # naive
        ({"to": "2025-03-01T12:00:00"}, ["query", "to"]),
        ({"from": "yesterday"}, ["query", "from"]),
        ({"channel": "fax"}, ["query", "channel", 0]),
        ({"channel": ["web", "fax"]}, ["query", "channel", 1]),
        ({"nps_min": "-1"}, ["query", "nps_min"]),
        ({"nps_max": "11"}, ["query", "nps_max"]),
        ({"nps_min": "seven"}, ["query", "nps_min"]),
        ({"sentiment": "angry"}, ["query", "sentiment"]),
        ({"has_ticket": "maybe"}, ["query", "has_ticket"]),
        ({"q": ""}, ["query", "q"]),
        ({"q": "x" * 201}, ["query", "q"]),
        ({"q": "a\x00b"}, ["query", "q"]),
        ({"customer_id": "x" * 129}, ["query", "customer_id"]),
        ({"source": "x" * 65}, ["query", "source"]),
        ({"location_id": "x" * 65}, ["query", "location_id", 0]),
    ],
)
async def test_invalid_filters_are_422(
    client: httpx.AsyncClient, admin_key: str, params: Params, loc: list[str | int]
) -> None:
    response = await client.get("/v1/feedback", params=params, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert body["type"] == "/problems/validation-error"
    assert [error["loc"] for error in body["errors"]] == [loc]


@pytest.mark.parametrize(
    "value", ["0.5", "1700000000", "2025-03-01", "2025-03-01T12:00+01:00", "20250301T120000Z"]
)
@pytest.mark.parametrize("name", ["from", "to"])
async def test_timestamps_must_be_rfc3339(
    client: httpx.AsyncClient, admin_key: str, name: str, value: str
) -> None:
    response = await client.get("/v1/feedback", params={name: value}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["query", name]]


@pytest.fixture
async def lenient_client(
    app: FastAPI, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``client`` but answers an unhandled error with the app's 500 instead of raising."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize(
    ("name", "value"),
    [("to", "0001-01-01T00:30:00+01:00"), ("from", "9999-12-31T23:59:59-01:00")],
)
async def test_instants_beyond_the_utc_range_are_422(
    lenient_client: httpx.AsyncClient, admin_key: str, name: str, value: str
) -> None:
    response = await lenient_client.get(
        "/v1/feedback", params={name: value}, headers=auth(admin_key)
    )
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["query", name]]


@pytest.mark.parametrize(
    "cursor",
    [cursor_of("0001-01-01T00:30:00+01:00", 1), cursor_of("9999-12-31T23:30:00-01:00", 1)],
    ids=["year-1-positive-offset", "year-9999-negative-offset"],
)
async def test_cursor_beyond_the_utc_range_is_422(
    lenient_client: httpx.AsyncClient, admin_key: str, cursor: str
) -> None:
    response = await lenient_client.get(
        "/v1/feedback", params={"cursor": cursor}, headers=auth(admin_key)
    )
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["query", "cursor"]]


async def test_earliest_instant_round_trips(client: httpx.AsyncClient, admin_key: str) -> None:
    """1970-01-01T00:00:00Z is the earliest accepted instant (0001-01-01 would be stored by
    PostgreSQL as -infinity); it reads back, offset and all, and paginates."""
    events = [make_event(f"min-{n}", occurred_at="1970-01-01T00:00:00Z") for n in range(2)]
    ids = await seed(client, admin_key, events)
    one = await client.get(f"/v1/feedback/{ids['min-0']}", headers=auth(admin_key))
    assert one.json()["occurred_at"] == "1970-01-01T00:00:00Z"
    seen, sizes = await collect_pages(client, admin_key, {}, 1)
    assert sorted(seen) == sorted(ids.values())
    assert sizes == [1, 1]

    too_early = make_event("min-x", occurred_at="0001-01-01T00:00:00Z")
    refused = await client.post("/v1/feedback", json=too_early, headers=auth(admin_key))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["occurred_at"]


# --- order and pagination ---------------------------------------------------------------


def pagination_events(count: int) -> list[dict[str, Any]]:
    # Three events share each instant, so the id tie-breaker matters at page boundaries;
    # event ids sort differently from the instants.
    return [
        make_event(
            f"p-{(count - n):03d}", occurred_at=at(n // 3), channel="web" if n % 2 else "sms"
        )
        for n in range(count)
    ]


def expected_order(events: Sequence[dict[str, Any]], ids: dict[str, str]) -> list[str]:
    keyed = [(datetime.fromisoformat(e["occurred_at"]), int(ids[e["event_id"]])) for e in events]
    return [str(row_id) for _, row_id in sorted(keyed, reverse=True)]


async def collect_pages(
    client: httpx.AsyncClient, key: str, params: Params, limit: int
) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        query: Params = {**params, "limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get("/v1/feedback", params=query, headers=auth(key))
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, sizes
        assert isinstance(cursor, str)
        assert len(sizes) < 100, "pagination does not end"


async def test_keyset_pagination_returns_each_event_once_in_order(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    events = pagination_events(23)
    ids = await seed(client, admin_key, events)
    expected = expected_order(events, ids)
    # newest events got the smallest ids: the order is by time first, not by id
    assert expected != sorted(expected, key=int, reverse=True)

    seen, sizes = await collect_pages(client, admin_key, {}, 5)
    assert sizes == [5, 5, 5, 5, 3]
    assert seen == expected
    assert len(set(seen)) == 23

    seen_one_by_one, sizes_one = await collect_pages(client, admin_key, {}, 1)
    assert seen_one_by_one == expected
    assert sizes_one == [1] * 23


async def test_pagination_with_filters(client: httpx.AsyncClient, admin_key: str) -> None:
    events = pagination_events(23)
    ids = await seed(client, admin_key, events)
    web = [e for e in events if e["channel"] == "web"]
    seen, sizes = await collect_pages(client, admin_key, {"channel": "web"}, 4)
    assert seen == expected_order(web, ids)
    assert sizes == [4, 4, 3]


async def test_exactly_full_last_page_has_no_cursor(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    await seed(client, admin_key, pagination_events(10))
    full = await client.get("/v1/feedback", params={"limit": 10}, headers=auth(admin_key))
    assert len(full.json()["items"]) == 10
    assert full.json()["next_cursor"] is None
    short = await client.get("/v1/feedback", params={"limit": 9}, headers=auth(admin_key))
    assert len(short.json()["items"]) == 9
    rest = await client.get(
        "/v1/feedback",
        params={"limit": 9, "cursor": short.json()["next_cursor"]},
        headers=auth(admin_key),
    )
    assert [i["id"] for i in short.json()["items"] + rest.json()["items"]] == [
        i["id"] for i in full.json()["items"]
    ]
    assert rest.json()["next_cursor"] is None


async def test_pages_are_stable_when_newer_feedback_arrives(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    events = pagination_events(12)
    ids = await seed(client, admin_key, events)
    first = (await client.get("/v1/feedback", params={"limit": 6}, headers=auth(admin_key))).json()
    await seed(client, admin_key, [make_event("newest", occurred_at=at(100))])
    second = (
        await client.get(
            "/v1/feedback",
            params={"limit": 6, "cursor": first["next_cursor"]},
            headers=auth(admin_key),
        )
    ).json()
    assert [i["id"] for i in first["items"] + second["items"]] == expected_order(events, ids)
    assert second["next_cursor"] is None


async def test_default_limit_is_50(client: httpx.AsyncClient, admin_key: str) -> None:
    await seed(client, admin_key, pagination_events(51))
    page = (await client.get("/v1/feedback", headers=auth(admin_key))).json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None
    rest = (
        await client.get(
            "/v1/feedback", params={"cursor": page["next_cursor"]}, headers=auth(admin_key)
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_limit_bounds_accepted(client: httpx.AsyncClient, admin_key: str, limit: str) -> None:
    await seed(client, admin_key, pagination_events(2))
    page = await client.get("/v1/feedback", params={"limit": limit}, headers=auth(admin_key))
    assert page.status_code == 200
    assert len(page.json()["items"]) == min(int(limit), 2)


@pytest.mark.parametrize("limit", ["0", "501", "-1", "1.5", "ten", "99999999999999999999"])
async def test_limit_out_of_bounds_is_422(
    client: httpx.AsyncClient, admin_key: str, limit: str
) -> None:
    response = await client.get("/v1/feedback", params={"limit": limit}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["query", "limit"]]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90IGpzb24",  # not json
        cursor_of(),
        cursor_of(1),
        cursor_of("not a date", 1),
        cursor_of("2025-03-01T12:00:00", 1),  # naive
        cursor_of("2025-03-01T12:00:00+00:00"),  # no id
        cursor_of("2025-03-01T12:00:00+00:00", -1),
        cursor_of("2025-03-01T12:00:00+00:00", 2**63),
        cursor_of("2025-03-01T12:00:00+00:00", 1, 2),
        cursor_of(None, 1),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "x" * 513,
    ],
)
async def test_invalid_cursor_is_422(
    client: httpx.AsyncClient, admin_key: str, cursor: str
) -> None:
    response = await client.get("/v1/feedback", params={"cursor": cursor}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["query", "cursor"]]


async def test_api_key_cursor_is_not_a_feedback_cursor(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    for _ in range(2):
        await make_key(Scope.FEEDBACK_READ)
    keys = (await client.get("/v1/api-keys", params={"limit": 1}, headers=auth(admin_key))).json()
    response = await client.get(
        "/v1/feedback", params={"cursor": keys["next_cursor"]}, headers=auth(admin_key)
    )
    assert_problem(response, 422)


# --- one item ---------------------------------------------------------------------------


async def test_get_one(client: httpx.AsyncClient, admin_key: str, dataset: dict[str, str]) -> None:
    response = await client.get(f"/v1/feedback/{dataset['e4']}", headers=auth(admin_key))
    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == "e4"
    assert body["customer"] is None
    assert body["location_id"] is None
    assert body["source"] is None
    assert body["scores"] == [{"metric": "csat", "value": 4, "scale": 5}]
    assert body["text"] == "Back\\slash and 1000 satisfied"


@pytest.mark.parametrize(
    ("feedback_id", "status"),
    [
        ("424242", 404),
        (str(2**63 - 1), 404),
        ("0", 422),
        ("-1", 404),  # not digits: no route matches
        ("abc", 404),
        ("1.0", 404),
        (str(2**63), 422),
        ("99999999999999999999", 422),
        ("9" * 400, 422),
    ],
)
async def test_get_one_missing_or_invalid_id(
    client: httpx.AsyncClient, admin_key: str, feedback_id: str, status: int
) -> None:
    response = await client.get(f"/v1/feedback/{feedback_id}", headers=auth(admin_key))
    body = assert_problem(response, status)
    if status == 422:
        assert [error["loc"] for error in body["errors"]] == [["path", "feedback_id"]]
    else:
        assert body["type"] == "/problems/not-found"


# --- location-restricted keys -----------------------------------------------------------


async def test_restricted_key_sees_only_its_locations(
    client: httpx.AsyncClient, make_key: KeyFactory, dataset: dict[str, str]
) -> None:
    store1 = await make_key(Scope.FEEDBACK_READ, locations=["store-1"])
    assert await list_event_ids(client, store1, {}) == ["e3", "e1"]
    assert await list_event_ids(client, store1, {"location_id": "store-1"}) == ["e3", "e1"]
    assert await list_event_ids(client, store1, {"channel": "web"}) == ["e1"]
    assert await list_event_ids(client, store1, {"customer_id": "C-2"}) == []
    assert await list_event_ids(client, store1, {"q": "great"}) == ["e1"]
    seen, sizes = await collect_pages(client, store1, {}, 1)
    assert seen == [dataset["e3"], dataset["e1"]]
    assert sizes == [1, 1]

    two = await make_key(Scope.FEEDBACK_READ, locations=["store-1", "store-2"])
    assert await list_event_ids(client, two, {}) == ["e6", "e3", "e2", "e1"]
    assert await list_event_ids(client, two, {"location_id": "store-2"}) == ["e6", "e2"]


async def test_restricted_key_gets_404_for_feedback_elsewhere(
    client: httpx.AsyncClient, make_key: KeyFactory, dataset: dict[str, str]
) -> None:
    store1 = await make_key(Scope.FEEDBACK_READ, locations=["store-1"])
    assert (
        await client.get(f"/v1/feedback/{dataset['e1']}", headers=auth(store1))
    ).status_code == 200
    elsewhere = await client.get(f"/v1/feedback/{dataset['e2']}", headers=auth(store1))
    missing = await client.get("/v1/feedback/424242", headers=auth(store1))
    no_location = await client.get(f"/v1/feedback/{dataset['e4']}", headers=auth(store1))
    for response in (elsewhere, missing, no_location):
        assert_problem(response, 404)
    # indistinguishable from a missing item, apart from the id
    assert elsewhere.json()["title"] == missing.json()["title"]
    assert elsewhere.json()["type"] == missing.json()["type"]


@pytest.mark.parametrize(
    "locations", [["store-2"], ["store-1", "store-2"], ["store-9"], ["store-2", "store-1"]]
)
async def test_restricted_key_asking_for_other_locations_is_403(
    client: httpx.AsyncClient, make_key: KeyFactory, dataset: dict[str, str], locations: list[str]
) -> None:
    store1 = await make_key(Scope.FEEDBACK_READ, locations=["store-1"])
    response = await client.get(
        "/v1/feedback", params={"location_id": locations}, headers=auth(store1)
    )
    body = assert_problem(response, 403)
    assert body["type"] == "/problems/forbidden"
    assert "store-1" not in body["detail"]


async def test_restricted_admin_is_restricted_too(
    client: httpx.AsyncClient, make_key: KeyFactory, dataset: dict[str, str]
) -> None:
    local_admin = await make_key(Scope.ADMIN, locations=["store-2"])
    assert await list_event_ids(client, local_admin, {}) == ["e6", "e2"]
    response = await client.get(f"/v1/feedback/{dataset['e1']}", headers=auth(local_admin))
    assert_problem(response, 404)
