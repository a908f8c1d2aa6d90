"""Location storage (routing: owner and team per location)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.closed_loop import LocationRow


async def upsert(
    session: AsyncSession,
    location_id: str,
    *,
    name: str | None,
    owner: str | None,
    team: str | None,
    region: str | None,
) -> LocationRow:
    values = {"name": name, "owner": owner, "team": team, "region": region}
    statement = (
        insert(LocationRow)
        .values(location_id=location_id, **values)
        .on_conflict_do_update(
            index_elements=[LocationRow.location_id],
            set_={**values, "updated_at": func.now()},
        )
        .returning(LocationRow)
    )
    # populate_existing: the session may already hold this row from an earlier read.
    result = await session.execute(statement, execution_options={"populate_existing": True})
    return result.scalar_one()


async def insert_if_absent(
    session: AsyncSession,
    location_id: str,
    *,
    name: str | None,
    owner: str | None,
    team: str | None,
    region: str | None,
) -> bool:
    """Create the location unless it exists (an existing one is left as it is); True
    when it was created."""
    statement = (
        insert(LocationRow)
        .values(location_id=location_id, name=name, owner=owner, team=team, region=region)
        .on_conflict_do_nothing(index_elements=[LocationRow.location_id])
        .returning(LocationRow.location_id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def get(
    session: AsyncSession, location_id: str, *, within: Sequence[str] | None
) -> LocationRow | None:
    query = select(LocationRow).where(LocationRow.location_id == location_id)
    if within is not None:
        query = query.where(LocationRow.location_id.in_(list(within)))
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession, *, within: Sequence[str] | None, after: str | None, limit: int
) -> list[LocationRow]:
    """By location_id; ``within``: only these locations (None: all)."""
    query = select(LocationRow).order_by(LocationRow.location_id).limit(limit)
    if after is not None:
        query = query.where(LocationRow.location_id > after)
    if within is not None:
        query = query.where(LocationRow.location_id.in_(list(within)))
    return list((await session.execute(query)).scalars())
