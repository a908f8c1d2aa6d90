"""Customers: contact records refreshed by every ingest transaction, journeys across
feedback and tickets, and erasure."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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


# --- journeys ------------------------------------------------------------------------

# A journey is ordered by (time, kind, id): feedback (kind 0) by occurred_at, tickets
# (kind 1) by created_at. ``after`` is the last item of the previous page.
_JOURNEY_FEEDBACK_SQL = """
    SELECT occurred_at AS at, id FROM feedback
    WHERE customer_id = $1
      AND ($2::text[] IS NULL OR location_id = ANY($2::text[]))
      AND (occurred_at, 0, id) > ($3::timestamptz, $4::int, $5::bigint)
    ORDER BY occurred_at, id
    LIMIT $6
"""
_JOURNEY_TICKETS_SQL = """
    SELECT created_at AS at, id FROM tickets
    WHERE customer_id = $1
      AND ($2::text[] IS NULL OR location_id = ANY($2::text[]))
      AND (created_at, 1, id) > ($3::timestamptz, $4::int, $5::bigint)
    ORDER BY created_at, id
    LIMIT $6
"""
JOURNEY_START = (datetime.min.replace(tzinfo=UTC), -1, 0)
FEEDBACK_KIND, TICKET_KIND = 0, 1


@dataclass(frozen=True, slots=True)
class JourneyPosition:
    at: datetime
    kind: int  # FEEDBACK_KIND or TICKET_KIND
    id: int


async def journey_positions(
    connection: DriverConnection,
    customer_id: str,
    allowed_location_ids: Sequence[str] | None,
    *,
    after: JourneyPosition | None,
    limit: int,
    with_tickets: bool,
) -> list[JourneyPosition]:
    """The next ``limit`` items of the customer's journey, oldest first."""
    start = (after.at, after.kind, after.id) if after is not None else JOURNEY_START
    allowed = list(allowed_location_ids) if allowed_location_ids is not None else None
    args = (customer_id, allowed, *start, limit)
    positions = [
        JourneyPosition(r["at"], FEEDBACK_KIND, r["id"])
        for r in await connection.fetch(_JOURNEY_FEEDBACK_SQL, *args)
    ]
    if with_tickets:
        positions += [
            JourneyPosition(r["at"], TICKET_KIND, r["id"])
            for r in await connection.fetch(_JOURNEY_TICKETS_SQL, *args)
        ]
    positions.sort(key=lambda p: (p.at, p.kind, p.id))
    return positions[:limit]


_JOURNEY_SUMMARY_SQL = """
    WITH visible AS (
        SELECT occurred_at, id, channel, nps FROM feedback
        WHERE customer_id = $1 AND ($2::text[] IS NULL OR location_id = ANY($2::text[]))
    )
    SELECT
        (SELECT min(occurred_at) FROM visible) AS first_seen,
        (SELECT max(occurred_at) FROM visible) AS last_seen,
        (SELECT coalesce(json_object_agg(channel, n), '{}')::text
           FROM (SELECT channel, count(*) AS n FROM visible GROUP BY channel) c) AS channels,
        (SELECT nps FROM visible WHERE nps IS NOT NULL
           ORDER BY occurred_at DESC, id DESC LIMIT 1) AS latest_nps,
        (SELECT count(*) FROM tickets
           WHERE customer_id = $1 AND ($2::text[] IS NULL OR location_id = ANY($2::text[]))
             AND status = ANY($3::text[])) AS open_tickets,
        (SELECT count(*) FROM tickets
           WHERE customer_id = $1
             AND ($2::text[] IS NULL OR location_id = ANY($2::text[]))) AS tickets
"""


@dataclass(frozen=True, slots=True)
class JourneySummary:
    first_seen: datetime | None
    last_seen: datetime | None
    channels: dict[str, int]
    latest_nps: int | None
    open_tickets: int
    tickets: int


async def journey_summary(
    connection: DriverConnection,
    customer_id: str,
    allowed_location_ids: Sequence[str] | None,
    open_statuses: Sequence[str],
) -> JourneySummary:
    allowed = list(allowed_location_ids) if allowed_location_ids is not None else None
    record = await connection.fetchrow(
        _JOURNEY_SUMMARY_SQL, customer_id, allowed, list(open_statuses)
    )
    assert record is not None  # an aggregate-only SELECT always returns its row
    return JourneySummary(
        first_seen=record["first_seen"],
        last_seen=record["last_seen"],
        channels=orjson.loads(record["channels"]),
        latest_nps=record["latest_nps"],
        open_tickets=record["open_tickets"],
        tickets=record["tickets"],
    )


