"""Closing the loop inside the ingest transaction (SPEC section 6).

For the events a transaction has just stored: the first enabled rule that matches
decides a ticket; the ticket goes to the customer's open ticket if there is one (a
timeline entry and ``ticket.updated``), else a new one is opened (``ticket.created``),
routed to the rule's assignee/team or the location's owner/team, with an SLA due time.
Deliveries for every subscribed integration are written to the outbox in the same
transaction: the event, its ticket and the deliveries they cause commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import DriverConnection
from app.integrations.base import EventType
from app.repositories import feedback as feedback_repo
from app.repositories import outbox, routing
from app.repositories import tickets as tickets_repo
from app.repositories.outbox import NewDelivery
from app.repositories.routing import IntegrationTarget
from app.repositories.tickets import NewTicket, TimelineEntry
from app.schemas.feedback import FeedbackEventIn, feedback_out
from app.schemas.tickets import TicketOut
from app.services.rule_matching import CompiledRule, compile_rule, first_match

# Feedback events sent along with a ticket event (to describe it to an agent).
PAYLOAD_FEEDBACK_LIMIT = 5
MAX_TICKET_ROUNDS = 3  # a race with a concurrent transaction is settled in the next round


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: FeedbackEventIn
    feedback_id: int
    sentiment_score: float | None = None


@dataclass(slots=True)
class LoopResult:
    ticket_of: dict[int, int] = field(default_factory=dict)  # feedback id -> ticket id
    opened: set[int] = field(default_factory=set)  # tickets opened by this transaction


def _customer_snapshot(event: FeedbackEventIn) -> dict[str, Any] | None:
    customer = event.customer
    if customer is None:
        return None
    return {
        "id": customer.id,
        "email": str(customer.email) if customer.email else None,
        "phone": customer.phone,
        "name": customer.name,
        "locale": customer.locale,
    }


def _targets(rule: CompiledRule, integrations: Sequence[IntegrationTarget]) -> list[int] | None:
    if not rule.action.targets:
        return None  # every enabled integration subscribed to each event type
    named = set(rule.action.targets)
    return [integration.id for integration in integrations if integration.name in named]


async def close_the_loop(connection: DriverConnection, stored: Sequence[StoredEvent]) -> LoopResult:
    """Tickets and deliveries for newly stored events, in the caller's transaction."""
    result = LoopResult()
    if not stored:
        return result
    rules = [
        compile_rule(rule.id, rule.name, rule.conditions, rule.action)
        for rule in await routing.enabled_rules(connection)
    ]
    integrations = await routing.enabled_integrations(connection)
    matches = [
        (item, rule)
        for item in stored
        if (rule := first_match(rules, item.event, item.sentiment_score)) is not None
    ]
    updated: set[int] = set()
    if matches:
        updated = await _open_or_attach(connection, matches, integrations, result)
    if integrations:
        await _write_deliveries(connection, stored, integrations, result, updated)
    return result


async def _open_or_attach(
    connection: DriverConnection,
    matches: Sequence[tuple[StoredEvent, CompiledRule]],
    integrations: Sequence[IntegrationTarget],
    result: LoopResult,
) -> set[int]:
    """Give every matched event a ticket; returns existing tickets that got feedback."""
    owners = await routing.location_owners(
        connection, sorted({m.event.location_id for m, _ in matches if m.event.location_id})
    )
    timeline: list[TimelineEntry] = []
    updated: set[int] = set()
    pending = list(matches)
    for _round in range(MAX_TICKET_ROUNDS):
        customer_ids = [
            m.event.customer.id for m, _ in pending if m.event.customer and m.event.customer.id
        ]
        open_ticket = await tickets_repo.lock_open_tickets(connection, customer_ids)
        openers: dict[str | None, list[tuple[StoredEvent, CompiledRule]]] = {}
        anonymous: list[tuple[StoredEvent, CompiledRule]] = []
        for item, rule in pending:
            customer_id = item.event.customer.id if item.event.customer else None
            if customer_id is not None and customer_id in open_ticket:
                ticket_id = open_ticket[customer_id]
                result.ticket_of[item.feedback_id] = ticket_id
                updated.add(ticket_id)
                timeline.append(_attached(ticket_id, item.feedback_id, rule))
            elif customer_id is None:
                anonymous.append((item, rule))
            else:
                openers.setdefault(customer_id, []).append((item, rule))
        # One new ticket per customer (its first matched event opens it, later ones of
        # this transaction attach to it) and one per anonymous event.
        groups = [*openers.values(), *([pair] for pair in anonymous)]
        ids = await tickets_repo.allocate_ticket_ids(connection, len(groups))
        new = [
            _new_ticket(ticket_id, group[0][0], group[0][1], owners, integrations)
            for ticket_id, group in zip(ids, groups, strict=True)
        ]
        inserted = await tickets_repo.insert_open_tickets(connection, new)
        pending = []
        for ticket_id, group in zip(ids, groups, strict=True):
            if ticket_id not in inserted:  # a concurrent transaction opened one first
                pending.extend(group)
                continue
            result.opened.add(ticket_id)
            opener, rule = group[0]
            result.ticket_of[opener.feedback_id] = ticket_id
            timeline.append(
                TimelineEntry(
                    ticket_id,
                    "created",
                    f"Opened by rule '{rule.name}' for feedback {opener.feedback_id}",
                )
            )
            for item, item_rule in group[1:]:
                result.ticket_of[item.feedback_id] = ticket_id
                timeline.append(_attached(ticket_id, item.feedback_id, item_rule))
        # Each round settles the races it saw; events still pending after the last one
        # (not seen in practice) stay without a ticket rather than failing the ingest.
        if not pending:
            break
    await tickets_repo.assign_feedback(connection, sorted(result.ticket_of.items()))
    await tickets_repo.add_timeline(connection, timeline)
    await tickets_repo.touch(connection, sorted(updated - result.opened))
    return updated - result.opened


