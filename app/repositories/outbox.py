"""The delivery outbox: rows written in the transaction of the change that caused them,
claimed by dispatchers with ``FOR UPDATE SKIP LOCKED``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.db import DriverConnection

# NOTIFY channel: pending deliveries were written (or re-queued); dispatchers wake up.
DELIVERIES_CHANNEL = "feedback_deliveries"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    integration_id: int
    event_type: str
    ticket_id: int | None
    feedback_id: int | None
    payload: dict[str, Any]  # {"data": ..., "feedback": [...]}
    occurred_at: datetime


async def insert_deliveries(connection: DriverConnection, rows: Sequence[NewDelivery]) -> None:
    """Write pending deliveries and wake the dispatchers (at commit, as NOTIFY is)."""
    if not rows:
        return
    await connection.execute(
        "INSERT INTO deliveries (integration_id, event_type, ticket_id, feedback_id, payload, "
        "occurred_at, status, attempts, next_attempt_at) "
        "SELECT r.integration_id, r.event_type, r.ticket_id, r.feedback_id, r.payload, "
        "r.occurred_at, 'pending', 0, now() "
        "FROM json_to_recordset($1::json) AS r(integration_id bigint, event_type varchar, "
        "ticket_id bigint, feedback_id bigint, payload jsonb, occurred_at timestamptz)",
        orjson.dumps(rows).decode(),
    )
    await connection.execute("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    integration_id: int
    event_type: str
    ticket_id: int | None
    payload: dict[str, Any]
    occurred_at: datetime
    attempts: int
    created_at: datetime


# Due, for an enabled integration (a disabled one's deliveries wait), and not behind an
# earlier undelivered delivery of the same ticket to the same integration (an update
# never overtakes the create). A row another dispatcher holds
# is skipped, and so are the rows queued behind it: the earlier one is still pending.
_CLAIM_SQL = """
    SELECT d.id, d.integration_id, d.event_type, d.ticket_id, d.payload::text AS payload,
           d.occurred_at, d.attempts, d.created_at
    FROM deliveries d
    JOIN integrations i ON i.id = d.integration_id AND i.enabled
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.ticket_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM deliveries e
            WHERE e.ticket_id = d.ticket_id AND e.integration_id = d.integration_id
              AND e.id < d.id AND e.status <> 'delivered'))
    ORDER BY d.next_attempt_at, d.id
    LIMIT 1
    FOR UPDATE OF d SKIP LOCKED
"""


async def claim_due_delivery(connection: DriverConnection) -> ClaimedDelivery | None:
    """Lock one due delivery until the caller's transaction ends."""
    record = await connection.fetchrow(_CLAIM_SQL)
    if record is None:
        return None
    return ClaimedDelivery(
        id=record["id"],
        integration_id=record["integration_id"],
        event_type=record["event_type"],
        ticket_id=record["ticket_id"],
        payload=orjson.loads(record["payload"]),
        occurred_at=record["occurred_at"],
        attempts=record["attempts"],
        created_at=record["created_at"],
    )


async def record_attempt(
    connection: DriverConnection,
    delivery_id: int,
    *,
    outcome: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    next_attempt_in_s: float | None,
) -> None:
    """Log the attempt and move the delivery on: ``outcome`` delivered, retry (due again
    in ``next_attempt_in_s``) or dead."""
    status = {"delivered": "delivered", "retry": "pending", "dead": "dead"}[outcome]
    await connection.execute(
        "INSERT INTO delivery_attempts (delivery_id, outcome, status_code, error, duration_ms) "
        "VALUES ($1, $2, $3, $4, $5)",
        delivery_id,
        outcome,
        status_code,
        error,
        duration_ms,
    )
    await connection.execute(
        "UPDATE deliveries SET status = $2::varchar, attempts = attempts + 1, "
        "last_attempt_at = now(), last_status_code = $3, last_error = $4, "
        "delivered_at = CASE WHEN $2::varchar = 'delivered' THEN now() ELSE delivered_at END, "
        "next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at "
        "ELSE now() + make_interval(secs => $5::float8) END "
        "WHERE id = $1",
        delivery_id,
        status,
        status_code,
        error,
        next_attempt_in_s,
    )


async def seconds_until_next_due(connection: DriverConnection) -> float | None:
    value = await connection.fetchval(
        "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM deliveries "
        "WHERE status = 'pending'"
    )
    return None if value is None else max(0.0, float(value))


async def depth_by_status(connection: DriverConnection) -> dict[str, int]:
    records = await connection.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY 1")
    return {record["status"]: record["n"] for record in records}
