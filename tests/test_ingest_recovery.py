"""The group-commit writers hold database connections; losing them must cost at most a
503 for the events in flight (never a 500, never a silent loss), then heal."""

import asyncio

import httpx
from sqlalchemy import text

from app.dependencies import AppState
from tests.conftest import auth, make_event


async def _kill_service_connections(state: AppState) -> int:
    async with state.sessionmaker() as session, session.begin():
        result = await session.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'feedback-service' AND pid <> pg_backend_pid()"
            )
        )
        return int(result.scalar_one())


async def test_writers_recover_after_their_connections_are_killed(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # Warm up: the writers now hold connections.
    warm = await client.post("/v1/feedback", json=make_event("warm"), headers=auth(admin_key))
    assert warm.status_code == 202
    assert await _kill_service_connections(state) >= 1

    statuses: dict[str, int] = {}
    for attempt in range(20):
        event_id = f"after-kill-{attempt}"
        response = await client.post(
            "/v1/feedback", json=make_event(event_id), headers=auth(admin_key)
        )
        statuses[event_id] = response.status_code
        assert response.status_code in (202, 503), response.text
        if response.status_code == 503:
            assert response.headers["content-type"] == "application/problem+json"
            assert "retry-after" in response.headers
        await asyncio.sleep(0.01)

    assert list(statuses.values())[-5:] == [202] * 5, statuses
    # Every acknowledged event is stored; the refused ones are not.
    async with state.sessionmaker() as session:
        stored = set((await session.execute(text("SELECT event_id FROM feedback"))).scalars().all())
    assert {e for e, status in statuses.items() if status == 202} <= stored
    assert not {e for e, status in statuses.items() if status == 503} & stored


async def test_batch_recovers_after_pool_connections_are_killed(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    body = {"events": [make_event("b-warm")]}
    assert (
        await client.post("/v1/feedback/batch", json=body, headers=auth(admin_key))
    ).status_code == 200
    await _kill_service_connections(state)
    seen = []
    for attempt in range(10):
        body = {"events": [make_event(f"b-{attempt}")]}
        response = await client.post("/v1/feedback/batch", json=body, headers=auth(admin_key))
        seen.append(response.status_code)
        assert response.status_code in (200, 503), response.text
    assert seen[-3:] == [200, 200, 200], seen
