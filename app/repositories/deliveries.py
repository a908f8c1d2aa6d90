"""The delivery outbox as the admin API reads and re-queues it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.closed_loop import DeliveryAttemptRow, DeliveryRow, IntegrationRow
from app.models.enums import DeliveryStatus
from app.repositories.outbox import DELIVERIES_CHANNEL as DELIVERIES_CHANNEL  # re-exported


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    integration_name: str | None = None
    ticket_id: int | None = None


def _listing() -> Select[DeliveryRow, str]:
    return select(DeliveryRow, IntegrationRow.name).join(
        IntegrationRow, IntegrationRow.id == DeliveryRow.integration_id
    )


async def list_page(
    session: AsyncSession, filters: DeliveryFilter, *, before_id: int | None, limit: int
) -> list[tuple[DeliveryRow, str]]:
    """Newest first (by id), each with its integration's name; ``before_id`` is the
    previous page's last id."""
    query = _listing().order_by(DeliveryRow.id.desc()).limit(limit)
    if filters.status is not None:
        query = query.where(DeliveryRow.status == filters.status)
    if filters.integration_name is not None:
        query = query.where(IntegrationRow.name == filters.integration_name)
    if filters.ticket_id is not None:
        query = query.where(DeliveryRow.ticket_id == filters.ticket_id)
    if before_id is not None:
        query = query.where(DeliveryRow.id < before_id)
    return [(row, name) for row, name in await session.execute(query)]


async def get(session: AsyncSession, delivery_id: int) -> tuple[DeliveryRow, str] | None:
    query = _listing().where(DeliveryRow.id == delivery_id)
    found = (await session.execute(query)).first()
    if found is None:
        return None
    row, name = found
    return row, name


async def attempts_of(session: AsyncSession, delivery_id: int) -> list[DeliveryAttemptRow]:
    query = (
        select(DeliveryAttemptRow)
        .where(DeliveryAttemptRow.delivery_id == delivery_id)
        .order_by(DeliveryAttemptRow.at, DeliveryAttemptRow.id)
    )
    return list((await session.execute(query)).scalars())


async def requeue_dead(session: AsyncSession, delivery_id: int) -> DeliveryRow | None:
    """Make a dead delivery due now with a fresh retry schedule; None when it is not dead
    (the check and the change are one statement, so a concurrent retry cannot slip in)."""
    statement = (
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id, DeliveryRow.status == DeliveryStatus.DEAD)
        .values(status=DeliveryStatus.PENDING, next_attempt_at=func.now(), attempts=0)
        .returning(DeliveryRow)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def wake_dispatchers(session: AsyncSession) -> None:
    """NOTIFY the dispatchers (the channel the outbox writes use too). Delivered at
    commit; a rolled-back transaction wakes nobody."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": DELIVERIES_CHANNEL})
