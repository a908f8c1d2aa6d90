"""Rules: which feedback opens a ticket, with what priority, owner, SLA and targets.

Rules are global configuration (``require_global_admin``). Each is stored as its API
body: ``conditions`` and ``action`` hold every key (see app/schemas/rules.py), which
``app.services.rule_matching`` reads.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput, NotFound
from app.models.closed_loop import RuleRow
from app.repositories import integrations as integrations_repo
from app.repositories import rules as repo
from app.schemas.rules import RuleIn
from app.services.access import Principal
from app.services.integrations import require_global_admin
from app.services.pagination import cursor_error, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

_MAX_BIGINT = 2**63 - 1


def _decode_position(cursor: str) -> tuple[int, int]:
    values = decode_cursor(cursor)
    if len(values) != 2 or not all(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_BIGINT
        for value in values
    ):
        raise cursor_error()
    return values[0], values[1]


async def list_rules(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[list[RuleRow], str | None]:
    """One page in evaluation order (position, id), and the next page's cursor."""
    require_global_admin(principal, "Rules")
    after = _decode_position(cursor) if cursor is not None else None
    rows = await repo.list_page(session, after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].position, rows[-1].id)
    return rows, next_cursor


async def get_rule(session: AsyncSession, principal: Principal, rule_id: int) -> RuleRow:
    require_global_admin(principal, "Rules")
    return await _existing(session, rule_id)


async def create_rule(session: AsyncSession, principal: Principal, rule: RuleIn) -> RuleRow:
    require_global_admin(principal, "Rules")
    await _require_known_targets(session, rule.action.targets)
    row = await repo.insert(session, **_stored(rule))
    logger.info("rule created", extra={"fields": {"rule_id": row.id}})
    return row


async def replace_rule(
    session: AsyncSession, principal: Principal, rule_id: int, rule: RuleIn
) -> RuleRow:
    require_global_admin(principal, "Rules")
    row = await _existing(session, rule_id)
    await _require_known_targets(session, rule.action.targets)
    row = await repo.replace(session, row, **_stored(rule))
    logger.info("rule replaced", extra={"fields": {"rule_id": rule_id}})
    return row


async def delete_rule(session: AsyncSession, principal: Principal, rule_id: int) -> None:
    """Tickets it opened stay (their ``reason`` keeps the rule's name)."""
    require_global_admin(principal, "Rules")
    if not await repo.delete_rule(session, rule_id):
        raise NotFound(f"Rule {rule_id} does not exist.")
    logger.info("rule deleted", extra={"fields": {"rule_id": rule_id}})


async def _existing(session: AsyncSession, rule_id: int) -> RuleRow:
    row = await repo.get(session, rule_id)
    if row is None:
        raise NotFound(f"Rule {rule_id} does not exist.")
    return row


def _stored(rule: RuleIn) -> dict[str, Any]:
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "position": rule.position,
        "conditions": rule.conditions.model_dump(mode="json"),
        "action": rule.action.model_dump(mode="json"),
    }


async def _require_known_targets(session: AsyncSession, targets: list[str]) -> None:
    known = await integrations_repo.names_among(session, targets)
    unknown = [(index, name) for index, name in enumerate(targets) if name not in known]
    if not unknown:
        return
    names = ", ".join(sorted({name for _, name in unknown}))
    raise InvalidInput(
        f"Unknown integration(s) in action.targets: {names}.",
        errors=[
            {
                "loc": ["action", "targets", index],
                "msg": f"no integration named '{name}'",
                "type": "unknown_integration",
            }
            for index, name in unknown
        ],
    )
