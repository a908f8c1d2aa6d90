"""Customer contact records, refreshed by every ingest transaction."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(slots=True)
class CustomerSighting:
    """What one ingest transaction learned about one customer (its newest event wins)."""

    customer_id: str
    email: str | None
    phone: str | None
    name: str | None
    locale: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    feedback_count: int


_UPSERT_SQL = text(
    """
    INSERT INTO customers (customer_id, email, phone, name, locale,
                           first_seen_at, last_seen_at, feedback_count)
    SELECT * FROM unnest(CAST(:customer_id AS varchar[]), CAST(:email AS varchar[]),
                         CAST(:phone AS varchar[]), CAST(:name AS varchar[]),
                         CAST(:locale AS varchar[]), CAST(:first_seen_at AS timestamptz[]),
                         CAST(:last_seen_at AS timestamptz[]), CAST(:feedback_count AS int[]))
    ON CONFLICT (customer_id) DO UPDATE SET
        email = CASE WHEN excluded.last_seen_at >= customers.last_seen_at
                     THEN coalesce(excluded.email, customers.email)
                     ELSE coalesce(customers.email, excluded.email) END,
        phone = CASE WHEN excluded.last_seen_at >= customers.last_seen_at
                     THEN coalesce(excluded.phone, customers.phone)
                     ELSE coalesce(customers.phone, excluded.phone) END,
        name = CASE WHEN excluded.last_seen_at >= customers.last_seen_at
                    THEN coalesce(excluded.name, customers.name)
                    ELSE coalesce(customers.name, excluded.name) END,
        locale = CASE WHEN excluded.last_seen_at >= customers.last_seen_at
                      THEN coalesce(excluded.locale, customers.locale)
                      ELSE coalesce(customers.locale, excluded.locale) END,
        first_seen_at = least(customers.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(customers.last_seen_at, excluded.last_seen_at),
        feedback_count = customers.feedback_count + excluded.feedback_count
    """
)


async def record_sightings(session: AsyncSession, sightings: Sequence[CustomerSighting]) -> None:
    """Upsert in customer_id order, so concurrent transactions lock rows alike."""
    if not sightings:
        return
    ordered = sorted(sightings, key=lambda s: s.customer_id)
    await session.execute(
        _UPSERT_SQL,
        {
            "customer_id": [s.customer_id for s in ordered],
            "email": [s.email for s in ordered],
            "phone": [s.phone for s in ordered],
            "name": [s.name for s in ordered],
            "locale": [s.locale for s in ordered],
            "first_seen_at": [s.first_seen_at for s in ordered],
            "last_seen_at": [s.last_seen_at for s in ordered],
            "feedback_count": [s.feedback_count for s in ordered],
        },
    )
