"""The past of demo tickets (``feedback-service seed``).

The seed command ingests three months of feedback in a few seconds, so every ticket it
opens carries the time of seeding and is still open. These statements give the
tickets of one run the history that ``demo_data.ticket_history`` planned for them: the
times their feedback arrived, and what has happened to them since. Set-based: one read
and three writes for all of a run's tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from app.db import DriverConnection


@dataclass(frozen=True, slots=True)
class OpenedDemoTicket:
    """A ticket as the seed command left it, with what its history depends on."""

    id: int
    opening_event_id: str
    location_id: str | None
    assignee: str | None
    sla_hours: int | None
    first_feedback_at: datetime
    last_feedback_at: datetime


@dataclass(frozen=True, slots=True)
class StatusChange:
    at: datetime
    detail: str  # as PATCH /v1/tickets/{id} words it: "open → resolved by <actor>"


@dataclass(frozen=True, slots=True)
class DemoTicketHistory:
    id: int
    status: str
    # From a feedback's occurrence to its arrival on the ticket; the same for all of a
    # ticket's feedback, capped at ``as_of``.
    lag_seconds: int
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime | None
    resolved_at: datetime | None
    changes: tuple[StatusChange, ...]  # oldest first, all after the last feedback


# Only tickets still as ingest opened them: 'open', and opened by an event of the run
# (someone may have worked on one through the API while the command ran). The SLA hours
# are those stored: sla_due_at was set an instant after created_at, rules give whole
# hours. Locked until commit, so that nothing changes them between read and write.
_OPENED_SQL = """
    WITH arrived AS (
        SELECT ticket_id, min(id) AS opening_id,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at
        FROM feedback
        WHERE ticket_id = ANY($1::bigint[])
        GROUP BY ticket_id
    )
    SELECT t.id, t.location_id, t.assignee,
           round(extract(epoch FROM t.sla_due_at - t.created_at) / 3600)::int AS sla_hours,
           o.event_id AS opening_event_id, a.first_at, a.last_at
    FROM tickets t
    JOIN arrived a ON a.ticket_id = t.id
    JOIN feedback o ON o.id = a.opening_id
    WHERE t.status = 'open' AND starts_with(o.event_id, $2) AND o.metadata ? $3
    ORDER BY t.id
    FOR NO KEY UPDATE OF t
"""


async def lock_opened_demo_tickets(
    connection: DriverConnection,
    ticket_ids: Sequence[int],
    *,
    event_id_prefix: str,
    marker_key: str,
) -> list[OpenedDemoTicket]:
    """Those of ``ticket_ids`` that are still open and were opened by a demo event (its
    event_id starts with ``event_id_prefix`` and its metadata holds ``marker_key``)."""
    if not ticket_ids:
        return []
    records = await connection.fetch(
        _OPENED_SQL, sorted(set(ticket_ids)), event_id_prefix, marker_key
    )
    return [
        OpenedDemoTicket(
            id=r["id"],
            opening_event_id=r["opening_event_id"],
            location_id=r["location_id"],
            assignee=r["assignee"],
            sla_hours=r["sla_hours"],
            first_feedback_at=r["first_at"],
            last_feedback_at=r["last_at"],
        )
        for r in records
    ]


_MOVE_TICKETS_SQL = """
    UPDATE tickets t
    SET status = r.status, created_at = r.created_at, updated_at = r.updated_at,
        sla_due_at = r.sla_due_at, resolved_at = r.resolved_at
    FROM json_to_recordset($1::json) AS r(
        id bigint, status varchar, created_at timestamptz, updated_at timestamptz,
        sla_due_at timestamptz, resolved_at timestamptz)
    WHERE t.id = r.id
"""

# The k-th 'created'/'feedback_attached' entry of a ticket (by id: ingest writes them
# in arrival order) is the arrival of its k-th feedback (by time: demo events are
# ingested oldest first). Pairing them this way needs no parsing of the entries' text.
_MOVE_ARRIVALS_SQL = """
    WITH plan AS (
        SELECT * FROM json_to_recordset($1::json) AS r(id bigint, lag_seconds integer)
    ),
    entries AS (
        SELECT e.id, e.ticket_id,
               row_number() OVER (PARTITION BY e.ticket_id ORDER BY e.id) AS n
        FROM ticket_timeline e JOIN plan ON plan.id = e.ticket_id
        WHERE e.kind IN ('created', 'feedback_attached')
    ),
    arrivals AS (
        SELECT f.ticket_id,
               row_number() OVER (PARTITION BY f.ticket_id ORDER BY f.occurred_at, f.id) AS n,
               least(f.occurred_at + make_interval(secs => plan.lag_seconds), $2) AS at
        FROM feedback f JOIN plan ON plan.id = f.ticket_id
    )
    UPDATE ticket_timeline e
    SET at = arrivals.at
    FROM entries JOIN arrivals USING (ticket_id, n)
    WHERE e.id = entries.id
"""

# In input order (oldest first per ticket): the timeline is read in id order.
_ADD_CHANGES_SQL = """
    INSERT INTO ticket_timeline (ticket_id, at, kind, detail)
    SELECT r.ticket_id, r.at, 'status_changed', r.detail
    FROM json_array_elements($1::json) WITH ORDINALITY AS n(doc, ord),
         json_to_record(n.doc) AS r(ticket_id bigint, at timestamptz, detail text)
    ORDER BY n.ord
"""


async def write_demo_history(
    connection: DriverConnection, histories: Sequence[DemoTicketHistory], *, as_of: datetime
) -> None:
    """Apply the planned histories (of tickets locked by ``lock_opened_demo_tickets`` in
    this transaction); no arrival is dated after ``as_of``."""
    if not histories:
        return
    await connection.execute(_MOVE_TICKETS_SQL, orjson.dumps(histories).decode())
    lags = [{"id": h.id, "lag_seconds": h.lag_seconds} for h in histories]
    await connection.execute(_MOVE_ARRIVALS_SQL, orjson.dumps(lags).decode(), as_of)
    changes = [
        {"ticket_id": h.id, "at": change.at, "detail": change.detail}
        for h in histories
        for change in h.changes
    ]
    if changes:
        await connection.execute(_ADD_CHANGES_SQL, orjson.dumps(changes).decode())
