"""Reading and changing tickets: through the API (``PATCH /v1/tickets/{id}``) and by
status flowing back from an integration (``POST /v1/inbound/{name}``).

Every change is a timeline entry and, when something changed, one ticket event to the
ticket's targets in the same transaction: ``ticket.resolved`` when it became resolved,
else ``ticket.updated``. A status reported by an integration is not sent back to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg

from app.db import DriverConnection
from app.errors import Conflict, NotFound, Unauthenticated
from app.integrations.base import EventType
from app.integrations.signing import InvalidSignatureError, verify
from app.models.enums import OPEN_TICKET_STATUSES, TicketPriority, TicketStatus
from app.repositories import outbox, routing
from app.repositories import stream as stream_repo
from app.repositories import tickets as repo
from app.repositories.tickets import TicketFilter, TimelineEntry
from app.schemas.tickets import InboundStatus, TicketOut
from app.services.access import Principal
from app.services.closed_loop import ticket_deliveries
from app.services.pagination import decode_time_position, encode_cursor


@dataclass(frozen=True, slots=True)
class TicketChange:
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assignee: str | None = None
    assignee_given: bool = False  # null is a value: it unassigns
    note: str | None = None
    actor: str | None = None  # who, for the timeline: an API key's name, an integration


@dataclass(frozen=True, slots=True)
class ChangeResult:
    ticket: TicketOut
    changed: bool  # False: it already was as asked (nothing recorded, nothing sent)
    resolved: bool  # this change resolved it (for the tickets-resolved counter)


async def list_tickets(
    connection: DriverConnection,
    principal: Principal,
    filters: TicketFilter,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[TicketOut], str | None]:
    principal.require_locations(filters.location_ids)
    scoped = replace(filters, allowed_location_ids=principal.readable_locations())
    after = decode_time_position(cursor) if cursor is not None else None
    keys = await repo.list_ticket_ids(connection, scoped, after=after, limit=limit + 1)
    next_cursor = None
    if len(keys) > limit:
        keys = keys[:limit]
        next_cursor = encode_cursor(keys[-1][0].isoformat(), keys[-1][1])
    documents = await repo.ticket_documents(connection, [ticket_id for _, ticket_id in keys])
    return [ticket_out(documents[ticket_id]) for _, ticket_id in keys], next_cursor


def ticket_out(document: Mapping[str, object]) -> TicketOut:
    return TicketOut.model_validate(
        {k: v for k, v in document.items() if k != "target_integration_ids"}
    )


async def get_ticket(
    connection: DriverConnection, principal: Principal, ticket_id: int
) -> TicketOut:
    document = (await repo.ticket_documents(connection, [ticket_id])).get(ticket_id)
    # A ticket outside the key's locations does not exist for it.
    if document is None or not principal.may_access_location(document["location_id"]):
        raise NotFound(f"Ticket {ticket_id} does not exist.")
    return ticket_out(document)


async def change_ticket(
    connection: DriverConnection,
    ticket_id: int,
    change: TicketChange,
    *,
    principal: Principal | None,
    source_integration_id: int | None = None,
) -> ChangeResult:
    """Apply a change in the caller's transaction; ``principal`` None: an integration."""
    ticket = await repo.lock_ticket(connection, ticket_id)
    if ticket is None or (
        principal is not None and not principal.may_access_location(ticket.location_id)
    ):
        raise NotFound(f"Ticket {ticket_id} does not exist.")
    by = f" by {change.actor}" if change.actor else ""
    timeline: list[TimelineEntry] = []
    status, priority, assignee = ticket.status, ticket.priority, ticket.assignee
    if change.status is not None and change.status.value != ticket.status:
        status = change.status.value
        timeline.append(
            TimelineEntry(ticket_id, "status_changed", f"{ticket.status} → {status}{by}")
        )
    if change.priority is not None and change.priority.value != ticket.priority:
        priority = change.priority.value
        timeline.append(
            TimelineEntry(ticket_id, "priority_changed", f"{ticket.priority} → {priority}{by}")
        )
    if change.assignee_given and change.assignee != ticket.assignee:
        assignee = change.assignee
        timeline.append(
            TimelineEntry(
                ticket_id,
                "assignee_changed",
                f"{ticket.assignee or 'nobody'} → {assignee or 'nobody'}{by}",
            )
        )
    if change.note is not None:
        author = f" — {change.actor}" if change.actor else ""
        timeline.append(TimelineEntry(ticket_id, "note", f"{change.note}{author}"))
    became_resolved = status == TicketStatus.RESOLVED and ticket.status != TicketStatus.RESOLVED
    if timeline:
        try:
            await repo.update_ticket(
                connection,
                ticket_id,
                status=status,
                priority=priority,
                assignee=assignee,
                resolved_at_now=_resolved_at(ticket.status, status),
            )
        except asyncpg.UniqueViolationError:
            # uq_tickets_open_customer: a customer has at most one open ticket.
            raise Conflict(
                f"Ticket {ticket_id} cannot be reopened: its customer has another open "
                "ticket (new feedback went there). Work on that one, or resolve it first."
            ) from None
        await repo.add_timeline(connection, timeline)
        event = EventType.TICKET_RESOLVED if became_resolved else EventType.TICKET_UPDATED
        integrations = await routing.enabled_integrations(connection)
        deliveries = await ticket_deliveries(
            connection,
            [(ticket_id, event)],
            integrations,
            datetime.now(UTC),
            exclude_integration_id=source_integration_id,
        )
        await outbox.insert_deliveries(connection, deliveries)
        await stream_repo.announce(connection, [], [(ticket_id, event.value)])
    documents = await repo.ticket_documents(connection, [ticket_id])
    return ChangeResult(
        ticket_out(documents[ticket_id]), changed=bool(timeline), resolved=became_resolved
    )


