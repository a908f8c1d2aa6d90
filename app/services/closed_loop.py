"""Closing the loop inside the ingest transaction (SPEC section 6).

For the events of an ingest transaction, the first enabled rule that matches decides a
ticket: the customer's open ticket if there is one (a timeline entry and
``ticket.updated``), else a new one (``ticket.created``), routed to the rule's
assignee/team or the location's owner/team, with an SLA due time. ``plan_tickets``
decides before the events are inserted (each row is written with its ticket id);
``finish_tickets`` completes the picture for the events that were in fact new, and
writes deliveries for every subscribed integration to the outbox in the same
transaction: the event, its ticket and the deliveries they cause commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


@dataclass(slots=True)
class TicketPlan:
    """Tickets decided before the events are inserted, so each feedback row is written
    with its ``ticket_id`` (updating 500 fresh rows afterwards cost more than inserting
    them). New tickets are inserted already; ``finish_tickets`` keeps those that got a
    newly stored event and removes the others (events that were already stored)."""

    integrations: list[IntegrationTarget] = field(default_factory=list)
    ticket_of_event: dict[str, int] = field(default_factory=dict)  # event_id -> ticket
    rule_of_event: dict[str, CompiledRule] = field(default_factory=dict)
    new_tickets: set[int] = field(default_factory=set)


@dataclass(slots=True)
class LoopResult:
    ticket_of: dict[int, int] = field(default_factory=dict)  # feedback id -> ticket id
    # Tickets opened by this transaction -> the feedback that opened each.
    opened: dict[int, int] = field(default_factory=dict)
    updated: set[int] = field(default_factory=set)  # open tickets new feedback was attached to


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


def _targets(rule: CompiledRule, integration_ids: Mapping[str, int]) -> list[int] | None:
    """The rule's targets as ids, disabled ones included: an integration enabled later
    gets the ticket's later events (each event goes to the enabled ones of them)."""
    if not rule.action.targets:
        return None  # every enabled integration subscribed to each event type
    return sorted(integration_ids[name] for name in rule.action.targets if name in integration_ids)


async def plan_tickets(
    connection: DriverConnection,
    events: Sequence[FeedbackEventIn],
    sentiment_scores: Mapping[str, float],
) -> TicketPlan:
    """Decide each event's ticket (``events``: one per event_id, not stored yet): the
    customer's open ticket, or a new one (one per customer; one per anonymous event).
    ``sentiment_scores``: by event_id, for the events whose text has a sentiment."""
    plan = TicketPlan()
    routing_now = await routing.routing_for(
        connection, [event.location_id for event in events if event.location_id]
    )
    rules = [
        compile_rule(rule.id, rule.name, rule.conditions, rule.action) for rule in routing_now.rules
    ]
    plan.integrations = routing_now.integrations
    integration_ids = routing_now.integration_ids
    owners = routing_now.owners
    pending: list[tuple[FeedbackEventIn, CompiledRule]] = []
    for event in events:
        rule = first_match(rules, event, sentiment_scores.get(event.event_id))
        if rule is not None:
            pending.append((event, rule))
            plan.rule_of_event[event.event_id] = rule
    if not pending:
        return plan
    # Each round opens a ticket per customer (and per anonymous event) first: the insert
    # skips any customer who already has an open ticket (a unique index), so the open
    # tickets are looked up, and locked, only for those. Most poor feedback comes from
    # customers without an open ticket: one statement for them, not two.
    for _round in range(MAX_TICKET_ROUNDS):
        by_customer: dict[str, list[tuple[FeedbackEventIn, CompiledRule]]] = {}
        groups: list[list[tuple[FeedbackEventIn, CompiledRule]]] = []
        for event, rule in pending:
            customer_id = event.customer.id if event.customer else None
            if customer_id is None:
                groups.append([(event, rule)])
            elif customer_id in by_customer:
                by_customer[customer_id].append((event, rule))
            else:
                by_customer[customer_id] = [(event, rule)]
                groups.append(by_customer[customer_id])
        ids = await tickets_repo.insert_open_tickets(
            connection, [_new_ticket(*group[0], owners, integration_ids) for group in groups]
        )
        already_open: list[tuple[FeedbackEventIn, CompiledRule]] = []
        for ticket_id, group in zip(ids, groups, strict=True):
            if ticket_id is not None:
                plan.new_tickets.add(ticket_id)
                for event, _ in group:
                    plan.ticket_of_event[event.event_id] = ticket_id
            else:  # the customer has an open ticket (or a concurrent transaction opened it)
                already_open.extend(group)
        if not already_open:
            break
        open_ticket = await tickets_repo.lock_open_tickets(
            connection, [e.customer.id for e, _ in already_open if e.customer and e.customer.id]
        )
        pending = []
        for event, rule in already_open:
            customer_id = event.customer.id if event.customer else None
            if customer_id is not None and customer_id in open_ticket:
                plan.ticket_of_event[event.event_id] = open_ticket[customer_id]
            else:  # resolved since the insert: the next round opens a new one
                pending.append((event, rule))
        # Each round settles the races it saw; events still pending after the last one
        # (not seen in practice) stay without a ticket rather than failing the ingest.
        if not pending:
            break
    return plan


