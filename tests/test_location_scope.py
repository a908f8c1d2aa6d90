"""Location-restricted API keys on every endpoint (SPEC section 2): such a key never
sees, counts or changes anything outside its locations. Reads filter; writes, and
explicit requests for other locations, are refused (403); a single item outside them
does not exist for the key (404, exactly like a missing one).

One data set across store-a, store-b and no location; a key for store-a with every
read and write scope but admin, and one for both stores. The live stream is covered
in tests/test_stream.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.models.enums import Scope
from tests.conftest import KeyFactory, assert_problem, auth, get_json

Json = dict[str, Any]
Params = dict[str, str | int | list[str]]
BASE = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
ALL_BUT_ADMIN = (
    Scope.FEEDBACK_READ,
    Scope.FEEDBACK_WRITE,
    Scope.TICKETS_READ,
    Scope.TICKETS_WRITE,
    Scope.METRICS_READ,
)


def at(hours: float) -> str:
    return (BASE + timedelta(hours=hours)).isoformat()


def event(event_id: str, hours: float, location_id: str | None, **fields: Any) -> Json:
    body: Json = {"event_id": event_id, "occurred_at": at(hours), "channel": "web", **fields}
    if location_id is not None:
        body["location_id"] = location_id
    return body


def nps(value: int) -> list[Json]:
    return [{"metric": "nps", "value": value}]


# Tickets (default rules): sa1 -> TA (store-a), sb1 -> TB (store-b), sb2 -> TS (store-b,
# of C-shared, who also has feedback in store-a and without a location), n1 -> TN (no
# location).
DATA = [
    event("sa1", 0, "store-a", customer={"id": "C-1"}, scores=nps(2), touchpoint="fitting",
          text="The fitting rooms were dirty and nobody came to help."),
    event("sa2", 1, "store-a", channel="sms", customer={"id": "C-2"}, scores=nps(9),
          source="survey-sms", touchpoint="checkout"),
    event("sa3", 2, "store-a", channel="email", customer={"id": "C-shared"}, scores=nps(8),
          text="The fitting was fine."),
    event("sb1", 3, "store-b", customer={"id": "C-3"}, scores=nps(1), touchpoint="fitting",
          text="The fitting rooms were closed all day."),
    event("sb2", 4, "store-b", channel="chat", customer={"id": "C-shared"},
          scores=[{"metric": "csat", "value": 2}], source="survey-sms"),
    event("n1", 5, None, customer={"id": "C-4"}, scores=nps(0), text="Fitting: terrible."),
    event("n2", 6, None, customer={"id": "C-shared"}, scores=nps(10)),
]  # fmt: skip
STORE_A = ["sa1", "sa2", "sa3"]
STORE_B = ["sb1", "sb2"]


class Data:
    def __init__(self, results: dict[str, Json]) -> None:
        self.feedback = {event_id: result["id"] for event_id, result in results.items()}
        tickets = {event_id: result["ticket_id"] for event_id, result in results.items()}
        self.ta, self.tb, self.ts, self.tn = (tickets[e] for e in ("sa1", "sb1", "sb2", "n1"))
        assert None not in (self.ta, self.tb, self.ts, self.tn)
        assert tickets["sa2"] is tickets["sa3"] is tickets["n2"] is None


@pytest.fixture
async def data(client: httpx.AsyncClient, admin_key: str) -> Data:
    response = await client.post(
        "/v1/feedback/batch", json={"events": DATA}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == len(DATA), body
    return Data({result["event_id"]: result for result in body["results"]})


@pytest.fixture
async def store_a(make_key: KeyFactory) -> str:
    return await make_key(*ALL_BUT_ADMIN, locations=["store-a"], name="store-a manager")


@pytest.fixture
async def both_stores(make_key: KeyFactory) -> str:
    return await make_key(*ALL_BUT_ADMIN, locations=["store-a", "store-b"], name="regional")


async def every_item(
    client: httpx.AsyncClient, key: str, path: str, params: Params | None = None
) -> list[Json]:
    """Every item of a list endpoint, following next_cursor one item at a time (so the
    restriction holds on every page, not just the first)."""
    items: list[Json] = []
    cursor: str | None = None
    while True:
        query: Params = {**(params or {}), "limit": 1}
        if cursor is not None:
            query["cursor"] = cursor
        page = await get_json(client, key, path, query)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def feedback_event_ids(
    client: httpx.AsyncClient, key: str, params: Params | None = None
) -> list[str]:
    return sorted(
        item["event_id"] for item in await every_item(client, key, "/v1/feedback", params)
    )


async def ticket_ids(client: httpx.AsyncClient, key: str, params: Params | None = None) -> set[str]:
    return {item["id"] for item in await every_item(client, key, "/v1/tickets", params)}


# --- feedback -----------------------------------------------------------------------------


async def test_feedback_list_holds_only_its_locations_whatever_the_filter(
    client: httpx.AsyncClient, store_a: str, data: Data
) -> None:
    assert await feedback_event_ids(client, store_a) == STORE_A
    assert await feedback_event_ids(client, store_a, {"location_id": "store-a"}) == STORE_A
    # Filters narrow within the key's locations; they never widen past them.
    cases: list[tuple[Params, list[str]]] = [
        ({"customer_id": "C-shared"}, ["sa3"]),
        ({"q": "fitting"}, ["sa1", "sa3"]),
        ({"has_ticket": "true"}, ["sa1"]),
        ({"nps_max": 3}, ["sa1"]),
        ({"channel": ["web", "chat"]}, ["sa1"]),
        ({"source": "survey-sms"}, ["sa2"]),
        ({"customer_id": "C-3"}, []),
        ({"customer_id": "C-4"}, []),
    ]
    for params, expected in cases:
        assert await feedback_event_ids(client, store_a, params) == expected, params


@pytest.mark.parametrize(
    "locations", [["store-b"], ["store-a", "store-b"], ["store-c"]], ids=["b", "a-and-b", "c"]
)
async def test_asking_for_feedback_of_another_location_is_403(
    client: httpx.AsyncClient, store_a: str, data: Data, locations: list[str]
) -> None:
    response = await client.get(
        "/v1/feedback", params={"location_id": locations}, headers=auth(store_a)
    )
    assert_problem(response, 403)


async def test_feedback_outside_its_locations_does_not_exist_for_the_key(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data
) -> None:
    own = await get_json(client, store_a, f"/v1/feedback/{data.feedback['sa1']}")
    assert own["event_id"] == "sa1"
    missing = assert_problem(await client.get("/v1/feedback/999999", headers=auth(store_a)), 404)
    for event_id in ("sb1", "sb2", "n1", "n2"):
        path = f"/v1/feedback/{data.feedback[event_id]}"
        hidden = assert_problem(await client.get(path, headers=auth(store_a)), 404)
        # Exactly like a missing one: existence is not leaked.
        assert {k: v for k, v in hidden.items() if k != "detail"} == {
            k: v for k, v in missing.items() if k != "detail"
        }
        assert (await client.get(path, headers=auth(admin_key))).status_code == 200


async def test_single_ingest_outside_its_locations_is_403_and_stores_nothing(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data
) -> None:
    for location in ("store-b", "store-c", None):
        refused = await client.post(
            "/v1/feedback", json=event("w-out", 7, location, scores=nps(5)), headers=auth(store_a)
        )
        assert_problem(refused, 403)
    # Even an exact copy of a stored store-b event: 403, not "duplicate" with its id.
    copy = await client.post("/v1/feedback", json=DATA[3], headers=auth(store_a))
    assert_problem(copy, 403)
    assert "w-out" not in await feedback_event_ids(client, admin_key)
    accepted = await client.post(
        "/v1/feedback", json=event("w-in", 7, "store-a", scores=nps(5)), headers=auth(store_a)
    )
    assert accepted.status_code == 202, accepted.text
    assert await feedback_event_ids(client, store_a) == [*STORE_A, "w-in"]
    # A store-b event's id reused for store-a is a conflict that shows no stored id.
    reused = await client.post(
        "/v1/feedback", json=event("sb1", 3, "store-a", scores=nps(1)), headers=auth(store_a)
    )
    body = assert_problem(reused, 409)
    assert data.feedback["sb1"] not in str(body)


async def test_batch_rejects_each_event_outside_its_locations(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data
) -> None:
    """A batch is judged per event (valid ones are stored even when others are rejected):
    events for other locations are rejected items, not a 403 for the whole batch."""
    events = [
        event("b-in", 7, "store-a", scores=nps(6)),
        event("b-out", 7, "store-b", scores=nps(6)),
        event("b-none", 7, None, scores=nps(6)),
        DATA[3],  # an exact copy of store-b's sb1: rejected, its id not shown
    ]
    response = await client.post(
        "/v1/feedback/batch", json={"events": events}, headers=auth(store_a)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    counts = (body["accepted"], body["duplicates"], body["conflicts"], body["rejected"])
    assert counts == (1, 0, 0, 3)
    results = body["results"]
    assert results[0]["status"] == "accepted"
    for result in results[1:]:
        assert result["status"] == "rejected"
        assert result.get("id") is None
        assert [(e["loc"], e["type"]) for e in result["errors"]] == [
            (["location_id"], "location_forbidden")
        ]
    stored = await feedback_event_ids(client, admin_key)
    assert "b-in" in stored
    assert "b-out" not in stored
    assert "b-none" not in stored
    # Nothing but store-a's: a batch of others alone is all rejected.
    only_out = await client.post(
        "/v1/feedback/batch", json={"events": events[1:2]}, headers=auth(store_a)
    )
    assert only_out.json()["rejected"] == 1


# --- tickets ------------------------------------------------------------------------------


async def test_ticket_list_holds_only_its_locations(
    client: httpx.AsyncClient, store_a: str, data: Data
) -> None:
    assert await ticket_ids(client, store_a) == {data.ta}
    assert await ticket_ids(client, store_a, {"location_id": "store-a"}) == {data.ta}
    assert await ticket_ids(client, store_a, {"status": "open", "priority": "high"}) == {data.ta}
    assert await ticket_ids(client, store_a, {"priority": "normal"}) == set()  # TS is store-b's
    for locations in (["store-b"], ["store-a", "store-b"]):
        response = await client.get(
            "/v1/tickets", params={"location_id": locations}, headers=auth(store_a)
        )
        assert_problem(response, 403)


async def test_tickets_outside_its_locations_cannot_be_read_or_changed(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data
) -> None:
    own = await get_json(client, store_a, f"/v1/tickets/{data.ta}")
    assert own["location_id"] == "store-a"
    missing = assert_problem(await client.get("/v1/tickets/999999", headers=auth(store_a)), 404)
    for ticket_id in (data.tb, data.ts, data.tn):
        before = await get_json(client, admin_key, f"/v1/tickets/{ticket_id}")
        hidden = assert_problem(
            await client.get(f"/v1/tickets/{ticket_id}", headers=auth(store_a)), 404
        )
        assert (hidden["type"], hidden["title"]) == (missing["type"], missing["title"])
        for change in ({"status": "resolved"}, {"note": "Looked into it."}, {"assignee": "me"}):
            patched = await client.patch(
                f"/v1/tickets/{ticket_id}", json=change, headers=auth(store_a)
            )
            assert_problem(patched, 404)
        assert await get_json(client, admin_key, f"/v1/tickets/{ticket_id}") == before
    changed = await client.patch(
        f"/v1/tickets/{data.ta}", json={"status": "in_progress", "note": "On it."},
        headers=auth(store_a),
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "in_progress"


# --- metrics ------------------------------------------------------------------------------


# From the feedback's day to past the tickets' (opened today); fixed once, so that two
# answers compared with each other cover the very same range.
METRICS_WINDOW: Params = {
    "from": at(-1),
    "to": (datetime.now(UTC) + timedelta(days=2)).date().isoformat() + "T00:00:00Z",
}


async def metrics(
    client: httpx.AsyncClient, key: str, params: Params | None = None
) -> httpx.Response:
    return await client.get(
        "/v1/metrics", params={**METRICS_WINDOW, **(params or {})}, headers=auth(key)
    )


@pytest.mark.parametrize(
    "group_by", [None, "location_id", "channel", "touchpoint", "source", "journey_stage", "month"]
)
async def test_metrics_count_only_its_locations(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data, group_by: str | None
) -> None:
    params: Params = {"group_by": group_by} if group_by else {}
    response = await metrics(client, store_a, params)
    assert response.status_code == 200, response.text
    restricted = response.json()
    # Exactly an unrestricted key's figures for store-a alone.
    unrestricted = await metrics(client, admin_key, {**params, "location_id": "store-a"})
    assert restricted == unrestricted.json()
    assert restricted["total"]["responses"] == 3
    assert restricted["total"]["nps"]["responses"] == 3
    assert restricted["total"]["tickets"]["opened"] == 1
    if group_by == "location_id":
        assert [group["key"] for group in restricted["groups"]] == ["store-a"]
    if group_by is not None:
        assert sum(group["responses"] for group in restricted["groups"]) == 3


async def test_metrics_for_another_location_are_403(
    client: httpx.AsyncClient, store_a: str, data: Data
) -> None:
    for locations in (["store-b"], ["store-a", "store-b"]):
        response = await metrics(client, store_a, {"location_id": locations})
        assert_problem(response, 403)
    response = await metrics(client, store_a, {"location_id": "store-b", "group_by": "location_id"})
    assert_problem(response, 403)


# --- journeys, locations, admin endpoints ---------------------------------------------------


async def test_journeys_hold_only_its_locations(
    client: httpx.AsyncClient, store_a: str, data: Data
) -> None:
    body = await get_json(client, store_a, "/v1/customers/C-shared/journey")
    assert [item["feedback"]["event_id"] for item in body["items"]] == ["sa3"]
    assert body["summary"] == {
        "first_seen": body["items"][0]["at"],
        "last_seen": body["items"][0]["at"],
        "channels": {"email": 1},
        "latest_nps": 8,  # n2's 10 has no location
        "open_tickets": 0,  # TS is store-b's
    }
    journey = await get_json(client, store_a, "/v1/customers/C-1/journey")
    assert [item["type"] for item in journey["items"]] == ["feedback", "ticket"]
    for customer in ("C-3", "C-4"):  # only in store-b; only without a location
        response = await client.get(f"/v1/customers/{customer}/journey", headers=auth(store_a))
        assert_problem(response, 404)


async def test_locations_are_only_its_own(
    client: httpx.AsyncClient, store_a: str, admin_key: str, data: Data
) -> None:
    for location in ("store-a", "store-b"):
        stored = await client.put(
            f"/v1/locations/{location}", json={"name": location}, headers=auth(admin_key)
        )
        assert stored.status_code == 200, stored.text
    listed = await every_item(client, store_a, "/v1/locations")
    assert [item["location_id"] for item in listed] == ["store-a"]
    assert (await get_json(client, store_a, "/v1/locations/store-a"))["name"] == "store-a"
    assert_problem(await client.get("/v1/locations/store-b", headers=auth(store_a)), 403)


async def test_admin_endpoints_stay_closed_to_it(
    client: httpx.AsyncClient, store_a: str, data: Data
) -> None:
    headers = auth(store_a)
    for method, path, body in (
        ("GET", "/v1/rules", None),
        ("POST", "/v1/rules", {"name": "x", "conditions": {}, "action": {}}),
        ("GET", "/v1/integrations", None),
        ("GET", "/v1/deliveries", None),
        ("GET", "/v1/api-keys", None),
        ("POST", "/v1/api-keys", {"name": "x", "scopes": ["feedback:read"]}),
        ("PUT", "/v1/locations/store-a", {"name": "A"}),
        ("DELETE", "/v1/customers/C-1", None),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403)
    # The refused erasure changed nothing.
    journey = await get_json(client, store_a, "/v1/customers/C-1/journey")
    assert journey["items"][0]["feedback"]["customer"]["id"] == "C-1"


# --- a key for two locations ----------------------------------------------------------------


async def test_a_key_for_two_locations_sees_both_and_nothing_else(
    client: httpx.AsyncClient, both_stores: str, admin_key: str, data: Data
) -> None:
    key = both_stores
    assert await feedback_event_ids(client, key) == sorted(STORE_A + STORE_B)
    assert await feedback_event_ids(client, key, {"location_id": "store-b"}) == STORE_B
    assert await feedback_event_ids(client, key, {"customer_id": "C-shared"}) == ["sa3", "sb2"]
    assert_problem(
        await client.get("/v1/feedback", params={"location_id": "store-c"}, headers=auth(key)),
        403,
    )
    hidden = await client.get(f"/v1/feedback/{data.feedback['n1']}", headers=auth(key))
    assert_problem(hidden, 404)

    assert await ticket_ids(client, key) == {data.ta, data.tb, data.ts}
    assert_problem(await client.get(f"/v1/tickets/{data.tn}", headers=auth(key)), 404)
    patched = await client.patch(
        f"/v1/tickets/{data.tb}", json={"note": "Seen."}, headers=auth(key)
    )
    assert patched.status_code == 200, patched.text

    grouped = await metrics(client, key, {"group_by": "location_id"})
    assert grouped.status_code == 200, grouped.text
    assert [(g["key"], g["responses"]) for g in grouped.json()["groups"]] == [
        ("store-a", 3),
        ("store-b", 2),
    ]
    both = ["store-a", "store-b"]
    assert (await metrics(client, key)).json() == (
        await metrics(client, admin_key, {"location_id": both})
    ).json()
    assert_problem(await metrics(client, key, {"location_id": "store-c"}), 403)

    journey = await get_json(client, key, "/v1/customers/C-shared/journey")
    steps = [
        item["feedback"]["event_id"] if item["type"] == "feedback" else "ticket"
        for item in journey["items"]
    ]
    assert steps == ["sa3", "sb2", "ticket"]
    assert journey["summary"]["channels"] == {"email": 1, "chat": 1}
    assert journey["summary"]["open_tickets"] == 1

    for location, status in (("store-b", 202), ("store-c", 403), (None, 403)):
        response = await client.post(
            "/v1/feedback",
            json=event(f"k2-{location}", 8, location, scores=nps(7)),
            headers=auth(key),
        )
        assert response.status_code == status, response.text
    assert await feedback_event_ids(client, key, {"location_id": "store-b"}) == [
        "k2-store-b",
        *STORE_B,
    ]
