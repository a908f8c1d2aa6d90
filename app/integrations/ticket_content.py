"""What a helpdesk or CRM record says about one of our tickets.

Shared by the vendor adapters: a typed reading of the ticket REST JSON that ticket events
carry (plus the feedback that explains the ticket), and the subject, description and
update comment an agent reads. Texts are plain (Freshdesk gets the same as escaped HTML)
and bounded: at most the newest :data:`MAX_FEEDBACK_SHOWN` feedback events, each text
clipped, the whole description clipped to fit every vendor's field.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from app.integrations.base import TICKET_EVENT_TYPES, OutgoingEvent, PermanentDeliveryError

TicketStatus = Literal["open", "in_progress", "waiting", "resolved", "closed"]
TicketPriority = Literal["low", "normal", "high", "urgent"]

MAX_SUBJECT_CHARS = 150  # within every vendor's subject limit (Salesforce: 255)
MAX_DESCRIPTION_CHARS = 30_000  # Salesforce Description holds 32,000
MAX_FEEDBACK_SHOWN = 10
MAX_FEEDBACK_TEXT_CHARS = 2_000

_METRIC_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES", "rating": "Rating"}
_NPS_SCALE = 10


def _timestamp_text(value: object) -> object:
    # REST JSON carries RFC 3339 strings; a caller that dumped a model without
    # mode="json" hands over datetimes, which read the same once written out.
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


TimestampText = Annotated[str, BeforeValidator(_timestamp_text)]


class _RestView(BaseModel):
    # Reads the service's own REST JSON: unknown fields are other fields of the same
    # document, and ids may arrive as numbers from older rows.
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class CustomerContact(_RestView):
    id: str | None = None
    email: str | None = None
    phone: str | None = None
    name: str | None = None


class TimelineEntry(_RestView):
    at: TimestampText | None = None
    kind: str = ""
    detail: str | None = None


class TicketView(_RestView):
    id: str
    status: TicketStatus
    priority: TicketPriority
    reason: str = ""
    assignee: str | None = None
    team: str | None = None
    location_id: str | None = None
    channel: str | None = None
    customer: CustomerContact | None = None
    sla_due_at: TimestampText | None = None
    timeline: list[TimelineEntry] = []


class ScoreView(_RestView):
    metric: str
    value: int
    scale: int | None = None


class FeedbackView(_RestView):
    id: str | None = None
    occurred_at: datetime | None = None
    channel: str | None = None
    touchpoint: str | None = None
    location_id: str | None = None
    scores: list[ScoreView] = []
    text: str | None = None
    tags: list[str] = []


@dataclass(frozen=True, slots=True)
class TicketContent:
    """A ticket event, read: the ticket and its feedback (newest last)."""

    ticket: TicketView
    feedback: tuple[FeedbackView, ...]

    @property
    def newest_feedback(self) -> FeedbackView | None:
        return self.feedback[-1] if self.feedback else None

    def subject(self) -> str:
        """E.g. ``Strong detractors - NPS 3/10 - store-berlin-01 (in_store) - ticket 42``."""
        ticket = self.ticket
        parts = [ticket.reason or "Customer feedback"]
        newest = self.newest_feedback
        if newest is not None and newest.scores:
            parts.append(describe_scores(newest.scores))
        place = ticket.location_id or ""
        if ticket.channel:
            place = f"{place} ({ticket.channel})" if place else ticket.channel
        if place:
            parts.append(place)
        parts.append(f"ticket {ticket.id}")
        return clip(" - ".join(parts), MAX_SUBJECT_CHARS)

    def description(self) -> str:
        """Everything an agent needs to follow up, as plain text."""
        ticket = self.ticket
        lines = [f"Follow-up ticket {ticket.id} from the feedback loop service.", ""]
        lines += _labelled(
            ("Reason", ticket.reason),
            ("Priority", ticket.priority),
            ("Status", ticket.status),
            ("Channel", ticket.channel),
            ("Location", ticket.location_id),
            ("Customer", describe_customer(ticket.customer)),
            ("Customer id", ticket.customer.id if ticket.customer else None),
            ("Assignee", ticket.assignee),
            ("Team", ticket.team),
            ("SLA due", ticket.sla_due_at),
        )
        if self.feedback:
            lines += ["", f"Feedback ({len(self.feedback)}, newest last):"]
            shown = self.feedback[-MAX_FEEDBACK_SHOWN:]
            hidden = len(self.feedback) - len(shown)
            if hidden:
                lines.append(f"({hidden} earlier feedback events not shown)")
            for number, feedback in enumerate(shown, start=hidden + 1):
                lines += ["", *describe_feedback(number, feedback)]
        return clip("\n".join(lines), MAX_DESCRIPTION_CHARS)

    def description_html(self) -> str:
        """The description for vendors that take HTML (Freshdesk): escaped, line by line."""
        return "<br>\n".join(html.escape(line) for line in self.description().split("\n"))

    def update_comment(self) -> str:
        """A note for an update: the ticket's state now, its latest timeline entry (the
        change that caused the event) and its newest feedback."""
        ticket = self.ticket
        lines = [f"Ticket {ticket.id} was updated in the feedback loop service.", ""]
        latest_change = ticket.timeline[-1] if ticket.timeline else None
        lines += _labelled(
            ("Status", ticket.status),
            ("Priority", ticket.priority),
            ("Assignee", ticket.assignee),
            ("Team", ticket.team),
            ("Latest change", describe_timeline_entry(latest_change) if latest_change else None),
        )
        newest = self.newest_feedback
        if newest is not None:
            lines += ["", "Newest feedback:", *describe_feedback(len(self.feedback), newest)]
        return clip("\n".join(lines), MAX_DESCRIPTION_CHARS)


def read_ticket_event(event: OutgoingEvent) -> TicketContent:
    """The ticket inside a ticket event; PermanentDeliveryError for anything else."""
    if event.event_type not in TICKET_EVENT_TYPES:
        raise PermanentDeliveryError(f"{event.event_type} is not delivered to ticket systems")
    try:
        ticket = TicketView.model_validate(event.data)
        feedback = tuple(FeedbackView.model_validate(item) for item in event.feedback)
    except ValidationError as exc:
        fields = ", ".join(
            ".".join(str(segment) for segment in error["loc"]) for error in exc.errors()
        )
        raise PermanentDeliveryError(f"event data is not a ticket (bad: {fields})") from None
    return TicketContent(ticket=ticket, feedback=feedback)


def describe_scores(scores: list[ScoreView]) -> str:
    """E.g. ``NPS 3/10, CSAT 2/5``."""
    described = []
    for score in scores:
        label = _METRIC_LABELS.get(score.metric, score.metric)
        scale = _NPS_SCALE if score.metric == "nps" else score.scale
        described.append(f"{label} {score.value}/{scale}" if scale else f"{label} {score.value}")
    return ", ".join(described)


def describe_customer(customer: CustomerContact | None) -> str | None:
    """E.g. ``Ana Roth <ana@example.com>, +4915112345678``; None when nothing is known."""
    if customer is None:
        return None
    person = customer.name or ""
    if customer.email:
        person = f"{person} <{customer.email}>" if person else customer.email
    contact = ", ".join(part for part in (person, customer.phone) if part)
    return contact or None


def describe_feedback(number: int, feedback: FeedbackView) -> list[str]:
    """One numbered feedback event: when and where, its scores, its text."""
    when = (
        feedback.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if feedback.occurred_at
        else None
    )
    where = [
        when,
        feedback.channel,
        f"touchpoint {feedback.touchpoint}" if feedback.touchpoint else None,
        f"location {feedback.location_id}" if feedback.location_id else None,
        f"feedback {feedback.id}" if feedback.id else None,
    ]
    lines = [f"{number}. " + ", ".join(part for part in where if part)]
    if feedback.scores:
        lines.append(f"   Scores: {describe_scores(feedback.scores)}")
    if feedback.text:
        lines.append(f'   "{clip(feedback.text.strip(), MAX_FEEDBACK_TEXT_CHARS)}"')
    if feedback.tags:
        lines.append(f"   Tags: {', '.join(feedback.tags)}")
    return lines


def describe_timeline_entry(entry: TimelineEntry) -> str:
    return f"{entry.kind}: {entry.detail}" if entry.detail else entry.kind


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _labelled(*pairs: tuple[str, str | None]) -> list[str]:
    return [f"{label}: {value}" for label, value in pairs if value]
