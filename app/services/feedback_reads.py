"""Reading stored feedback, always within what the caller's key may see."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models.feedback import FeedbackRow
from app.repositories import feedback as repo
from app.repositories.feedback import FeedbackFilter
from app.services.access import Principal
from app.services.pagination import decode_time_position, encode_cursor


@dataclass(frozen=True, slots=True)
class FeedbackPageResult:
    rows: list[FeedbackRow]
    next_cursor: str | None


async def list_feedback(
    session: AsyncSession,
    principal: Principal,
    filters: FeedbackFilter,
    *,
    cursor: str | None,
    limit: int,
) -> FeedbackPageResult:
    principal.require_locations(filters.location_ids)
    scoped = replace(filters, allowed_location_ids=principal.readable_locations())
    before = decode_time_position(cursor) if cursor is not None else None
    rows = await repo.list_page(session, scoped, before=before, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.occurred_at.isoformat(), last.id)
    return FeedbackPageResult(rows=rows, next_cursor=next_cursor)


async def get_feedback(
    session: AsyncSession, principal: Principal, feedback_id: int
) -> FeedbackRow:
    row = await repo.get(session, feedback_id, principal.readable_locations())
    if row is None:
        # Outside the key's locations looks exactly like missing: existence is not leaked.
        raise NotFound(f"Feedback {feedback_id} does not exist.")
    return row
