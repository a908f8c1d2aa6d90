"""Tickets: list, read, change (SPEC section 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.dependencies import DriverDep, TicketReader, TicketWriter
from app.models.enums import TicketPriority, TicketStatus
from app.repositories.tickets import TicketFilter
from app.routers.docs import NOT_FOUND, problem
from app.schemas.common import Rfc3339Datetime, Text64, Text200
from app.schemas.tickets import TicketOut, TicketPage, TicketPatch
from app.services import tickets as service
from app.telemetry import TICKETS_RESOLVED

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

TicketId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The ticket's id.")]


@router.get(
    "",
    summary="List tickets, newest first",
    description=(
        "Keyset-paginated by (`created_at`, `id`), newest first. Repeat `status`, "
        "`priority` and `location_id` to match any of several; `from` (inclusive) and "
        "`to` (exclusive) bound `created_at`. A location-restricted key sees only tickets "
        "of its locations; asking for another location is a 403."
    ),
)
async def list_tickets(
    connection: DriverDep,
    principal: TicketReader,
    status: Annotated[list[TicketStatus] | None, Query(description="Repeatable.")] = None,
    priority: Annotated[list[TicketPriority] | None, Query(description="Repeatable.")] = None,
    location_id: Annotated[
        list[Text64] | None, Query(description="Repeatable.", max_length=100)
    ] = None,
    assignee: Text200 | None = None,
    from_: Annotated[Rfc3339Datetime | None, Query(alias="from")] = None,
    to: Rfc3339Datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TicketPage:
    filters = TicketFilter(
        statuses=[s.value for s in status or ()],
        priorities=[p.value for p in priority or ()],
        location_ids=location_id or (),
        assignee=assignee,
        created_from=from_,
        created_to=to,
    )
    items, next_cursor = await service.list_tickets(
        connection, principal, filters, cursor=cursor, limit=limit
    )
    return TicketPage(items=items, next_cursor=next_cursor)


@router.get("/{ticket_id}", summary="Read one ticket with its timeline", responses={**NOT_FOUND})
async def get_ticket(
    ticket_id: TicketId, connection: DriverDep, principal: TicketReader
) -> TicketOut:
    return await service.get_ticket(connection, principal, ticket_id)


@router.patch(
    "/{ticket_id}",
    summary="Change a ticket's status, priority or assignee, or add a note",
    description=(
        "Each change is a timeline entry. When something changed, the ticket's "
        "integrations get `ticket.resolved` (it became resolved) or `ticket.updated`. "
        "Resolving or closing sets `resolved_at`; reopening clears it. `assignee: null` "
        "unassigns. A location-restricted key changes only tickets of its locations."
    ),
    responses={
        **NOT_FOUND,
        409: problem("Reopening it is refused: its customer has another open ticket."),
    },
)
async def patch_ticket(
    ticket_id: TicketId, body: TicketPatch, connection: DriverDep, principal: TicketWriter
) -> TicketOut:
    change = service.TicketChange(
        status=body.status,
        priority=body.priority,
        assignee=body.assignee,
        assignee_given="assignee" in body.model_fields_set,
        note=body.note,
        actor=f"api key '{principal.name}'",
    )
    result = await service.change_ticket(connection, ticket_id, change, principal=principal)
    if result.resolved:
        TICKETS_RESOLVED.inc()
    return result.ticket
