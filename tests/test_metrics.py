"""GET /v1/metrics (SPEC section 7) against figures worked out by hand.

Every expected figure is written literally, with the arithmetic in a comment, for data
sets crafted in the past (around 2025-03-01, queried with explicit ranges): NPS bands
and mixed CSAT/CES/rating scales, rounding half away from zero, every grouping and
filter, UTC days for events sent with other offsets, empty periods and named groups,
partial and whole days (the daily rollup and the feedback table must agree), sentiment
(labels set in SQL, so the figures do not depend on the text analyser), tickets, keys
restricted to locations, refusals, and the rollup under concurrent writers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import REPO_ROOT, KeyFactory, assert_problem, auth

Params = dict[str, str | list[str]]
Figures = tuple[int, float | None, float | None, float | None, float | None]

# --- helpers ------------------------------------------------------------------------------


def event(event_id: str, occurred_at: str, channel: str, **fields: Any) -> dict[str, Any]:
    """An event of its own customer (one open ticket per customer, so each poor score
    opens its own ticket) without text (no sentiment, no 'Negative comments' ticket)."""
    return {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "channel": channel,
        "customer": {"id": f"C-{event_id}"},
        **fields,
    }


def nps(value: int) -> dict[str, Any]:
    return {"metric": "nps", "value": value}


def score(metric: str, value: int, scale: int) -> dict[str, Any]:
    return {"metric": metric, "value": value, "scale": scale}


async def store(client: httpx.AsyncClient, key: str, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/feedback/batch", json={"events": events}, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


async def get_metrics(client: httpx.AsyncClient, key: str, params: Params) -> dict[str, Any]:
    response = await client.get("/v1/metrics", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def figures(group: dict[str, Any]) -> Figures:
    """The headline figures of a total or a group: responses, NPS, CSAT, CES, rating."""
    return (
        group["responses"],
        group["nps"]["score"],
        group["csat"]["score"],
        group["ces"]["score"],
        group["rating"]["mean"],
    )


def keyed(body: dict[str, Any]) -> list[tuple[str | None, Figures]]:
    return [(group["key"], figures(group)) for group in body["groups"]]


async def execute(state: AppState, statement: str, **params: Any) -> None:
    async with state.sessionmaker() as session, session.begin():
        await session.execute(text(statement), params)


async def fetch(state: AppState, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    async with state.sessionmaker() as session:
        result = await session.execute(text(statement), params)
        return [tuple(row) for row in result.all()]


# A group without any feedback or ticket: zero counts, null scores.
NO_TICKETS = {
    "opened": 0,
    "resolved": 0,
    "open_now": 0,
    "median_resolution_seconds": None,
    "sla_breached": 0,
}
EMPTY = {
    "responses": 0,
    "nps": {"score": None, "promoters": 0, "passives": 0, "detractors": 0, "responses": 0},
    "csat": {"score": None, "responses": 0},
    "ces": {"score": None, "responses": 0},
    "rating": {"mean": None, "responses": 0},
    "sentiment": {"negative": 0, "neutral": 0, "positive": 0},
    "tickets": NO_TICKETS,
}

# --- the main data set --------------------------------------------------------------------

# Four UTC days, Friday 2025-02-28 to Monday 2025-03-03: a month boundary (Feb | Mar)
# and an ISO week boundary (Sunday 03-02 | Monday 03-03) inside. What each event adds:
#   d1  02-28 08:00Z  web      store-a  checkout/purchase     pos     NPS 10 P, CSAT 5/5 top
#   d2  03-01 00:30Z  sms      store-b  delivery/after_sales  survey  NPS 3 D, CSAT 2/5 no
#       (sent as 02-28 23:30-01:00: local date Feb 28, UTC day Mar 1)
#   d3  02-28 23:30Z  web      store-a  -/purchase            survey  NPS 8 Pa, CSAT 7/7 top
#       (sent as 03-01 00:30+01:00: local date Mar 1, UTC day Feb 28)
#   d4  03-01 10:00Z  in_store (none)   checkout/-            pos     NPS 6 D, CES 5/7 top
#   d5  03-02 23:59:59.999999Z email store-b -/after_sales    survey  NPS 9 P, rating 4/5
#   d6  03-03 00:00Z  web      store-a  checkout/purchase     -       NPS 7 Pa, CSAT 4/5 top,
#                                                                     rating 10/10 -> 5
#   d7  03-02 23:00Z  chat     store-c  support/-             pos     CES 3/5 no,
#       (sent as 03-03 08:00+09:00)                                   rating 7/10 -> 11/3
#   d8  03-03 15:00Z  web      store-a  checkout/purchase     pos     NPS 0 D, CES 4/5 top,
#                                                                     CSAT 6/7 top
# (P promoter, Pa passive, D detractor; a 10-point rating v is 1 + (v - 1) * 4 / 9.)
DATA = [
    event("d1", "2025-02-28T08:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          journey_stage="purchase", source="pos", scores=[nps(10), score("csat", 5, 5)]),
    event("d2", "2025-02-28T23:30:00-01:00", "sms", location_id="store-b",
          touchpoint="delivery", journey_stage="after_sales", source="survey",
          scores=[nps(3), score("csat", 2, 5)]),
    event("d3", "2025-03-01T00:30:00+01:00", "web", location_id="store-a",
          journey_stage="purchase", source="survey", scores=[nps(8), score("csat", 7, 7)]),
    event("d4", "2025-03-01T10:00:00Z", "in_store", touchpoint="checkout", source="pos",
          scores=[nps(6), score("ces", 5, 7)]),
    event("d5", "2025-03-02T23:59:59.999999Z", "email", location_id="store-b",
          journey_stage="after_sales", source="survey", scores=[nps(9), score("rating", 4, 5)]),
    event("d6", "2025-03-03T00:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          journey_stage="purchase",
          scores=[nps(7), score("csat", 4, 5), score("rating", 10, 10)]),
    event("d7", "2025-03-03T08:00:00+09:00", "chat", location_id="store-c",
          touchpoint="support", source="pos", scores=[score("ces", 3, 5), score("rating", 7, 10)]),
    event("d8", "2025-03-03T15:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          journey_stage="purchase", source="pos",
          scores=[nps(0), score("ces", 4, 5), score("csat", 6, 7)]),
]  # fmt: skip

# The four whole UTC days: read from the daily rollup alone.
WINDOW: Params = {"from": "2025-02-28T00:00:00Z", "to": "2025-03-04T00:00:00Z"}
# A microsecond wider at both edges: the four days from the rollup plus two slivers
# (without feedback) from the feedback table.
SHIFTED: Params = {"from": "2025-02-27T23:59:59.999999Z", "to": "2025-03-04T00:00:00.000001Z"}
# From d1 (inclusive) to just after d8: the same eight events, 03-01 and 03-02 from the
# rollup, the partial days 02-28 (d1, d3) and 03-03 (d6, d8) from the feedback table.
EDGES: Params = {"from": "2025-02-28T08:00:00Z", "to": "2025-03-03T15:00:00.000001Z"}
# Any range covering a whole day reads that day from the rollup; grouping by journey
# stage (like touchpoint or source) is answered from the feedback table alone, and its
# total must be the same.
FROM_TABLE: Params = {"group_by": "journey_stage"}

# All eight, by hand:
#   NPS: P d1, d5; Pa d3, d6; D d2, d4, d8 -> (2 - 3) / 7 = -14.2857 -> -14.3
#   CSAT: d1, d3, d6, d8 top, d2 not -> 4 / 5 = 80.0
#   CES: d4, d8 top, d7 not -> 2 / 3 = 66.7
#   rating: d5 4, d6 5, d7 11/3 -> (9 + 11/3) / 3 = 38/9 = 4.222 -> 4.22
TOTAL: Figures = (8, -14.3, 80.0, 66.7, 4.22)
# 02-28 (d1, d3): NPS P, Pa -> 50.0; CSAT 2 of 2 -> 100.0.
# 03-01 (d2, d4): NPS D, D -> -100.0; CSAT d2 not -> 0.0; CES d4 top -> 100.0.
# 03-02 (d5, d7): NPS P -> 100.0; CES d7 not -> 0.0; rating (4 + 11/3) / 2 = 23/6 = 3.83.
# 03-03 (d6, d8): NPS Pa, D -> -50.0; CSAT 2 of 2 -> 100.0; CES d8 -> 100.0; rating 5.
BY_DAY: list[tuple[str | None, Figures]] = [
    ("2025-02-28", (2, 50.0, 100.0, None, None)),
    ("2025-03-01", (2, -100.0, 0.0, 100.0, None)),
    ("2025-03-02", (2, 100.0, None, 0.0, 3.83)),
    ("2025-03-03", (2, -50.0, 100.0, 100.0, 5.0)),
]
# store-a (d1, d3, d6, d8): NPS P, Pa, Pa, D -> 0.0; CSAT 4 of 4; CES d8; rating d6 5.
# store-b (d2, d5): NPS D, P -> 0.0; CSAT d2 not -> 0.0; rating d5 4.
# store-c (d7): CES not -> 0.0; rating 11/3 = 3.67. No location (d4): NPS D; CES top.
BY_LOCATION: list[tuple[str | None, Figures]] = [
    ("store-a", (4, 0.0, 100.0, 100.0, 5.0)),
    ("store-b", (2, 0.0, 0.0, None, 4.0)),
    ("store-c", (1, None, None, 0.0, 3.67)),
    (None, (1, -100.0, None, 100.0, None)),
]
# chat d7; email d5 (NPS P); in_store d4; sms d2 (NPS D, CSAT not); web = store-a.
BY_CHANNEL: list[tuple[str | None, Figures]] = [
    ("chat", (1, None, None, 0.0, 3.67)),
    ("email", (1, 100.0, None, None, 4.0)),
    ("in_store", (1, -100.0, None, 100.0, None)),
    ("sms", (1, -100.0, 0.0, None, None)),
    ("web", (4, 0.0, 100.0, 100.0, 5.0)),
]


@pytest.fixture
async def data(client: httpx.AsyncClient, admin_key: str) -> None:
    # Two batches, so rollup rows are both inserted and added to.
    await store(client, admin_key, DATA[:4])
    await store(client, admin_key, DATA[4:])


# --- scores: bands, scales, rounding ------------------------------------------------------


@pytest.mark.usefixtures("data")
async def test_totals_over_the_whole_window(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, WINDOW)
    assert body["from"] == "2025-02-28T00:00:00Z"
    assert body["to"] == "2025-03-04T00:00:00Z"
    assert body["group_by"] is None
    assert body["groups"] == []
    total = body["total"]
    assert figures(total) == TOTAL
    assert total["nps"] == {
        "score": -14.3,
        "promoters": 2,
        "passives": 2,
        "detractors": 3,
        "responses": 7,
    }
    assert total["csat"] == {"score": 80.0, "responses": 5}
    assert total["ces"] == {"score": 66.7, "responses": 3}
    assert total["rating"] == {"mean": 4.22, "responses": 3}
    assert total["sentiment"] == {"negative": 0, "neutral": 0, "positive": 0}
    # d2, d4 and d8 opened tickets, but today: none was opened in 2025.
    assert total["tickets"] == NO_TICKETS


async def test_nps_bands_at_their_boundaries(client: httpx.AsyncClient, admin_key: str) -> None:
    # One answer of each value 0..10, each under its own source, so every group shows
    # how its value was classified: 0-6 detractor, 7-8 passive, 9-10 promoter.
    await store(
        client,
        admin_key,
        [
            event(f"n{v}", "2025-03-11T12:00:00Z", "web", source=f"nps-{v:02d}", scores=[nps(v)])
            for v in range(11)
        ],
    )
    body = await get_metrics(
        client,
        admin_key,
        {"from": "2025-03-11T00:00:00Z", "to": "2025-03-12T00:00:00Z", "group_by": "source"},
    )
    bands = {
        group["key"]: (
            group["nps"]["promoters"],
            group["nps"]["passives"],
            group["nps"]["detractors"],
            group["nps"]["score"],
        )
        for group in body["groups"]
    }
    assert list(bands) == [f"nps-{v:02d}" for v in range(11)]
    detractor, passive, promoter = (0, 0, 1, -100.0), (0, 1, 0, 0.0), (1, 0, 0, 100.0)
    assert bands == {
        "nps-00": detractor,
        "nps-01": detractor,
        "nps-02": detractor,
        "nps-03": detractor,
        "nps-04": detractor,
        "nps-05": detractor,
        "nps-06": detractor,
        "nps-07": passive,
        "nps-08": passive,
        "nps-09": promoter,
        "nps-10": promoter,
    }
    # 2 promoters, 2 passives, 7 detractors of 11: (2 - 7) / 11 = -45.4545 -> -45.5.
    assert body["total"]["nps"] == {
        "score": -45.5,
        "promoters": 2,
        "passives": 2,
        "detractors": 7,
        "responses": 11,
    }


async def test_scores_round_half_away_from_zero(client: httpx.AsyncClient, admin_key: str) -> None:
    day = "2025-03-10T12:00:00Z"
    events: list[dict[str, Any]] = []

    def add(source: str, scores: list[list[dict[str, Any]]]) -> None:
        events.extend(
            event(f"{source}-{n}", day, "web", source=source, scores=s)
            for n, s in enumerate(scores)
        )

    add("a-nps-up", [[nps(10)]] + [[nps(8)]] * 15)  # (1 - 0) / 16 = 6.25 -> 6.3, not 6.2
    add("b-nps-down", [[nps(0)]] + [[nps(7)]] * 15)  # (0 - 1) / 16 = -6.25 -> -6.3, not -6.2
    add("c-nps-eighth", [[nps(9)]] + [[nps(8)]] * 7)  # 1 / 8 = 12.5 exactly
    add("d-nps-third", [[nps(9)], [nps(10)], [nps(3)]])  # (2 - 1) / 3 = 33.33 -> 33.3
    add("e-nps-two-thirds", [[nps(1)], [nps(2)], [nps(9)]])  # (1 - 2) / 3 = -33.33 -> -33.3
    # 5 of 16 top: 31.25 -> 31.3 (half-even would give 31.2).
    add("f-csat", [[score("csat", 5, 5)]] * 5 + [[score("csat", 3, 5)]] * 11)
    # 2 of 3 top: 66.67 -> 66.7.
    add("g-ces", [[score("ces", 7, 7)], [score("ces", 5, 7)], [score("ces", 4, 7)]])
    # Both scales: 10/10 -> 5, 1/10 -> 1, and 5, 5, 2, 1, 1, 1 of 5 -> 21 / 8 = 2.625 ->
    # 2.63 (a float rounded half-even gives 2.62).
    add(
        "h-rating",
        [[score("rating", 10, 10)], [score("rating", 1, 10)]]
        + [[score("rating", v, 5)] for v in (5, 5, 2, 1, 1, 1)],
    )
    await store(client, admin_key, events)
    body = await get_metrics(
        client,
        admin_key,
        {"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z", "group_by": "source"},
    )
    assert keyed(body) == [
        ("a-nps-up", (16, 6.3, None, None, None)),
        ("b-nps-down", (16, -6.3, None, None, None)),
        ("c-nps-eighth", (8, 12.5, None, None, None)),
        ("d-nps-third", (3, 33.3, None, None, None)),
        ("e-nps-two-thirds", (3, -33.3, None, None, None)),
        ("f-csat", (16, None, 31.3, None, None)),
        ("g-ces", (3, None, None, 66.7, None)),
        ("h-rating", (8, None, None, None, 2.63)),
    ]
    # In total: NPS 16 + 16 + 8 + 3 + 3 = 46 answers; promoters 1 + 0 + 1 + 2 + 1 = 5,
    # detractors 0 + 1 + 0 + 1 + 2 = 4 -> (5 - 4) / 46 = 2.17 -> 2.2. The NPS is worked
    # out from the counts, not by subtracting rounded percentages.
    total = body["total"]
    assert total["nps"]["score"] == 2.2
    assert (total["nps"]["promoters"], total["nps"]["detractors"]) == (5, 4)
    assert figures(total) == (73, 2.2, 31.3, 66.7, 2.63)


async def test_mixed_scales_and_their_top_boxes(client: httpx.AsyncClient, admin_key: str) -> None:
    # Every value of every scale, each under its own source "<metric><scale>-<value>".
    scales = {"csat": (5, 7), "ces": (7, 5), "rating": (5, 10)}
    events = [
        event(
            f"m-{metric}{scale}-{v:02d}",
            "2025-03-12T12:00:00Z",
            "web",
            source=f"{metric}{scale}-{v:02d}",
            scores=[score(metric, v, scale)],
        )
        for metric, metric_scales in scales.items()
        for scale in metric_scales
        for v in range(1, scale + 1)
    ]
    await store(client, admin_key, events)
    whole_day: Params = {"from": "2025-03-12T00:00:00Z", "to": "2025-03-13T00:00:00Z"}
    body = await get_metrics(client, admin_key, {**whole_day, "group_by": "source"})
    by_source = {group["key"]: group for group in body["groups"]}
    top = {key: g["csat"]["score"] for key, g in by_source.items() if key.startswith("csat")}
    # CSAT top-two-box: 4-5 of 5, 6-7 of 7.
    assert top == {
        "csat5-01": 0.0,
        "csat5-02": 0.0,
        "csat5-03": 0.0,
        "csat5-04": 100.0,
        "csat5-05": 100.0,
        "csat7-01": 0.0,
        "csat7-02": 0.0,
        "csat7-03": 0.0,
        "csat7-04": 0.0,
        "csat7-05": 0.0,
        "csat7-06": 100.0,
        "csat7-07": 100.0,
    }
    top = {key: g["ces"]["score"] for key, g in by_source.items() if key.startswith("ces")}
    # CES top box: 5-7 of 7, 4-5 of 5.
    assert top == {
        "ces5-01": 0.0,
        "ces5-02": 0.0,
        "ces5-03": 0.0,
        "ces5-04": 100.0,
        "ces5-05": 100.0,
        "ces7-01": 0.0,
        "ces7-02": 0.0,
        "ces7-03": 0.0,
        "ces7-04": 0.0,
        "ces7-05": 100.0,
        "ces7-06": 100.0,
        "ces7-07": 100.0,
    }
    means = {key: g["rating"]["mean"] for key, g in by_source.items() if key.startswith("rating")}
    # 5-point ratings as they are; 10-point v -> 1 + (v - 1) * 4 / 9: 2 -> 13/9 = 1.444,
    # 3 -> 17/9 = 1.889, 4 -> 7/3 = 2.333, 5 -> 25/9 = 2.778, 6 -> 29/9 = 3.222,
    # 7 -> 11/3 = 3.667, 8 -> 37/9 = 4.111, 9 -> 41/9 = 4.556.
    assert means == {
        "rating5-01": 1.0,
        "rating5-02": 2.0,
        "rating5-03": 3.0,
        "rating5-04": 4.0,
        "rating5-05": 5.0,
        "rating10-01": 1.0,
        "rating10-02": 1.44,
        "rating10-03": 1.89,
        "rating10-04": 2.33,
        "rating10-05": 2.78,
        "rating10-06": 3.22,
        "rating10-07": 3.67,
        "rating10-08": 4.11,
        "rating10-09": 4.56,
        "rating10-10": 5.0,
    }
    # Both scales of each metric count together:
    #   CSAT 2 of 5 + 2 of 7 = 4 of 12 -> 33.3;  CES 2 of 5 + 3 of 7 = 5 of 12 -> 41.7;
    #   rating: 5-point sum 15; 10-point 10 + (55 - 10) * 4 / 9 = 30 -> 45 / 15 = 3.0.
    expected = (12 + 12 + 15, None, 33.3, 41.7, 3.0)
    assert figures(body["total"]) == expected
    assert body["total"]["csat"]["responses"] == 12
    assert body["total"]["ces"]["responses"] == 12
    assert body["total"]["rating"]["responses"] == 15
    # The same through the rollup (a whole day, no source) and the table (partial day).
    assert figures((await get_metrics(client, admin_key, whole_day))["total"]) == expected
    partial: Params = {"from": "2025-03-12T11:00:00Z", "to": "2025-03-12T13:00:00Z"}
    assert figures((await get_metrics(client, admin_key, partial))["total"]) == expected
    # One scale at a time: CSAT 5-point 2 of 5 = 40.0, 7-point 2 of 7 = 28.57 -> 28.6;
    # CES 5-point 2 of 5 = 40.0, 7-point 3 of 7 = 42.86 -> 42.9; rating 10-point 30 / 10.
    one_scale = {
        source: figures(
            (await get_metrics(client, admin_key, {**whole_day, "source": names}))["total"]
        )
        for source, names in {
            "csat5": [f"csat5-{v:02d}" for v in range(1, 6)],
            "csat7": [f"csat7-{v:02d}" for v in range(1, 8)],
            "ces5": [f"ces5-{v:02d}" for v in range(1, 6)],
            "ces7": [f"ces7-{v:02d}" for v in range(1, 8)],
            "rating10": [f"rating10-{v:02d}" for v in range(1, 11)],
        }.items()
    }
    assert one_scale == {
        "csat5": (5, None, 40.0, None, None),
        "csat7": (7, None, 28.6, None, None),
        "ces5": (5, None, None, 40.0, None),
        "ces7": (7, None, None, 42.9, None),
        "rating10": (10, None, None, None, 3.0),
    }


async def test_no_responses_means_null_scores(client: httpx.AsyncClient, admin_key: str) -> None:
    # Nothing at all in the range: zero counts, null scores (not 0.0).
    body = await get_metrics(client, admin_key, WINDOW)
    assert body["total"] == EMPTY
    # Only CSAT answers: every other score stays null, its responses 0.
    await store(
        client, admin_key, [event("only-csat", "2025-03-01T12:00:00Z", "web",
                                  scores=[score("csat", 2, 5)])]
    )  # fmt: skip
    total = (await get_metrics(client, admin_key, WINDOW))["total"]
    assert figures(total) == (1, None, 0.0, None, None)
    assert total["nps"] == EMPTY["nps"]
    assert total["ces"] == {"score": None, "responses": 0}
    assert total["rating"] == {"mean": None, "responses": 0}


# --- grouping -----------------------------------------------------------------------------


@pytest.mark.usefixtures("data")
async def test_group_by_day_is_by_utc_day(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "day"})
    assert body["group_by"] == "day"
    # d2 (sent dated Feb 28) is on Mar 1, d3 (sent dated Mar 1) on Feb 28, and d7 (sent
    # dated Mar 3) on Mar 2: days are UTC days.
    assert keyed(body) == BY_DAY
    assert figures(body["total"]) == TOTAL
    assert body["groups"][0]["nps"] == {
        "score": 50.0,
        "promoters": 1,
        "passives": 1,
        "detractors": 0,
        "responses": 2,
    }


@pytest.mark.usefixtures("data")
async def test_group_by_week_starts_on_monday(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "week"})
    # Fri 02-28, Sat 03-01 and Sun 03-02 are in the week of Monday 02-24; Mon 03-03
    # starts the next. Week of 02-24 (d1, d3, d2, d4, d5, d7): NPS P d1, d5; Pa d3;
    # D d2, d4 -> (2 - 2) / 5 = 0.0; CSAT d1, d3 top, d2 not -> 66.7; CES d4 top, d7 not
    # -> 50.0; rating (4 + 11/3) / 2 = 3.83. Week of 03-03 = day 03-03.
    assert keyed(body) == [
        ("2025-02-24", (6, 0.0, 66.7, 50.0, 3.83)),
        ("2025-03-03", (2, -50.0, 100.0, 100.0, 5.0)),
    ]
    assert all(date.fromisoformat(g["key"]).weekday() == 0 for g in body["groups"])


@pytest.mark.usefixtures("data")
async def test_group_by_month(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "month"})
    # February: d1 and d3 (UTC). March: d2, d4, d5, d6, d7, d8: NPS P d5, Pa d6, D d2,
    # d4, d8 -> (1 - 3) / 5 = -40.0; CSAT d6, d8 top, d2 not -> 66.7; CES d4, d8 top, d7
    # not -> 66.7; rating (4 + 5 + 11/3) / 3 = 38/9 -> 4.22.
    assert keyed(body) == [
        ("2025-02", (2, 50.0, 100.0, None, None)),
        ("2025-03", (6, -40.0, 66.7, 66.7, 4.22)),
    ]


@pytest.mark.usefixtures("data")
async def test_group_by_location_and_channel(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "location_id"})
    # Alphabetical, feedback without a location last under the key null.
    assert keyed(body) == BY_LOCATION
    assert figures(body["total"]) == TOTAL
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "channel"})
    assert keyed(body) == BY_CHANNEL


@pytest.mark.usefixtures("data")
async def test_group_by_touchpoint_journey_stage_and_source(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "touchpoint"})
    # checkout (d1, d4, d6, d8): NPS P, D, Pa, D -> (1 - 2) / 4 = -25.0; CSAT d1, d6, d8
    # top -> 100.0; CES d4, d8 -> 100.0; rating d6 5. delivery d2. support d7.
    # None (d3, d5): NPS Pa, P -> 50.0; CSAT d3 -> 100.0; rating d5 4.
    assert keyed(body) == [
        ("checkout", (4, -25.0, 100.0, 100.0, 5.0)),
        ("delivery", (1, -100.0, 0.0, None, None)),
        ("support", (1, None, None, 0.0, 3.67)),
        (None, (2, 50.0, 100.0, None, 4.0)),
    ]
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "journey_stage"})
    # after_sales (d2, d5): NPS D, P -> 0.0; CSAT d2 not; rating 4. purchase = store-a.
    # None (d4, d7): NPS D -> -100.0; CES d4 top, d7 not -> 50.0; rating 11/3.
    assert keyed(body) == [
        ("after_sales", (2, 0.0, 0.0, None, 4.0)),
        ("purchase", (4, 0.0, 100.0, 100.0, 5.0)),
        (None, (2, -100.0, None, 50.0, 3.67)),
    ]
    body = await get_metrics(client, admin_key, {**WINDOW, "group_by": "source"})
    # pos (d1, d4, d7, d8): NPS P, D, D -> (1 - 2) / 3 = -33.3; CSAT d1, d8 -> 100.0;
    # CES d4, d8 top, d7 not -> 66.7; rating 11/3. survey (d2, d3, d5): NPS D, Pa, P ->
    # 0.0; CSAT d2 not, d3 top -> 50.0; rating 4. None (d6): NPS Pa -> 0.0.
    assert keyed(body) == [
        ("pos", (4, -33.3, 100.0, 66.7, 3.67)),
        ("survey", (3, 0.0, 50.0, None, 4.0)),
        (None, (1, 0.0, 100.0, None, 5.0)),
    ]
    assert figures(body["total"]) == TOTAL


@pytest.mark.usefixtures("data")
async def test_counts_of_groups_add_up_to_the_total(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    counts = (
        ("responses",),
        ("nps", "responses"),
        ("nps", "promoters"),
        ("nps", "passives"),
        ("nps", "detractors"),
        ("csat", "responses"),
        ("ces", "responses"),
        ("rating", "responses"),
        ("sentiment", "negative"),
        ("sentiment", "neutral"),
        ("sentiment", "positive"),
        ("tickets", "opened"),
    )

    def count(group: dict[str, Any], path: tuple[str, ...]) -> int:
        value: Any = group
        for name in path:
            value = value[name]
        assert isinstance(value, int)
        return value

    for dimension in ("channel", "location_id", "touchpoint", "journey_stage", "source"):
        for window in (WINDOW, SHIFTED, EDGES):
            body = await get_metrics(client, admin_key, {**window, "group_by": dimension})
            for path in counts:
                assert sum(count(g, path) for g in body["groups"]) == count(body["total"], path), (
                    dimension,
                    path,
                )
            assert figures(body["total"]) == TOTAL
    for dimension in ("day", "week", "month"):
        body = await get_metrics(client, admin_key, {**WINDOW, "group_by": dimension})
        for path in counts:
            assert sum(count(g, path) for g in body["groups"]) == count(body["total"], path)


@pytest.mark.usefixtures("data")
async def test_every_period_of_the_range_is_listed(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    days = await get_metrics(
        client,
        admin_key,
        {"from": "2025-02-25T00:00:00Z", "to": "2025-03-06T00:00:00Z", "group_by": "day"},
    )
    assert [g["key"] for g in days["groups"]] == [
        "2025-02-25",
        "2025-02-26",
        "2025-02-27",
        "2025-02-28",
        "2025-03-01",
        "2025-03-02",
        "2025-03-03",
        "2025-03-04",
        "2025-03-05",
    ]
    empty = [g for g in days["groups"] if g["key"] in {"2025-02-25", "2025-03-05"}]
    assert empty == [{"key": "2025-02-25", **EMPTY}, {"key": "2025-03-05", **EMPTY}]
    assert keyed(days)[3:7] == BY_DAY

    weeks = await get_metrics(
        client,
        admin_key,
        # From a Wednesday: the first week is keyed by its Monday, before `from`.
        {"from": "2025-02-12T00:00:00Z", "to": "2025-03-20T00:00:00Z", "group_by": "week"},
    )
    assert [(g["key"], g["responses"]) for g in weeks["groups"]] == [
        ("2025-02-10", 0),
        ("2025-02-17", 0),
        ("2025-02-24", 6),
        ("2025-03-03", 2),
        ("2025-03-10", 0),
        ("2025-03-17", 0),
    ]
    assert {k: v for k, v in weeks["groups"][0].items() if k != "key"} == EMPTY

    months = await get_metrics(
        client,
        admin_key,
        {"from": "2024-12-15T00:00:00Z", "to": "2025-05-01T00:00:00Z", "group_by": "month"},
    )
    assert [(g["key"], g["responses"]) for g in months["groups"]] == [
        ("2024-12", 0),
        ("2025-01", 0),
        ("2025-02", 2),
        ("2025-03", 6),
        ("2025-04", 0),
    ]
    # A range ending at midnight does not list the day it ends on.
    body = await get_metrics(
        client,
        admin_key,
        {"from": "2025-02-28T12:00:00Z", "to": "2025-03-02T00:00:00Z", "group_by": "day"},
    )
    assert [g["key"] for g in body["groups"]] == ["2025-02-28", "2025-03-01"]


async def test_week_and_month_keys_across_a_year_end(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    # Wed 2025-01-01 is in the ISO week of Monday 2024-12-30.
    await store(
        client, admin_key, [event("ny", "2025-01-01T00:30:00+01:00", "web", scores=[nps(9)])]
    )  # 2024-12-31 23:30 UTC: still December, still the week of 12-30
    weeks = await get_metrics(
        client,
        admin_key,
        {"from": "2024-12-25T00:00:00Z", "to": "2025-01-08T00:00:00Z", "group_by": "week"},
    )
    assert [(g["key"], g["responses"]) for g in weeks["groups"]] == [
        ("2024-12-23", 0),
        ("2024-12-30", 1),
        ("2025-01-06", 0),
    ]
    months = await get_metrics(
        client,
        admin_key,
        {"from": "2024-12-25T00:00:00Z", "to": "2025-01-08T00:00:00Z", "group_by": "month"},
    )
    assert [(g["key"], g["responses"]) for g in months["groups"]] == [
        ("2024-12", 1),
        ("2025-01", 0),
    ]


# --- filters ------------------------------------------------------------------------------


@pytest.mark.usefixtures("data")
async def test_filters_repeat_and_combine(client: httpx.AsyncClient, admin_key: str) -> None:
    cases: list[tuple[Params, Figures]] = [
        # web + sms: d1, d2, d3, d6, d8: NPS P d1; Pa d3, d6; D d2, d8 -> (1 - 2) / 5 =
        # -20.0; CSAT d1, d3, d6, d8 top, d2 not -> 80.0; CES d8 -> 100.0; rating d6 5.
        ({"channel": ["web", "sms"]}, (5, -20.0, 80.0, 100.0, 5.0)),
        ({"channel": "email"}, (1, 100.0, None, None, 4.0)),
        ({"channel": "voice"}, (0, None, None, None, None)),
        # store-b + store-c: d2, d5, d7: NPS D, P -> 0.0; CSAT d2 not -> 0.0; CES d7 not
        # -> 0.0; rating (4 + 11/3) / 2 = 23/6 -> 3.83.
        ({"location_id": ["store-b", "store-c"]}, (3, 0.0, 0.0, 0.0, 3.83)),
        ({"location_id": "store-a"}, (4, 0.0, 100.0, 100.0, 5.0)),
        ({"touchpoint": "checkout"}, (4, -25.0, 100.0, 100.0, 5.0)),
        # checkout + delivery: d1, d2, d4, d6, d8: NPS P d1, Pa d6, D d2, d4, d8 -> -40.0;
        # CSAT d1, d6, d8 top, d2 not -> 75.0; CES d4, d8 -> 100.0; rating d6 5.
        ({"touchpoint": ["checkout", "delivery"]}, (5, -40.0, 75.0, 100.0, 5.0)),
        ({"source": "survey"}, (3, 0.0, 50.0, None, 4.0)),
        # survey + pos (all but d6): NPS P d1, d5; Pa d3; D d2, d4, d8 -> (2 - 3) / 6 =
        # -16.7; CSAT d1, d3, d8 top, d2 not -> 75.0; CES d4, d8 top, d7 not -> 66.7;
        # rating (4 + 11/3) / 2 -> 3.83.
        ({"source": ["survey", "pos"]}, (7, -16.7, 75.0, 66.7, 3.83)),
        # web, store-a, checkout, pos: d1 and d8: NPS P, D -> 0.0; CSAT both top; CES d8.
        (
            {"channel": "web", "location_id": "store-a", "touchpoint": "checkout",
             "source": "pos"},
            (2, 0.0, 100.0, 100.0, None),
        ),
        # Filters on different dimensions must all hold: no sms event at store-a.
        ({"channel": "sms", "location_id": "store-a"}, (0, None, None, None, None)),
    ]  # fmt: skip
    for params, expected in cases:
        for window in (WINDOW, EDGES):
            for path in ({}, FROM_TABLE):
                body = await get_metrics(client, admin_key, {**window, **params, **path})
                assert figures(body["total"]) == expected, (params, window, path)


@pytest.mark.usefixtures("data")
async def test_values_named_in_a_filter_are_listed_even_without_data(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    cases: list[tuple[Params, list[tuple[str | None, int]]]] = [
        ({"group_by": "channel", "channel": ["web", "voice"]}, [("voice", 0), ("web", 4)]),
        (
            {"group_by": "location_id", "location_id": ["store-z", "store-a"]},
            [("store-a", 4), ("store-z", 0)],
        ),
        (
            {"group_by": "touchpoint", "touchpoint": ["checkout", "nowhere"]},
            [("checkout", 4), ("nowhere", 0)],
        ),
        ({"group_by": "source", "source": ["survey", "kiosk"]}, [("kiosk", 0), ("survey", 3)]),
        # Filtering on one dimension and grouping by another lists the groups with data.
        ({"group_by": "channel", "location_id": "store-a"}, [("web", 4)]),
        (
            {"group_by": "location_id", "channel": ["web", "sms"]},
            [("store-a", 4), ("store-b", 1)],
        ),
    ]
    for params, expected in cases:
        body = await get_metrics(client, admin_key, {**WINDOW, **params})
        assert [(g["key"], g["responses"]) for g in body["groups"]] == expected, params
    body = await get_metrics(
        client, admin_key, {**WINDOW, "group_by": "location_id", "location_id": "store-z"}
    )
    assert body["groups"] == [{"key": "store-z", **EMPTY}]
    assert body["total"] == EMPTY


# --- ranges -------------------------------------------------------------------------------


@pytest.mark.usefixtures("data")
async def test_from_is_inclusive_and_to_exclusive(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    cases: list[tuple[str, str, list[str]]] = [
        # d6 is at 03-03 00:00:00Z exactly, d5 one microsecond before.
        ("2025-03-03T00:00:00Z", "2025-03-04T00:00:00Z", ["d6", "d8"]),
        ("2025-02-28T00:00:00Z", "2025-03-03T00:00:00Z", ["d1", "d2", "d3", "d4", "d5", "d7"]),
        ("2025-03-02T23:59:59.999999Z", "2025-03-03T00:00:00Z", ["d5"]),
        ("2025-03-02T23:59:59.999999Z", "2025-03-03T00:00:00.000001Z", ["d5", "d6"]),
        # Inside one day: d2 at 00:30Z is in, d4 at 10:00Z is not...
        ("2025-03-01T00:30:00Z", "2025-03-01T10:00:00Z", ["d2"]),
        # ...and a microsecond later it is the other way round.
        ("2025-03-01T00:30:00.000001Z", "2025-03-01T10:00:00.000001Z", ["d4"]),
        # The same instants written with other offsets.
        ("2025-03-01T01:30:00+01:00", "2025-03-01T05:00:00-05:00", ["d2"]),
    ]
    channel_of = {e["event_id"]: e["channel"] for e in DATA}
    for start, end, expected in cases:
        body = await get_metrics(client, admin_key, {"from": start, "to": end})
        assert body["total"]["responses"] == len(expected), (start, end)
        # Which events: their channels, counted.
        body = await get_metrics(
            client, admin_key, {"from": start, "to": end, "group_by": "channel"}
        )
        found = {g["key"]: g["responses"] for g in body["groups"]}
        assert found == Counter(channel_of[e] for e in expected), (start, end)


@pytest.mark.usefixtures("data")
async def test_partial_days_at_both_edges(client: httpx.AsyncClient, admin_key: str) -> None:
    # 02-28 23:00Z to 03-03 01:00Z: d3 (23:30) | 03-01 and 03-02 whole (d2, d4, d5, d7)
    # | d6 (00:00). Written with +01:00, and answered in UTC.
    params: Params = {"from": "2025-03-01T00:00:00+01:00", "to": "2025-03-03T02:00:00+01:00"}
    body = await get_metrics(client, admin_key, {**params, "group_by": "day"})
    assert body["from"] == "2025-02-28T23:00:00Z"
    assert body["to"] == "2025-03-03T01:00:00Z"
    # 02-28: d3 (Pa, CSAT top) -> NPS 0.0. 03-01, 03-02: as whole days. 03-03: d6 (Pa,
    # CSAT top, rating 5).
    assert keyed(body) == [
        ("2025-02-28", (1, 0.0, 100.0, None, None)),
        BY_DAY[1],
        BY_DAY[2],
        ("2025-03-03", (1, 0.0, 100.0, None, 5.0)),
    ]
    # d3, d2, d4, d5, d7, d6: NPS P d5; Pa d3, d6; D d2, d4 -> (1 - 2) / 5 = -20.0; CSAT
    # d3, d6 top, d2 not -> 66.7; CES d4 top, d7 not -> 50.0; rating (4 + 11/3 + 5) / 3 =
    # 38/9 -> 4.22.
    assert figures(body["total"]) == (6, -20.0, 66.7, 50.0, 4.22)
    # Events in the partial days, at both edges exactly: all eight, days as in BY_DAY.
    body = await get_metrics(client, admin_key, {**EDGES, "group_by": "day"})
    assert keyed(body) == BY_DAY
    assert figures(body["total"]) == TOTAL


@pytest.mark.usefixtures("data")
async def test_rollup_and_feedback_table_agree(client: httpx.AsyncClient, admin_key: str) -> None:
    # Totals: the rollup alone (WINDOW), rollup and table (SHIFTED, EDGES), and the table
    # alone (FROM_TABLE) give the same figures, also when filtered.
    filters: list[Params] = [
        {},
        {"channel": ["web", "chat"]},
        {"location_id": ["store-a", "store-c"]},
        {"channel": "sms", "location_id": ["store-b"]},
    ]
    for params in filters:
        answers = [
            (await get_metrics(client, admin_key, {**window, **params, **path}))["total"]
            for window in (WINDOW, SHIFTED, EDGES)
            for path in ({}, FROM_TABLE)
        ]
        assert all(answer == answers[0] for answer in answers), params
    assert figures(answers[0]) == (1, -100.0, 0.0, None, None)  # the last filter: d2

    # Groups: every group the rollup answers equals the table's figures for that group
    # alone (its period, location or channel as the range or filter).
    def without_key(group: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in group.items() if name != "key"}

    periods: dict[str, list[tuple[str, timedelta]]] = {
        "day": [(str(key), timedelta(days=1)) for key, _ in BY_DAY],
        "week": [("2025-02-24", timedelta(days=7)), ("2025-03-03", timedelta(days=7))],
        "month": [("2025-02", timedelta(days=28)), ("2025-03", timedelta(days=31))],
    }
    for group_by, spans in periods.items():
        body = await get_metrics(client, admin_key, {**WINDOW, "group_by": group_by})
        assert [g["key"] for g in body["groups"]] == [key for key, _ in spans]
        for group, (key, length) in zip(body["groups"], spans, strict=True):
            start = datetime.fromisoformat(key if len(key) == 10 else f"{key}-01")
            span: Params = {
                "from": start.replace(tzinfo=UTC).isoformat(),
                "to": (start + length).replace(tzinfo=UTC).isoformat(),
            }
            table = await get_metrics(client, admin_key, {**span, "group_by": "source"})
            assert without_key(group) == table["total"], (group_by, key)
    for group_by in ("location_id", "channel"):
        body = await get_metrics(client, admin_key, {**WINDOW, "group_by": group_by})
        for group in body["groups"]:
            if group["key"] is None:  # not a filter value: checked via the sums above
                continue
            table = await get_metrics(
                client, admin_key, {**WINDOW, group_by: group["key"], **FROM_TABLE}
            )
            assert without_key(group) == table["total"], (group_by, group["key"])


@pytest.mark.usefixtures("data")
async def test_whole_days_are_read_from_the_rollup(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # Which path answers is invisible from outside when both are right; skewing one
    # rollup row shows it: whole days come from the rollup, partial days, touchpoint and
    # source from the feedback table.
    await execute(
        state,
        "UPDATE feedback_daily_rollup SET responses = responses + 100 "
        "WHERE day = '2025-03-01' AND channel = 'sms'",
    )
    assert (await get_metrics(client, admin_key, WINDOW))["total"]["responses"] == 108
    assert (await get_metrics(client, admin_key, SHIFTED))["total"]["responses"] == 108
    assert (await get_metrics(client, admin_key, EDGES))["total"]["responses"] == 108
    assert (await get_metrics(client, admin_key, {**WINDOW, **FROM_TABLE}))["total"][
        "responses"
    ] == 8
    partial_day_1: Params = {"from": "2025-03-01T00:00:00.000001Z", "to": "2025-03-02T00:00:00Z"}
    assert (await get_metrics(client, admin_key, partial_day_1))["total"]["responses"] == 2
    for params in ({"group_by": "touchpoint"}, {"source": ["pos", "survey"]}):
        body = await get_metrics(client, admin_key, {**WINDOW, **params})
        assert body["total"]["responses"] in {7, 8}, params  # from the table: no +100


# --- defaults and refusals ----------------------------------------------------------------


async def test_default_range_is_the_30_days_up_to_now(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    now = datetime.now(UTC)
    await store(
        client,
        admin_key,
        [
            event("inside", (now - timedelta(days=29, hours=23)).isoformat(), "web",
                  scores=[nps(10)]),
            event("recent", (now - timedelta(minutes=1)).isoformat(), "web", scores=[nps(9)]),
            event("outside", (now - timedelta(days=30, minutes=5)).isoformat(), "web",
                  scores=[nps(0)]),
        ],
    )  # fmt: skip
    body = await get_metrics(client, admin_key, {})
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert end - start == timedelta(days=30)
    assert abs((end - now).total_seconds()) < 60
    assert body["total"]["nps"]["promoters"] == 2
    assert body["total"]["responses"] == 2
    # By day: every UTC day touched by the 30 days, the first and last one partial.
    days = await get_metrics(client, admin_key, {"group_by": "day"})
    first = datetime.fromisoformat(days["from"]).date()
    last = (datetime.fromisoformat(days["to"]) - timedelta(microseconds=1)).date()
    assert [g["key"] for g in days["groups"]] == [
        (first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)
    ]
    assert sum(g["responses"] for g in days["groups"]) == 2
    # Only `to`: the 30 days before it. Only `from`: up to now.
    body = await get_metrics(client, admin_key, {"to": "2025-03-04T00:00:00Z"})
    assert body["from"] == "2025-02-02T00:00:00Z"
    body = await get_metrics(
        client, admin_key, {"from": (now - timedelta(days=40)).isoformat().replace("+00:00", "Z")}
    )
    assert abs((datetime.fromisoformat(body["to"]) - now).total_seconds()) < 60
    assert body["total"]["responses"] == 3


async def test_invalid_requests_are_422_problems(client: httpx.AsyncClient, admin_key: str) -> None:
    cases: list[tuple[Params, list[str | int]]] = [
        ({"group_by": "hour"}, ["query", "group_by"]),
        ({"group_by": "customer_id"}, ["query", "group_by"]),
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "from"]),
        ({"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, ["query", "from"]),
        # The same instant written twice: from == to.
        ({"from": "2025-03-01T01:00:00+01:00", "to": "2025-03-01T00:00:00Z"}, ["query", "from"]),
        ({"from": "2025-03-01T00:00:00"}, ["query", "from"]),  # no offset
        ({"to": "2025-03-01"}, ["query", "to"]),  # a date, not a date-time
        ({"channel": "fax"}, ["query", "channel", 0]),
        ({"location_id": ""}, ["query", "location_id", 0]),
        ({"touchpoint": "x" * 65}, ["query", "touchpoint", 0]),
        # 2022-01-01 + 1,001 days: one day too many by day...
        (
            {"from": "2022-01-01T00:00:00Z", "to": "2024-09-28T00:00:00Z", "group_by": "day"},
            ["query", "group_by"],
        ),
        # ...and a microsecond too many.
        (
            {"from": "2022-01-01T00:00:00Z", "to": "2024-09-27T00:00:00.000001Z",
             "group_by": "day"},
            ["query", "group_by"],
        ),
        # 1,001 weeks (Mon 2000-01-03 + 7,007 days = Mon 2019-03-11).
        (
            {"from": "2000-01-03T00:00:00Z", "to": "2019-03-11T00:00:00.000001Z",
             "group_by": "week"},
            ["query", "group_by"],
        ),
        ({"from": "1900-01-01T00:00:00Z", "to": "1983-06-01T00:00:00Z", "group_by": "month"},
         ["query", "group_by"]),  # 1,001 months: Jan 1900 .. May 1983
    ]  # fmt: skip
    for params, loc in cases:
        response = await client.get("/v1/metrics", params=params, headers=auth(admin_key))
        body = assert_problem(response, 422)
        assert loc in [error["loc"] for error in body.get("errors", [])], (params, body)


async def test_period_limit_boundaries(client: httpx.AsyncClient, admin_key: str) -> None:
    # 2022-01-01 + 1,000 days = 2024-09-27 (365 + 365 + 270; 2024 is a leap year, Jan-Aug
    # have 244 days, + 26): exactly 1,000 days is allowed.
    body = await get_metrics(
        client,
        admin_key,
        {"from": "2022-01-01T00:00:00Z", "to": "2024-09-27T00:00:00Z", "group_by": "day"},
    )
    assert len(body["groups"]) == 1_000
    assert (body["groups"][0]["key"], body["groups"][-1]["key"]) == ("2022-01-01", "2024-09-26")
    # Over 1,000 days is fine by week or month.
    body = await get_metrics(
        client,
        admin_key,
        {"from": "2020-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z", "group_by": "month"},
    )
    assert len(body["groups"]) == 60
    assert (body["groups"][0]["key"], body["groups"][-1]["key"]) == ("2020-01", "2024-12")


async def test_ranges_at_the_edges_of_the_calendar(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    # Valid dates are answered, never a 500: periods and default ranges end where the
    # calendar does (year 1, 9999-12-31).
    edges: list[Params] = [
        {"to": "0001-01-05T00:00:00Z"},
        {"from": "9999-12-31T01:00:00Z", "to": "9999-12-31T02:00:00Z"},
        {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T23:00:00Z", "group_by": "day"},
        {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T23:00:00Z", "group_by": "week"},
        {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T23:00:00Z", "group_by": "month"},
        {"from": "0001-01-01T00:00:00Z", "to": "0001-01-10T00:00:00Z", "group_by": "week"},
        {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"},
    ]
    for params in edges:
        body = await get_metrics(client, admin_key, params)
        assert body["total"] == EMPTY, params
    body = await get_metrics(client, admin_key, {"to": "0001-01-05T00:00:00Z"})
    assert body["from"] == "0001-01-01T00:00:00Z"  # the 30 days cannot reach further back
    body = await get_metrics(client, admin_key, edges[2])
    assert (body["groups"][0]["key"], body["groups"][-1]["key"]) == ("9999-12-01", "9999-12-31")
    assert len(body["groups"]) == 31
    # Millennia by day are refused at once: counting stops past 1,000 periods (walking
    # all 3.65 million days took seconds of the event loop).
    started = asyncio.get_running_loop().time()
    response = await client.get(
        "/v1/metrics",
        params={"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z", "group_by": "day"},
        headers=auth(admin_key),
    )
    assert_problem(response, 422)
    assert asyncio.get_running_loop().time() - started < 1.5


# --- sentiment ----------------------------------------------------------------------------


def migration_backfill() -> str:
    """The rollup migration's backfill statement (the aggregation, frozen at revision
    0003, that fills the rollup from stored feedback)."""
    path = REPO_ROOT / "migrations" / "versions" / "20261122_metrics_rollup.py"
    spec = importlib.util.spec_from_file_location("metrics_rollup_revision", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    backfill: str = module._BACKFILL
    return backfill


async def rebuild_rollup(state: AppState) -> None:
    """What the migration does: the rollup recomputed from the feedback table."""
    async with state.sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM feedback_daily_rollup"))
        await session.execute(text(migration_backfill()))


ROLLUP_ROWS = "SELECT * FROM feedback_daily_rollup ORDER BY day, location_id, channel"

# Feedback with text: the labels are set in SQL afterwards (and the rollup rebuilt), so
# the figures do not depend on what the text analyser makes of the words.
#   s1 03-01 web   store-a  positive      s4 03-02 sms   (none)   positive
#   s2 03-01 web   store-a  negative      s5 03-02 web   store-a  null (e.g. unsupported)
#   s3 03-01 sms   store-b  neutral       s6 03-02 email store-b  null (no text)
SENTIMENT_EVENTS = [
    event("s1", "2025-03-01T10:00:00Z", "web", location_id="store-a", text="Lovely staff."),
    event("s2", "2025-03-01T11:00:00Z", "web", location_id="store-a", text="Queue too long."),
    event("s3", "2025-03-01T12:00:00Z", "sms", location_id="store-b", text="Parcel arrived."),
    event("s4", "2025-03-02T09:00:00Z", "sms", text="Great, thanks!"),
    event("s5", "2025-03-02T10:00:00Z", "web", location_id="store-a", text="Ok."),
    event("s6", "2025-03-02T11:00:00Z", "email", location_id="store-b", scores=[nps(9)]),
]
LABELS = {"s1": "positive", "s2": "negative", "s3": "neutral", "s4": "positive"}
SENTIMENT_WINDOW: Params = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-03T00:00:00Z"}
# Shorter than two days and not from midnight: no whole day, the feedback table alone.
SENTIMENT_TABLE: Params = {"from": "2025-03-01T01:00:00Z", "to": "2025-03-02T23:00:00Z"}


async def test_rollup_written_at_ingest_equals_the_migration_backfill(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # Several batches adding to the same rollup rows, text with whatever sentiment the
    # analyser finds: the incremental sums equal a recomputation from scratch.
    await store(client, admin_key, DATA[:3])
    await store(client, admin_key, DATA[3:] + SENTIMENT_EVENTS[:3])
    await store(client, admin_key, SENTIMENT_EVENTS[3:])
    written = await fetch(state, ROLLUP_ROWS)
    assert sum(row[3] for row in written) == 14  # responses: 8 + 6
    await rebuild_rollup(state)
    assert await fetch(state, ROLLUP_ROWS) == written


async def test_sentiment_counts(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory, state: AppState
) -> None:
    await store(client, admin_key, SENTIMENT_EVENTS)
    await execute(
        state,
        "UPDATE feedback SET sentiment_label = labels.label, "
        "sentiment_score = CASE labels.label WHEN 'positive' THEN 0.8 "
        "WHEN 'negative' THEN -0.8 WHEN 'neutral' THEN 0.0 END "
        "FROM (SELECT key AS event_id, value AS label FROM json_each_text(CAST(:labels AS json))"
        ") AS labels WHERE feedback.event_id = labels.event_id",
        labels=json.dumps(LABELS),
    )
    await execute(
        state,
        "UPDATE feedback SET sentiment_label = NULL, sentiment_score = NULL "
        "WHERE event_id IN ('s5', 's6')",
    )
    await rebuild_rollup(state)
    # Totals: positive s1, s4; negative s2; neutral s3 (s5 and s6 have no label).
    # By day: 03-01 s1 +, s2 -, s3 =; 03-02 s4 +. By location: store-a s1 +, s2 -;
    # store-b s3 =; none s4 +. By channel: email none; sms s3 =, s4 +; web s1 +, s2 -.
    expected: dict[str | None, list[tuple[str | None, tuple[int, int, int]]]] = {
        None: [],
        "day": [("2025-03-01", (1, 1, 1)), ("2025-03-02", (0, 0, 1))],
        "location_id": [("store-a", (1, 0, 1)), ("store-b", (0, 1, 0)), (None, (0, 0, 1))],
        "channel": [("email", (0, 0, 0)), ("sms", (0, 1, 1)), ("web", (1, 0, 1))],
    }

    def counts(group: dict[str, Any]) -> tuple[int, int, int]:
        s = group["sentiment"]
        return (s["negative"], s["neutral"], s["positive"])

    # The rollup (whole days) and the table (partial days) agree.
    for window in (SENTIMENT_WINDOW, SENTIMENT_TABLE):
        for group_by, groups in expected.items():
            extra: Params = {"group_by": group_by} if group_by else {}
            body = await get_metrics(client, admin_key, {**window, **extra})
            assert counts(body["total"]) == (1, 1, 2), (window, group_by)
            listed = [(g["key"], counts(g)) for g in body["groups"]]
            if group_by == "day":
                listed = [item for item in listed if item[0] in {"2025-03-01", "2025-03-02"}]
            assert listed == groups, (window, group_by)
            assert body["total"]["responses"] == 6
    # Only the table answers by touchpoint or source: the same totals.
    body = await get_metrics(client, admin_key, {**SENTIMENT_WINDOW, "group_by": "touchpoint"})
    assert [(g["key"], counts(g)) for g in body["groups"]] == [(None, (1, 1, 2))]
    # A restricted key counts its locations only: store-a s1 +, s2 -.
    key = await make_key(Scope.METRICS_READ, locations=["store-a"])
    for window in (SENTIMENT_WINDOW, SENTIMENT_TABLE):
        body = await get_metrics(client, key, window)
        assert counts(body["total"]) == (1, 0, 1)


# --- tickets ------------------------------------------------------------------------------

# The default rules open a ticket for every poor score here: NPS <= 3 "Strong detractors"
# (high, 24 h), other poor scores "Poor scores" (normal, 48 h). One open ticket per
# customer: t7 (the customer of t1, later) is attached to t1's ticket. t6 is no ticket.
TICKET_EVENTS = [
    event("t1", "2025-03-01T09:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          scores=[nps(2)]),
    event("t2", "2025-03-01T10:00:00Z", "web", location_id="store-a", touchpoint="lobby",
          journey_stage="purchase", scores=[nps(5)]),
    event("t3", "2025-03-01T11:00:00Z", "sms", location_id="store-b", source="ivr",
          scores=[nps(6)]),
    event("t4", "2025-03-02T09:00:00Z", "sms", location_id="store-b", scores=[score("csat", 1, 5)]),
    {"event_id": "t5", "occurred_at": "2025-03-02T10:00:00Z", "channel": "in_store",
     "scores": [score("ces", 2, 7)]},  # anonymous, no location
    event("t6", "2025-03-02T11:00:00Z", "web", location_id="store-a", touchpoint="checkout",
          scores=[nps(10)]),
]  # fmt: skip
ATTACHED = {
    **event("t7", "2025-03-02T12:00:00Z", "web", location_id="store-a", touchpoint="lobby",
            scores=[nps(1)]),
    "customer": {"id": "C-t1"},
}  # fmt: skip
TICKET_WINDOW: Params = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-03T00:00:00Z"}


def tickets_of(group: dict[str, Any]) -> tuple[int, int, int, float | None, int]:
    """opened, resolved, open_now, median_resolution_seconds, sla_breached."""
    t = group["tickets"]
    return (t["opened"], t["resolved"], t["open_now"], t["median_resolution_seconds"],
            t["sla_breached"])  # fmt: skip


@pytest.fixture
async def tickets(client: httpx.AsyncClient, admin_key: str, state: AppState) -> None:
    await store(client, admin_key, TICKET_EVENTS)
    response = await client.post("/v1/feedback", json=ATTACHED, headers=auth(admin_key))
    assert response.status_code == 202, response.text
    opened_by = dict(
        await fetch(
            state,
            "SELECT f.event_id, t.id FROM tickets t JOIN feedback f ON f.ticket_id = t.id "
            "AND f.id = (SELECT min(o.id) FROM feedback o WHERE o.ticket_id = t.id)",
        )
    )
    assert set(opened_by) == {"t1", "t2", "t3", "t4", "t5"}
    assert response.json()["ticket_id"] == str(opened_by["t1"])  # t7 attached
    for event_id, status in (
        ("t1", "resolved"),
        ("t2", "resolved"),
        ("t3", "closed"),
        ("t4", "in_progress"),
        ("t5", "waiting"),
    ):
        patched = await client.patch(
            f"/v1/tickets/{opened_by[event_id]}", json={"status": status}, headers=auth(admin_key)
        )
        assert patched.status_code == 200, patched.text
    # Tickets open at ingest time (now); date them into March 2025, 5 minutes after
    # their feedback, with crafted resolution times and SLA due times:
    #   T1 resolved after 1 h (3,600 s), due after 24 h: in time
    #   T2 resolved after 3 h (10,800 s), due after 2 h: breached
    #   T3 closed after 30 min (1,800 s), due at that very instant: in time
    #   T4 in progress, due tomorrow: not breached (yet)
    #   T5 waiting, due 2025-03-04: breached
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    for event_id, created, resolved_after, due in (
        ("t1", "2025-03-01T09:05:00Z", timedelta(hours=1), timedelta(hours=24)),
        ("t2", "2025-03-01T10:05:00Z", timedelta(hours=3), timedelta(hours=2)),
        ("t3", "2025-03-01T11:05:00Z", timedelta(minutes=30), timedelta(minutes=30)),
        ("t4", "2025-03-02T09:05:00Z", None, tomorrow),
        ("t5", "2025-03-02T10:05:00Z", None, datetime(2025, 3, 4, tzinfo=UTC)),
    ):
        created_at = datetime.fromisoformat(created)
        await execute(
            state,
            "UPDATE tickets SET created_at = :created, resolved_at = :resolved, "
            "sla_due_at = :due WHERE id = :id",
            id=opened_by[event_id],
            created=created_at,
            resolved=created_at + resolved_after if resolved_after else None,
            due=created_at + due if isinstance(due, timedelta) else due,
        )


async def test_tickets_opened_now_are_not_in_a_past_range(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    # Tickets count in the range they were opened in, not that of their feedback: five
    # tickets opened just now by March 2025 feedback.
    await store(client, admin_key, TICKET_EVENTS)
    past = await get_metrics(client, admin_key, TICKET_WINDOW)
    assert past["total"]["tickets"] == NO_TICKETS
    assert past["total"]["responses"] == 6
    recent = await get_metrics(client, admin_key, {})
    # All five are open, and none has reached its SLA yet.
    assert tickets_of(recent["total"]) == (5, 0, 5, None, 0)
    assert recent["total"]["responses"] == 0


@pytest.mark.usefixtures("tickets")
async def test_ticket_figures_in_total(client: httpx.AsyncClient, admin_key: str) -> None:
    body = await get_metrics(client, admin_key, TICKET_WINDOW)
    # Opened 5; resolved T1, T2, T3 (closed counts); open now T4, T5; median of 1,800,
    # 3,600 and 10,800 s = 3,600; breached T2 (late) and T5 (open, past due).
    assert body["total"]["tickets"] == {
        "opened": 5,
        "resolved": 3,
        "open_now": 2,
        "median_resolution_seconds": 3600.0,
        "sla_breached": 2,
    }
    # from inclusive, to exclusive, on the ticket's opening time: T1 only.
    body = await get_metrics(
        client, admin_key, {"from": "2025-03-01T09:05:00Z", "to": "2025-03-01T10:05:00Z"}
    )
    assert tickets_of(body["total"]) == (1, 1, 0, 3600.0, 0)


@pytest.mark.usefixtures("tickets")
async def test_ticket_figures_per_group(client: httpx.AsyncClient, admin_key: str) -> None:
    expected: dict[str, list[tuple[str | None, tuple[int, int, int, float | None, int]]]] = {
        # store-a: T1, T2 -> median (3,600 + 10,800) / 2 = 7,200; T2 breached.
        # store-b: T3 (closed, 1,800 s), T4 (open). No location: T5 (open, breached).
        "location_id": [
            ("store-a", (2, 2, 0, 7200.0, 1)),
            ("store-b", (2, 1, 1, 1800.0, 0)),
            (None, (1, 0, 1, None, 1)),
        ],
        "channel": [
            ("in_store", (1, 0, 1, None, 1)),
            ("sms", (2, 1, 1, 1800.0, 0)),
            ("web", (2, 2, 0, 7200.0, 1)),
        ],
        # By the UTC day the ticket was opened: 03-01 T1, T2, T3; 03-02 T4, T5.
        "day": [
            ("2025-03-01", (3, 3, 0, 3600.0, 1)),
            ("2025-03-02", (2, 0, 2, None, 1)),
        ],
        "week": [("2025-02-24", (5, 3, 2, 3600.0, 2))],
        "month": [("2025-03", (5, 3, 2, 3600.0, 2))],
        # By the feedback that opened the ticket: T1 checkout (t7, lobby, was only
        # attached), T2 lobby, T3-T5 none -> median of 1,800 alone.
        "touchpoint": [
            ("checkout", (1, 1, 0, 3600.0, 0)),
            ("lobby", (1, 1, 0, 10800.0, 1)),
            (None, (3, 1, 2, 1800.0, 1)),
        ],
        # purchase: T2. None: T1, T3, T4, T5 -> median (1,800 + 3,600) / 2 = 2,700.
        "journey_stage": [
            ("purchase", (1, 1, 0, 10800.0, 1)),
            (None, (4, 2, 2, 2700.0, 1)),
        ],
        # ivr: T3. None: T1, T2, T4, T5 -> median 7,200; breached T2, T5.
        "source": [
            ("ivr", (1, 1, 0, 1800.0, 0)),
            (None, (4, 2, 2, 7200.0, 2)),
        ],
    }
    for group_by, groups in expected.items():
        body = await get_metrics(client, admin_key, {**TICKET_WINDOW, "group_by": group_by})
        assert [(g["key"], tickets_of(g)) for g in body["groups"]] == groups, group_by
        assert tickets_of(body["total"]) == (5, 3, 2, 3600.0, 2), group_by
    # Feedback and ticket figures of a group go together: store-a has t1, t2, t6, t7.
    body = await get_metrics(client, admin_key, {**TICKET_WINDOW, "group_by": "location_id"})
    assert body["groups"][0]["responses"] == 4


@pytest.mark.usefixtures("tickets")
async def test_ticket_figures_filtered(client: httpx.AsyncClient, admin_key: str) -> None:
    cases: list[tuple[Params, tuple[int, int, int, float | None, int]]] = [
        ({"location_id": "store-a"}, (2, 2, 0, 7200.0, 1)),
        ({"location_id": ["store-b", "store-z"]}, (2, 1, 1, 1800.0, 0)),
        ({"channel": "sms"}, (2, 1, 1, 1800.0, 0)),
        ({"channel": ["in_store", "web"]}, (3, 2, 1, 7200.0, 2)),
        # By the opening feedback: t7 (lobby) does not make T1 a lobby ticket.
        ({"touchpoint": "checkout"}, (1, 1, 0, 3600.0, 0)),
        ({"touchpoint": "lobby"}, (1, 1, 0, 10800.0, 1)),
        ({"source": "ivr"}, (1, 1, 0, 1800.0, 0)),
        ({"touchpoint": "lobby", "location_id": "store-b"}, (0, 0, 0, None, 0)),
    ]
    for params, expected in cases:
        body = await get_metrics(client, admin_key, {**TICKET_WINDOW, **params})
        assert tickets_of(body["total"]) == expected, params


@pytest.mark.usefixtures("tickets")
async def test_reopened_tickets_are_open_again(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    (ticket_id,) = (await fetch(state, "SELECT ticket_id FROM feedback WHERE event_id = 't2'"))[0]
    response = await client.patch(
        f"/v1/tickets/{ticket_id}", json={"status": "open"}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    body = await get_metrics(client, admin_key, TICKET_WINDOW)
    # T2 no longer resolved: resolved T1, T3 -> median (1,800 + 3,600) / 2 = 2,700; open
    # T2, T4, T5; breached T2 (open, due 03-01 12:05) and T5.
    assert tickets_of(body["total"]) == (5, 2, 3, 2700.0, 2)


# --- location-restricted keys and access ---------------------------------------------------


@pytest.mark.usefixtures("data")
async def test_restricted_key_sees_its_locations_only(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key(Scope.METRICS_READ, locations=["store-a", "store-b"])
    # d1, d2, d3, d5, d6, d8 (d4 has no location, d7 is store-c): NPS P d1, d5; Pa d3,
    # d6; D d2, d8 -> 0.0; CSAT d1, d3, d6, d8 top, d2 not -> 80.0; CES d8 -> 100.0;
    # rating d5 4, d6 5 -> 4.5.
    for window in (WINDOW, EDGES):
        body = await get_metrics(client, key, window)
        assert figures(body["total"]) == (6, 0.0, 80.0, 100.0, 4.5)
        body = await get_metrics(client, key, {**window, **FROM_TABLE})
        assert figures(body["total"]) == (6, 0.0, 80.0, 100.0, 4.5)
        body = await get_metrics(client, key, {**window, "group_by": "location_id"})
        assert keyed(body) == BY_LOCATION[:2]
        body = await get_metrics(client, key, {**window, "group_by": "channel"})
        assert [(g["key"], g["responses"]) for g in body["groups"]] == [
            ("email", 1),
            ("sms", 1),
            ("web", 4),
        ]
        body = await get_metrics(client, key, {**window, "group_by": "touchpoint"})
        assert [(g["key"], g["responses"]) for g in body["groups"]] == [
            ("checkout", 3),
            ("delivery", 1),
            (None, 2),
        ]
    body = await get_metrics(client, key, {**WINDOW, "group_by": "day"})
    assert [(g["key"], g["responses"]) for g in body["groups"]] == [
        ("2025-02-28", 2),
        ("2025-03-01", 1),
        ("2025-03-02", 1),
        ("2025-03-03", 2),
    ]
    # Its own locations may be named; others not, not even alongside its own.
    body = await get_metrics(client, key, {**WINDOW, "location_id": "store-b"})
    assert figures(body["total"]) == BY_LOCATION[1][1]
    for named in ("store-c", ["store-a", "store-c"]):
        response = await client.get(
            "/v1/metrics", params={**WINDOW, "location_id": named}, headers=auth(key)
        )
        problem = assert_problem(response, 403)
        assert "store-c" in problem["detail"]


@pytest.mark.usefixtures("tickets")
async def test_restricted_key_counts_its_tickets_only(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key(Scope.METRICS_READ, locations=["store-a"])
    body = await get_metrics(client, key, {**TICKET_WINDOW, "group_by": "day"})
    assert tickets_of(body["total"]) == (2, 2, 0, 7200.0, 1)  # T1 and T2
    assert [(g["key"], tickets_of(g)) for g in body["groups"]] == [
        ("2025-03-01", (2, 2, 0, 7200.0, 1)),
        ("2025-03-02", (0, 0, 0, None, 0)),
    ]
    body = await get_metrics(client, key, {**TICKET_WINDOW, "group_by": "touchpoint"})
    assert [(g["key"], tickets_of(g)) for g in body["groups"]] == [
        ("checkout", (1, 1, 0, 3600.0, 0)),
        ("lobby", (1, 1, 0, 10800.0, 1)),
    ]


async def test_access(client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str) -> None:
    for headers in ({}, auth("fbk_not-a-key"), {"Authorization": "Basic abc"}):
        response = await client.get("/v1/metrics", params=WINDOW, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    others = await make_key(
        Scope.FEEDBACK_READ, Scope.FEEDBACK_WRITE, Scope.TICKETS_READ, Scope.TICKETS_WRITE
    )
    problem = assert_problem(
        await client.get("/v1/metrics", params=WINDOW, headers=auth(others)), 403
    )
    assert "metrics:read" in problem["detail"]
    for allowed in (await make_key(Scope.METRICS_READ), admin_key):
        assert (
            await client.get("/v1/metrics", params=WINDOW, headers=auth(allowed))
        ).status_code == 200
    # A revoked key is refused at once.
    created = await client.post(
        "/v1/api-keys",
        json={"name": "reader", "scopes": ["metrics:read"]},
        headers=auth(admin_key),
    )
    assert created.status_code == 201, created.text
    reader = created.json()
    assert (await client.get("/v1/metrics", headers=auth(reader["key"]))).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{reader['id']}", headers=auth(admin_key))
    assert revoked.status_code == 204
    assert_problem(await client.get("/v1/metrics", headers=auth(reader["key"])), 401)


# --- the rollup under concurrent writers ---------------------------------------------------


async def test_concurrent_writers_are_each_counted_once(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # 20 single events at once, all on the same rollup row (2025-04-01, store-a, web),
    # NPS 0..10, 0..8: promoters 9, 10 -> 2; passives 7, 8 twice -> 4; detractors 0..6
    # twice -> 14; (2 - 14) / 20 = -60.0.
    singles = [
        event(f"c{n:02d}", f"2025-04-01T10:{n:02d}:00Z", "web", location_id="store-a",
              scores=[nps(n % 11)])
        for n in range(20)
    ]  # fmt: skip
    responses = await asyncio.gather(
        *(client.post("/v1/feedback", json=e, headers=auth(admin_key)) for e in singles)
    )
    assert [r.status_code for r in responses] == [202] * 20
    # All sent again, and a new event sent five times at once: duplicates are not counted
    # (the new one once); the same id with other content is a conflict, not counted.
    twice = {**singles[0], "event_id": "c-new"}
    responses = await asyncio.gather(
        *(client.post("/v1/feedback", json=e, headers=auth(admin_key)) for e in singles),
        *(client.post("/v1/feedback", json=twice, headers=auth(admin_key)) for _ in range(5)),
    )
    statuses = [r.status_code for r in responses]
    assert statuses[:20] == [200] * 20
    assert sorted(statuses[20:]) == [200, 200, 200, 200, 202]
    conflict = await client.post(
        "/v1/feedback", json={**singles[1], "scores": [nps(10)]}, headers=auth(admin_key)
    )
    assert conflict.status_code == 409
    # c-new is NPS 0: 21 answers, 15 detractors -> (2 - 15) / 21 = -61.9.
    # The whole day from the rollup, the hour of the events from the table.
    ranges: list[Params] = [
        {"from": "2025-04-01T00:00:00Z", "to": "2025-04-02T00:00:00Z"},
        {"from": "2025-04-01T10:00:00Z", "to": "2025-04-01T11:00:00Z"},
    ]
    for params in ranges:
        body = await get_metrics(client, admin_key, params)
        assert body["total"]["nps"] == {
            "score": -61.9,
            "promoters": 2,
            "passives": 4,
            "detractors": 15,
            "responses": 21,
        }
        assert body["total"]["responses"] == 21

    # Batches at once, overlapping: batch k holds events 20k .. 20k + 24, so 5 events of
    # each are also in the next: 4 batches, 100 events sent, 85 distinct (b00..b84).
    batches = [
        [
            event(f"b{n:02d}", "2025-04-02T12:00:00Z", "web", location_id="store-a",
                  scores=[score("csat", 5 if n % 5 else 1, 5)])
            for n in range(20 * k, 20 * k + 25)
        ]
        for k in range(4)
    ]  # fmt: skip
    responses = await asyncio.gather(
        *(
            client.post("/v1/feedback/batch", json={"events": b}, headers=auth(admin_key))
            for b in batches
        )
    )
    assert all(r.status_code == 200 for r in responses)
    assert sum(r.json()["accepted"] for r in responses) == 85
    assert sum(r.json()["duplicates"] for r in responses) == 15
    # CSAT 1 for b00, b05, ..., b80 (17 of 85), 5 for the others: 68 / 85 = 80.0.
    body = await get_metrics(
        client, admin_key, {"from": "2025-04-02T00:00:00Z", "to": "2025-04-03T00:00:00Z"}
    )
    assert body["total"]["csat"] == {"score": 80.0, "responses": 85}
    rollup = await fetch(
        state,
        "SELECT day, location_id, channel, responses, nps_responses, detractors, "
        "csat_responses, csat_top FROM feedback_daily_rollup ORDER BY day",
    )
    assert rollup == [
        (date(2025, 4, 1), "store-a", "web", 21, 21, 15, 0, 0),
        (date(2025, 4, 2), "store-a", "web", 85, 0, 0, 85, 68),
    ]