def _attached(ticket_id: int, feedback_id: int, rule: CompiledRule) -> TimelineEntry:
    return TimelineEntry(
        ticket_id, "feedback_attached", f"Feedback {feedback_id} attached (rule '{rule.name}')"
    )


def _new_ticket(
    ticket_id: int,
    opener: StoredEvent,
    rule: CompiledRule,
    owners: dict[str, routing.LocationOwner],
    integrations: Sequence[IntegrationTarget],
) -> NewTicket:
    event = opener.event
    owner = owners.get(event.location_id) if event.location_id else None
    action = rule.action
    sla = action.sla_hours
    return NewTicket(
        id=ticket_id,
        priority=action.priority.value,
        reason=rule.name,
        rule_id=rule.id,
        assignee=action.assignee or (owner.owner if owner else None),
        team=action.team or (owner.team if owner else None),
        location_id=event.location_id,
        channel=event.channel.value,
        customer_id=event.customer.id if event.customer else None,
        customer=_customer_snapshot(event),
        target_integration_ids=_targets(rule, integrations),
        sla_due_at=datetime.now(UTC) + timedelta(hours=sla) if sla is not None else None,
    )


async def _write_deliveries(
    connection: DriverConnection,
    stored: Sequence[StoredEvent],
    integrations: Sequence[IntegrationTarget],
    result: LoopResult,
    updated: set[int],
) -> None:
    now = datetime.now(UTC)
    deliveries: list[NewDelivery] = []
    received = [i for i in integrations if EventType.FEEDBACK_RECEIVED in i.events]
    if received:
        rows = await feedback_repo.rows_by_ids(connection, [s.feedback_id for s in stored])
        for row in rows:
            data = feedback_out(row).model_dump(mode="json")
            deliveries.extend(
                NewDelivery(i.id, EventType.FEEDBACK_RECEIVED, None, row.id, {"data": data}, now)
                for i in received
            )
    ticket_events = [(t, EventType.TICKET_CREATED) for t in sorted(result.opened)]
    ticket_events += [(t, EventType.TICKET_UPDATED) for t in sorted(updated)]
    deliveries += await ticket_deliveries(connection, ticket_events, integrations, now)
    await outbox.insert_deliveries(connection, deliveries)


async def ticket_deliveries(
    connection: DriverConnection,
    ticket_events: Sequence[tuple[int, EventType]],
    integrations: Sequence[IntegrationTarget],
    occurred_at: datetime,
    *,
    exclude_integration_id: int | None = None,
) -> list[NewDelivery]:
    """One delivery per (ticket event, target integration subscribed to its type), with
    the ticket as it is now in this transaction."""
    if not ticket_events or not integrations:
        return []
    documents = await tickets_repo.ticket_documents(connection, [t for t, _ in ticket_events])
    feedback_ids = {
        int(f)
        for document in documents.values()
        for f in document["feedback_ids"][-PAYLOAD_FEEDBACK_LIMIT:]
    }
    feedback = {
        row.id: feedback_out(row).model_dump(mode="json")
        for row in await feedback_repo.rows_by_ids(connection, sorted(feedback_ids))
    }
    deliveries: list[NewDelivery] = []
    for ticket_id, event_type in ticket_events:
        document = dict(documents[ticket_id])
        targets = document.pop("target_integration_ids")
        data = TicketOut.model_validate(document).model_dump(mode="json")
        payload = {
            "data": data,
            "feedback": [
                feedback[int(f)]
                for f in document["feedback_ids"][-PAYLOAD_FEEDBACK_LIMIT:]
                if int(f) in feedback
            ],
        }
        for integration in _subscribed(integrations, targets, event_type):
            if integration.id != exclude_integration_id:
                deliveries.append(
                    NewDelivery(integration.id, event_type, ticket_id, None, payload, occurred_at)
                )
    return deliveries


def _subscribed(
    integrations: Iterable[IntegrationTarget], targets: list[int] | None, event_type: EventType
) -> list[IntegrationTarget]:
    return [
        integration
        for integration in integrations
        if event_type in integration.events and (targets is None or integration.id in targets)
    ]
