"""Integration storage. ``secrets`` and ``inbound_secret`` are write-only: nothing here
logs them, and the API never shows them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.closed_loop import IntegrationRow


async def insert_if_new(
    session: AsyncSession,
    *,
    name: str,
    kind: str,
    enabled: bool,
    events: list[str],
    config: dict[str, Any],
    secrets: dict[str, str],
    inbound_secret: str,
) -> IntegrationRow | None:
    """The new row, or None when the name is taken (decided by the unique index, so
    two concurrent creates cannot both succeed)."""
    statement = (
        insert(IntegrationRow)
        .values(
            name=name,
            kind=kind,
            enabled=enabled,
            events=events,
            config=config,
            secrets=secrets,
            inbound_secret=inbound_secret,
        )
        .on_conflict_do_nothing(index_elements=[IntegrationRow.name])
        .returning(IntegrationRow)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_by_name(session: AsyncSession, name: str) -> IntegrationRow | None:
    query = select(IntegrationRow).where(IntegrationRow.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def names_among(session: AsyncSession, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are integrations."""
    wanted = sorted(set(names))
    if not wanted:
        return set()
    query = select(IntegrationRow.name).where(IntegrationRow.name.in_(wanted))
    return set((await session.execute(query)).scalars())


async def list_page(
    session: AsyncSession, *, after: str | None, limit: int
) -> list[IntegrationRow]:
    """By name; ``after`` is the previous page's last name."""
    query = select(IntegrationRow).order_by(IntegrationRow.name).limit(limit)
    if after is not None:
        query = query.where(IntegrationRow.name > after)
    return list((await session.execute(query)).scalars())


async def update(
    session: AsyncSession,
    row: IntegrationRow,
    *,
    enabled: bool,
    events: list[str],
    config: dict[str, Any],
    secrets: dict[str, str],
) -> IntegrationRow:
    row.enabled = enabled
    row.events = events
    row.config = config
    row.secrets = secrets
    await session.flush()
    await session.refresh(row, ["updated_at"])
    return row


async def delete_by_id(session: AsyncSession, integration_id: int) -> None:
    """Its deliveries and external ticket references go with it (ON DELETE CASCADE)."""
    await session.execute(delete(IntegrationRow).where(IntegrationRow.id == integration_id))
