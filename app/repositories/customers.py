"""Customer contact records, refreshed by every ingest transaction."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from app.db import DriverConnection


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


_UPSERT_SQL = """
    INSERT INTO customers (customer_id, email, phone, name, locale,
                           first_seen_at, last_seen_at, feedback_count)
    SELECT r.customer_id, r.email, r.phone, r.name, r.locale,
           r.first_seen_at, r.last_seen_at, r.feedback_count
    FROM json_to_recordset($1::json)
         AS r(customer_id varchar, email varchar, phone varchar, name varchar, locale varchar,
              first_seen_at timestamptz, last_seen_at timestamptz, feedback_count int)
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


async def record_sightings(
    connection: DriverConnection, sightings: Sequence[CustomerSighting]
) -> None:
    """Upsert in customer_id order, so concurrent transactions lock rows alike."""
    if not sightings:
        return
    ordered = sorted(sightings, key=lambda s: s.customer_id)
    # orjson serialises the (slotted) dataclasses field by field, datetimes as RFC 3339.
    await connection.execute(_UPSERT_SQL, orjson.dumps(ordered).decode())
