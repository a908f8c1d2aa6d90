"""Stored feedback events.

Scores are normalised into one nullable column per metric (plus its scale), since
each metric appears at most once per event: aggregations become single scans with
``FILTER`` clauses instead of joins.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, enum_column
from app.models.enums import Channel, IngestVia, SentimentLabel


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    ingested_via: Mapped[IngestVia] = mapped_column(enum_column(IngestVia, "ingested_via"))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    source: Mapped[str | None] = mapped_column(String(64))

    customer_id: Mapped[str | None] = mapped_column(String(128))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_phone: Mapped[str | None] = mapped_column(String(16))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_locale: Mapped[str | None] = mapped_column(String(35))

    location_id: Mapped[str | None] = mapped_column(String(64))
    touchpoint: Mapped[str | None] = mapped_column(String(64))
    journey_stage: Mapped[str | None] = mapped_column(String(64))

    nps: Mapped[int | None] = mapped_column(SmallInteger)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    csat_scale: Mapped[int | None] = mapped_column(SmallInteger)
    ces: Mapped[int | None] = mapped_column(SmallInteger)
    ces_scale: Mapped[int | None] = mapped_column(SmallInteger)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    rating_scale: Mapped[int | None] = mapped_column(SmallInteger)

    text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    sentiment_label: Mapped[SentimentLabel | None] = mapped_column(
        enum_column(SentimentLabel, "sentiment_label")
    )
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), server_default=sql_text("'{}'::varchar[]")
    )
    extra_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    ticket_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.id", ondelete="SET NULL")
    )

    __table_args__ = (
        CheckConstraint("nps BETWEEN 0 AND 10", name="nps_range"),
        CheckConstraint(
            "(csat IS NULL AND csat_scale IS NULL) OR "
            "(csat_scale IN (5, 7) AND csat BETWEEN 1 AND csat_scale)",
            name="csat_range",
        ),
        CheckConstraint(
            "(ces IS NULL AND ces_scale IS NULL) OR "
            "(ces_scale IN (5, 7) AND ces BETWEEN 1 AND ces_scale)",
            name="ces_range",
        ),
        CheckConstraint(
            "(rating IS NULL AND rating_scale IS NULL) OR "
            "(rating_scale IN (5, 10) AND rating BETWEEN 1 AND rating_scale)",
            name="rating_range",
        ),
        # Every list is newest first with id as tie-breaker (keyset pagination).
        Index("ix_feedback_occurred_at_id", "occurred_at", "id"),
        Index("ix_feedback_location_id_occurred_at", "location_id", "occurred_at", "id"),
        Index("ix_feedback_customer_id_occurred_at", "customer_id", "occurred_at", "id"),
        Index("ix_feedback_channel_occurred_at", "channel", "occurred_at", "id"),
        Index("ix_feedback_source_occurred_at", "source", "occurred_at"),
        Index(
            "ix_feedback_ticket_id",
            "ticket_id",
            postgresql_where=sql_text("ticket_id IS NOT NULL"),
        ),
    )
