"""Tickets: the REST representation (also the ``data`` of ticket events), the PATCH
body, and the inbound status webhook's body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.models.enums import Channel, TicketPriority, TicketStatus
from app.schemas.common import Text200
from app.schemas.feedback import CustomerOut

EXAMPLE_TICKET: dict[str, Any] = {
    "id": "42",
    "status": "open",
    "priority": "high",
    "reason": "Strong detractors",
    "assignee": "maria.keller@example.com",
    "team": "berlin-store-ops",
    "location_id": "store-berlin-01",
    "channel": "in_store",
    "customer": {
        "id": "C-1001",
        "email": "ana@example.com",
        "phone": None,
        "name": None,
        "locale": "de-DE",
    },
    "feedback_ids": ["1"],
    "sla_due_at": "2026-11-21T10:15:03Z",
    "created_at": "2026-11-20T10:15:03Z",
    "updated_at": "2026-11-20T10:15:03Z",
    "resolved_at": None,
    "external_refs": [
        {
            "integration": "zendesk-eu",
            "external_id": "35436",
            "url": "https://acme.zendesk.com/agent/tickets/35436",
        }
    ],
    "timeline": [
        {
            "at": "2026-11-20T10:15:03Z",
            "kind": "created",
            "detail": "Opened by rule 'Strong detractors' for feedback 1",
        }
    ],
}


class ExternalRef(BaseModel):
    integration: str
    external_id: str
    url: str | None


class TimelineEntry(BaseModel):
    at: datetime
    kind: str = Field(
        description="created, feedback_attached, status_changed, priority_changed, "
        "assignee_changed, note, external_ref"
    )
    detail: str | None


class TicketOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": EXAMPLE_TICKET})

    id: str
    status: TicketStatus
    priority: TicketPriority
    reason: str = Field(description="The name of the rule that opened the ticket.")
    assignee: str | None = Field(description="The rule's assignee, else the location's owner.")
    team: str | None
    location_id: str | None
    channel: Channel = Field(description="The channel of the feedback that opened it.")
    customer: CustomerOut | None
    feedback_ids: list[str] = Field(description="The feedback events it follows up, oldest first.")
    sla_due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    external_refs: list[ExternalRef] = Field(
        description="The records created for it in each integration's system."
    )
    timeline: list[TimelineEntry] = Field(description="Every change, oldest first.")


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None


Note = Annotated[str, StringConstraints(min_length=1, max_length=5000)]


class TicketPatch(BaseModel):
    """Change a ticket; every field is optional, at least one is needed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "status": "resolved",
                "note": "Called the customer; refunded the order.",
            }
        },
    )

    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assignee: Text200 | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> TicketPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of status, priority, assignee, note")
        return self


# Status words of the systems that send status back (SPEC section 6), besides ours.
VENDOR_STATUS_WORDS: dict[str, TicketStatus] = {
    "new": TicketStatus.OPEN,
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.WAITING,
    "hold": TicketStatus.WAITING,
    "on-hold": TicketStatus.WAITING,
    "on_hold": TicketStatus.WAITING,
    "solved": TicketStatus.RESOLVED,
    "closed": TicketStatus.CLOSED,
    **{status.value: status for status in TicketStatus},
}


INBOUND_EXAMPLE: dict[str, Any] = {
    "external_id": "35436",
    "status": "solved",
    "note": "Refund issued.",
    "actor": "agent@acme.example",
}


class InboundStatus(BaseModel):
    """A status change reported by an integration's system."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": INBOUND_EXAMPLE})

    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    ticket_id: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,18}$")] | None = Field(
        default=None, description="Our ticket id, when the sender knows it."
    )
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="Ours (open, in_progress, waiting, resolved, closed) or a vendor's word: "
        "new/open → open, pending/hold → waiting, solved → resolved, closed → closed."
    )
    note: Note | None = None
    actor: Text200 | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> InboundStatus:
        if (self.external_id is None) == (self.ticket_id is None):
            raise ValueError("give exactly one of external_id and ticket_id")
        if self.status.strip().lower() not in VENDOR_STATUS_WORDS:
            raise ValueError("status must be one of " + ", ".join(sorted(VENDOR_STATUS_WORDS)))
        return self

    @property
    def mapped_status(self) -> TicketStatus:
        return VENDOR_STATUS_WORDS[self.status.strip().lower()]
