"""Locations over REST (SPEC section 6, routing): upsert, reads, location-restricted
keys and scopes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from app.models.enums import Scope
from app.schemas.locations import EXAMPLE_LOCATION
from tests.conftest import KeyFactory, assert_problem, auth

LOCATION_KEYS = {"location_id", "name", "owner", "team", "region", "created_at", "updated_at"}


async def put(client: httpx.AsyncClient, key: str, location_id: str, **body: Any) -> httpx.Response:
    return await client.put(f"/v1/locations/{location_id}", json=body, headers=auth(key))


async def test_put_creates_then_replaces(client: httpx.AsyncClient, admin_key: str) -> None:
    created = await put(client, admin_key, "store-berlin-01", **EXAMPLE_LOCATION)
    assert created.status_code == 200, created.text
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    assert set(body) == LOCATION_KEYS
    assert body == {
        "location_id": "store-berlin-01",
        **EXAMPLE_LOCATION,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None

    replaced = await put(client, admin_key, "store-berlin-01", owner="  jo@example.com ")
    assert replaced.status_code == 200, replaced.text
    again = replaced.json()
    assert again["owner"] == "jo@example.com"  # trimmed like every text field
    assert (again["name"], again["team"], again["region"]) == (None, None, None)
    assert again["created_at"] == body["created_at"]
    assert datetime.fromisoformat(again["updated_at"]) >= datetime.fromisoformat(body["updated_at"])

    read = await client.get("/v1/locations/store-berlin-01", headers=auth(admin_key))
    assert read.status_code == 200
    assert read.json() == again


async def test_list_is_ordered_and_paginated(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    ids = ["store-c", "store-a", "store-e", "store-b", "store-d"]
    for location_id in ids:
        assert (await put(client, admin_key, location_id, name=location_id)).status_code == 200
    reader = await make_key(Scope.TICKETS_READ)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/locations", params=params, headers=auth(reader))
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert all(set(item) == LOCATION_KEYS for item in page["items"])
        seen.extend(item["location_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids)

    bad = await client.get("/v1/locations", params={"cursor": "WzFd"}, headers=auth(reader))
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "cursor"]


async def test_restricted_keys_see_and_change_only_their_locations(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    for location_id in ("store-berlin-01", "store-paris-01", "store-rome-01"):
        assert (await put(client, admin_key, location_id, name=location_id)).status_code == 200
    berlin_reader = await make_key(
        Scope.TICKETS_READ, locations=["store-berlin-01", "store-nowhere"]
    )
    listed = (await client.get("/v1/locations", headers=auth(berlin_reader))).json()
    assert [item["location_id"] for item in listed["items"]] == ["store-berlin-01"]
    assert listed["next_cursor"] is None
    own = await client.get("/v1/locations/store-berlin-01", headers=auth(berlin_reader))
    assert own.status_code == 200
    other = await client.get("/v1/locations/store-paris-01", headers=auth(berlin_reader))
    assert assert_problem(other, 403)["type"] == "/problems/forbidden"
    # within its list but not stored: 404
    assert_problem(
        await client.get("/v1/locations/store-nowhere", headers=auth(berlin_reader)), 404
    )

    berlin_admin = await make_key(Scope.ADMIN, locations=["store-berlin-01"])
    assert (await put(client, berlin_admin, "store-berlin-01", owner="ana")).status_code == 200
    refused = await put(client, berlin_admin, "store-paris-01", owner="mallory")
    assert_problem(refused, 403)
    assert_problem(await put(client, berlin_admin, "store-new", owner="mallory"), 403)
    paris = (await client.get("/v1/locations/store-paris-01", headers=auth(admin_key))).json()
    assert paris["owner"] is None
    absent = await client.get("/v1/locations/store-new", headers=auth(admin_key))
    assert_problem(absent, 404)


async def test_unknown_location_is_404(client: httpx.AsyncClient, admin_key: str) -> None:
    body = assert_problem(await client.get("/v1/locations/nowhere", headers=auth(admin_key)), 404)
    assert body["type"] == "/problems/not-found"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"extra": 1}, ["extra"]),
        ({"name": "n" * 201}, ["name"]),
        ({"owner": ""}, ["owner"]),
        ({"team": 5}, ["team"]),
        ({"region": "r" * 65}, ["region"]),
        ({"name": "a\x00"}, ["name"]),
    ],
)
async def test_invalid_bodies(
    client: httpx.AsyncClient, admin_key: str, body: dict[str, Any], loc: list[str]
) -> None:
    response = await put(client, admin_key, "store-1", **body)
    assert [error["loc"] for error in assert_problem(response, 422)["errors"]] == [loc]


@pytest.mark.parametrize("location_id", ["x" * 65, "%20%20", "a%00b"])
async def test_invalid_location_ids(
    client: httpx.AsyncClient, admin_key: str, location_id: str
) -> None:
    for response in (
        await put(client, admin_key, location_id, name="n"),
        await client.get(f"/v1/locations/{location_id}", headers=auth(admin_key)),
    ):
        assert [error["loc"] for error in assert_problem(response, 422)["errors"]] == [
            ["path", "location_id"]
        ]


async def test_scopes(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    assert_problem(await client.get("/v1/locations"), 401)
    assert_problem(await client.put("/v1/locations/x", json={}), 401)
    feedback_reader = await make_key(Scope.FEEDBACK_READ, Scope.METRICS_READ)
    assert_problem(await client.get("/v1/locations", headers=auth(feedback_reader)), 403)
    assert_problem(await client.get("/v1/locations/x", headers=auth(feedback_reader)), 403)
    ticket_worker = await make_key(Scope.TICKETS_READ, Scope.TICKETS_WRITE)
    assert_problem(await put(client, ticket_worker, "x", name="n"), 403)
    assert (await client.get("/v1/locations", headers=auth(ticket_worker))).status_code == 200
