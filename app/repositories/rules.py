"""Rule storage: conditions and action are JSON documents (see app/schemas/rules.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.closed_loop import RuleRow


async def list_page(
    session: AsyncSession, *, after: tuple[int, int] | None, limit: int
) -> list[RuleRow]:
    """By ascending (position, id); ``after`` is the previous page's last (position, id)."""
    query = select(RuleRow).order_by(RuleRow.position, RuleRow.id).limit(limit)
    if after is not None:
        position, rule_id = after
        query = query.where(
            or_(
                RuleRow.position > position,
                and_(RuleRow.position == position, RuleRow.id > rule_id),
            )
        )
    return list((await session.execute(query)).scalars())


async def get(session: AsyncSession, rule_id: int) -> RuleRow | None:
    return await session.get(RuleRow, rule_id)


async def insert(
    session: AsyncSession,
    *,
    name: str,
    enabled: bool,
    position: int,
    conditions: dict[str, Any],
    action: dict[str, Any],
) -> RuleRow:
    row = RuleRow(
        name=name, enabled=enabled, position=position, conditions=conditions, action=action
    )
    session.add(row)
    await session.flush()
    await session.refresh(row, ["created_at", "updated_at"])
    return row


async def replace(
    session: AsyncSession,
    row: RuleRow,
    *,
    name: str,
    enabled: bool,
    position: int,
    conditions: dict[str, Any],
    action: dict[str, Any],
) -> RuleRow:
    row.name = name
    row.enabled = enabled
    row.position = position
    row.conditions = conditions
    row.action = action
    await session.flush()
    await session.refresh(row, ["updated_at"])
    return row


async def delete_rule(session: AsyncSession, rule_id: int) -> bool:
    result = await session.execute(
        delete(RuleRow).where(RuleRow.id == rule_id).returning(RuleRow.id)
    )
    return result.first() is not None


async def targeting(session: AsyncSession, integration_name: str) -> list[RuleRow]:
    """Rules whose action names the integration among its targets."""
    query = (
        select(RuleRow)
        .where(RuleRow.action.contains({"targets": [integration_name]}))
        .order_by(RuleRow.position, RuleRow.id)
    )
    return list((await session.execute(query)).scalars())
