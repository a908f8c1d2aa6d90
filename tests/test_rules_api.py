"""Rules over REST (SPEC section 6): CRUD on top of the default rules, the stored JSON
shape the rule matcher reads, strict validation, pagination and who may manage them."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.dependencies import AppState
from app.models.closed_loop import IntegrationRow, RuleRow
from app.models.enums import Scope
from app.schemas.rules import EXAMPLE_RULE
from tests.conftest import KeyFactory, assert_problem, auth

RULE_KEYS = {
    "id",
    "name",
    "enabled",
    "position",
    "conditions",
    "action",
    "created_at",
    "updated_at",
}
EMPTY_CONDITIONS: dict[str, Any] = {
    "channels": [],
    "location_ids": [],
    "touchpoints": [],
    "sources": [],
    "tags_any": [],
    "keywords_any": [],
    "poor_scores": [],
    "nps_max": None,
    "sentiment_max": None,
}
DEFAULT_ACTION: dict[str, Any] = {
    "priority": "normal",
    "assignee": None,
    "team": None,
    "targets": [],
    "sla_hours": None,
}


def error_locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in assert_problem(response, 422)["errors"]]


async def add_integration(state: AppState, name: str) -> None:
    async with state.sessionmaker() as session, session.begin():
        session.add(
            IntegrationRow(
                name=name,
                kind="webhook",
                enabled=True,
                events=["ticket.created"],
                config={"url": "https://hooks.example.com/x"},
                secrets={},
                inbound_secret="whsec_dGVzdA==",
            )
        )


async def stored_rule(state: AppState, rule_id: str) -> RuleRow:
    async with state.sessionmaker() as session:
        row = (await session.execute(select(RuleRow).where(RuleRow.id == int(rule_id)))).scalar()
    assert row is not None
    return row


# --- reading ----------------------------------------------------------------------------


async def test_default_rules_are_listed_in_order(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.get("/v1/rules", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    items = body["items"]
    assert [(r["position"], r["name"]) for r in items] == [
        (100, "Strong detractors"),
        (200, "Poor scores"),
        (300, "Negative comments"),
    ]
    for rule in items:
        assert set(rule) == RULE_KEYS
        assert isinstance(rule["id"], str)
        assert rule["id"].isdigit()
        assert rule["enabled"] is True
        assert datetime.fromisoformat(rule["created_at"]).tzinfo is not None
    assert items[0]["conditions"] == {**EMPTY_CONDITIONS, "nps_max": 3}
    assert items[0]["action"] == {**DEFAULT_ACTION, "priority": "high", "sla_hours": 24}
    assert items[1]["conditions"] == {
        **EMPTY_CONDITIONS,
        "poor_scores": ["nps", "csat", "ces", "rating"],
    }
    assert items[1]["action"] == {**DEFAULT_ACTION, "sla_hours": 48}
    assert items[2]["conditions"] == {**EMPTY_CONDITIONS, "sentiment_max": -0.5}
    assert items[2]["action"] == {**DEFAULT_ACTION, "priority": "low", "sla_hours": 72}

    one = await client.get(f"/v1/rules/{items[1]['id']}", headers=auth(admin_key))
    assert one.status_code == 200
    assert one.json() == items[1]


async def test_pagination_follows_position_then_id(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    for name in ("tie A", "tie B"):
        created = await client.post(
            "/v1/rules", json={"name": name, "position": 200}, headers=auth(admin_key)
        )
        assert created.status_code == 201, created.text
    first = await client.post(
        "/v1/rules", json={"name": "first", "position": 0}, headers=auth(admin_key)
    )
    assert first.status_code == 201

    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/rules", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        names.extend(rule["name"] for rule in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [
        "first",
        "Strong detractors",
        "Poor scores",
        "tie A",
        "tie B",
        "Negative comments",
    ]
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage!", "WyJhIl0", "WzEsMiwzXQ", "WzEsLTFd"])
async def test_invalid_cursor_is_a_422(
    client: httpx.AsyncClient, admin_key: str, cursor: str
) -> None:
    response = await client.get("/v1/rules", params={"cursor": cursor}, headers=auth(admin_key))
    assert error_locs(response) == [["query", "cursor"]]


# --- writing ----------------------------------------------------------------------------


async def test_create_fills_in_defaults_and_stores_every_key(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    response = await client.post(
        "/v1/rules",
        json={"name": "Refunds", "position": 50, "conditions": {"keywords_any": ["refund"]}},
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    rule = response.json()
    assert set(rule) == RULE_KEYS
    assert rule["name"] == "Refunds"
    assert rule["enabled"] is True
    assert rule["position"] == 50
    assert rule["conditions"] == {**EMPTY_CONDITIONS, "keywords_any": ["refund"]}
    assert rule["action"] == DEFAULT_ACTION

    row = await stored_rule(state, rule["id"])
    assert row.conditions == rule["conditions"]
    assert row.action == DEFAULT_ACTION


async def test_create_the_spec_example_with_known_targets(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await add_integration(state, "zendesk-eu")
    response = await client.post("/v1/rules", json=EXAMPLE_RULE, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    rule = response.json()
    assert {k: v for k, v in rule.items() if k not in {"id", "created_at", "updated_at"}} == (
        EXAMPLE_RULE
    )
    row = await stored_rule(state, rule["id"])
    assert row.conditions == EXAMPLE_RULE["conditions"]
    assert row.action == EXAMPLE_RULE["action"]
    assert row.position == 10

    listed = (await client.get("/v1/rules", headers=auth(admin_key))).json()["items"]
    assert listed[0]["id"] == rule["id"]  # position 10 comes before the defaults


async def test_unknown_targets_are_named(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    await add_integration(state, "zendesk-eu")
    body = copy.deepcopy(EXAMPLE_RULE)
    body["action"]["targets"] = ["zendesk-eu", "hubspot-x", "zendesk-eu", "crm-y"]
    response = await client.post("/v1/rules", json=body, headers=auth(admin_key))
    problem_body = assert_problem(response, 422)
    assert "crm-y" in problem_body["detail"]
    assert "hubspot-x" in problem_body["detail"]
    assert [e["loc"] for e in problem_body["errors"]] == [
        ["action", "targets", 1],
        ["action", "targets", 3],
    ]
    assert problem_body["errors"][0]["type"] == "unknown_integration"
    assert "hubspot-x" in problem_body["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"extra": 1}, ["extra"]),
        ({"name": ""}, ["name"]),
        ({"name": "x" * 201}, ["name"]),
        ({"name": "a\x00b"}, ["name"]),
        ({"enabled": "yes"}, ["enabled"]),
        ({"position": -1}, ["position"]),
        ({"position": 2**31}, ["position"]),
        ({"position": "10"}, ["position"]),
        ({"conditions": {"unknown": []}}, ["conditions", "unknown"]),
        ({"conditions": {"channels": ["fax"]}}, ["conditions", "channels", 0]),
        ({"conditions": {"poor_scores": ["sentiment"]}}, ["conditions", "poor_scores", 0]),
        ({"conditions": {"location_ids": ["x" * 65]}}, ["conditions", "location_ids", 0]),
        ({"conditions": {"touchpoints": [" "]}}, ["conditions", "touchpoints", 0]),
        ({"conditions": {"tags_any": ["t"] * 101}}, ["conditions", "tags_any"]),
        ({"conditions": {"keywords_any": ["k"] * 101}}, ["conditions", "keywords_any"]),
        ({"conditions": {"sources": "pos"}}, ["conditions", "sources"]),
        ({"conditions": {"nps_max": 11}}, ["conditions", "nps_max"]),
        ({"conditions": {"nps_max": -1}}, ["conditions", "nps_max"]),
        ({"conditions": {"nps_max": 3.5}}, ["conditions", "nps_max"]),
        ({"conditions": {"sentiment_max": 1.5}}, ["conditions", "sentiment_max"]),
        ({"conditions": {"sentiment_max": True}}, ["conditions", "sentiment_max"]),
        ({"action": {"priority": "critical"}}, ["action", "priority"]),
        ({"action": {"assignee": "a" * 201}}, ["action", "assignee"]),
        ({"action": {"team": ""}}, ["action", "team"]),
        ({"action": {"targets": ["Bad Name"]}}, ["action", "targets", 0]),
        ({"action": {"targets": [f"t{i}" for i in range(21)]}}, ["action", "targets"]),
        ({"action": {"sla_hours": 0}}, ["action", "sla_hours"]),
        ({"action": {"sla_hours": 8761}}, ["action", "sla_hours"]),
        ({"action": {"extra": 1}}, ["action", "extra"]),
    ],
)
async def test_invalid_rules_are_422_with_the_field(
    client: httpx.AsyncClient, admin_key: str, change: dict[str, Any], loc: list[str | int]
) -> None:
    body = {"name": "r", "position": 1, **change}
    response = await client.post("/v1/rules", json=body, headers=auth(admin_key))
    assert loc in error_locs(response)


async def test_required_fields(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.post("/v1/rules", json={}, headers=auth(admin_key))
    assert sorted(map(str, error_locs(response))) == ["['name']", "['position']"]


async def test_put_replaces_the_whole_rule(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    listed = (await client.get("/v1/rules", headers=auth(admin_key))).json()["items"]
    strong = listed[0]
    response = await client.put(
        f"/v1/rules/{strong['id']}",
        json={"name": "Detractors", "enabled": False, "position": 150},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    rule = response.json()
    assert rule["id"] == strong["id"]
    assert rule["enabled"] is False
    assert rule["position"] == 150
    assert rule["conditions"] == EMPTY_CONDITIONS  # replaced, not merged
    assert rule["action"] == DEFAULT_ACTION
    assert rule["created_at"] == strong["created_at"]
    assert datetime.fromisoformat(rule["updated_at"]) >= datetime.fromisoformat(
        strong["updated_at"]
    )
    row = await stored_rule(state, rule["id"])
    assert (row.name, row.enabled, row.position) == ("Detractors", False, 150)
    assert row.conditions == EMPTY_CONDITIONS

    again = await client.get(f"/v1/rules/{strong['id']}", headers=auth(admin_key))
    assert again.json() == rule
    order = [
        r["name"] for r in (await client.get("/v1/rules", headers=auth(admin_key))).json()["items"]
    ]
    assert order == ["Detractors", "Poor scores", "Negative comments"]

    invalid = await client.put(
        f"/v1/rules/{strong['id']}", json={"name": "x"}, headers=auth(admin_key)
    )
    assert error_locs(invalid) == [["position"]]


async def test_delete_then_404(client: httpx.AsyncClient, admin_key: str) -> None:
    listed = (await client.get("/v1/rules", headers=auth(admin_key))).json()["items"]
    rule_id = listed[2]["id"]
    deleted = await client.delete(f"/v1/rules/{rule_id}", headers=auth(admin_key))
    assert deleted.status_code == 204
    assert deleted.content == b""
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/v1/rules/{rule_id}", headers=auth(admin_key))
        assert assert_problem(response, 404)["type"] == "/problems/not-found"
    put = await client.put(
        f"/v1/rules/{rule_id}", json={"name": "x", "position": 1}, headers=auth(admin_key)
    )
    assert_problem(put, 404)
    remaining = (await client.get("/v1/rules", headers=auth(admin_key))).json()["items"]
    assert [r["name"] for r in remaining] == ["Strong detractors", "Poor scores"]


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, admin_key: str) -> None:
    assert_problem(await client.get("/v1/rules/999999", headers=auth(admin_key)), 404)
    assert_problem(await client.get("/v1/rules/abc", headers=auth(admin_key)), 404)
    response = await client.get(f"/v1/rules/{2**63}", headers=auth(admin_key))
    assert error_locs(response) == [["path", "rule_id"]]


# --- who may -----------------------------------------------------------------------------


async def test_auth(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    no_key = await client.get("/v1/rules")
    assert_problem(no_key, 401)
    assert no_key.headers["www-authenticate"].startswith("Bearer")

    reader = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, Scope.TICKETS_WRITE)
    restricted_admin = await make_key(Scope.ADMIN, locations=["store-berlin-01"])
    admin = await make_key(Scope.ADMIN)
    rule_id = (await client.get("/v1/rules", headers=auth(admin))).json()["items"][0]["id"]
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/rules", None),
        ("POST", "/v1/rules", {"name": "x", "position": 1}),
        ("GET", f"/v1/rules/{rule_id}", None),
        ("PUT", f"/v1/rules/{rule_id}", {"name": "x", "position": 1}),
        ("DELETE", f"/v1/rules/{rule_id}", None),
    ]
    for key in (reader, restricted_admin):
        for method, path, body in requests:
            response = await client.request(method, path, json=body, headers=auth(key))
            assert assert_problem(response, 403)["type"] == "/problems/forbidden", (method, path)
    detail = assert_problem(await client.get("/v1/rules", headers=auth(restricted_admin)), 403)
    assert "global configuration" in detail["detail"]
    # nothing changed
    listed = (await client.get("/v1/rules", headers=auth(admin))).json()["items"]
    assert [r["name"] for r in listed] == ["Strong detractors", "Poor scores", "Negative comments"]