# --- erasure -------------------------------------------------------------------------

# Scores, channel, location, language, sentiment and tags stay (anonymous, so metrics
# and the rollup do not change); identifiers, text and free-form metadata go.
# $3, a location-restricted key's locations (NULL: unrestricted): with data of the
# customer elsewhere, nothing is erased. Checked in the same statement, so in the same
# snapshot: an event stored elsewhere between a check and the erasure cannot slip in.
_ERASE_SQL = """
    WITH outside AS (
        SELECT $3::text[] IS NOT NULL AND (
            EXISTS (
                SELECT 1 FROM feedback WHERE customer_id = $1
                  AND (location_id IS NULL OR location_id <> ALL($3::text[]))
            ) OR EXISTS (
                SELECT 1 FROM tickets WHERE customer_id = $1
                  AND (location_id IS NULL OR location_id <> ALL($3::text[]))
            )
        ) AS found
    ),
    erased_feedback AS (
        UPDATE feedback SET customer_id = NULL, customer_email = NULL, customer_phone = NULL,
                            customer_name = NULL, customer_locale = NULL, text = NULL,
                            metadata = NULL
        WHERE customer_id = $1 AND NOT (SELECT found FROM outside)
        RETURNING id, ticket_id
    ),
    erased_tickets AS (
        UPDATE tickets SET customer_id = NULL, customer = NULL
        WHERE (customer_id = $1 OR id IN (SELECT ticket_id FROM erased_feedback))
          AND NOT (SELECT found FROM outside)
        RETURNING id
    ),
    erased_notes AS (
        UPDATE ticket_timeline SET detail = '[erased]'
        WHERE kind = 'note' AND ticket_id IN (SELECT id FROM erased_tickets)
        RETURNING id
    ),
    erased_deliveries AS (
        UPDATE deliveries SET payload = payload
            || jsonb_build_object('data', CASE
                WHEN feedback_id IS NOT NULL THEN payload->'data' || $2::jsonb
                ELSE payload->'data' || '{"customer": null}'::jsonb || jsonb_build_object(
                    'timeline', coalesce((
                        SELECT jsonb_agg(CASE WHEN entry->>'kind' = 'note'
                                              THEN entry || '{"detail": "[erased]"}'::jsonb
                                              ELSE entry END ORDER BY n)
                        FROM jsonb_array_elements(payload->'data'->'timeline')
                             WITH ORDINALITY AS t(entry, n)), '[]'::jsonb))
                END)
            || CASE WHEN payload ? 'feedback' THEN jsonb_build_object('feedback', coalesce((
                        SELECT jsonb_agg(item || $2::jsonb ORDER BY n)
                        FROM jsonb_array_elements(payload->'feedback')
                             WITH ORDINALITY AS f(item, n)), '[]'::jsonb))
                    ELSE '{}'::jsonb END
        WHERE ticket_id IN (SELECT id FROM erased_tickets)
           OR feedback_id IN (SELECT id FROM erased_feedback)
        RETURNING id
    ),
    erased_customer AS (
        DELETE FROM customers WHERE customer_id = $1 AND NOT (SELECT found FROM outside)
        RETURNING customer_id
    )
    SELECT (SELECT found FROM outside) AS outside,
           (SELECT count(*) FROM erased_feedback) AS feedback,
           (SELECT count(*) FROM erased_tickets) AS tickets,
           (SELECT count(*) FROM erased_deliveries) AS deliveries,
           (SELECT count(*) FROM erased_customer) AS customers
"""


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    feedback: int
    tickets: int
    deliveries: int
    customers: int


# What erasure blanks in a feedback representation (REST JSON, delivery payloads).
_ERASED_FEEDBACK_FIELDS = orjson.dumps({"customer": None, "text": None, "metadata": None}).decode()


async def erase_customer(
    connection: DriverConnection, customer_id: str, only_within: Sequence[str] | None
) -> ErasureCounts | None:
    """Blank the customer's identifiers and text in feedback, tickets, timeline notes and
    delivery payloads (pending or sent), and drop the contact record; one statement.
    ``only_within``: locations all the customer's data must lie in, or None (nothing
    erased, when it does not)."""
    record = await connection.fetchrow(
        _ERASE_SQL,
        customer_id,
        _ERASED_FEEDBACK_FIELDS,
        None if only_within is None else list(only_within),
    )
    assert record is not None
    if record["outside"]:
        return None
    return ErasureCounts(
        record["feedback"], record["tickets"], record["deliveries"], record["customers"]
    )
