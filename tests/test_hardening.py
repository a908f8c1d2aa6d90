"""Edge cases found in review; each test fails without its fix."""

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.models.enums import Scope
from app.services import api_keys
from app.services.access import Principal
from tests.conftest import KeyFactory, auth, make_event


async def test_email_with_trailing_newline_is_rejected(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    event = make_event("nl", customer={"id": "C-1", "email": "ana@example.com\n"})
    response = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["customer", "email"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_in_metadata_are_rejected(
    client: httpx.AsyncClient, admin_key: str, literal: str
) -> None:
    body = (
        b'{"event_id": "nan-1", "occurred_at": "2026-01-01T00:00:00Z", "channel": "web", '
        b'"text": "ok", "metadata": {"x": ' + literal.encode() + b"}}"
    )
    response = await client.post("/v1/feedback", content=body, headers=auth(admin_key))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["metadata"]


async def test_batch_conflict_does_not_reveal_the_stored_ids(
    client: httpx.AsyncClient, admin_key: str, make_key: KeyFactory
) -> None:
    stored = make_event("shared-id", location_id="store-2")
    assert (
        await client.post("/v1/feedback", json=stored, headers=auth(admin_key))
    ).status_code == 202
    writer = await make_key(Scope.FEEDBACK_WRITE, locations=["store-1"])
    mine = make_event("shared-id", location_id="store-1")
    response = await client.post(
        "/v1/feedback/batch", json={"events": [mine]}, headers=auth(writer)
    )
    result = response.json()["results"][0]
    assert result["status"] == "conflict"
    assert result["id"] is None
    assert result["ticket_id"] is None


def test_lookup_that_raced_a_revocation_is_not_cached() -> None:
    cache = api_keys.PrincipalCache()
    cache.set_trusted(True)
    principal = Principal(1, "k", frozenset({Scope.ADMIN}), None)
    digest = api_keys.hash_key("fbk_" + "a" * 32)
    generation = cache.generation  # the lookup starts ...
    cache.clear()  # ... a revocation's notice arrives meanwhile ...
    cache.put(digest, principal, 0.0, generation)  # ... and the lookup ends
    assert cache.get(digest, 0.0) is None
    cache.put(digest, principal, 0.0, cache.generation)
    assert cache.get(digest, 0.0) is principal


async def test_api_key_body_not_utf8_is_422(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.post(
        "/v1/api-keys",
        content=b'{"name": "\xff\xfe", "scopes": ["admin"]}',
        headers={**auth(admin_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_api_key_streamed_body_over_limit_is_413(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "' + b"x" * (1024 * 1024) + b'", "scopes": ["admin"]}'

    response = await client.post(
        "/v1/api-keys",
        content=chunks(),
        headers={**auth(admin_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/payload-too-large"


async def test_text_search_folds_non_ascii_case(client: httpx.AsyncClient, admin_key: str) -> None:
    event = make_event("umlaut", text="Großer Ärger an der Kasse")
    assert (
        await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    ).status_code == 202
    found = await client.get("/v1/feedback", params={"q": "ärger"}, headers=auth(admin_key))
    assert [item["event_id"] for item in found.json()["items"]] == ["umlaut"]


@pytest.mark.parametrize(
    "key",
    ["fbk_<generated>", "fbk_replace with a long random string", "fbk_short"],
)
def test_placeholder_bootstrap_keys_are_refused(key: str) -> None:
    assert not api_keys.is_well_formed(key)


def test_pool_must_outlive_the_writers() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, db_pool_size=2, db_max_overflow=0, ingest_group_writers=2)
