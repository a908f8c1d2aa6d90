"""The closed loop: locations and their owners, rules, tickets with their timeline and
external records, integrations, and the delivery outbox with every attempt.

Rules keep their conditions and action as JSON documents: they are few, read whole
and evaluated in Python, and the API's schema (``app/schemas/rules.py``) is their
single definition. Integration secrets are stored as given (the database is the trust
boundary; see README); they are never returned or logged.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, enum_column
from app.models.enums import Channel, DeliveryStatus, TicketPriority, TicketStatus

OPEN_STATUSES_SQL = "status IN ('open', 'in_progress', 'waiting')"


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class LocationRow(Base):
    __tablename__ = "locations"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at()


class RuleRow(Base):
    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    action: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at()

    __table_args__ = (Index("ix_rules_position_id", "position", "id"),)


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[TicketStatus] = mapped_column(enum_column(TicketStatus, "ticket_status"))
    priority: Mapped[TicketPriority] = mapped_column(enum_column(TicketPriority, "ticket_priority"))
    reason: Mapped[str] = mapped_column(String(200))  # the rule's name
    rule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("rules.id", ondelete="SET NULL")
    )
    assignee: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    location_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    customer_id: Mapped[str | None] = mapped_column(String(128))
    # The customer's details when the ticket opened ({id, email, phone, name, locale}),
    # shown to agents and vendors; erasure clears it.
    customer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The rule's named targets, resolved to integration ids when the ticket opened; its
    # events go to those of them subscribed to each event type. NULL: the rule named
    # none, so every enabled integration subscribed to the event type gets them.
    target_integration_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    sla_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # At most one open ticket per customer: new poor feedback attaches to it, and
        # two transactions racing to open one cannot both succeed.
        Index(
            "uq_tickets_open_customer",
            "customer_id",
            unique=True,
            postgresql_where=sql_text(f"customer_id IS NOT NULL AND {OPEN_STATUSES_SQL}"),
        ),
        Index("ix_tickets_created_at_id", "created_at", "id"),
        Index("ix_tickets_location_id_created_at", "location_id", "created_at", "id"),
        Index("ix_tickets_status_created_at", "status", "created_at", "id"),
        Index("ix_tickets_customer_id_created_at", "customer_id", "created_at", "id"),
    )


class TicketTimelineRow(Base):
    __tablename__ = "ticket_timeline"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


class TicketExternalRefRow(Base):
    __tablename__ = "ticket_external_refs"

    ticket_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    integration_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    external_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        Index(
            "ix_ticket_external_refs_integration_id_external_id", "integration_id", "external_id"
        ),
    )


class IntegrationRow(Base):
    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    secrets: Mapped[dict[str, str]] = mapped_column(JSONB)  # write-only
    inbound_secret: Mapped[str] = mapped_column(String(100))  # write-only
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at()


class DeliveryRow(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("integrations.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="CASCADE")
    )
    feedback_id: Mapped[int | None] = mapped_column(BigInteger)
    # What is sent: {"data": <REST JSON>, "feedback": [<REST JSON>...]} as of the change.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        # The dispatcher's claim: due pending deliveries, oldest first.
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=sql_text("status = 'pending'"),
        ),
        # Order per (ticket, integration): is an earlier one still undelivered?
        Index("ix_deliveries_ticket_id_integration_id_id", "ticket_id", "integration_id", "id"),
        Index("ix_deliveries_status_id", "status", "id"),
        Index("ix_deliveries_integration_id_id", "integration_id", "id"),
    )


class DeliveryAttemptRow(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    outcome: Mapped[str] = mapped_column(String(16))  # delivered, retry, dead
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
