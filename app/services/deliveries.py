"""The delivery outbox for admins: what was sent where, what failed, and re-queuing
dead deliveries. Global configuration like integrations (``require_global_admin``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.models.closed_loop import DeliveryAttemptRow, DeliveryRow
from app.models.enums import DeliveryStatus
from app.repositories import deliveries as repo
from app.repositories.deliveries import DeliveryFilter
from app.services.access import Principal
from app.services.integrations import require_global_admin
from app.services.pagination import cursor_error, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class DeliveryView:
    row: DeliveryRow
    integration_name: str


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    filters: DeliveryFilter,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[DeliveryView], str | None]:
    """One page, newest first, and the next page's cursor."""
    require_global_admin(principal, "Deliveries")
    before_id = None
    if cursor is not None:
        values = decode_cursor(cursor)
        if (
            len(values) != 1
            or not isinstance(values[0], int)
            or isinstance(values[0], bool)
            or not 0 < values[0] <= _MAX_BIGINT
        ):
            raise cursor_error()
        before_id = values[0]
    found = await repo.list_page(session, filters, before_id=before_id, limit=limit + 1)
    views = [DeliveryView(row, name) for row, name in found]
    next_cursor = encode_cursor(views[limit - 1].row.id) if len(views) > limit else None
    return views[:limit], next_cursor


async def get_delivery(
    session: AsyncSession, principal: Principal, delivery_id: int
) -> tuple[DeliveryView, list[DeliveryAttemptRow]]:
    """The delivery and every attempt at it, oldest first."""
    require_global_admin(principal, "Deliveries")
    view = await _existing(session, delivery_id)
    return view, await repo.attempts_of(session, delivery_id)


async def retry_delivery(
    session: AsyncSession, principal: Principal, delivery_id: int
) -> DeliveryView:
    """Re-queue a dead delivery: pending, due now, ``attempts`` back to 0 so that it gets
    the whole retry schedule again; ``last_error`` stays until the next attempt. 409 for
    any other status. The dispatchers are woken when this transaction commits."""
    require_global_admin(principal, "Deliveries")
    view = await _existing(session, delivery_id)
    row = await repo.requeue_dead(session, delivery_id)
    if row is None:
        status = view.row.status
        raise Conflict(
            f"Delivery {delivery_id} is {DeliveryStatus(status).value}; only dead "
            "deliveries can be retried."
        )
    await repo.wake_dispatchers(session)
    logger.info("delivery re-queued", extra={"fields": {"delivery_id": delivery_id}})
    return DeliveryView(row, view.integration_name)


async def _existing(session: AsyncSession, delivery_id: int) -> DeliveryView:
    found = await repo.get(session, delivery_id)
    if found is None:
        raise NotFound(f"Delivery {delivery_id} does not exist.")
    return DeliveryView(*found)
