"""GET /v1/metrics (SPEC section 7) against figures worked out by hand for crafted data:
mixed scales, rounding, every grouping and filter, partial and whole days (the daily
rollup and the feedback table must agree), empty groups, tickets, and location-scoped
keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import KeyFactory, auth

# Events of their own customer, without text: the figures depend on the scores alone.
from tests.test_metrics import event, nps
from tests.test_metrics import score as scored

PROBLEM = "application/problem+json"
WINDOW = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-04T00:00:00Z"}


# Eight events over three UTC days. Hand-worked totals for WINDOW:
#   NPS 10, 9, 8, 7, 6, 0 -> 2 promoters, 2 passives, 2 detractors of 6 -> 0.0
#   CSAT 5/5 top, 6/7 top, 5/7 no, 3/5 no -> 2 of 4 -> 50.0
#   CES 5/7 top, 4/5 top, 4/7 no -> 2 of 3 -> 66.7
#   rating 10/10 -> 5, 1/10 -> 1, 4/5, 5/5 -> (5 + 1 + 4 + 5) / 4 = 3.75
DATA = [
    event("e1", "2025-03-01T10:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          source="survey", scores=[nps(10), scored("csat", 5, 5)]),
    event("e2", "2025-03-01T11:00:00Z", "web", location_id="store-a",
          scores=[nps(9), scored("csat", 6, 7)]),
    event("e3", "2025-03-01T12:00:00Z", "sms", location_id="store-b", source="survey",
          scores=[nps(8), scored("csat", 5, 7)]),
    # 23:30 at UTC-2 is 01:30 UTC on the next day: grouped under 2025-03-02.
    event("e4", "2025-03-01T23:30:00-02:00", "sms", location_id="store-b",
          scores=[nps(7), scored("ces", 5, 7)]),
    event("e5", "2025-03-02T09:00:00Z", "in_store", location_id="store-a", touchpoint="checkout",
          scores=[nps(6), scored("ces", 4, 5), scored("rating", 10, 10)]),
    event("e6", "2025-03-02T10:00:00Z", "in_store",
          scores=[nps(0), scored("ces", 4, 7), scored("rating", 1, 10)]),
    event("e7", "2025-03-03T08:00:00Z", "review", location_id="store-a",
          scores=[scored("rating", 4, 5), scored("csat", 3, 5)]),
    event("e8", "2025-03-03T09:00:00Z", "review", location_id="store-b",
          scores=[scored("rating", 5, 5)]),
]  # fmt: skip


async def store(client: httpx.AsyncClient, key: str, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/feedback/batch", json={"events": events}, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


async def metrics(client: httpx.AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/metrics", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def figures(group: dict[str, Any]) -> tuple[Any, ...]:
    """The headline figures of a total or group, for compact comparisons."""
    return (
        group["responses"],
        group["nps"]["score"],
        group["csat"]["score"],
        group["ces"]["score"],
        group["rating"]["mean"],
    )


@pytest.fixture
async def data(client: httpx.AsyncClient, admin_key: str) -> None:
    await store(client, admin_key, DATA)


@pytest.mark.usefixtures("data")
async def test_totals_over_mixed_scales(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await metrics(client, admin_key, **WINDOW)
    assert body["from"] == "2025-03-01T00:00:00Z"
    assert body["to"] == "2025-03-04T00:00:00Z"
    assert body["group_by"] is None
    assert body["groups"] == []
    total = body["total"]
    assert total["responses"] == 8
    assert total["nps"] == {
        "score": 0.0,
        "promoters": 2,
        "passives": 2,
        "detractors": 2,
        "responses": 6,
    }
    assert total["csat"] == {"score": 50.0, "responses": 4}
    assert total["ces"] == {"score": 66.7, "responses": 3}
    assert total["rating"] == {"mean": 3.75, "responses": 4}
    assert total["sentiment"] == {"negative": 0, "neutral": 0, "positive": 0}


@pytest.mark.usefixtures("data")
async def test_group_by_day_is_by_utc_day_and_lists_empty_days(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = await metrics(
        client, admin_key, group_by="day", **{"from": "2025-02-28T00:00:00Z", "to": WINDOW["to"]}
    )
    groups = {g["key"]: g for g in body["groups"]}
    assert list(groups) == ["2025-02-28", "2025-03-01", "2025-03-02", "2025-03-03"]
    # 02-28: nothing. 03-01: NPS 10, 9, 8 -> (2 - 0) / 3 = 66.7; CSAT 5/5, 6/7 top, 5/7
    # not -> 2 of 3 = 66.7. 03-02: NPS 7, 6, 0 -> (0 - 2) / 3 = -66.7; CES 5/7, 4/5 top,
    # 4/7 not -> 66.7; rating 5 and 1 -> 3.0. 03-03: no NPS; CSAT 3/5 -> 0.0; rating 4, 5.
    assert figures(groups["2025-02-28"]) == (0, None, None, None, None)
    assert figures(groups["2025-03-01"]) == (3, 66.7, 66.7, None, None)
    assert figures(groups["2025-03-02"]) == (3, -66.7, None, 66.7, 3.0)
    assert figures(groups["2025-03-03"]) == (2, None, 0.0, None, 4.5)
    assert groups["2025-02-28"]["tickets"]["opened"] == 0


@pytest.mark.usefixtures("data")
async def test_group_by_week_and_month(client: httpx.AsyncClient, admin_key: str) -> None:
    weeks = await metrics(client, admin_key, group_by="week", **WINDOW)
    # 2025-03-01 is a Saturday: its ISO week starts on Monday 2025-02-24.
    assert [(g["key"], g["responses"]) for g in weeks["groups"]] == [
        ("2025-02-24", 6),
        ("2025-03-03", 2),
    ]
    months = await metrics(
        client, admin_key, group_by="month", **{"from": "2025-02-15T00:00:00Z", "to": WINDOW["to"]}
    )
    assert [(g["key"], g["responses"]) for g in months["groups"]] == [
        ("2025-02", 0),
        ("2025-03", 8),
    ]


@pytest.mark.usefixtures("data")
async def test_group_by_location_channel_and_the_others(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = await metrics(client, admin_key, group_by="location_id", **WINDOW)
    # store-a: NPS 10, 9, 6 -> (2 - 1) / 3 = 33.3; CSAT 5/5 top, 6/7 top, 3/5 not -> 66.7;
    # CES 4/5 -> 100.0; rating 5 (10/10) and 4 -> 4.5. store-b: NPS 8, 7 -> 0.0; CSAT 5/7
    # -> 0.0; CES 5/7 -> 100.0; rating 5. Without location: NPS 0 -> -100.0.
    assert [(g["key"], *figures(g)[1:]) for g in body["groups"]] == [
        ("store-a", 33.3, 66.7, 100.0, 4.5),
        ("store-b", 0.0, 0.0, 100.0, 5.0),
        (None, -100.0, None, 0.0, 1.0),
    ]
    assert [g["responses"] for g in body["groups"]] == [4, 3, 1]

    channels = await metrics(client, admin_key, group_by="channel", **WINDOW)
    assert [(g["key"], g["responses"]) for g in channels["groups"]] == [
        ("in_store", 2),
        ("review", 2),
        ("sms", 2),
        ("web", 2),
    ]
    touchpoints = await metrics(client, admin_key, group_by="touchpoint", **WINDOW)
    assert [(g["key"], g["responses"]) for g in touchpoints["groups"]] == [
        ("checkout", 2),
        (None, 6),
    ]
    sources = await metrics(client, admin_key, group_by="source", **WINDOW)
    assert [(g["key"], g["responses"], g["nps"]["score"]) for g in sources["groups"]] == [
        ("survey", 2, 50.0),  # NPS 10 and 8: (1 - 0) / 2
        (None, 6, -25.0),  # NPS 9, 7, 6, 0: (1 - 2) / 4
    ]
    stages = await metrics(client, admin_key, group_by="journey_stage", **WINDOW)
    assert [(g["key"], g["responses"]) for g in stages["groups"]] == [(None, 8)]


@pytest.mark.usefixtures("data")
async def test_filters_repeat_and_combine(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await metrics(client, admin_key, channel=["web", "sms"], **WINDOW)
    # NPS 10, 9, 8, 7 -> 50.0; CSAT 5/5, 6/7 top, 5/7 not -> 66.7; CES 5/7 -> 100.0.
    assert figures(body["total"]) == (4, 50.0, 66.7, 100.0, None)
    body = await metrics(client, admin_key, location_id=["store-b"], channel="sms", **WINDOW)
    assert body["total"]["responses"] == 2
    body = await metrics(client, admin_key, touchpoint="checkout", **WINDOW)
    # e1 and e5: NPS 10 and 6 -> (1 - 1) / 2 = 0.0; CSAT 5/5; CES 4/5; rating 10/10 -> 5.
    assert figures(body["total"]) == (2, 0.0, 100.0, 100.0, 5.0)
    body = await metrics(client, admin_key, source=["survey"], group_by="location_id", **WINDOW)
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [("store-a", 1), ("store-b", 1)]
    # A location named in the filter is listed even without feedback.
    body = await metrics(
        client, admin_key, location_id=["store-a", "store-z"], group_by="location_id", **WINDOW
    )
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [("store-a", 4), ("store-z", 0)]
    assert body["groups"][1]["nps"]["score"] is None


@pytest.mark.usefixtures("data")
async def test_partial_days_and_whole_days_agree(client: httpx.AsyncClient, admin_key: str) -> None:
    # Inside one day boundary: e2, e3, e4 (01:30 UTC), e5 - the feedback table only.
    body = await metrics(
        client, admin_key, **{"from": "2025-03-01T11:00:00Z", "to": "2025-03-02T09:30:00Z"}
    )
    assert figures(body["total"]) == (4, 0.0, 50.0, 100.0, 5.0)  # NPS 9, 8, 7, 6
    # Partial edges around a whole day read from the rollup: e2, e3 | e4, e5, e6 | e7.
    body = await metrics(
        client,
        admin_key,
        group_by="day",
        **{"from": "2025-03-01T11:00:00+00:00", "to": "2025-03-03T08:30:00+00:00"},
    )
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [
        ("2025-03-01", 2),
        ("2025-03-02", 3),
        ("2025-03-03", 1),
    ]
    # `from` inclusive, `to` exclusive: exactly at e1 and exactly at e8.
    body = await metrics(
        client, admin_key, **{"from": "2025-03-01T10:00:00Z", "to": "2025-03-03T09:00:00Z"}
    )
    assert body["total"]["responses"] == 7
    # Every grouping gives the same totals whether days come from the rollup or the
    # table: shift the window by a microsecond so every day is read from the table.
    whole = await metrics(client, admin_key, group_by="day", **WINDOW)
    shifted = await metrics(
        client,
        admin_key,
        group_by="day",
        **{"from": "2025-02-28T23:59:59.999999Z", "to": "2025-03-04T00:00:00.000001Z"},
    )
    assert whole["total"] == shifted["total"]
    inner_days = {g["key"] for g in whole["groups"]}
    assert whole["groups"] == [g for g in shifted["groups"] if g["key"] in inner_days]


async def test_rounding_is_half_away_from_zero(client: httpx.AsyncClient, admin_key: str) -> None:
    # NPS: 1 promoter of 16 -> 6.25 -> 6.3 (round-half-even would give 6.2).
    # Rating: 5, 5, 5, 5, 2, 1, 1, 1 -> 25 / 8 = 3.125 -> 3.13.
    events = [
        event(f"r{n}", "2025-03-10T10:00:00Z", "web", scores=[nps(10 if n == 0 else 7)])
        for n in range(16)
    ]
    events += [
        event(f"s{n}", "2025-03-10T11:00:00Z", "review", scores=[scored("rating", value, 5)])
        for n, value in enumerate([5, 5, 5, 5, 2, 1, 1, 1])
    ]
    await store(client, admin_key, events)
    body = await metrics(
        client, admin_key, **{"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"}
    )
    assert body["total"]["nps"]["score"] == 6.3
    assert body["total"]["rating"]["mean"] == 3.13


@pytest.mark.usefixtures("data")
async def test_tickets_figures(client: httpx.AsyncClient, admin_key: str, state: AppState) -> None:
    # The default rules opened two tickets: e5 (NPS 6, "Poor scores", store-a) and e6
    # (NPS 0, "Strong detractors", no location). Date them into the window.
    tickets = (await client.get("/v1/tickets", headers=auth(admin_key))).json()["items"]
    by_location = {t["location_id"]: t["id"] for t in tickets}
    assert set(by_location) == {"store-a", None}
    store_a, unplaced = by_location["store-a"], by_location[None]
    response = await client.patch(
        f"/v1/tickets/{store_a}", json={"status": "resolved"}, headers=auth(admin_key)
    )
    assert response.status_code == 200
    created = datetime(2025, 3, 2, 9, 5, tzinfo=UTC)
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE tickets SET created_at = :created, resolved_at = :resolved, "
                "sla_due_at = :due WHERE id = :id"
            ),
            {
                "created": created,
                "resolved": created + timedelta(hours=1),
                "due": created + timedelta(hours=48),
                "id": int(store_a),
            },
        )
        await session.execute(
            text("UPDATE tickets SET created_at = :created, sla_due_at = :due WHERE id = :id"),
            {
                "created": created + timedelta(hours=1),
                "due": created + timedelta(hours=25),  # long past: breached while open
                "id": int(unplaced),
            },
        )
    body = await metrics(client, admin_key, group_by="location_id", **WINDOW)
    assert body["total"]["tickets"] == {
        "opened": 2,
        "resolved": 1,
        "open_now": 1,
        "median_resolution_seconds": 3600.0,
        "sla_breached": 1,
    }
    groups = {g["key"]: g["tickets"] for g in body["groups"]}
    assert groups["store-a"] == {
        "opened": 1,
        "resolved": 1,
        "open_now": 0,
        "median_resolution_seconds": 3600.0,
        "sla_breached": 0,
    }
    assert groups[None]["opened"] == 1
    assert groups[None]["sla_breached"] == 1
    assert groups["store-b"]["opened"] == 0
    days = await metrics(client, admin_key, group_by="day", **WINDOW)
    assert [(g["key"], g["tickets"]["opened"]) for g in days["groups"]] == [
        ("2025-03-01", 0),
        ("2025-03-02", 2),
        ("2025-03-03", 0),
    ]
    # A ticket's touchpoint is that of the feedback that opened it (e5: checkout).
    touchpoints = await metrics(client, admin_key, group_by="touchpoint", **WINDOW)
    assert {g["key"]: g["tickets"]["opened"] for g in touchpoints["groups"]} == {
        "checkout": 1,
        None: 1,
    }
    filtered = await metrics(client, admin_key, touchpoint="checkout", **WINDOW)
    assert filtered["total"]["tickets"]["opened"] == 1
    outside = await metrics(
        client, admin_key, **{"from": "2025-03-03T00:00:00Z", "to": "2025-03-04T00:00:00Z"}
    )
    assert outside["total"]["tickets"]["opened"] == 0


@pytest.mark.usefixtures("data")
async def test_location_restricted_keys_see_their_figures_only(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key(Scope.METRICS_READ, locations=["store-a"])
    body = await metrics(client, key, **WINDOW)
    # store-a only (feedback without a location is nobody's): e1, e2, e5, e7.
    assert figures(body["total"]) == (4, 33.3, 66.7, 100.0, 4.5)
    body = await metrics(client, key, group_by="location_id", **WINDOW)
    assert [g["key"] for g in body["groups"]] == ["store-a"]
    body = await metrics(client, key, group_by="day", **WINDOW)
    assert sum(g["responses"] for g in body["groups"]) == 4
    denied = await client.get("/v1/metrics", params={"location_id": "store-b"}, headers=auth(key))
    assert denied.status_code == 403
    assert denied.headers["content-type"] == PROBLEM
    two = await make_key(Scope.METRICS_READ, locations=["store-a", "store-b"])
    body = await metrics(client, two, group_by="location_id", **WINDOW)
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [("store-a", 4), ("store-b", 3)]


async def test_refusals(client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str) -> None:
    reader = await make_key(Scope.FEEDBACK_READ)
    assert (await client.get("/v1/metrics")).status_code == 401
    assert (await client.get("/v1/metrics", headers=auth(reader))).status_code == 403
    cases: list[dict[str, str]] = [
        {"group_by": "hour"},
        {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"},
        {"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"},
        {"from": "2025-03-01T00:00:00"},  # naive
        {"from": "2020-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z", "group_by": "day"},
        {"channel": "fax"},
    ]
    for params in cases:
        response = await client.get("/v1/metrics", params=params, headers=auth(admin_key))
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_default_range_is_the_last_30_days(client: httpx.AsyncClient, admin_key: str) -> None:
    now = datetime.now(UTC)
    await store(
        client,
        admin_key,
        [
            event("recent", (now - timedelta(days=29)).isoformat(), "web", scores=[nps(10)]),
            event("old", (now - timedelta(days=31)).isoformat(), "web", scores=[nps(0)]),
        ],
    )
    body = await metrics(client, admin_key)
    assert body["total"]["responses"] == 1
    start = datetime.fromisoformat(body["from"])
    end = datetime.fromisoformat(body["to"])
    assert end - start == timedelta(days=30)
    assert abs((end - now).total_seconds()) < 60


async def test_the_rollup_counts_concurrent_writers_once_each(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = [
        event(f"c{n}", "2025-04-01T10:00:00Z", "web", location_id="store-a", scores=[nps(9)])
        for n in range(20)
    ]
    responses = await asyncio.gather(
        *(client.post("/v1/feedback", json=e, headers=auth(admin_key)) for e in events)
    )
    assert {r.status_code for r in responses} == {202}
    # Sent again: duplicates, not counted twice.
    again = await client.post("/v1/feedback", json=events[0], headers=auth(admin_key))
    assert again.status_code == 200
    body = await metrics(
        client, admin_key, **{"from": "2025-04-01T00:00:00Z", "to": "2025-04-02T00:00:00Z"}
    )
    assert body["total"]["responses"] == 20
    assert body["total"]["nps"]["promoters"] == 20
    async with state.sessionmaker() as session:
        stored = await session.execute(
            text(
                "SELECT responses, promoters FROM feedback_daily_rollup "
                "WHERE day = '2025-04-01' AND location_id = 'store-a' AND channel = 'web'"
            )
        )
        assert stored.one() == (20, 20)
