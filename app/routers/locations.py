"""Locations and their owners (routing of tickets)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.dependencies import Admin, SessionDep, TicketReader
from app.models.closed_loop import LocationRow
from app.routers.docs import NOT_FOUND
from app.schemas.common import Text64
from app.schemas.locations import LocationIn, LocationOut, LocationPage
from app.services import locations

router = APIRouter(prefix="/v1/locations", tags=["locations"])

LocationId = Annotated[
    Text64, Path(description="The location_id feedback events carry (1-64 characters).")
]

_RESTRICTED = "A location-restricted key sees only its own locations; naming another one is a 403."


def _out(row: LocationRow) -> LocationOut:
    return LocationOut(
        location_id=row.location_id,
        name=row.name,
        owner=row.owner,
        team=row.team,
        region=row.region,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.put(
    "/{location_id}",
    summary="Create or replace a location",
    description="Stores the location's name, owner, team and region (fields left out "
    "become null). A ticket's assignee is its rule's `assignee`, else the location's "
    "`owner`; its team likewise. Needs `admin`; a location-restricted admin may only "
    "store its own locations (else 403).",
)
async def put_location(
    location_id: LocationId, body: LocationIn, session: SessionDep, principal: Admin
) -> LocationOut:
    return _out(await locations.put_location(session, principal, location_id, body))


@router.get(
    "",
    summary="List locations",
    # Locations are read where tickets are worked on: the scope of tickets.
    description="By `location_id`. Needs `tickets:read` (or `admin`). " + _RESTRICTED,
)
async def list_locations(
    session: SessionDep,
    principal: TicketReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> LocationPage:
    rows, next_cursor = await locations.list_locations(
        session, principal, cursor=cursor, limit=limit
    )
    return LocationPage(items=[_out(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{location_id}",
    summary="Read one location",
    description="Needs `tickets:read` (or `admin`). " + _RESTRICTED,
    responses={**NOT_FOUND},
)
async def get_location(
    location_id: LocationId, session: SessionDep, principal: TicketReader
) -> LocationOut:
    return _out(await locations.get_location(session, principal, location_id))
