"""The delivery outbox as admins see it (SPEC section 6): never payloads or secrets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.models.enums import DeliveryStatus


class DeliveryOut(BaseModel):
    id: str
    integration: str = Field(description="The integration's name.")
    event_type: str
    ticket_id: str | None
    feedback_id: str | None
    status: DeliveryStatus
    attempts: int = Field(description="Attempts since the delivery was queued or re-queued.")
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryAttemptOut(BaseModel):
    at: datetime
    outcome: str = Field(description="delivered, retry or dead.")
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryOut):
    attempts_log: list[DeliveryAttemptOut] = Field(description="Every attempt, oldest first.")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
