"""The embedded PostgreSQL, resets between phases, and the COPY baseline.

The COPY baseline writes the rows the service would store for the benchmark's events
straight into the same ``feedback`` table with binary COPY, 500 rows per call: no HTTP,
no validation, no SQL to plan. Its rows/s is the most this database takes on this
machine; the batch endpoint can only approach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.embedded_postgres import ConnectionInfo, EmbeddedPostgres
from app.models.enums import IngestVia
from app.schemas.feedback import FeedbackEventIn

# Private, but the point of the baseline is to store exactly what the service stores.
from app.services.ingest import content_hash, feedback_row
from bench.events import BATCH_EVENTS, EventTemplate, customer_id, event_id, seq_text
from bench.load import LoadResult, closed_loop

# Every table an ingest writes (api_keys stays: it holds the benchmark's key).
INGEST_TABLES = (
    "feedback, customers, tickets, ticket_timeline, ticket_external_refs, deliveries, "
    "delivery_attempts, feedback_daily_rollup"
)
COPY_DONE = 200  # a COPY call that returned is recorded like a 2xx answer


@dataclass(frozen=True)
class Database:
    info: ConnectionInfo
    postmaster_pid: int | None  # parent of every backend: its CPU time is PostgreSQL's


def _postmaster_pid(server: EmbeddedPostgres) -> int | None:
    try:
        return int((server.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[Database]:
    server = EmbeddedPostgres(data_dir)
    try:
        info = server.start()
        yield Database(info, _postmaster_pid(server))
    finally:
        server.stop()


async def connect(
    info: ConnectionInfo, server_settings: dict[str, str] | None = None
) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=info.host,
        port=info.port,
        user=info.user,
        password=info.password,
        database=info.database,
        server_settings=server_settings,
    )


async def _reset(info: ConnectionInfo) -> None:
    connection = await connect(info)
    try:
        await connection.execute(f"TRUNCATE {INGEST_TABLES}")
        # Flush the previous phase's dirty pages now rather than during the next phase.
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


def reset_ingest_tables(info: ConnectionInfo) -> None:
    """Empty the tables ingest writes, so every phase starts from the same state."""
    asyncio.run(_reset(info))


class CopyRows:
    """The rows of the benchmark's events as the service stores them, in COPY form."""

    def __init__(self, id_prefix: str) -> None:
        event = FeedbackEventIn.model_validate_json(EventTemplate(id_prefix).render(0))
        fields: dict[str, Any] = dict(feedback_row(event, content_hash(event), IngestVia.REST))
        fields["content_hash"] = bytes.fromhex(fields["content_hash"])
        fields["metadata"] = orjson.dumps(fields["metadata"]).decode()  # jsonb as JSON text
        self.columns = list(fields)
        self._base = list(fields.values())
        self._event_id_at = self.columns.index("event_id")
        self._customer_id_at = self.columns.index("customer_id")
        self._id_prefix = id_prefix

    def batch(self, first_seq: int, count: int) -> list[tuple[Any, ...]]:
        records = []
        for seq in range(first_seq, first_seq + count):
            record = self._base.copy()
            record[self._event_id_at] = event_id(self._id_prefix, seq_text(seq))
            record[self._customer_id_at] = customer_id(self._id_prefix, seq_text(seq))
            records.append(tuple(record))
        return records


@dataclass(frozen=True)
class CopySpec:
    id_prefix: str
    connections: int
    duration_s: float
    warmup_s: float


async def _copy_closed_loop(info: ConnectionInfo, spec: CopySpec) -> LoadResult:
    rows = CopyRows(spec.id_prefix)
    next_seq = 0

    async def copy_next_batch(connection: asyncpg.Connection) -> int:
        nonlocal next_seq
        records = rows.batch(next_seq, BATCH_EVENTS)
        next_seq += BATCH_EVENTS
        await connection.copy_records_to_table("feedback", records=records, columns=rows.columns)
        return COPY_DONE

    connections = [await connect(info) for _ in range(spec.connections)]
    try:
        return await closed_loop(
            [partial(copy_next_batch, connection) for connection in connections],
            warmup_s=spec.warmup_s,
            duration_s=spec.duration_s,
            events_per_request=BATCH_EVENTS,
        )
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


def copy_baseline(info: ConnectionInfo, spec: CopySpec) -> LoadResult:
    """Closed-loop COPY of 500-row batches on ``spec.connections`` connections, each
    COPY its own transaction like one batch request; results count rows as events."""
    return asyncio.run(_copy_closed_loop(info, spec))
