"""Customer journeys and the right to erasure (SPEC section 5)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from app.db import DriverConnection
from app.errors import Forbidden, NotFound
from app.models.enums import OPEN_TICKET_STATUSES, Scope
from app.repositories import customers as repo
from app.repositories import feedback as feedback_repo
from app.repositories import tickets as tickets_repo
from app.repositories.customers import FEEDBACK_KIND, TICKET_KIND, JourneyPosition
from app.schemas.customers import FeedbackStep, JourneyOut, JourneySummary, TicketStep
from app.schemas.feedback import feedback_out
from app.services.access import Principal
from app.services.pagination import cursor_error, decode_cursor, encode_cursor
from app.services.tickets import ticket_out

logger = logging.getLogger(__name__)


def _decode_position(cursor: str) -> JourneyPosition:
    values = decode_cursor(cursor)
    try:
        at = datetime.fromisoformat(values[0])
        kind, item_id = values[1], values[2]
        # Only what encode_cursor writes: JSON integers (no floats, no booleans), an id
        # within bigint and a time PostgreSQL can hold once in UTC (astimezone raises
        # OverflowError otherwise). Anything else would fail in asyncpg, as a 500.
        if (
            at.tzinfo is None
            or len(values) != 3
            or type(kind) is not int
            or kind not in (FEEDBACK_KIND, TICKET_KIND)
            or type(item_id) is not int
            or not 0 <= item_id < 2**63
        ):
            raise ValueError("not a cursor of ours")
        at = at.astimezone(UTC)
    except (IndexError, TypeError, ValueError, OverflowError):
        raise cursor_error() from None
    return JourneyPosition(at, kind, item_id)


async def customer_journey(
    connection: DriverConnection,
    principal: Principal,
    customer_id: str,
    *,
    cursor: str | None,
    limit: int,
) -> JourneyOut:
    """Feedback (and, for keys that may read tickets, tickets) of one customer within
    the key's locations; 404 when none is visible."""
    allowed = principal.readable_locations()
    with_tickets = principal.has_scope(Scope.TICKETS_READ)
    summary = await repo.journey_summary(
        connection, customer_id, allowed, sorted(s.value for s in OPEN_TICKET_STATUSES)
    )
    if summary.first_seen is None and not (with_tickets and summary.tickets):
        raise NotFound(f"No feedback of customer '{customer_id}' is visible to this key.")
    after = _decode_position(cursor) if cursor is not None else None
    positions = await repo.journey_positions(
        connection, customer_id, allowed, after=after, limit=limit + 1, with_tickets=with_tickets
    )
    next_cursor = None
    if len(positions) > limit:
        positions = positions[:limit]
        last = positions[-1]
        next_cursor = encode_cursor(last.at.isoformat(), last.kind, last.id)
    feedback_rows = {
        row.id: row
        for row in await feedback_repo.rows_by_ids(
            connection, [p.id for p in positions if p.kind == FEEDBACK_KIND]
        )
    }
    tickets = await tickets_repo.ticket_documents(
        connection, [p.id for p in positions if p.kind != FEEDBACK_KIND]
    )
    items: list[FeedbackStep | TicketStep] = [
        FeedbackStep(at=p.at, feedback=feedback_out(feedback_rows[p.id]))
        if p.kind == FEEDBACK_KIND
        else TicketStep(at=p.at, ticket=ticket_out(tickets[p.id]))
        for p in positions
    ]
    return JourneyOut(
        customer_id=customer_id,
        summary=JourneySummary(
            first_seen=summary.first_seen,
            last_seen=summary.last_seen,
            channels=summary.channels,
            latest_nps=summary.latest_nps,
            open_tickets=summary.open_tickets if with_tickets else None,
        ),
        items=items,
        next_cursor=next_cursor,
    )


async def erase_customer(
    connection: DriverConnection, principal: Principal, customer_id: str
) -> repo.ErasureCounts:
    """Blank the customer's identifiers and text everywhere; scores stay, anonymous, so
    every metric is unchanged. Idempotent: erasing an unknown customer does nothing."""
    counts = await repo.erase_customer(connection, customer_id, principal.readable_locations())
    if counts is None:
        raise Forbidden(
            "This customer has feedback or tickets outside this API key's locations; "
            "erasure needs a key for all of them."
        )
    # Counts only: the identifier being erased is not written to the logs either.
    logger.info(
        "customer erased",
        extra={
            "fields": {
                "feedback": counts.feedback,
                "tickets": counts.tickets,
                "deliveries": counts.deliveries,
            }
        },
    )
    return counts