def _resolved_at(before: str, after: str) -> bool | None:
    """Set when a ticket is resolved or closed while open; cleared when it reopens."""
    was_open = TicketStatus(before) in OPEN_TICKET_STATUSES
    is_open = TicketStatus(after) in OPEN_TICKET_STATUSES
    if was_open and not is_open:
        return True
    if not was_open and is_open:
        return False
    return None


@dataclass(frozen=True, slots=True)
class InboundIntegration:
    id: int
    name: str
    inbound_secret: str


async def inbound_integration(connection: DriverConnection, name: str) -> InboundIntegration:
    record = await connection.fetchrow(
        "SELECT id, name, inbound_secret FROM integrations WHERE name = $1", name
    )
    if record is None:
        raise NotFound(f"Integration '{name}' does not exist.")
    return InboundIntegration(record["id"], record["name"], record["inbound_secret"])


def verify_inbound(
    integration: InboundIntegration, headers: Mapping[str, str], body: bytes
) -> None:
    try:
        verify(integration.inbound_secret, headers, body)
    except InvalidSignatureError:
        # The reason (missing, expired, wrong) stays out of the answer: no oracle.
        raise Unauthenticated(
            "The webhook signature is missing, invalid or too old "
            "(Standard Webhooks, signed with this integration's inbound_secret)."
        ) from None


async def apply_inbound_status(
    connection: DriverConnection, integration: InboundIntegration, report: InboundStatus
) -> ChangeResult:
    if report.ticket_id is not None:
        ticket_id: int | None = int(report.ticket_id)
    else:
        assert report.external_id is not None
        ticket_id = await repo.ticket_id_by_external_id(
            connection, integration.id, report.external_id
        )
    if ticket_id is None:
        raise NotFound("No ticket has this external_id for this integration.")
    actor = integration.name + (f" ({report.actor})" if report.actor else "")
    change = TicketChange(status=report.mapped_status, note=report.note, actor=actor)
    return await change_ticket(
        connection, ticket_id, change, principal=None, source_integration_id=integration.id
    )
