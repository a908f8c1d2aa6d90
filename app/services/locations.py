"""Locations and their owners: where a ticket goes when its rule names no assignee or
team. A location-restricted key sees and changes only its own locations."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models.closed_loop import LocationRow
from app.repositories import locations as repo
from app.schemas.locations import LocationIn
from app.services.access import Principal
from app.services.pagination import cursor_error, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)


async def put_location(
    session: AsyncSession, principal: Principal, location_id: str, location: LocationIn
) -> LocationRow:
    """Create or replace; 403 for a location outside the key's list."""
    principal.require_locations([location_id])
    row = await repo.upsert(
        session,
        location_id,
        name=location.name,
        owner=location.owner,
        team=location.team,
        region=location.region,
    )
    logger.info("location stored", extra={"fields": {"location_id": location_id}})
    return row


async def get_location(
    session: AsyncSession, principal: Principal, location_id: str
) -> LocationRow:
    principal.require_locations([location_id])
    row = await repo.get(session, location_id, within=principal.readable_locations())
    if row is None:
        raise NotFound(f"Location '{location_id}' does not exist.")
    return row


async def list_locations(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[list[LocationRow], str | None]:
    """One page by location_id (only the key's locations), and the next page's cursor."""
    after = None
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 1 or not isinstance(values[0], str):
            raise cursor_error()
        after = values[0]
    rows = await repo.list_page(
        session, within=principal.readable_locations(), after=after, limit=limit + 1
    )
    next_cursor = encode_cursor(rows[limit - 1].location_id) if len(rows) > limit else None
    return rows[:limit], next_cursor
