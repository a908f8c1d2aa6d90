"""Request-scoped dependencies as ``Annotated`` aliases."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import Database, DriverConnection
from app.models.enums import Scope
from app.services import api_keys
from app.services.access import Principal
from app.workers.ingest_writer import GroupCommitWriter
from app.workers.kafka_consumer import KafkaIngestConsumer
from app.workers.live_stream import LiveStream
from app.workers.text_analysis import INLINE, TextAnalysisPool


@dataclass
class AppState:
    """Everything a request may need from the running process."""

    settings: Settings
    database: Database
    ingest_writer: GroupCommitWriter
    principals: api_keys.PrincipalCache
    kafka_consumer: KafkaIngestConsumer | None = None
    live_stream: LiveStream | None = None
    text_analysis: TextAnalysisPool = INLINE

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessionmaker


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.services
    return state


async def get_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool, a thread
    # hand-off per request that cost more than everything else this function does.
    return app_state(request)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the endpoint returns without error
    and before the response is sent (scope="function")."""
    async with state.sessionmaker() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_driver_connection(state: StateDep) -> AsyncIterator[DriverConnection]:
    """A transaction on a pooled driver connection, for endpoints whose services share
    SQL with the ingest pipeline (tickets); committed before the response is sent."""
    async with state.database.driver_connection() as connection, connection.transaction():
        yield connection


DriverDep = Annotated[DriverConnection, Depends(get_driver_connection, scope="function")]


async def get_snapshot_connection(state: StateDep) -> AsyncIterator[DriverConnection]:
    """A read-only transaction on one snapshot, for reports made of several statements
    (metrics, journeys): feedback and ticket figures describe the same moment."""
    async with (
        state.database.driver_connection() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield connection


SnapshotDep = Annotated[DriverConnection, Depends(get_snapshot_connection, scope="function")]

# Documented in OpenAPI by app.main (every /v1 operation requires this scheme).
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer fbk_...`. Create keys with "
    "`POST /v1/api-keys` (admin) or `feedback-service keys create`.",
}


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


async def _principal(state: AppState, token: str | None) -> Principal:
    digest = api_keys.check_presented(token)
    now = time.monotonic()
    principal = state.principals.get(digest, now)
    if principal is None:
        generation = state.principals.generation
        # A short session of its own: the key lookup must not hold a pooled connection
        # while the request waits on something else (the group commit, for one).
        async with state.sessionmaker() as session:
            principal = await api_keys.authenticate(session, digest)
        state.principals.put(digest, principal, now, generation)
    return principal


async def principal_of(request: Request) -> Principal:
    """The caller's principal as of now (a long-lived stream re-checks its key)."""
    return await _principal(app_state(request), _bearer_token(request))


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, Principal]]:
    # A single dependency that reads the header itself: FastAPI's cost per dependency
    # showed as much as the ingest endpoint's own work.
    async def check(request: Request) -> Principal:
        principal = await principal_of(request)
        principal.require_scope(scope)
        return principal

    return check


FeedbackWriter = Annotated[Principal, Depends(require(Scope.FEEDBACK_WRITE))]
FeedbackReader = Annotated[Principal, Depends(require(Scope.FEEDBACK_READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
TicketReader = Annotated[Principal, Depends(require(Scope.TICKETS_READ))]
TicketWriter = Annotated[Principal, Depends(require(Scope.TICKETS_WRITE))]
MetricsReader = Annotated[Principal, Depends(require(Scope.METRICS_READ))]
