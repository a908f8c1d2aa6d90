"""Closing the loop, ingest side (SPEC section 6): rule semantics, tickets opened and
attached inside the ingest transaction, routing, the tickets API, and status flowing
back through the signed inbound webhook.

No dispatcher runs here: deliveries are only looked at in the outbox table (what was
queued, for whom). Sending them is ``tests/test_dispatcher.py``'s job. Integrations are
created with the API and point at a public IP literal, so the SSRF guard accepts them
without DNS and nothing is ever sent anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.dependencies import AppState
from app.integrations import signing
from app.models.enums import Scope, ScoreMetric, TicketPriority
from app.repositories import tickets as tickets_repo
from app.schemas.feedback import FeedbackEventIn
from app.services.rule_matching import CompiledRule, compile_rule, first_match, is_poor
from tests.conftest import KeyFactory, auth, make_event, scans_of

PUBLIC_HOST = "https://93.184.215.14"  # a public address literal: no DNS, never contacted


# -- helpers ---------------------------------------------------------------------------------


def event_in(**overrides: Any) -> FeedbackEventIn:
    return FeedbackEventIn.model_validate(make_event("unit-1", **overrides))


def rule(conditions: Mapping[str, Any], name: str = "r", rule_id: int = 1) -> CompiledRule:
    return compile_rule(rule_id, name, conditions, {"priority": "high", "sla_hours": 24})


async def post(
    client: httpx.AsyncClient, key: str, event: dict[str, Any], status: int = 202
) -> dict[str, Any]:
    response = await client.post("/v1/feedback", json=event, headers=auth(key))
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_ticket(client: httpx.AsyncClient, key: str, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tickets/{ticket_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch(
    client: httpx.AsyncClient, key: str, ticket_id: str, body: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    response = await client.patch(f"/v1/tickets/{ticket_id}", json=body, headers=auth(key))
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def list_tickets(
    client: httpx.AsyncClient, key: str, params: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    response = await client.get("/v1/tickets", params=list(params), headers=auth(key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def create_rule(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> str:
    response = await client.post("/v1/rules", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    rule_id: str = response.json()["id"]
    return rule_id


async def create_integration(
    client: httpx.AsyncClient,
    key: str,
    name: str,
    *,
    kind: str = "webhook",
    events: list[str] | None = None,
) -> dict[str, Any]:
    """Through the API; returns the 201 body (with ``inbound_secret``)."""
    body: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "webhook":
        body["config"] = {"url": f"{PUBLIC_HOST}/hooks/{name}"}
    else:
        assert kind == "zendesk"
        body["config"] = {"base_url": PUBLIC_HOST, "email": "cx-bot@acme.example"}
        body["secrets"] = {"api_token": "zd-token"}
    if events is not None:
        body["events"] = events
    response = await client.post("/v1/integrations", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def rows(state: AppState, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with state.sessionmaker() as session:
        result = await session.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]


async def outbox(state: AppState) -> list[tuple[str, str, int | None]]:
    """(integration, event type, ticket id) of every queued delivery, in order."""
    found = await rows(
        state,
        "SELECT i.name, d.event_type, d.ticket_id FROM deliveries d "
        "JOIN integrations i ON i.id = d.integration_id ORDER BY d.id",
    )
    return [(r["name"], r["event_type"], r["ticket_id"]) for r in found]


async def count(state: AppState, sql: str, **params: Any) -> int:
    async with state.sessionmaker() as session:
        value = (await session.execute(text(sql), params)).scalar_one()
    return int(value)


def kinds(ticket: Mapping[str, Any]) -> list[str]:
    return [entry["kind"] for entry in ticket["timeline"]]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def customer(customer_id: str) -> dict[str, Any]:
    return {"id": customer_id, "email": f"{customer_id.lower()}@example.com"}


# -- rules: unit semantics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "scale", "poor_up_to", "top"),
    [
        (ScoreMetric.NPS, None, 6, 10),
        (ScoreMetric.CSAT, 5, 2, 5),
        (ScoreMetric.CSAT, 7, 3, 7),
        (ScoreMetric.CES, 7, 3, 7),
        (ScoreMetric.CES, 5, 2, 5),
        (ScoreMetric.RATING, 5, 2, 5),
        (ScoreMetric.RATING, 10, 4, 10),
    ],
)
def test_is_poor_bottom_box_boundaries(
    metric: ScoreMetric, scale: int | None, poor_up_to: int, top: int
) -> None:
    low = 0 if metric is ScoreMetric.NPS else 1
    assert [v for v in range(low, top + 1) if is_poor(metric, v, scale)] == list(
        range(low, poor_up_to + 1)
    )


def test_is_poor_unknown_scale_is_never_poor() -> None:
    assert not is_poor(ScoreMetric.CSAT, 1, 10)
    assert not is_poor(ScoreMetric.RATING, 1, 7)


@pytest.mark.parametrize(
    ("metric", "poor", "not_poor"),
    [("csat", 2, 3), ("ces", 3, 4), ("rating", 2, 3)],  # default scales 5, 7, 5
)
def test_poor_scores_use_each_metrics_default_scale(metric: str, poor: int, not_poor: int) -> None:
    compiled = rule({"poor_scores": [metric]})
    assert compiled.matches(event_in(scores=[{"metric": metric, "value": poor}]), None)
    assert not compiled.matches(event_in(scores=[{"metric": metric, "value": not_poor}]), None)


@pytest.mark.parametrize(
    ("conditions", "matching", "not_matching"),
    [
        pytest.param(
            {"channels": ["web", "email"]},
            [{"channel": "email"}, {"channel": "web"}],
            [{"channel": "in_store"}],
            id="channels",
        ),
        pytest.param(
            {"location_ids": ["store-berlin-01", "store-hamburg-02"]},
            [{"location_id": "store-hamburg-02"}],
            [{"location_id": "store-paris-01"}, {"location_id": ...}],
            id="location_ids",
        ),
        pytest.param(
            {"touchpoints": ["checkout"]},
            [{"touchpoint": "checkout"}],
            [{"touchpoint": "delivery"}, {"touchpoint": ...}],
            id="touchpoints",
        ),
        pytest.param(
            {"sources": ["pos-eu"]},
            [{"source": "pos-eu"}],
            [{"source": "web-survey"}, {"source": ...}],
            id="sources",
        ),
        pytest.param(
            {"tags_any": ["refund", "queue"]},
            [{"tags": ["other", "queue"]}, {"tags": ["refund"]}],
            [{"tags": ["other"]}, {"tags": []}],
            id="tags_any",
        ),
        pytest.param(
            {"keywords_any": ["refund"]},
            [
                {"text": "I want a REFUND!"},
                {"text": "Refund"},
                {"text": "(refund) please"},
                {"text": "no refund, no thanks"},
            ],
            [
                {"text": "They refunded me."},
                {"text": "non-refundable fare"},
                {"text": "prerefund"},
                {"text": ...},
            ],
            id="keywords_whole_words",
        ),
        pytest.param(
            {"keywords_any": ["Erstattung", "ärger", "café"]},
            [
                {"text": "Ich will eine ERSTATTUNG."},
                {"text": "So viel ÄRGER heute"},
                {"text": "Le CAFÉ était froid"},
            ],
            [
                {"text": "Rückerstattung bitte"},
                {"text": "Ich bin verärgert"},
                {"text": "Les cafés étaient froids"},
            ],
            id="keywords_non_ascii",
        ),
        pytest.param(
            {"keywords_any": ["no help", "c++"]},
            [{"text": "There was NO HELP at all"}, {"text": "the c++ app crashed"}],
            [{"text": "no helpers around"}, {"text": "no  help"}],
            id="keywords_phrases_and_symbols",
        ),
        pytest.param(
            {"poor_scores": ["csat"]},
            [{"scores": [{"metric": "csat", "value": 2, "scale": 5}]}],
            [
                {"scores": [{"metric": "csat", "value": 3, "scale": 5}]},
                {"scores": [{"metric": "nps", "value": 0}]},  # poor, but not listed
            ],
            id="poor_scores_listed_metric_only",
        ),
        pytest.param(
            {"poor_scores": ["nps", "rating"]},
            [
                {
                    "scores": [
                        {"metric": "nps", "value": 9},
                        {"metric": "rating", "value": 4, "scale": 10},
                    ]
                },
                {"scores": [{"metric": "nps", "value": 6}]},
            ],
            [
                {
                    "scores": [
                        {"metric": "nps", "value": 7},
                        {"metric": "rating", "value": 5, "scale": 10},
                    ]
                },
            ],
            id="poor_scores_any_listed_metric",
        ),
        pytest.param(
            {"nps_max": 3},
            [
                {"scores": [{"metric": "nps", "value": 3}]},
                {"scores": [{"metric": "nps", "value": 0}]},
            ],
            [
                {"scores": [{"metric": "nps", "value": 4}]},
                {"scores": [{"metric": "csat", "value": 1}]},  # no NPS at all
            ],
            id="nps_max",
        ),
        pytest.param(
            {"nps_max": 0},
            [{"scores": [{"metric": "nps", "value": 0}]}],
            [{"scores": [{"metric": "nps", "value": 1}]}],
            id="nps_max_zero_is_a_condition",
        ),
    ],
)
def test_each_condition(
    conditions: dict[str, Any],
    matching: list[dict[str, Any]],
    not_matching: list[dict[str, Any]],
) -> None:
    compiled = rule(conditions)
    for overrides in matching:
        assert compiled.matches(event_in(**overrides), None), overrides
    for overrides in not_matching:
        assert not compiled.matches(event_in(**overrides), None), overrides


def test_sentiment_max_needs_a_sentiment_at_or_below() -> None:
    compiled = rule({"sentiment_max": -0.5})
    event = event_in()
    assert compiled.matches(event, -0.9)
    assert compiled.matches(event, -0.5)
    assert not compiled.matches(event, -0.49)
    assert not compiled.matches(event, None)  # no sentiment (not computed): no match


def test_all_given_conditions_must_hold() -> None:
    compiled = rule({"channels": ["in_store"], "keywords_any": ["queue"], "nps_max": 6})
    assert compiled.matches(event_in(text="The queue!", scores=[{"metric": "nps", "value": 6}]), 0)
    assert not compiled.matches(event_in(text="The queue!", channel="web"), None)
    assert not compiled.matches(event_in(text="All fine"), None)
    assert not compiled.matches(
        event_in(text="The queue!", scores=[{"metric": "nps", "value": 7}]), None
    )


@pytest.mark.parametrize(
    "conditions",
    [
        {},
        {
            "channels": [],
            "location_ids": [],
            "touchpoints": [],
            "sources": [],
            "tags_any": [],
            "keywords_any": [],
            "poor_scores": [],
            "nps_max": None,
            "sentiment_max": None,
        },
        {
            "channels": None,
            "location_ids": None,
            "touchpoints": None,
            "sources": None,
            "tags_any": None,
            "keywords_any": None,
            "poor_scores": None,
        },
        {"keywords_any": ["", "  "]},
    ],
)
def test_empty_or_null_conditions_are_ignored(conditions: dict[str, Any]) -> None:
    compiled = rule(conditions)
    happy = event_in(
        channel="web",
        location_id=...,
        touchpoint=...,
        source=...,
        tags=[],
        customer=...,
        text=...,
        scores=[{"metric": "nps", "value": 10}],
    )
    assert compiled.matches(happy, None)
    assert compiled.matches(event_in(), -1.0)


def test_first_match_is_the_first_in_order_and_none_without_a_match() -> None:
    keyword = rule({"keywords_any": ["queue"]}, name="queue", rule_id=7)
    detractor = rule({"nps_max": 3}, name="detractor", rule_id=3)
    web_only = rule({"channels": ["web"]}, name="web", rule_id=1)
    event = event_in(text="The queue was long", scores=[{"metric": "nps", "value": 2}])
    assert first_match([keyword, detractor], event, None) is keyword
    assert first_match([detractor, keyword], event, None) is detractor
    assert first_match([web_only, detractor], event, None) is detractor
    assert first_match([web_only], event, None) is None
    assert first_match([], event, None) is None


def test_compile_rule_reads_the_action_with_defaults() -> None:
    compiled = compile_rule(5, "x", {}, {})
    assert compiled.action.priority is TicketPriority.NORMAL
    assert (compiled.action.assignee, compiled.action.team) == (None, None)
    assert (compiled.action.targets, compiled.action.sla_hours) == ((), None)
    full = compile_rule(
        6,
        "y",
        {"nps_max": 2},
        {"priority": "urgent", "assignee": "a@x", "team": "t", "targets": ["z"], "sla_hours": 4},
    )
    assert full.action.priority is TicketPriority.URGENT
    assert (full.action.assignee, full.action.team, full.action.targets) == ("a@x", "t", ("z",))
    assert full.action.sla_hours == 4.0
    assert (full.nps_max, full.id, full.name) == (2, 6, "y")


# -- rules at ingest -------------------------------------------------------------------------


def assert_sla(ticket: Mapping[str, Any], hours: int) -> None:
    due = at(ticket["sla_due_at"]) - at(ticket["created_at"])
    assert abs(due - timedelta(hours=hours)) < timedelta(seconds=5), due


async def test_default_rules_decide_priority_reason_and_sla(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    strong = await post(client, admin_key, make_event("dr-1"))  # nps 3
    poor = await post(
        client,
        admin_key,
        make_event("dr-2", customer=customer("C-2"), scores=[{"metric": "nps", "value": 6}]),
    )
    poor_rating = await post(
        client,
        admin_key,
        make_event(
            "dr-3",
            customer=customer("C-3"),
            scores=[{"metric": "rating", "value": 4, "scale": 10}],
        ),
    )
    passive = await post(
        client,
        admin_key,
        make_event(
            "dr-4",
            customer=customer("C-4"),
            scores=[{"metric": "nps", "value": 7}, {"metric": "csat", "value": 3}],
        ),
    )
    # Only text, very negative: rule 300 needs a sentiment, which is not computed yet.
    negative_text = await post(
        client,
        admin_key,
        make_event("dr-5", customer=customer("C-5"), scores=[], text="Terrible, awful, hateful."),
    )
    assert passive["ticket_id"] is None
    assert negative_text["ticket_id"] is None

    first = await get_ticket(client, admin_key, strong["ticket_id"])
    assert (first["reason"], first["priority"], first["status"]) == (
        "Strong detractors",
        "high",
        "open",
    )
    assert_sla(first, 24)
    assert first["feedback_ids"] == [strong["id"]]
    assert first["channel"] == "in_store"
    assert first["location_id"] == "store-berlin-01"
    assert first["customer"]["id"] == "C-1001"
    assert first["customer"]["email"] == "ana@example.com"
    assert first["resolved_at"] is None
    assert first["external_refs"] == []
    assert first["timeline"][0]["kind"] == "created"
    assert first["timeline"][0]["detail"] == (
        f"Opened by rule 'Strong detractors' for feedback {strong['id']}"
    )
    for opened in (poor, poor_rating):
        ticket = await get_ticket(client, admin_key, opened["ticket_id"])
        assert (ticket["reason"], ticket["priority"]) == ("Poor scores", "normal")
        assert_sla(ticket, 48)
    stored = (await client.get(f"/v1/feedback/{poor['id']}", headers=auth(admin_key))).json()
    assert stored["ticket_id"] == poor["ticket_id"]
    unticketed = (await client.get(f"/v1/feedback/{passive['id']}", headers=auth(admin_key))).json()
    assert unticketed["ticket_id"] is None


async def test_custom_rules_by_keyword_channel_and_location(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_rule(
        client,
        admin_key,
        {
            "name": "Refunds",
            "position": 10,
            "conditions": {"keywords_any": ["refund", "Erstattung"]},
            "action": {"priority": "urgent", "assignee": "refunds@example.com", "sla_hours": 4},
        },
    )
    await create_rule(
        client,
        admin_key,
        {
            "name": "Web complaints",
            "position": 20,
            "conditions": {"channels": ["web"], "poor_scores": ["csat"]},
            "action": {"priority": "low", "sla_hours": 8},
        },
    )
    await create_rule(
        client,
        admin_key,
        {
            "name": "Paris",
            "position": 30,
            "conditions": {"location_ids": ["store-paris-02"]},
            "action": {"priority": "high", "team": "paris-ops", "sla_hours": 12},
        },
    )
    happy = [{"metric": "nps", "value": 10}]
    refund = await post(
        client, admin_key, make_event("cr-1", scores=happy, text="Where is my REFUND?")
    )
    erstattung = await post(
        client,
        admin_key,
        make_event("cr-2", customer=customer("C-2"), text="Keine Erstattung erhalten!"),
    )
    web = await post(
        client,
        admin_key,
        make_event(
            "cr-3",
            customer=customer("C-3"),
            channel="web",
            location_id=...,
            scores=[{"metric": "csat", "value": 1}],
            text="Slow checkout",
        ),
    )
    paris = await post(
        client,
        admin_key,
        make_event(
            "cr-4", customer=customer("C-4"), location_id="store-paris-02", scores=happy, text="ok"
        ),
    )
    # None of the custom rules, nor the defaults: a happy customer, refunded, elsewhere.
    nothing = await post(
        client,
        admin_key,
        make_event(
            "cr-5",
            customer=customer("C-5"),
            scores=happy,
            text="They refunded me quickly",
            channel="email",
        ),
    )
    web_but_fine = await post(
        client,
        admin_key,
        make_event(
            "cr-6",
            customer=customer("C-6"),
            channel="web",
            scores=[{"metric": "csat", "value": 4}],
            text="fine",
        ),
    )
    assert nothing["ticket_id"] is None
    assert web_but_fine["ticket_id"] is None

    expected = [
        (refund, "Refunds", "urgent", 4, "refunds@example.com"),
        (erstattung, "Refunds", "urgent", 4, "refunds@example.com"),  # before position 100
        (web, "Web complaints", "low", 8, None),
        (paris, "Paris", "high", 12, None),
    ]
    for ingested, reason, priority, sla, assignee in expected:
        ticket = await get_ticket(client, admin_key, ingested["ticket_id"])
        assert (ticket["reason"], ticket["priority"], ticket["assignee"]) == (
            reason,
            priority,
            assignee,
        )
        assert_sla(ticket, sla)
    assert (await get_ticket(client, admin_key, paris["ticket_id"]))["team"] == "paris-ops"
    assert await count(state, "SELECT count(*) FROM tickets") == 4


async def test_rules_are_tried_by_position_and_disabled_ones_are_skipped(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    queue_rule = {
        "name": "Queues first",
        "enabled": False,
        "position": 5,
        "conditions": {"tags_any": ["queue"]},
        "action": {"priority": "urgent", "sla_hours": 2},
    }
    first_id = await create_rule(client, admin_key, queue_rule)
    # Enabled, after the strong detractors (100) and before the poor scores (200).
    await create_rule(
        client,
        admin_key,
        {**queue_rule, "name": "Queues late", "enabled": True, "position": 150},
    )
    detractor = await post(client, admin_key, make_event("pos-1"))  # nps 3: rule 100
    poor = await post(
        client,
        admin_key,
        make_event("pos-2", customer=customer("C-2"), scores=[{"metric": "nps", "value": 5}]),
    )
    assert (await get_ticket(client, admin_key, detractor["ticket_id"]))["reason"] == (
        "Strong detractors"
    )
    assert (await get_ticket(client, admin_key, poor["ticket_id"]))["reason"] == "Queues late"

    enabled = await client.put(
        f"/v1/rules/{first_id}", json={**queue_rule, "enabled": True}, headers=auth(admin_key)
    )
    assert enabled.status_code == 200, enabled.text
    later = await post(
        client,
        admin_key,
        make_event("pos-3", customer=customer("C-3"), scores=[{"metric": "nps", "value": 0}]),
    )
    ticket = await get_ticket(client, admin_key, later["ticket_id"])
    assert (ticket["reason"], ticket["priority"]) == ("Queues first", "urgent")


async def test_same_position_is_decided_by_rule_id(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = {"position": 1, "conditions": {"tags_any": ["queue"]}, "action": {}}
    await create_rule(client, admin_key, {**body, "name": "older"})
    await create_rule(client, admin_key, {**body, "name": "newer"})
    opened = await post(client, admin_key, make_event("tie-1"))
    assert (await get_ticket(client, admin_key, opened["ticket_id"]))["reason"] == "older"


# -- tickets at ingest -----------------------------------------------------------------------


async def test_second_poor_event_attaches_to_the_open_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook", events=["ticket.created", "ticket.updated"])
    first = await post(client, admin_key, make_event("att-1"))
    second = await post(
        client,
        admin_key,
        make_event("att-2", scores=[{"metric": "csat", "value": 1}], channel="email"),
    )
    assert first["ticket_id"] == second["ticket_id"] is not None
    ticket = await get_ticket(client, admin_key, first["ticket_id"])
    assert ticket["feedback_ids"] == [first["id"], second["id"]]
    assert kinds(ticket) == ["created", "feedback_attached"]
    assert ticket["timeline"][1]["detail"] == (
        f"Feedback {second['id']} attached (rule 'Poor scores')"
    )
    # The ticket keeps what opened it.
    assert (ticket["reason"], ticket["priority"], ticket["channel"]) == (
        "Strong detractors",
        "high",
        "in_store",
    )
    assert at(ticket["updated_at"]) > at(ticket["created_at"])
    tid = int(first["ticket_id"])
    assert await outbox(state) == [("hook", "ticket.created", tid), ("hook", "ticket.updated", tid)]
    assert await count(state, "SELECT count(*) FROM tickets") == 1


async def test_a_non_qualifying_event_of_the_customer_is_not_attached(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    first = await post(client, admin_key, make_event("na-1"))
    happy = await post(
        client, admin_key, make_event("na-2", scores=[{"metric": "nps", "value": 10}], text="ok")
    )
    assert happy["ticket_id"] is None
    ticket = await get_ticket(client, admin_key, first["ticket_id"])
    assert ticket["feedback_ids"] == [first["id"]]


async def test_the_open_ticket_lookup_reads_tickets_customer_by_customer(
    state: AppState,
) -> None:
    # Whatever PostgreSQL knows of the open tickets: one index lookup per customer of
    # the group, never a read of every open ticket (planned without statistics, the
    # "customer_id = ANY(...)" form did that: 22 ms a group at 15,000 open tickets).
    customers = [f"C-{n}" for n in range(1, 301)]
    async with state.database.driver_connection() as connection:
        await connection.execute(
            "INSERT INTO tickets (status, priority, reason, channel, customer_id) "
            "SELECT 'open', 'normal', 'r', 'web', 'C-' || n FROM generate_series(1, 3000) AS n"
        )
        for statistics in ("none", "current"):
            if statistics == "none":
                await connection.execute("SELECT pg_clear_relation_stats('public', 'tickets')")
                for column in ("customer_id", "status"):
                    await connection.execute(
                        "SELECT pg_clear_attribute_stats('public', 'tickets', $1, false)", column
                    )
            else:
                await connection.execute("ANALYZE tickets")
            plan = await connection.fetchval(
                "EXPLAIN (FORMAT JSON) " + tickets_repo.LOCK_OPEN_TICKETS_SQL, customers
            )
            scans = scans_of(plan[0]["Plan"], "tickets")  # json: decoded by the pool
            assert scans, statistics
            for scan in scans:
                assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), (statistics, scan)
                assert "customer_id" in scan["Index Cond"], (statistics, scan)
        found = await tickets_repo.lock_open_tickets(connection, ["C-7", "C-9999", "C-7"])
        assert list(found) == ["C-7"]


@pytest.mark.parametrize("final", ["resolved", "closed"])
async def test_after_the_ticket_is_resolved_a_new_poor_event_opens_a_new_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState, final: str
) -> None:
    first = await post(client, admin_key, make_event("re-1"))
    waiting = await patch(client, admin_key, first["ticket_id"], {"status": "waiting"})
    assert waiting["status"] == "waiting"
    # Still open (waiting): attaches.
    attached = await post(client, admin_key, make_event("re-2", text="Any news?"))
    assert attached["ticket_id"] == first["ticket_id"]
    await patch(client, admin_key, first["ticket_id"], {"status": final})
    fresh = await post(client, admin_key, make_event("re-3", text="Again!"))
    assert fresh["ticket_id"] not in (None, first["ticket_id"])
    old = await get_ticket(client, admin_key, first["ticket_id"])
    new = await get_ticket(client, admin_key, fresh["ticket_id"])
    assert old["feedback_ids"] == [first["id"], attached["id"]]
    assert new["feedback_ids"] == [fresh["id"]]
    assert (old["status"], new["status"]) == (final, "open")
    # A later one attaches to the new ticket.
    later = await post(client, admin_key, make_event("re-4", text="Still!"))
    assert later["ticket_id"] == fresh["ticket_id"]
    assert await count(state, "SELECT count(*) FROM tickets") == 2


async def test_a_duplicate_event_attaches_nothing_and_opens_nothing(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook")
    event = make_event("dup-1")
    first = await post(client, admin_key, event)
    again = await post(client, admin_key, event, status=200)
    assert again == {**first, "status": "duplicate"}
    ticket = await get_ticket(client, admin_key, first["ticket_id"])
    assert kinds(ticket) == ["created"]
    await patch(client, admin_key, first["ticket_id"], {"status": "resolved"})
    # The duplicate of a resolved ticket's event opens no new ticket either.
    batch = await client.post(
        "/v1/feedback/batch", json={"events": [event]}, headers=auth(admin_key)
    )
    assert batch.json()["results"][0]["status"] == "duplicate"
    assert (await post(client, admin_key, event, status=200))["ticket_id"] == first["ticket_id"]
    assert await count(state, "SELECT count(*) FROM tickets") == 1
    assert [e for _, e, _ in await outbox(state)] == [
        "feedback.received",
        "ticket.created",
        "ticket.resolved",
    ]


async def test_anonymous_events_each_open_their_own_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    no_customer = [
        await post(client, admin_key, make_event(f"an-{n}", customer=...)) for n in (1, 2)
    ]
    email_only = [
        await post(client, admin_key, make_event(f"ae-{n}", customer={"email": "x@example.com"}))
        for n in (1, 2)
    ]
    ids = [body["ticket_id"] for body in no_customer + email_only]
    assert None not in ids
    assert len(set(ids)) == 4
    batch = await client.post(
        "/v1/feedback/batch",
        json={"events": [make_event(f"ab-{n}", customer=...) for n in range(3)]},
        headers=auth(admin_key),
    )
    assert batch.status_code == 200, batch.text
    batch_ids = [item["ticket_id"] for item in batch.json()["results"]]
    assert len(set(batch_ids) | set(ids)) == 7
    anonymous = await get_ticket(client, admin_key, ids[0])
    assert anonymous["customer"] is None
    assert await count(state, "SELECT count(*) FROM tickets") == 7


async def test_a_batch_with_several_events_of_one_customer_opens_one_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook", events=["ticket.created", "ticket.updated"])
    events = [
        make_event("b-1"),
        make_event("b-2", text="And the staff was rude."),
        make_event("b-3", customer=customer("C-other")),
        make_event("b-4", scores=[{"metric": "csat", "value": 1}], text="Worst."),
        make_event("b-5", scores=[{"metric": "nps", "value": 9}], text="fine"),
    ]
    response = await client.post(
        "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 5
    ticket_ids = [r["ticket_id"] for r in results]
    assert ticket_ids[0] == ticket_ids[1] == ticket_ids[3] is not None
    assert ticket_ids[2] not in (None, ticket_ids[0])
    assert ticket_ids[4] is None
    ticket = await get_ticket(client, admin_key, ticket_ids[0])
    assert ticket["feedback_ids"] == [results[i]["id"] for i in (0, 1, 3)]
    assert kinds(ticket) == ["created", "feedback_attached", "feedback_attached"]
    assert ticket["reason"] == "Strong detractors"
    # One ticket.created per ticket, no ticket.updated for the events of the same batch.
    assert sorted(await outbox(state)) == sorted(
        [
            ("hook", "ticket.created", int(ticket_ids[0])),
            ("hook", "ticket.created", int(ticket_ids[2])),
        ]
    )
    [payload] = await rows(
        state,
        "SELECT payload::text AS p FROM deliveries WHERE ticket_id = :t",
        t=int(ticket_ids[0]),
    )
    document = orjson.loads(payload["p"])
    assert document["data"]["feedback_ids"] == ticket["feedback_ids"]
    assert [f["event_id"] for f in document["feedback"]] == ["b-1", "b-2", "b-4"]


async def test_concurrent_posts_for_one_new_customer_open_exactly_one_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """20 single POSTs (group commit shares transactions between some of them) and 4
    batches (a transaction each) race for one new customer."""
    await create_integration(client, admin_key, "hook", events=["ticket.created"])
    singles = [
        client.post(
            "/v1/feedback",
            json=make_event(f"cc-{n}", customer=customer("C-concurrent")),
            headers=auth(admin_key),
        )
        for n in range(20)
    ]
    batches = [
        client.post(
            "/v1/feedback/batch",
            json={
                "events": [
                    make_event(f"cc-b{b}-{n}", customer=customer("C-concurrent")) for n in range(3)
                ]
            },
            headers=auth(admin_key),
        )
        for b in range(4)
    ]
    responses = await asyncio.gather(*singles, *batches)
    assert [r.status_code for r in responses] == [202] * 20 + [200] * 4
    ticket_ids = {r.json()["ticket_id"] for r in responses[:20]}
    for batch in responses[20:]:
        ticket_ids |= {item["ticket_id"] for item in batch.json()["results"]}
    assert len(ticket_ids) == 1
    assert None not in ticket_ids
    assert await count(state, "SELECT count(*) FROM tickets") == 1
    [ticket] = await list_tickets(client, admin_key)
    assert len(ticket["feedback_ids"]) == 32
    assert kinds(ticket) == ["created"] + ["feedback_attached"] * 31
    assert await outbox(state) == [("hook", "ticket.created", int(ticket["id"]))]


async def test_events_attached_by_one_transaction_queue_one_update(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook", events=["ticket.updated"])
    first = await post(client, admin_key, make_event("one-1"))
    response = await client.post(
        "/v1/feedback/batch",
        json={"events": [make_event(f"one-{n}", text=f"Again {n}") for n in range(2, 5)]},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    assert {r["ticket_id"] for r in response.json()["results"]} == {first["ticket_id"]}
    assert await outbox(state) == [("hook", "ticket.updated", int(first["ticket_id"]))]
    [payload] = await rows(state, "SELECT payload::text AS p FROM deliveries")
    assert len(orjson.loads(payload["p"])["data"]["feedback_ids"]) == 4


async def test_a_conflicting_event_opens_no_ticket(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook", events=["ticket.created"])
    first = await post(client, admin_key, make_event("cf-1"))
    await patch(client, admin_key, first["ticket_id"], {"status": "resolved"})
    changed = make_event("cf-1", text="Other words, same id.")
    conflict = await client.post("/v1/feedback", json=changed, headers=auth(admin_key))
    assert conflict.status_code == 409, conflict.text
    batch = await client.post(
        "/v1/feedback/batch", json={"events": [changed]}, headers=auth(admin_key)
    )
    assert batch.json()["results"][0]["status"] == "conflict"
    assert batch.json()["results"][0]["ticket_id"] is None
    assert await count(state, "SELECT count(*) FROM tickets") == 1
    assert await count(state, "SELECT count(*) FROM ticket_timeline") == 2  # created, resolved
    assert await outbox(state) == [("hook", "ticket.created", int(first["ticket_id"]))]


# -- routing ---------------------------------------------------------------------------------


async def put_location(
    client: httpx.AsyncClient, key: str, location_id: str, owner: str | None, team: str | None
) -> None:
    response = await client.put(
        f"/v1/locations/{location_id}",
        json={"name": location_id, "owner": owner, "team": team},
        headers=auth(key),
    )
    assert response.status_code == 200, response.text


async def test_routing_to_the_location_owner_unless_the_rule_names_one(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    await put_location(client, admin_key, "store-berlin-01", "maria@example.com", "berlin-ops")
    await put_location(client, admin_key, "store-paris-02", None, "paris-ops")
    await create_rule(
        client,
        admin_key,
        {
            "name": "Refunds",
            "position": 10,
            "conditions": {"keywords_any": ["refund"]},
            "action": {"priority": "urgent", "assignee": "refunds@example.com"},
        },
    )

    async def routed(event_id: str, **overrides: Any) -> tuple[Any, Any]:
        body = await post(client, admin_key, make_event(event_id, **overrides))
        ticket = await get_ticket(client, admin_key, body["ticket_id"])
        return ticket["assignee"], ticket["team"]

    assert await routed("rt-1") == ("maria@example.com", "berlin-ops")
    # The rule's assignee wins; the team still comes from the location.
    assert await routed("rt-2", customer=customer("C-2"), text="refund please") == (
        "refunds@example.com",
        "berlin-ops",
    )
    assert await routed("rt-3", customer=customer("C-3"), location_id="store-paris-02") == (
        None,
        "paris-ops",
    )
    assert await routed("rt-4", customer=customer("C-4"), location_id="store-unknown") == (
        None,
        None,
    )
    assert await routed("rt-5", customer=customer("C-5"), location_id=...) == (None, None)
    # A changed owner routes the next tickets (existing ones keep theirs).
    await put_location(client, admin_key, "store-berlin-01", "jonas@example.com", None)
    assert await routed("rt-6", customer=customer("C-6")) == ("jonas@example.com", None)


async def test_rule_targets_restrict_the_deliveries(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    ticket_events = ["ticket.created", "ticket.updated"]
    await create_integration(client, admin_key, "hook-a", events=ticket_events)
    await create_integration(client, admin_key, "hook-b", events=ticket_events)
    await create_integration(client, admin_key, "hook-c", events=["feedback.received"])
    await create_rule(
        client,
        admin_key,
        {
            "name": "Only B",
            "position": 1,
            "conditions": {"tags_any": ["vip"]},
            "action": {"targets": ["hook-b"]},
        },
    )
    everyone = await post(client, admin_key, make_event("tg-1"))
    only_b = await post(
        client, admin_key, make_event("tg-2", customer=customer("C-2"), tags=["vip"])
    )
    # The ticket's later events go to its targets too.
    await patch(client, admin_key, only_b["ticket_id"], {"status": "in_progress"})
    assert sorted(await outbox(state)) == sorted(
        [
            ("hook-a", "ticket.created", int(everyone["ticket_id"])),
            ("hook-b", "ticket.created", int(everyone["ticket_id"])),
            ("hook-c", "feedback.received", None),
            ("hook-b", "ticket.created", int(only_b["ticket_id"])),
            ("hook-b", "ticket.updated", int(only_b["ticket_id"])),
            ("hook-c", "feedback.received", None),
        ]
    )


async def test_a_targeted_integration_disabled_when_the_ticket_opened_gets_its_later_events(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """The rule names hook-b; hook-b is switched off for a moment when a ticket opens
    (no delivery is written for a disabled integration). Once it is on again, the
    ticket's changes must reach it, as they reach an integration of a ticket whose rule
    names no targets. Today the ticket's targets are frozen as the ids of the *enabled*
    named integrations (``closed_loop._targets``), i.e. [], and the ticket goes nowhere
    for good."""
    events = ["ticket.created", "ticket.updated"]
    await create_integration(client, admin_key, "hook-a", events=events)
    await create_integration(client, admin_key, "hook-b", events=events)
    await create_rule(
        client,
        admin_key,
        {
            "name": "Only B",
            "position": 1,
            "conditions": {"tags_any": ["queue"]},
            "action": {"targets": ["hook-b"]},
        },
    )
    off = await client.patch(
        "/v1/integrations/hook-b", json={"enabled": False}, headers=auth(admin_key)
    )
    assert off.status_code == 200, off.text
    opened = await post(client, admin_key, make_event("td-1"))
    assert await outbox(state) == []  # hook-a is not a target; hook-b is off
    on = await client.patch(
        "/v1/integrations/hook-b", json={"enabled": True}, headers=auth(admin_key)
    )
    assert on.status_code == 200, on.text
    await patch(client, admin_key, opened["ticket_id"], {"status": "in_progress"})
    assert await outbox(state) == [("hook-b", "ticket.updated", int(opened["ticket_id"]))]


# -- the tickets API -------------------------------------------------------------------------


async def open_tickets(
    client: httpx.AsyncClient, key: str, specs: Sequence[dict[str, Any]]
) -> list[str]:
    """One ticket per spec (event overrides), each for its own customer."""
    ids: list[str] = []
    for n, overrides in enumerate(specs):
        body = await post(
            client, key, make_event(f"t-{n}", customer=customer(f"C-{n}"), **overrides)
        )
        assert body["ticket_id"] is not None
        ids.append(body["ticket_id"])
    return ids


async def test_list_filters(client: httpx.AsyncClient, admin_key: str, state: AppState) -> None:
    await put_location(client, admin_key, "store-berlin-01", "maria@example.com", None)
    await put_location(client, admin_key, "store-paris-02", "luc@example.com", None)
    poor = [{"metric": "nps", "value": 5}]
    ids = await open_tickets(
        client,
        admin_key,
        [
            {},  # 0: berlin, high, maria
            {"scores": poor},  # 1: berlin, normal
            {"location_id": "store-paris-02"},  # 2: paris, high, luc
            {"location_id": "store-paris-02", "scores": poor},  # 3: paris, normal
            {"location_id": ...},  # 4: nowhere, high, nobody
        ],
    )
    await patch(client, admin_key, ids[1], {"status": "in_progress"})
    await patch(client, admin_key, ids[3], {"status": "resolved"})
    await patch(client, admin_key, ids[4], {"assignee": "kim@example.com"})

    async def listed(*params: tuple[str, str]) -> list[str]:
        return [t["id"] for t in await list_tickets(client, admin_key, params)]

    assert await listed() == ids[::-1]  # newest first
    assert await listed(("status", "open")) == [ids[4], ids[2], ids[0]]
    assert await listed(("status", "in_progress"), ("status", "resolved")) == [ids[3], ids[1]]
    assert await listed(("priority", "normal")) == [ids[3], ids[1]]
    assert await listed(("location_id", "store-paris-02")) == [ids[3], ids[2]]
    assert (
        await listed(("location_id", "store-paris-02"), ("location_id", "store-berlin-01"))
        == (ids[3::-1])
    )
    assert await listed(("assignee", "maria@example.com")) == [ids[1], ids[0]]
    assert await listed(("assignee", "kim@example.com")) == [ids[4]]
    assert await listed(("assignee", "nobody@example.com")) == []
    assert await listed(
        ("status", "open"), ("priority", "high"), ("location_id", "store-berlin-01")
    ) == [ids[0]]

    # from (inclusive) and to (exclusive) on created_at: give the tickets known times.
    base = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    async with state.sessionmaker() as session, session.begin():
        for n, ticket_id in enumerate(ids):
            await session.execute(
                text("UPDATE tickets SET created_at = :at WHERE id = :id"),
                {"at": base + timedelta(hours=n), "id": int(ticket_id)},
            )
    one = (base + timedelta(hours=1)).isoformat()
    three = (base + timedelta(hours=3)).isoformat()
    assert await listed(("from", one), ("to", three)) == [ids[2], ids[1]]
    assert await listed(("from", three)) == [ids[4], ids[3]]
    assert await listed(("to", one)) == [ids[0]]
    assert await listed(("from", (base + timedelta(minutes=61)).isoformat())) == ids[:1:-1]
    bad = await client.get("/v1/tickets", params={"from": "yesterday"}, headers=auth(admin_key))
    assert bad.status_code == 422
    naive = await client.get(
        "/v1/tickets", params={"from": "2026-01-01T00:00:00"}, headers=auth(admin_key)
    )
    assert naive.status_code == 422
    wrong_status = await client.get(
        "/v1/tickets", params={"status": "done"}, headers=auth(admin_key)
    )
    assert wrong_status.status_code == 422


async def test_list_pagination_walks_every_ticket_once(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    ids = await open_tickets(client, admin_key, [{} for _ in range(7)])
    # Two tickets with the same created_at: the id breaks the tie.
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE tickets SET created_at = (SELECT created_at FROM tickets WHERE id = :a) "
                "WHERE id = :b"
            ),
            {"a": int(ids[3]), "b": int(ids[4])},
        )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/tickets", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen.extend(t["id"] for t in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen, key=int) == sorted(ids, key=int)
    assert len(seen) == len(set(seen)) == 7
    assert seen.index(ids[4]) < seen.index(ids[3])  # same created_at: higher id first
    bad = await client.get("/v1/tickets", params={"cursor": "garbage"}, headers=auth(admin_key))
    assert bad.status_code == 422
    too_many = await client.get("/v1/tickets", params={"limit": 501}, headers=auth(admin_key))
    assert too_many.status_code == 422


async def test_location_restricted_keys_see_and_change_only_their_tickets(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    berlin, paris, nowhere = await open_tickets(
        client,
        admin_key,
        [{}, {"location_id": "store-paris-02"}, {"location_id": ...}],
    )
    key = await make_key(
        Scope.TICKETS_READ, Scope.TICKETS_WRITE, locations=["store-berlin-01"], name="berlin"
    )
    assert [t["id"] for t in await list_tickets(client, key)] == [berlin]
    assert [
        t["id"] for t in await list_tickets(client, key, [("location_id", "store-berlin-01")])
    ] == [berlin]
    assert [t["id"] for t in await list_tickets(client, key, [("status", "open")])] == [berlin]
    forbidden = await client.get(
        "/v1/tickets", params={"location_id": "store-paris-02"}, headers=auth(key)
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "/problems/forbidden"
    mixed = await client.get(
        "/v1/tickets",
        params=[("location_id", "store-berlin-01"), ("location_id", "store-paris-02")],
        headers=auth(key),
    )
    assert mixed.status_code == 403
    assert (await get_ticket(client, key, berlin))["id"] == berlin
    for elsewhere in (paris, nowhere):
        read = await client.get(f"/v1/tickets/{elsewhere}", headers=auth(key))
        assert read.status_code == 404
        assert read.json()["type"] == "/problems/not-found"
        changed = await client.patch(
            f"/v1/tickets/{elsewhere}", json={"status": "resolved"}, headers=auth(key)
        )
        assert changed.status_code == 404
    # Nothing changed elsewhere; its own ticket it may change.
    assert (await get_ticket(client, admin_key, paris))["status"] == "open"
    done = await patch(client, key, berlin, {"status": "resolved", "note": "Called back."})
    assert done["status"] == "resolved"
    assert done["timeline"][-2]["detail"] == "open → resolved by api key 'berlin'"
    assert done["timeline"][-1]["detail"] == "Called back. — api key 'berlin'"


async def test_ticket_scopes(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    reader = await make_key(Scope.TICKETS_READ)
    writer = await make_key(Scope.TICKETS_WRITE)
    feedback_only = await make_key(Scope.FEEDBACK_READ, Scope.FEEDBACK_WRITE)
    assert (await client.get("/v1/tickets", headers=auth(reader))).status_code == 200
    assert (await client.get(f"/v1/tickets/{ticket_id}", headers=auth(reader))).status_code == 200
    denied = await client.patch(
        f"/v1/tickets/{ticket_id}", json={"note": "x"}, headers=auth(reader)
    )
    assert denied.status_code == 403
    assert (await client.get("/v1/tickets", headers=auth(feedback_only))).status_code == 403
    assert (
        await client.get(f"/v1/tickets/{ticket_id}", headers=auth(feedback_only))
    ).status_code == 403
    assert (
        await client.patch(f"/v1/tickets/{ticket_id}", json={"note": "x"}, headers=auth(writer))
    ).status_code == 200
    assert (await client.get("/v1/tickets")).status_code == 401
    assert (await client.patch(f"/v1/tickets/{ticket_id}", json={"note": "x"})).status_code == 401
    assert (await get_ticket(client, admin_key, ticket_id))["timeline"][-1]["kind"] == "note"
    assert kinds(await get_ticket(client, admin_key, ticket_id)) == ["created", "note"]


async def test_patch_records_each_change_in_the_timeline_and_queues_an_update(
    client: httpx.AsyncClient, admin_key: str, state: AppState, make_key: KeyFactory
) -> None:
    await create_integration(client, admin_key, "hook")
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    before = await get_ticket(client, admin_key, ticket_id)
    agent = await make_key(Scope.TICKETS_WRITE, Scope.TICKETS_READ, name="agent")
    changed = await patch(
        client,
        agent,
        ticket_id,
        {
            "status": "in_progress",
            "priority": "urgent",
            "assignee": "kim@example.com",
            "note": "Calling the customer.",
        },
    )
    assert (changed["status"], changed["priority"], changed["assignee"]) == (
        "in_progress",
        "urgent",
        "kim@example.com",
    )
    assert [(e["kind"], e["detail"]) for e in changed["timeline"][1:]] == [
        ("status_changed", "open → in_progress by api key 'agent'"),
        ("priority_changed", "high → urgent by api key 'agent'"),
        ("assignee_changed", "nobody → kim@example.com by api key 'agent'"),
        ("note", "Calling the customer. — api key 'agent'"),
    ]
    assert at(changed["updated_at"]) > at(before["updated_at"])
    assert changed["resolved_at"] is None
    assert changed == await get_ticket(client, admin_key, ticket_id)
    assert [e for _, e, _ in await outbox(state)] == [
        "feedback.received",
        "ticket.created",
        "ticket.updated",
    ]
    [payload] = await rows(
        state,
        "SELECT payload::text AS p FROM deliveries WHERE event_type = 'ticket.updated'",
    )
    data = orjson.loads(payload["p"])["data"]
    assert (data["status"], data["priority"], data["assignee"]) == (
        "in_progress",
        "urgent",
        "kim@example.com",
    )
    # A note alone is a change too.
    await patch(client, admin_key, ticket_id, {"note": "Left a voicemail."})
    assert [e for _, e, _ in await outbox(state)][-1] == "ticket.updated"


async def test_resolving_sets_resolved_at_and_reopening_clears_it(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(
        client, admin_key, "hook", events=["ticket.updated", "ticket.resolved"]
    )
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    resolved = await patch(client, admin_key, ticket_id, {"status": "resolved"})
    assert resolved["resolved_at"] is not None
    assert abs(at(resolved["resolved_at"]) - datetime.now(UTC)) < timedelta(seconds=10)
    closed = await patch(client, admin_key, ticket_id, {"status": "closed"})
    assert closed["resolved_at"] == resolved["resolved_at"]  # kept: it was already done
    reopened = await patch(client, admin_key, ticket_id, {"status": "open"})
    assert reopened["resolved_at"] is None
    again = await patch(client, admin_key, ticket_id, {"status": "resolved"})
    assert again["resolved_at"] is not None
    assert at(again["resolved_at"]) > at(resolved["resolved_at"])
    assert [e for _, e, _ in await outbox(state)] == [
        "ticket.resolved",
        "ticket.updated",  # closed
        "ticket.updated",  # reopened
        "ticket.resolved",
    ]


async def test_a_patch_that_changes_nothing_records_nothing(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await create_integration(client, admin_key, "hook", events=["ticket.updated"])
    await put_location(client, admin_key, "store-berlin-01", "maria@example.com", None)
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    before = await get_ticket(client, admin_key, ticket_id)
    same = await patch(
        client,
        admin_key,
        ticket_id,
        {"status": "open", "priority": "high", "assignee": "maria@example.com"},
    )
    assert same == before
    assert await outbox(state) == []


async def test_assignee_null_unassigns_and_an_absent_assignee_keeps_it(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    await put_location(client, admin_key, "store-berlin-01", "maria@example.com", None)
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    kept = await patch(client, admin_key, ticket_id, {"priority": "low"})
    assert kept["assignee"] == "maria@example.com"
    unassigned = await patch(client, admin_key, ticket_id, {"assignee": None})
    assert unassigned["assignee"] is None
    assert unassigned["timeline"][-1]["detail"].startswith("maria@example.com → nobody")
    assert [
        t["id"] for t in await list_tickets(client, admin_key, [("assignee", "maria@example.com")])
    ] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "done"},
        {"priority": "critical"},
        {"note": ""},
        {"title": "x"},
        {"assignee": "x" * 201},
    ],
)
async def test_invalid_patches_are_422(
    client: httpx.AsyncClient, admin_key: str, body: dict[str, Any]
) -> None:
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    response = await client.patch(f"/v1/tickets/{ticket_id}", json=body, headers=auth(admin_key))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/validation-error"
    assert kinds(await get_ticket(client, admin_key, ticket_id)) == ["created"]


async def test_unknown_tickets_are_404(client: httpx.AsyncClient, admin_key: str) -> None:
    assert (await client.get("/v1/tickets/999", headers=auth(admin_key))).status_code == 404
    missing = await client.patch(
        "/v1/tickets/999", json={"status": "resolved"}, headers=auth(admin_key)
    )
    assert missing.status_code == 404
    assert (await client.get("/v1/tickets/abc", headers=auth(admin_key))).status_code == 422


# -- status flowing back ---------------------------------------------------------------------


def signed(
    secret: str,
    body: Any,
    *,
    age_s: int = 0,
    msg_id: str = "msg_inbound_1",
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    timestamp = int(time.time()) - age_s
    return raw, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(secret, msg_id, timestamp, raw),
        "content-type": "application/json",
    }


async def send_inbound(
    client: httpx.AsyncClient, name: str, secret: str, body: Any, **options: Any
) -> httpx.Response:
    raw, headers = signed(secret, body, **options)
    return await client.post(f"/v1/inbound/{name}", content=raw, headers=headers)


async def add_external_ref(
    state: AppState, ticket_id: str, integration: str, external_id: str
) -> None:
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO ticket_external_refs (ticket_id, integration_id, external_id) "
                "SELECT :ticket, id, :external FROM integrations WHERE name = :name"
            ),
            {"ticket": int(ticket_id), "external": external_id, "name": integration},
        )


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("solved", "resolved"),
        ("pending", "waiting"),
        ("hold", "waiting"),
        ("closed", "closed"),
        ("in_progress", "in_progress"),
        ("Solved", "resolved"),
        ("resolved", "resolved"),
    ],
)
async def test_inbound_status_by_external_id_is_mapped(
    client: httpx.AsyncClient, admin_key: str, state: AppState, word: str, status: str
) -> None:
    zendesk = await create_integration(client, admin_key, "zendesk-eu", kind="zendesk")
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    await add_external_ref(state, ticket_id, "zendesk-eu", "35436")
    response = await send_inbound(
        client,
        "zendesk-eu",
        zendesk["inbound_secret"],
        {"external_id": "35436", "status": word, "actor": "agent@acme.example"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ticket_id": ticket_id, "status": status, "changed": True}
    ticket = await get_ticket(client, admin_key, ticket_id)
    assert ticket["status"] == status
    assert ticket["timeline"][-1]["detail"] == (
        f"open → {status} by zendesk-eu (agent@acme.example)"
    )
    assert (ticket["resolved_at"] is not None) == (status in ("resolved", "closed"))


@pytest.mark.parametrize(("word", "status"), [("new", "open"), ("open", "open")])
async def test_inbound_new_and_open_reopen_a_ticket_by_ticket_id(
    client: httpx.AsyncClient, admin_key: str, word: str, status: str
) -> None:
    hook = await create_integration(client, admin_key, "hook")
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    await patch(client, admin_key, ticket_id, {"status": "resolved"})
    response = await send_inbound(
        client, "hook", hook["inbound_secret"], {"ticket_id": ticket_id, "status": word}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ticket_id": ticket_id, "status": status, "changed": True}
    ticket = await get_ticket(client, admin_key, ticket_id)
    assert (ticket["status"], ticket["resolved_at"]) == ("open", None)


async def test_inbound_resolution_goes_to_the_other_integrations_only(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = ["ticket.created", "ticket.updated", "ticket.resolved"]
    zendesk = await create_integration(
        client, admin_key, "zendesk-eu", kind="zendesk", events=events
    )
    await create_integration(client, admin_key, "hook", events=events)
    await create_integration(client, admin_key, "hook-created-only", events=["ticket.created"])
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    await add_external_ref(state, ticket_id, "zendesk-eu", "ZD-77")
    queued_before = len(await outbox(state))
    response = await send_inbound(
        client,
        "zendesk-eu",
        zendesk["inbound_secret"],
        {"external_id": "ZD-77", "status": "solved", "note": "Refund issued.", "actor": "ana"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    ticket = await get_ticket(client, admin_key, ticket_id)
    assert ticket["status"] == "resolved"
    assert ticket["resolved_at"] is not None
    assert [(e["kind"], e["detail"]) for e in ticket["timeline"][-2:]] == [
        ("status_changed", "open → resolved by zendesk-eu (ana)"),
        ("note", "Refund issued. — zendesk-eu (ana)"),
    ]
    new = (await outbox(state))[queued_before:]
    assert new == [("hook", "ticket.resolved", int(ticket_id))]

    # The same status again: nothing changes, nothing is queued, nothing recorded.
    replay = await send_inbound(
        client,
        "zendesk-eu",
        zendesk["inbound_secret"],
        {"external_id": "ZD-77", "status": "solved"},
        msg_id="msg_inbound_2",
    )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"ticket_id": ticket_id, "status": "resolved", "changed": False}
    assert len(await outbox(state)) == queued_before + 1
    assert await get_ticket(client, admin_key, ticket_id) == ticket

    # Reopened by the webhook's system: ticket.updated goes to Zendesk, not back.
    hook_secret = await rows(state, "SELECT inbound_secret FROM integrations WHERE name = 'hook'")
    reopened = await send_inbound(
        client,
        "hook",
        hook_secret[0]["inbound_secret"],
        {"ticket_id": ticket_id, "status": "pending"},
    )
    assert reopened.json() == {"ticket_id": ticket_id, "status": "waiting", "changed": True}
    assert (await outbox(state))[queued_before + 1 :] == [
        ("zendesk-eu", "ticket.updated", int(ticket_id))
    ]


async def test_inbound_signature_failures_are_401(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    hook = await create_integration(client, admin_key, "hook")
    other = await create_integration(client, admin_key, "other")
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    body = {"ticket_id": ticket_id, "status": "solved"}
    url = "/v1/inbound/hook"
    raw, headers = signed(hook["inbound_secret"], body)

    tampered = await client.post(url, content=raw.replace(b"solved", b"closed"), headers=headers)
    wrong_secret = await send_inbound(client, "hook", other["inbound_secret"], body)
    outgoing_style = await send_inbound(client, "hook", signing.generate_secret(), body)
    stale = await send_inbound(client, "hook", hook["inbound_secret"], body, age_s=301 + 5)
    future = await send_inbound(client, "hook", hook["inbound_secret"], body, age_s=-400)
    no_headers = await client.post(url, content=raw, headers={"content-type": "application/json"})
    responses = [tampered, wrong_secret, outgoing_style, stale, future, no_headers]
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in headers.items() if k != name}
        responses.append(await client.post(url, content=raw, headers=partial))
    garbage = {**headers, "webhook-signature": "v1,not base64!!"}
    responses.append(await client.post(url, content=raw, headers=garbage))
    # An API key is no substitute for the signature.
    responses.append(
        await client.post(
            url, content=raw, headers={"content-type": "application/json", **auth(admin_key)}
        )
    )
    assert [r.status_code for r in responses] == [401] * len(responses)
    assert responses[0].json()["type"] == "/problems/unauthenticated"
    assert (await get_ticket(client, admin_key, ticket_id))["status"] == "open"
    # A timestamp within the window is fine.
    recent = await send_inbound(client, "hook", hook["inbound_secret"], body, age_s=240)
    assert recent.status_code == 200, recent.text


async def test_inbound_unknown_ticket_or_integration_is_404_and_bad_bodies_422(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    hook = await create_integration(client, admin_key, "hook")
    await create_integration(client, admin_key, "other")
    [ticket_id] = await open_tickets(client, admin_key, [{}])
    await add_external_ref(state, ticket_id, "other", "EXT-1")
    secret = hook["inbound_secret"]
    not_found = [
        await send_inbound(client, "hook", secret, {"external_id": "nope", "status": "solved"}),
        await send_inbound(client, "hook", secret, {"ticket_id": "999999", "status": "solved"}),
        # Another integration's external id is unknown to this one.
        await send_inbound(client, "hook", secret, {"external_id": "EXT-1", "status": "solved"}),
        await send_inbound(client, "nobody", secret, {"ticket_id": ticket_id, "status": "solved"}),
    ]
    assert [r.status_code for r in not_found] == [404] * 4
    assert not_found[0].json()["type"] == "/problems/not-found"
    bad_bodies: list[Any] = [
        {"ticket_id": ticket_id},
        {"ticket_id": ticket_id, "status": "done"},
        {"status": "solved"},
        {"ticket_id": ticket_id, "external_id": "EXT-1", "status": "solved"},
        {"ticket_id": "0", "status": "solved"},
        {"ticket_id": ticket_id, "status": "solved", "extra": 1},
        b"not json",
        b"[1, 2]",
    ]
    for body in bad_bodies:
        response = await send_inbound(client, "hook", secret, body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["type"] == "/problems/validation-error"
    assert (await get_ticket(client, admin_key, ticket_id))["status"] == "open"


@pytest.mark.parametrize("via", ["api", "inbound"])
async def test_reopening_a_ticket_while_the_customer_has_a_newer_open_one_is_refused(
    app: FastAPI, admin_key: str, via: str
) -> None:
    """One open ticket per customer (the partial unique index uq_tickets_open_customer):
    reopening an old ticket while a newer one is open must be refused with a 409
    problem, not end in a 500 (today the UniqueViolationError escapes)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        hook = await create_integration(client, admin_key, "hook")
        first = await post(client, admin_key, make_event("ro-1"))
        await patch(client, admin_key, first["ticket_id"], {"status": "resolved"})
        second = await post(client, admin_key, make_event("ro-2"))
        assert second["ticket_id"] not in (None, first["ticket_id"])
        if via == "api":
            response = await client.patch(
                f"/v1/tickets/{first['ticket_id']}",
                json={"status": "open"},
                headers=auth(admin_key),
            )
        else:
            response = await send_inbound(
                client,
                "hook",
                hook["inbound_secret"],
                {"ticket_id": first["ticket_id"], "status": "open"},
            )
        assert response.status_code == 409, response.text
        assert response.json()["type"] == "/problems/conflict"
        assert (await get_ticket(client, admin_key, first["ticket_id"]))["status"] == "resolved"
