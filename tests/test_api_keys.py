"""API keys: management over REST and the CLI, authentication, scopes, location
restrictions and the bootstrap admin key (SPEC section 2 and 8)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from app.dependencies import AppState
from app.errors import Unauthenticated
from app.models.api_key import ApiKeyRow
from app.models.enums import Scope
from app.services import api_keys
from tests.conftest import KeyFactory, auth, make_event

PROBLEM = "application/problem+json"
CLI = Path(sys.executable).with_name("feedback-service")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "/problems/unauthenticated"


def assert_forbidden(response: httpx.Response) -> None:
    assert_problem(response, 403)
    assert response.json()["type"] == "/problems/forbidden"


async def create_key(
    client: httpx.AsyncClient, admin: str, **body: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    response = await client.post("/v1/api-keys", json=body, headers=auth(admin))
    return response, response.json()


# --- creation ---------------------------------------------------------------------------


async def test_create_returns_the_key_once(client: httpx.AsyncClient, admin_key: str) -> None:
    response, body = await create_key(
        client,
        admin_key,
        name="Berlin dashboard",
        scopes=["feedback:read", "metrics:read"],
        location_ids=["store-berlin-01"],
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(body) == {"id", "name", "scopes", "location_ids", "key", "created_at"}
    assert isinstance(body["id"], str)
    assert body["id"].isdigit()
    assert body["name"] == "Berlin dashboard"
    assert body["scopes"] == ["feedback:read", "metrics:read"]
    assert body["location_ids"] == ["store-berlin-01"]
    assert re.fullmatch(r"fbk_[A-Za-z0-9_-]{32}", body["key"])
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.tzinfo is not None

    listed = await client.get("/v1/api-keys", headers=auth(admin_key))
    assert listed.status_code == 200
    assert body["key"] not in listed.text
    item = next(i for i in listed.json()["items"] if i["id"] == body["id"])
    assert item == {
        "id": body["id"],
        "name": "Berlin dashboard",
        "key_prefix": body["key"][:8],
        "scopes": ["feedback:read", "metrics:read"],
        "location_ids": ["store-berlin-01"],
        "created_at": item["created_at"],
        "revoked_at": None,
    }
    assert datetime.fromisoformat(item["created_at"]) == created_at


async def test_unrestricted_key_has_null_location_ids(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response, body = await create_key(client, admin_key, name="all", scopes=["feedback:write"])
    assert response.status_code == 201
    assert body["location_ids"] is None


async def test_only_a_sha256_digest_is_stored(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    _, body = await create_key(client, admin_key, name="hashed", scopes=["feedback:read"])
    key: str = body["key"]
    async with state.sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM api_keys"))).mappings().all()
        stored = await session.get(ApiKeyRow, int(body["id"]))
    assert stored is not None
    assert stored.key_hash == hashlib.sha256(key.encode()).digest()
    assert stored.key_prefix == key[:8]
    secret_part = key[8:]
    for row in rows:
        for column, value in row.items():
            rendered = value.hex() if isinstance(value, bytes) else str(value)
            assert secret_part not in rendered, column
            if isinstance(value, bytes):
                assert secret_part.encode() not in value, column


async def test_new_key_works_immediately(client: httpx.AsyncClient, admin_key: str) -> None:
    _, body = await create_key(client, admin_key, name="writer", scopes=["feedback:write"])
    posted = await client.post("/v1/feedback", json=make_event("k-1"), headers=auth(body["key"]))
    assert posted.status_code == 202, posted.text


async def test_created_scopes_are_those_stored(client: httpx.AsyncClient, admin_key: str) -> None:
    _, body = await create_key(
        client, admin_key, name="dup", scopes=["metrics:read", "feedback:read", "metrics:read"]
    )
    listed = (await client.get("/v1/api-keys", headers=auth(admin_key))).json()["items"]
    stored = next(i for i in listed if i["id"] == body["id"])
    assert stored["scopes"] == ["feedback:read", "metrics:read"]
    assert body["scopes"] == stored["scopes"]


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"name": "x", "scopes": []}, ["scopes"]),
        ({"name": "x", "scopes": ["feedback:delete"]}, ["scopes", 0]),
        ({"name": "x", "scopes": ["admin"], "extra": 1}, ["extra"]),
        ({"name": "", "scopes": ["admin"]}, ["name"]),
        ({"scopes": ["admin"]}, ["name"]),
        ({"name": "x"}, ["scopes"]),
        ({"name": "x", "scopes": ["admin"], "location_ids": []}, ["location_ids"]),
        ({"name": "x", "scopes": ["admin"], "location_ids": ["a" * 65]}, ["location_ids", 0]),
        ({"name": "x", "scopes": "admin"}, ["scopes"]),
    ],
)
async def test_create_body_validation(
    client: httpx.AsyncClient, admin_key: str, payload: dict[str, Any], loc: list[str | int]
) -> None:
    response = await client.post("/v1/api-keys", json=payload, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert body["type"] == "/problems/validation-error"
    assert [e["loc"] for e in body["errors"]] == [loc]
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


async def test_create_body_not_json_is_422(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.post(
        "/v1/api-keys",
        content=b"{not json",
        headers={**auth(admin_key), "content-type": "application/json"},
    )
    assert_problem(response, 422)


# --- listing ----------------------------------------------------------------------------


async def test_list_is_keyset_paginated(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    for n in range(6):
        await make_key(Scope.FEEDBACK_READ, name=f"key-{n}")
    seen: list[str] = []
    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/api-keys", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) == (3 if pages < 3 else 1)
        seen += [item["id"] for item in page["items"]]
        names += [item["name"] for item in page["items"]]
        assert all("key" not in item for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7  # the admin key and six more
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)
    assert names == ["test"] + [f"key-{n}" for n in range(6)]


async def test_list_default_page_holds_everything_when_small(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.get("/v1/api-keys", headers=auth(admin_key))
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    assert len(response.json()["items"]) == 1


async def test_list_cursor_after_the_last_key_gives_an_empty_page(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    cursor = "WzFd"  # base64url("[1]"): the admin key, id 1, was the last one
    response = await client.get("/v1/api-keys", params={"cursor": cursor}, headers=auth(admin_key))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90IGpzb24",  # not json
        "eyJhIjogMX0",  # {"a": 1}
        "WyJ4Il0",  # ["x"]
        "Wy0xXQ",  # [-1]
        "W10",  # []
        "WzEsIDJd",  # [1, 2]
        "x" * 513,
    ],
)
async def test_list_invalid_cursor_is_422(
    client: httpx.AsyncClient, admin_key: str, cursor: str
) -> None:
    response = await client.get("/v1/api-keys", params={"cursor": cursor}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc"])
async def test_list_limit_bounds(client: httpx.AsyncClient, admin_key: str, limit: str) -> None:
    response = await client.get("/v1/api-keys", params={"limit": limit}, headers=auth(admin_key))
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["query", "limit"]


# --- revocation -------------------------------------------------------------------------


async def test_revoke_is_effective_at_once(client: httpx.AsyncClient, admin_key: str) -> None:
    _, body = await create_key(client, admin_key, name="doomed", scopes=["feedback:read"])
    key = body["key"]
    assert (await client.get("/v1/feedback", headers=auth(key))).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{body['id']}", headers=auth(admin_key))
    assert revoked.status_code == 204
    assert revoked.content == b""

    assert_unauthenticated(await client.get("/v1/feedback", headers=auth(key)))
    listed = (await client.get("/v1/api-keys", headers=auth(admin_key))).json()["items"]
    item = next(i for i in listed if i["id"] == body["id"])
    assert item["revoked_at"] is not None
    assert datetime.fromisoformat(item["revoked_at"]) >= datetime.fromisoformat(item["created_at"])

    again = await client.delete(f"/v1/api-keys/{body['id']}", headers=auth(admin_key))
    assert again.status_code == 204
    relisted = (await client.get("/v1/api-keys", headers=auth(admin_key))).json()["items"]
    assert next(i for i in relisted if i["id"] == body["id"])["revoked_at"] == item["revoked_at"]


async def test_admin_can_revoke_itself(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    admin = await make_key(Scope.ADMIN, name="self")
    listed = (await client.get("/v1/api-keys", headers=auth(admin))).json()["items"]
    own_id = listed[0]["id"]
    assert (await client.delete(f"/v1/api-keys/{own_id}", headers=auth(admin))).status_code == 204
    assert_unauthenticated(await client.get("/v1/api-keys", headers=auth(admin)))


async def test_revoke_unknown_id_is_404(client: httpx.AsyncClient, admin_key: str) -> None:
    body = assert_problem(await client.delete("/v1/api-keys/424242", headers=auth(admin_key)), 404)
    assert body["type"] == "/problems/not-found"


@pytest.mark.parametrize("key_id", ["0", "9223372036854775808"])
async def test_revoke_invalid_id_is_422(
    client: httpx.AsyncClient, admin_key: str, key_id: str
) -> None:
    body = assert_problem(
        await client.delete(f"/v1/api-keys/{key_id}", headers=auth(admin_key)), 422
    )
    assert body["errors"][0]["loc"] == ["path", "key_id"]


@pytest.mark.parametrize("key_id", ["-1", "abc", "1.0"])
async def test_revoke_non_numeric_id_is_404(
    client: httpx.AsyncClient, admin_key: str, key_id: str
) -> None:
    """Ids are digits: anything else names no resource (no route matches)."""
    assert_problem(await client.delete(f"/v1/api-keys/{key_id}", headers=auth(admin_key)), 404)


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Token fbk_0123456789abcdefghijklmnopqrstuv"},
        {"Authorization": "Bearer fbk_0123456789abcdefghijklmnopqrstuv"},  # well-formed, unknown
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer fbk_short"},
        {"Authorization": "Bearer " + "fbk_" + "x" * 300},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/feedback"),
        ("POST", "/v1/feedback"),
        ("POST", "/v1/feedback/batch"),
        ("GET", "/v1/feedback/1"),
        ("GET", "/v1/api-keys"),
        ("POST", "/v1/api-keys"),
        ("DELETE", "/v1/api-keys/1"),
    ],
)
async def test_missing_or_unknown_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path, headers=headers)
    assert_unauthenticated(response)


async def test_key_from_the_wrong_scheme_is_not_accepted(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    assert_unauthenticated(
        await client.get("/v1/feedback", headers={"Authorization": f"Basic {admin_key}"})
    )
    assert_unauthenticated(await client.get("/v1/feedback", headers={"X-API-Key": admin_key}))
    ok = await client.get("/v1/feedback", headers={"Authorization": f"bearer {admin_key}"})
    assert ok.status_code == 200  # the scheme name is case-insensitive (RFC 9110)


async def test_unauthenticated_before_validation(client: httpx.AsyncClient) -> None:
    """Without a key, even an invalid request is answered 401, never 422."""
    assert_unauthenticated(await client.post("/v1/feedback", content=b"not json"))
    assert_unauthenticated(await client.get("/v1/feedback", params={"limit": "0"}))
    assert_unauthenticated(await client.post("/v1/api-keys", json={"scopes": []}))


# --- scopes -----------------------------------------------------------------------------


async def test_each_scope_is_enforced(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    writer = await make_key(Scope.FEEDBACK_WRITE)
    reader = await make_key(Scope.FEEDBACK_READ)
    others = await make_key(
        Scope.TICKETS_READ, Scope.TICKETS_WRITE, Scope.METRICS_READ, name="no feedback"
    )
    everything_but_admin = await make_key(*(s for s in Scope if s is not Scope.ADMIN))

    posted = await client.post("/v1/feedback", json=make_event("s-1"), headers=auth(writer))
    assert posted.status_code == 202, posted.text
    feedback_id = posted.json()["id"]
    batch = {"events": [make_event("s-2")]}

    # feedback:write cannot read
    assert_forbidden(await client.get("/v1/feedback", headers=auth(writer)))
    assert_forbidden(await client.get(f"/v1/feedback/{feedback_id}", headers=auth(writer)))
    # feedback:read cannot write
    assert_forbidden(
        await client.post("/v1/feedback", json=make_event("s-3"), headers=auth(reader))
    )
    assert_forbidden(await client.post("/v1/feedback/batch", json=batch, headers=auth(reader)))
    assert (await client.get("/v1/feedback", headers=auth(reader))).status_code == 200
    assert (
        await client.get(f"/v1/feedback/{feedback_id}", headers=auth(reader))
    ).status_code == 200
    # neither without a feedback scope
    assert_forbidden(await client.get("/v1/feedback", headers=auth(others)))
    assert_forbidden(
        await client.post("/v1/feedback", json=make_event("s-4"), headers=auth(others))
    )
    # key management needs admin, whatever else the key has
    for key in (writer, reader, others, everything_but_admin):
        assert_forbidden(await client.get("/v1/api-keys", headers=auth(key)))
        assert_forbidden(
            await client.post(
                "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=auth(key)
            )
        )
        assert_forbidden(await client.delete("/v1/api-keys/1", headers=auth(key)))


async def test_forbidden_comes_before_body_validation(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    reader = await make_key(Scope.FEEDBACK_READ)
    assert_forbidden(await client.post("/v1/feedback", content=b"not json", headers=auth(reader)))
    assert_forbidden(await client.post("/v1/api-keys", json={"scopes": []}, headers=auth(reader)))


async def test_admin_implies_every_scope(client: httpx.AsyncClient, admin_key: str) -> None:
    posted = await client.post("/v1/feedback", json=make_event("a-1"), headers=auth(admin_key))
    assert posted.status_code == 202
    batch = await client.post(
        "/v1/feedback/batch", json={"events": [make_event("a-2")]}, headers=auth(admin_key)
    )
    assert batch.status_code == 200
    assert batch.json()["accepted"] == 1
    listed = await client.get("/v1/feedback", headers=auth(admin_key))
    assert listed.status_code == 200
    assert sorted(item["event_id"] for item in listed.json()["items"]) == ["a-1", "a-2"]
    one = await client.get(f"/v1/feedback/{posted.json()['id']}", headers=auth(admin_key))
    assert one.status_code == 200
    created, body = await create_key(client, admin_key, name="x", scopes=["tickets:read"])
    assert created.status_code == 201
    deleted = await client.delete(f"/v1/api-keys/{body['id']}", headers=auth(admin_key))
    assert deleted.status_code == 204


# --- location-restricted admins ---------------------------------------------------------


async def test_restricted_admin_creates_only_keys_within_its_locations(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    local_admin = await make_key(Scope.ADMIN, locations=["store-1", "store-2"])

    ok, body = await create_key(
        client, local_admin, name="cashier", scopes=["feedback:write"], location_ids=["store-1"]
    )
    assert ok.status_code == 201, ok.text
    assert body["location_ids"] == ["store-1"]
    both, body2 = await create_key(
        client, local_admin, name="both", scopes=["admin"], location_ids=["store-2", "store-1"]
    )
    assert both.status_code == 201
    assert body2["location_ids"] == ["store-1", "store-2"]

    wider, _ = await create_key(
        client, local_admin, name="wider", scopes=["feedback:read"], location_ids=["store-1", "x"]
    )
    assert_forbidden(wider)
    elsewhere, _ = await create_key(
        client, local_admin, name="else", scopes=["feedback:read"], location_ids=["store-3"]
    )
    assert_forbidden(elsewhere)
    unrestricted, _ = await create_key(client, local_admin, name="all", scopes=["feedback:read"])
    assert_forbidden(unrestricted)

    # the key it created is confined as promised
    cashier = body["key"]
    inside = await client.post(
        "/v1/feedback", json=make_event("l-1", location_id="store-1"), headers=auth(cashier)
    )
    assert inside.status_code == 202
    outside = await client.post(
        "/v1/feedback", json=make_event("l-2", location_id="store-2"), headers=auth(cashier)
    )
    assert_forbidden(outside)
    keys = (await client.get("/v1/api-keys", headers=auth(await make_key(Scope.ADMIN)))).json()
    assert sorted(i["name"] for i in keys["items"]) == ["both", "cashier", "test", "test"]


async def test_restricted_admin_revokes_only_keys_within_its_locations(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState
) -> None:
    local_admin = await make_key(Scope.ADMIN, locations=["store-1", "store-2"], name="local")
    await make_key(Scope.FEEDBACK_READ, name="unrestricted")
    await make_key(Scope.FEEDBACK_READ, locations=["store-1"], name="inside")
    await make_key(Scope.FEEDBACK_READ, locations=["store-1", "store-3"], name="straddling")
    await make_key(Scope.ADMIN, name="root")
    async with state.sessionmaker() as session:
        ids = {
            name: key_id
            for key_id, name in (await session.execute(select(ApiKeyRow.id, ApiKeyRow.name))).all()
        }

    for name in ("unrestricted", "straddling", "root"):
        assert_forbidden(
            await client.delete(f"/v1/api-keys/{ids[name]}", headers=auth(local_admin))
        )
    assert (
        await client.delete(f"/v1/api-keys/{ids['inside']}", headers=auth(local_admin))
    ).status_code == 204
    async with state.sessionmaker() as session:
        revoked = set(
            (
                await session.execute(
                    select(ApiKeyRow.name).where(ApiKeyRow.revoked_at.is_not(None))
                )
            ).scalars()
        )
    assert revoked == {"inside"}


async def test_restricted_admin_lists_only_keys_within_its_locations(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    local_admin = await make_key(Scope.ADMIN, locations=["store-1"], name="local")
    await make_key(Scope.ADMIN, name="root")
    await make_key(Scope.FEEDBACK_READ, locations=["store-9"], name="other store")
    await make_key(Scope.FEEDBACK_READ, locations=["store-1"], name="inside")
    listed = await client.get("/v1/api-keys", headers=auth(local_admin))
    assert listed.status_code == 200
    assert sorted(i["name"] for i in listed.json()["items"]) == ["inside", "local"]


# --- bootstrap --------------------------------------------------------------------------


async def _key_count(state: AppState) -> int:
    async with state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0)


async def test_bootstrap_admin_key_is_created_once(
    client: httpx.AsyncClient, state: AppState
) -> None:
    bootstrap = "fbk_bootstrap-0123456789abcdefghij"
    for _ in range(2):
        async with state.sessionmaker() as session, session.begin():
            assert await api_keys.ensure_bootstrap_keys(session, bootstrap) is None
        assert await _key_count(state) == 1

    async with state.sessionmaker() as session:
        row = (await session.execute(select(ApiKeyRow))).scalar_one()
    assert row.scopes == ["admin"]
    assert row.location_ids is None
    assert row.key_hash == hashlib.sha256(bootstrap.encode()).digest()
    assert row.revoked_at is None
    listed = await client.get("/v1/api-keys", headers=auth(bootstrap))
    assert listed.status_code == 200
    assert [i["name"] for i in listed.json()["items"]] == ["bootstrap admin"]


async def test_bootstrap_key_is_added_next_to_existing_keys(
    state: AppState, make_key: KeyFactory
) -> None:
    await make_key(Scope.FEEDBACK_READ)
    async with state.sessionmaker() as session, session.begin():
        assert await api_keys.ensure_bootstrap_keys(session, "fbk_" + "b" * 30) is None
    assert await _key_count(state) == 2


async def test_revoked_bootstrap_key_is_not_revived(state: AppState) -> None:
    bootstrap = "fbk_" + "r" * 30
    async with state.sessionmaker() as session, session.begin():
        await api_keys.ensure_bootstrap_keys(session, bootstrap)
    async with state.sessionmaker() as session, session.begin():
        row = (await session.execute(select(ApiKeyRow))).scalar_one()
        await api_keys.revoke_key(session, row.id, by=None)
    async with state.sessionmaker() as session, session.begin():
        assert await api_keys.ensure_bootstrap_keys(session, bootstrap) is None
    assert await _key_count(state) == 1
    async with state.sessionmaker() as session:
        with pytest.raises(Unauthenticated):
            await api_keys.authenticate(session, api_keys.hash_key(bootstrap))


@pytest.mark.parametrize("bad", ["secret", "fbk_short", "fbk_" + "x" * 300, "fbk_" + "é" * 30])
async def test_malformed_bootstrap_key_is_refused(state: AppState, bad: str) -> None:
    async with state.sessionmaker() as session, session.begin():
        with pytest.raises(ValueError, match="FEEDBACK_BOOTSTRAP_ADMIN_KEY"):
            await api_keys.ensure_bootstrap_keys(session, bad)
    assert await _key_count(state) == 0


async def test_first_admin_key_only_when_there_is_no_key(
    client: httpx.AsyncClient, state: AppState
) -> None:
    async with state.sessionmaker() as session, session.begin():
        first = await api_keys.ensure_bootstrap_keys(session, None)
    assert first is not None
    assert first.startswith("fbk_")
    async with state.sessionmaker() as session, session.begin():
        assert await api_keys.ensure_bootstrap_keys(session, None) is None
    assert await _key_count(state) == 1
    assert (await client.get("/v1/api-keys", headers=auth(first))).status_code == 200


# --- command line -----------------------------------------------------------------------


async def run_cli(database_url: str, data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env["FEEDBACK_DATABASE_URL"] = database_url
    env["FEEDBACK_DATA_DIR"] = str(data_dir)
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        cwd=data_dir,  # no stray .env file
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def printed_lines(stdout: str) -> list[str]:
    """The command's own output, without its JSON log lines."""
    return [line for line in stdout.splitlines() if line and not line.startswith("{")]


