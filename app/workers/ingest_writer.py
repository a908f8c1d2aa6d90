"""Ingest transactions: the owner of every ingest commit.

``commit_ingest`` runs the shared pipeline in one transaction on a pooled connection
and commits it; the batch endpoint (and the Kafka consumer) call it directly.

``GroupCommitWriter`` serves single-event POSTs: concurrent requests queue their
validated event and wait; a writer takes everything queued (up to a cap) into one
transaction. Each request is answered only after the transaction holding its event
has committed, so the commit-before-response promise holds while the per-event cost
of a transaction is shared. With no concurrency a group is one event and nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from app.db import DRIVER_CONNECTION_ERRORS, Database, DriverConnection
from app.errors import ServiceUnavailable
from app.models.enums import IngestVia
from app.schemas.feedback import FeedbackEventIn
from app.services.enrichment import TextInsight
from app.services.ingest import IngestOutcome, ingest_events
from app.telemetry import INGEST_GROUP_SIZE, INGEST_LATENCY, record_ingest
from app.workers.text_analysis import INLINE, TextAnalysisPool

logger = logging.getLogger(__name__)


async def ingest_in_transaction(
    connection: DriverConnection,
    events: Sequence[FeedbackEventIn],
    via: IngestVia,
    insights: Sequence[TextInsight],
) -> list[IngestOutcome]:
    """Run the pipeline in one transaction on ``connection`` and commit it."""
    started = time.perf_counter()
    async with connection.transaction():
        outcomes = await ingest_events(connection, events, via, insights)
    INGEST_LATENCY.labels(via.value).observe(time.perf_counter() - started)
    INGEST_GROUP_SIZE.labels(via.value).observe(len(events))
    record_ingest(events, outcomes, via)
    return outcomes


# PostgreSQL rolled the transaction back to break a deadlock or a serialization
# conflict with a concurrent one (two transactions opening tickets for one customer,
# say): running it again is safe and is what PostgreSQL asks for.
TRANSACTION_RETRIES = 3


async def commit_ingest(
    database: Database,
    events: Sequence[FeedbackEventIn],
    via: IngestVia,
    text_analysis: TextAnalysisPool = INLINE,
) -> list[IngestOutcome]:
    if not events:
        return []
    insights = await text_analysis.analyse(events)  # before a connection is taken
    async with database.driver_connection() as connection:
        for attempt in range(1, TRANSACTION_RETRIES + 1):
            try:
                return await ingest_in_transaction(connection, events, via, insights)
            except asyncpg.exceptions.TransactionRollbackError:
                if attempt == TRANSACTION_RETRIES:
                    raise
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Waiting:
    event: FeedbackEventIn
    answer: asyncio.Future[IngestOutcome]


class GroupCommitWriter:
    def __init__(
        self,
        database: Database,
        *,
        max_group: int,
        writers: int,
        queue_size: int,
        text_analysis: TextAnalysisPool = INLINE,
    ) -> None:
        self._database = database
        self._text_analysis = text_analysis
        self._max_group = max_group
        self._writer_count = writers
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    async def start(self) -> None:
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._run(), name=f"ingest-writer-{n}")
            for n in range(self._writer_count)
        ]

    async def stop(self) -> None:
        """Stop taking events, finish every queued one, then end the writers."""
        self._accepting = False
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, event: FeedbackEventIn) -> IngestOutcome:
        if not self._accepting:
            raise ServiceUnavailable("The service is shutting down; retry on another replica.")
        waiting = _Waiting(event, asyncio.get_running_loop().create_future())
        # Mark a failure as seen even if the client has gone and nobody awaits it.
        waiting.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            self._queue.put_nowait(waiting)
        except asyncio.QueueFull:
            raise ServiceUnavailable("Ingest queue is full; retry shortly.") from None
        # A client that disconnects cancels this future; its event is still stored with
        # its group (the writer skips answering a cancelled future).
        return await waiting.answer

    async def _run(self) -> None:
        # Each writer keeps one pooled connection across groups: checking one out and
        # back per transaction cost more CPU than the transaction's own statements.
        held = HeldConnection(self._database)
        try:
            while True:
                group = [await self._queue.get()]
                while len(group) < self._max_group and not self._queue.empty():
                    group.append(self._queue.get_nowait())
                try:
                    outcomes = await self._commit_group(held, [w.event for w in group])
                except Exception as exc:  # every waiter gets the failure; nothing half-stored
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                else:
                    for waiting, outcome in zip(group, outcomes, strict=True):
                        if not waiting.answer.done():
                            waiting.answer.set_result(outcome)
                finally:
                    for _ in group:
                        self._queue.task_done()
        finally:
            await held.release()

    async def _commit_group(
        self, held: HeldConnection, events: list[FeedbackEventIn]
    ) -> list[IngestOutcome]:
        """Commit on the held connection; if the connection itself failed (a database
        restart, a killed backend), once more on a fresh one; after a deadlock or
        serialization rollback, again. Retrying is safe: an event whose first attempt
        did commit comes back as a duplicate, stored once."""
        insights = await self._text_analysis.analyse(events)
        connection_failures = 0
        for _attempt in range(TRANSACTION_RETRIES + 1):
            try:
                return await ingest_in_transaction(
                    await held.get(), events, IngestVia.REST, insights
                )
            except asyncpg.QueryCanceledError:
                raise  # a statement timeout: the connection is fine, the group is not retried
            except asyncpg.exceptions.TransactionRollbackError:
                continue  # a deadlock or serialization conflict: run it again
            except DRIVER_CONNECTION_ERRORS as exc:
                await held.discard(exc)
                connection_failures += 1
                if connection_failures == 2:
                    raise
        return await ingest_in_transaction(await held.get(), events, IngestVia.REST, insights)


class HeldConnection:
    """One pooled driver connection kept across transactions, replaced after failure."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._stack = contextlib.AsyncExitStack()
        self._connection: DriverConnection | None = None

    async def get(self) -> DriverConnection:
        if self._connection is None:
            self._connection = await self._stack.enter_async_context(
                self._database.driver_connection()
            )
        return self._connection

    async def release(self) -> None:
        """Give the connection back to the pool (at shutdown)."""
        self._connection = None
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()

    async def discard(self, failure: BaseException) -> None:
        """Hand the failure to the connection's context, which tells the pool to drop it."""
        self._connection = None
        with contextlib.suppress(BaseException):
            await self._stack.__aexit__(type(failure), failure, failure.__traceback__)
        self._stack = contextlib.AsyncExitStack()
