"""The one ingest pipeline shared by REST and Kafka.

``ingest_events`` takes a group of already-validated events and, inside the caller's
transaction: settles duplicates within the group (first wins), stores the language
and sentiment of their text (analysed by the caller before the transaction:
``services.enrichment``, ``workers.text_analysis``), inserts the new ones in one
set-based statement, tells exact duplicates from conflicts by content hash, and
records customer sightings, closes the loop (rules, tickets, outbox deliveries;
``services.closed_loop``) and adds the new events to the daily metrics rollup. The
caller commits, then answers (or commits offsets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from app.db import DriverConnection
from app.integrations.base import EventType
from app.models.enums import IngestVia, ScoreMetric
from app.repositories import customers as customers_repo
from app.repositories import feedback as feedback_repo
from app.repositories import metrics as metrics_repo
from app.repositories import stream as stream_repo
from app.repositories.customers import CustomerSighting
from app.repositories.feedback import NewFeedback
from app.schemas.feedback import FeedbackEventIn, IngestStatus
from app.services.closed_loop import finish_tickets, plan_tickets
from app.services.enrichment import TextInsight


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    event_id: str
    status: IngestStatus  # accepted, duplicate or conflict
    feedback_id: int | None  # the stored event (for duplicates and conflicts: the earlier one)
    ticket_id: int | None
    ticket_opened: bool = False  # this event opened its ticket (one event per ticket)


def content_hash(event: FeedbackEventIn) -> bytes:
    """Digest of the event's meaning: the same event sent again hashes alike even if
    keys are reordered, offsets differ for the same instant, or a default scale is
    spelled out."""
    # Fields serialise in declaration order and scores are in metric order after
    # validation; only metadata (free-form, any key order) needs its keys sorted.
    # Unset fields are left out, so a new optional field does not change the hash of
    # events that do not use it (a replay stays a duplicate, not a conflict).
    digest = hashlib.sha256(b"v1:")
    digest.update(
        event.__pydantic_serializer__.to_json(
            event, exclude={"event_id", "metadata"}, exclude_none=True
        )
    )
    digest.update(orjson.dumps(event.metadata, option=orjson.OPT_SORT_KEYS))
    return digest.digest()


def feedback_row(
    event: FeedbackEventIn,
    digest: bytes,
    via: IngestVia,
    ticket_id: int | None = None,
    insight: TextInsight | None = None,
) -> NewFeedback:
    customer = event.customer
    nps = event.score(ScoreMetric.NPS)
    csat = event.score(ScoreMetric.CSAT)
    ces = event.score(ScoreMetric.CES)
    rating = event.score(ScoreMetric.RATING)
    return NewFeedback(
        event_id=event.event_id,
        content_hash=digest.hex(),
        occurred_at=event.occurred_at,
        ingested_via=via.value,
        channel=event.channel.value,
        source=event.source,
        customer_id=customer.id if customer else None,
        customer_email=str(customer.email) if customer and customer.email else None,
        customer_phone=customer.phone if customer else None,
        customer_name=customer.name if customer else None,
        customer_locale=customer.locale if customer else None,
        location_id=event.location_id,
        touchpoint=event.touchpoint,
        journey_stage=event.journey_stage,
        nps=nps.value if nps else None,
        csat=csat.value if csat else None,
        csat_scale=csat.scale if csat else None,
        ces=ces.value if ces else None,
        ces_scale=ces.scale if ces else None,
        rating=rating.value if rating else None,
        rating_scale=rating.scale if rating else None,
        text=event.text,
        language=insight.language if insight else event.language,
        sentiment_label=insight.sentiment_label if insight else None,
        sentiment_score=insight.sentiment_score if insight else None,
        tags=event.tags,
        metadata=event.metadata,
        ticket_id=ticket_id,
    )


def _sightings(events: Sequence[FeedbackEventIn]) -> list[CustomerSighting]:
    by_customer: dict[str, CustomerSighting] = {}
    for event in events:
        customer = event.customer
        if customer is None or customer.id is None:
            continue
        email = str(customer.email) if customer.email else None
        seen = by_customer.get(customer.id)
        if seen is None:
            by_customer[customer.id] = CustomerSighting(
                customer_id=customer.id,
                email=email,
                phone=customer.phone,
                name=customer.name,
                locale=customer.locale,
                first_seen_at=event.occurred_at,
                last_seen_at=event.occurred_at,
                feedback_count=1,
            )
            continue
        seen.feedback_count += 1
        seen.first_seen_at = min(seen.first_seen_at, event.occurred_at)
        if event.occurred_at >= seen.last_seen_at:  # newer: its details win
            seen.last_seen_at = event.occurred_at
            seen.email = email or seen.email
            seen.phone = customer.phone or seen.phone
            seen.name = customer.name or seen.name
            seen.locale = customer.locale or seen.locale
        else:  # older: fills only what is still unknown (as the upsert does)
            seen.email = seen.email or email
            seen.phone = seen.phone or customer.phone
            seen.name = seen.name or customer.name
            seen.locale = seen.locale or customer.locale
    return list(by_customer.values())


async def ingest_events(
    connection: DriverConnection,
    events: Sequence[FeedbackEventIn],
    via: IngestVia,
    insights: Sequence[TextInsight],
) -> list[IngestOutcome]:
    """Store a group of validated events; one outcome per event, in input order.

    ``insights``: the events' language and sentiment, one per event, analysed by the
    caller before the transaction (``workers.text_analysis``)."""
    digests = [content_hash(event) for event in events]
    first_index: dict[str, int] = {}
    for index, event in enumerate(events):
        first_index.setdefault(event.event_id, index)

    firsts = sorted(first_index.items())  # event_id order: see insert_new
    insight_of = {event_id: insights[i] for event_id, i in firsts}
    plan = await plan_tickets(
        connection,
        [events[i] for _, i in firsts],
        {
            event_id: insight.sentiment_score
            for event_id, insight in insight_of.items()
            if insight.sentiment_score is not None
        },
    )
    inserted = await feedback_repo.insert_new(
        connection,
        [
            feedback_row(
                events[i], digests[i], via, plan.ticket_of_event.get(event_id), insight_of[event_id]
            )
            for event_id, i in firsts
        ],
    )
    already_stored = await feedback_repo.find_by_event_ids(
        connection, [event_id for event_id, _ in firsts if event_id not in inserted]
    )
    await customers_repo.record_sightings(
        connection, _sightings([events[first_index[event_id]] for event_id in inserted])
    )
    loop = await finish_tickets(
        connection,
        plan,
        [
            (events[first_index[event_id]], feedback_id)
            for event_id, feedback_id in sorted(inserted.items(), key=lambda item: item[1])
        ],
    )

    await stream_repo.announce(
        connection,
        sorted(inserted.values()),
        [(t, EventType.TICKET_CREATED.value) for t in sorted(loop.opened)]
        + [(t, EventType.TICKET_UPDATED.value) for t in sorted(loop.updated)],
    )
    # Last: the rollup rows it locks (shared by every event of a day, location and
    # channel) stay locked only until this transaction commits.
    await metrics_repo.add_to_daily_rollup(connection, list(inserted.values()))

    outcomes: list[IngestOutcome] = []
    for index, event in enumerate(events):
        event_id = event.event_id
        is_first = first_index[event_id] == index
        if event_id in inserted:
            stored_id = inserted[event_id]
            same = digests[index] == digests[first_index[event_id]]
            status = (
                IngestStatus.ACCEPTED
                if is_first
                else (IngestStatus.DUPLICATE if same else IngestStatus.CONFLICT)
            )
            ticket_id = loop.ticket_of.get(stored_id)
            outcomes.append(
                IngestOutcome(
                    event_id,
                    status,
                    stored_id,
                    ticket_id,
                    ticket_opened=is_first
                    and ticket_id is not None
                    and loop.opened.get(ticket_id) == stored_id,
                )
            )
        else:
            stored = already_stored[event_id]
            same = digests[index] == stored.content_hash
            status = IngestStatus.DUPLICATE if same else IngestStatus.CONFLICT
            outcomes.append(IngestOutcome(event_id, status, stored.id, stored.ticket_id))
    return outcomes