async def test_cli_create_list_revoke(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, admin_key: str
) -> None:
    code, out, err = await run_cli(
        database_url,
        tmp_path,
        "keys",
        "create",
        "--name",
        "n",
        "--scope",
        "feedback:read",
        "--location",
        "store-1",
    )
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in printed_lines(out) if ":" in line)
    key_id = fields["id"].strip()
    key = fields["key"].strip()
    assert fields["scopes"].strip() == "feedback:read"
    assert fields["locations"].strip() == "store-1"
    assert re.fullmatch(r"fbk_[A-Za-z0-9_-]{32}", key)
    # printed once, never logged
    assert out.count(key) == 1
    assert key not in err

    # the printed key works against the API at once, within its scope and location
    await client.post(
        "/v1/feedback/batch",
        json={
            "events": [
                make_event("c-1", location_id="store-1"),
                make_event("c-2", location_id="store-2"),
            ]
        },
        headers=auth(admin_key),
    )
    listed = await client.get("/v1/feedback", headers=auth(key))
    assert listed.status_code == 200
    assert [i["event_id"] for i in listed.json()["items"]] == ["c-1"]
    assert_forbidden(await client.post("/v1/feedback", json=make_event("c-3"), headers=auth(key)))
    via_api = (await client.get("/v1/api-keys", headers=auth(admin_key))).json()["items"]
    assert {
        "id": key_id,
        "name": "n",
        "key_prefix": key[:8],
        "scopes": ["feedback:read"],
        "location_ids": ["store-1"],
    }.items() <= next(i for i in via_api if i["id"] == key_id).items()

    code, out, err = await run_cli(database_url, tmp_path, "keys", "list")
    assert code == 0, err
    table = printed_lines(out)
    assert table[0].split() == ["id", "key", "name", "scopes", "locations", "state"]
    row = next(line.split() for line in table[1:] if line.split()[0] == key_id)
    assert row == [key_id, key[:8] + "…", "n", "feedback:read", "store-1", "active"]
    assert key not in out

    code, out, err = await run_cli(database_url, tmp_path, "keys", "revoke", key_id)
    assert code == 0, err
    assert printed_lines(out) == [f"key {key_id} revoked"]
    assert_unauthenticated(await client.get("/v1/feedback", headers=auth(key)))

    code, out, err = await run_cli(database_url, tmp_path, "keys", "list")
    row = next(line.split() for line in printed_lines(out)[1:] if line.split()[0] == key_id)
    assert row[-1] == "revoked"


async def test_cli_unrestricted_admin_key(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    code, out, err = await run_cli(
        database_url, tmp_path, "keys", "create", "--name", "ops", "--scope", "admin"
    )
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in printed_lines(out) if ":" in line)
    assert fields["locations"].strip() == "(all)"
    key = fields["key"].strip()
    assert (await client.get("/v1/api-keys", headers=auth(key))).status_code == 200


async def test_cli_errors(database_url: str, tmp_path: Path) -> None:
    code, out, err = await run_cli(database_url, tmp_path, "keys", "revoke", "987654")
    assert code == 1
    assert err.strip() == "error: API key 987654 does not exist."
    assert "revoked" not in out
    code, _, err = await run_cli(
        database_url, tmp_path, "keys", "create", "--name", "x", "--scope", "feedback:delete"
    )
    assert code == 2
    assert "invalid choice" in err
