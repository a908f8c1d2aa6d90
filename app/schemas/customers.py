"""Customer journey (SPEC section 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.feedback import FeedbackOut
from app.schemas.tickets import TicketOut


class JourneySummary(BaseModel):
    first_seen: datetime | None = Field(description="Oldest feedback (occurred_at).")
    last_seen: datetime | None = Field(description="Newest feedback (occurred_at).")
    channels: dict[str, int] = Field(description="Feedback events per channel.")
    latest_nps: int | None = Field(description="NPS of the newest feedback that has one.")
    open_tickets: int | None = Field(
        description="Tickets open, in progress or waiting; null for keys without tickets:read."
    )


class FeedbackStep(BaseModel):
    type: Literal["feedback"] = "feedback"
    at: datetime = Field(description="The feedback's occurred_at.")
    feedback: FeedbackOut


class TicketStep(BaseModel):
    type: Literal["ticket"] = "ticket"
    at: datetime = Field(description="The ticket's created_at.")
    ticket: TicketOut


class JourneyOut(BaseModel):
    customer_id: str
    summary: JourneySummary = Field(description="Over the whole journey, not just this page.")
    items: list[FeedbackStep | TicketStep] = Field(
        description="Feedback and tickets, oldest first (a ticket after feedback of the "
        "same instant)."
    )
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")
