"""Shared fixtures: one real PostgreSQL and one running app per test session; every
test starts from empty tables."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.config import ProcessRoles, Settings
from app.dependencies import AppState
from app.main import create_app
from app.models.enums import Scope
from app.schemas.feedback import EXAMPLE_EVENT
from app.services import api_keys
from tests.fixtures.database import TABLES, start_test_database
from tests.fixtures.kafka import start_test_broker

KeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    yield from start_test_database()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu) for the session: ``host:port``."""
    yield from start_test_broker()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        bootstrap_admin_key=None,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # No dispatcher in the shared app: dispatcher tests run their own, with their own
    # settings (private targets allowed, short retry delays).
    application = create_app(settings, ProcessRoles(dispatcher=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def state(app: FastAPI) -> AppState:
    services: AppState = app.state.services
    return services


# The rules a fresh installation has (the migrations' default rules), read once before
# the first test empties the tables.
_MIGRATED_RULES: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> None:
    if "state" not in request.fixturenames and "client" not in request.fixturenames:
        return
    state: AppState = request.getfixturevalue("state")
    async with state.sessionmaker() as session, session.begin():
        if not _MIGRATED_RULES:
            result = await session.execute(
                text("SELECT name, enabled, position, conditions, action FROM rules ORDER BY id")
            )
            _MIGRATED_RULES.extend(dict(row) for row in result.mappings())
        await session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        for rule in _MIGRATED_RULES:
            await session.execute(
                text(
                    "INSERT INTO rules (name, enabled, position, conditions, action) "
                    "VALUES (:name, :enabled, :position, "
                    "CAST(:conditions AS jsonb), CAST(:action AS jsonb))"
                ),
                {
                    **rule,
                    "conditions": orjson.dumps(rule["conditions"]).decode(),
                    "action": orjson.dumps(rule["action"]).decode(),
                },
            )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def make_key(state: AppState) -> KeyFactory:
    """Create an API key directly in the database; returns the secret key."""

    async def create(*scopes: Scope, locations: list[str] | None = None, name: str = "test") -> str:
        async with state.sessionmaker() as session, session.begin():
            created = await api_keys.create_key(
                session, name=name, scopes=list(scopes), location_ids=locations, creator=None
            )
        return created.key

    return create


@pytest.fixture
async def admin_key(make_key: KeyFactory) -> str:
    return await make_key(Scope.ADMIN)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def scans_of(plan: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The nodes of an EXPLAIN (FORMAT JSON) plan that read ``table``."""
    own = [plan] if plan.get("Relation Name") == table else []
    return own + [scan for child in plan.get("Plans", []) for scan in scans_of(child, table)]


PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem response with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def get_json(
    client: httpx.AsyncClient,
    key: str,
    path: str,
    params: dict[str, str | int | list[str]] | None = None,
) -> dict[str, Any]:
    """The body of a GET that must answer 200."""
    response = await client.get(path, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def make_event(event_id: str = "evt-1", **overrides: Any) -> dict[str, Any]:
    """A valid event (the spec's example, dated just now) with overrides applied."""
    event = copy.deepcopy(EXAMPLE_EVENT)
    event["event_id"] = event_id
    event["occurred_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


REPO_ROOT = Path(__file__).resolve().parent.parent
