"""Authenticated keys are cached per process; revocations anywhere reach every cache."""

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from app.services import api_keys
from tests.conftest import KeyFactory, auth


async def _status_until(
    client: httpx.AsyncClient, key: str, wanted: int, timeout_s: float = 3.0
) -> int:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status = (await client.get("/v1/feedback", headers=auth(key))).status_code
        if status == wanted or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.02)


async def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_listener_connected_and_cache_trusted(state: AppState) -> None:
    assert state.principals.trusted


async def test_revocation_by_another_process_reaches_the_cache(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState
) -> None:
    key = await make_key(Scope.FEEDBACK_READ)
    assert (await client.get("/v1/feedback", headers=auth(key))).status_code == 200
    assert state.principals.get(api_keys.hash_key(key), 0.0) is not None  # now cached

    # As `feedback-service keys revoke` would: its own transaction, no access to our cache.
    async with state.sessionmaker() as session, session.begin():
        key_id = (await api_keys.authenticate(session, api_keys.hash_key(key))).key_id
        await api_keys.revoke_key(session, key_id, by=None)

    assert await _status_until(client, key, 401) == 401


async def test_cache_stores_nothing_while_notifications_are_down(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState
) -> None:
    key = await make_key(Scope.FEEDBACK_READ)
    digest = api_keys.hash_key(key)
    state.principals.set_trusted(False)  # what losing the listening connection does
    try:
        assert (await client.get("/v1/feedback", headers=auth(key))).status_code == 200
        assert state.principals.get(digest, 0.0) is None
        # Revoked meanwhile: with nothing cached the very next request is refused.
        async with state.sessionmaker() as session, session.begin():
            key_id = (await api_keys.authenticate(session, digest)).key_id
            await api_keys.revoke_key(session, key_id, by=None)
        assert (await client.get("/v1/feedback", headers=auth(key))).status_code == 401
    finally:
        state.principals.set_trusted(True)


async def test_listener_reconnects_after_its_connection_is_killed(
    state: AppState, client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    async with state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'feedback-listener'"
            )
        )
    assert await _eventually(lambda: not state.principals.trusted), "the loss went unnoticed"
    assert await _eventually(lambda: state.principals.trusted), "the listener did not come back"

    key = await make_key(Scope.FEEDBACK_READ)
    assert (await client.get("/v1/feedback", headers=auth(key))).status_code == 200
    async with state.sessionmaker() as session, session.begin():
        key_id = (await api_keys.authenticate(session, api_keys.hash_key(key))).key_id
        await api_keys.revoke_key(session, key_id, by=None)
    assert await _status_until(client, key, 401) == 401