async def finish_tickets(
    connection: DriverConnection,
    plan: TicketPlan,
    stored: Sequence[tuple[FeedbackEventIn, int]],
) -> LoopResult:
    """After the insert: ``stored`` are the events newly stored (with their feedback
    ids), in insertion order. Records the timeline, drops new tickets none of whose
    events was stored (they were duplicates), and writes the outbox deliveries."""
    result = LoopResult()
    timeline: list[TimelineEntry] = []
    updated = result.updated
    for event, feedback_id in stored:
        ticket_id = plan.ticket_of_event.get(event.event_id)
        if ticket_id is None:
            continue
        rule = plan.rule_of_event[event.event_id]
        result.ticket_of[feedback_id] = ticket_id
        if ticket_id in plan.new_tickets and ticket_id not in result.opened:
            result.opened[ticket_id] = feedback_id
            detail = f"Opened by rule '{rule.name}' for feedback {feedback_id}"
            timeline.append(TimelineEntry(ticket_id, "created", detail))
        else:
            if ticket_id not in plan.new_tickets:
                updated.add(ticket_id)
            detail = f"Feedback {feedback_id} attached (rule '{rule.name}')"
            timeline.append(TimelineEntry(ticket_id, "feedback_attached", detail))
    await tickets_repo.delete_tickets(connection, sorted(plan.new_tickets - result.opened.keys()))
    await tickets_repo.add_timeline(connection, timeline)
    await tickets_repo.touch(connection, sorted(updated))
    if plan.integrations:
        await _write_deliveries(
            connection,
            [feedback_id for _, feedback_id in stored],
            plan.integrations,
            result,
            updated,
        )
    return result


def _new_ticket(
    event: FeedbackEventIn,
    rule: CompiledRule,
    owners: dict[str, routing.LocationOwner],
    integration_ids: Mapping[str, int],
) -> NewTicket:
    owner = owners.get(event.location_id) if event.location_id else None
    action = rule.action
    sla = action.sla_hours
    return NewTicket(
        priority=action.priority.value,
        reason=rule.name,
        rule_id=rule.id,
        assignee=action.assignee or (owner.owner if owner else None),
        team=action.team or (owner.team if owner else None),
        location_id=event.location_id,
        channel=event.channel.value,
        customer_id=event.customer.id if event.customer else None,
        customer=_customer_snapshot(event),
        target_integration_ids=_targets(rule, integration_ids),
        sla_due_at=datetime.now(UTC) + timedelta(hours=sla) if sla is not None else None,
    )


async def _write_deliveries(
    connection: DriverConnection,
    feedback_ids: Sequence[int],
    integrations: Sequence[IntegrationTarget],
    result: LoopResult,
    updated: set[int],
) -> None:
    now = datetime.now(UTC)
    deliveries: list[NewDelivery] = []
    received = [i for i in integrations if EventType.FEEDBACK_RECEIVED in i.events]
    if received:
        rows = await feedback_repo.rows_by_ids(connection, feedback_ids)
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
