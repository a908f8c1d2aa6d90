"""``feedback-service seed``: stores the demo data of ``demo_data`` the way production
feedback is stored.

Locations first, with owners and teams, so that tickets are routed; then the events in
batches through the one ingest pipeline, each batch in its own transaction exactly as
the batch endpoint commits it (``commit_ingest``): validation, de-duplication,
enrichment, rules, tickets, outbox deliveries and the metrics rollup all happen as for
real feedback. Then the tickets the run opened, all stamped with the time of seeding,
get the past they would have had (``demo_data.ticket_history``), in one more
transaction. Unlike other services this one commits: it is the whole work of a
command, which owns its transactions the way a request or a consumer batch does.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.db import Database
from app.errors import Conflict
from app.models.enums import IngestVia
from app.repositories import demo_history as demo_history_repo
from app.repositories import feedback as feedback_repo
from app.repositories import locations as locations_repo
from app.schemas.feedback import FeedbackEventIn, IngestStatus
from app.schemas.locations import LocationIn
from app.services.demo_data import (
    DEMO_LOCATIONS,
    MARKER_KEY,
    DemoRun,
    current_window_end,
    demo_event_id,
    demo_feedback_events,
    ticket_history,
)
from app.workers.ingest_writer import commit_ingest

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500  # like a full batch request: set-based inserts, short transactions

ProgressCallback = Callable[[int, int], None]  # (events stored so far, events in the run)


@dataclass(slots=True)
class SeedSummary:
    run: DemoRun
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    tickets_opened: int = 0
    tickets_resolved: int = 0  # of those opened: resolved or closed in their history
    locations_created: list[str] = field(default_factory=list)
    locations_kept: list[str] = field(default_factory=list)  # existed already: left unchanged
    first_occurred_at: datetime | None = None
    last_occurred_at: datetime | None = None


async def add_demo_locations(database: Database) -> tuple[list[str], list[str]]:
    """Create the demo locations that do not exist yet; the (created, kept) ids. An
    existing location keeps its owner and team: someone may have routed it on purpose."""
    created: list[str] = []
    kept: list[str] = []
    async with database.sessionmaker() as session, session.begin():
        for location in DEMO_LOCATIONS:
            body = LocationIn(  # the rules of PUT /v1/locations/{id}
                name=location.name, owner=location.owner, team=location.team, region=location.region
            )
            was_created = await locations_repo.insert_if_absent(
                session,
                location.location_id,
                name=body.name,
                owner=body.owner,
                team=body.team,
                region=body.region,
            )
            (created if was_created else kept).append(location.location_id)
    return created, kept


async def earlier_run(database: Database, random_seed: int) -> DemoRun | None:
    """The run that stored this seed's demo data before, read from the marker in its
    first event's metadata; None when there is none."""
    first_id = demo_event_id(random_seed, 1)
    async with database.driver_connection() as connection:
        stored = await feedback_repo.find_by_event_ids(connection, [first_id])
        if first_id not in stored:
            return None
        rows = await feedback_repo.rows_by_ids(connection, [stored[first_id].id])
    run = DemoRun.from_marker(rows[0].extra_metadata) if rows else None
    if run is None or run.random_seed != random_seed:
        raise Conflict(
            f"Event '{first_id}' is stored but is not demo data of random seed "
            f"{random_seed}; choose another --random-seed."
        )
    return run


async def plan_run(
    database: Database,
    *,
    random_seed: int,
    events: int,
    days: int,
    window_end: datetime | None = None,
) -> DemoRun:
    """The run to store. A seed seeded before keeps the window it had, so that seeding
    again on a later day still regenerates exactly the stored events (all duplicates)
    rather than conflicting versions of them. ``window_end`` (tests) fixes the window."""
    earlier = await earlier_run(database, random_seed)
    if earlier is not None and (earlier.events, earlier.days) != (events, days):
        raise Conflict(
            f"The database already holds demo data of random seed {random_seed} made with "
            f"--events {earlier.events} --days {earlier.days}. Repeat those options to "
            "complete it, or choose another --random-seed to add a different set."
        )
    if window_end is not None:
        return DemoRun(random_seed, events, days, window_end)
    if earlier is not None:
        return earlier
    return DemoRun(random_seed, events, days, current_window_end())


async def write_ticket_history(
    database: Database, run: DemoRun, ticket_ids: Sequence[int], *, as_of: datetime
) -> int:
    """Date the run's new tickets back to their feedback and record what has become of
    them up to ``as_of``; how many were resolved or closed. Only tickets opened by this
    run's events and still open are touched, so a rerun, which opens none, changes
    nothing. Resolving or leaving open never breaks the one-open-ticket-per-customer
    index: no ticket is reopened."""
    if not ticket_ids:
        return 0
    async with database.driver_connection() as connection, connection.transaction():
        tickets = await demo_history_repo.lock_opened_demo_tickets(
            connection, ticket_ids, event_id_prefix=run.event_id_prefix, marker_key=MARKER_KEY
        )
        histories = [ticket_history(ticket, as_of=as_of) for ticket in tickets]
        await demo_history_repo.write_demo_history(connection, histories, as_of=as_of)
    return sum(history.resolved_at is not None for history in histories)


def _batches(events: Iterable[FeedbackEventIn], size: int) -> Iterator[list[FeedbackEventIn]]:
    iterator = iter(events)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


async def seed_demo_data(
    database: Database,
    *,
    random_seed: int,
    events: int,
    days: int,
    window_end: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> SeedSummary:
    """Create the demo locations, then ingest the run's events batch by batch."""
    created, kept = await add_demo_locations(database)
    run = await plan_run(
        database, random_seed=random_seed, events=events, days=days, window_end=window_end
    )
    summary = SeedSummary(run=run, locations_created=created, locations_kept=kept)
    opened_in_run: list[int] = []
    stored = 0
    for batch in _batches(demo_feedback_events(run), batch_size):
        outcomes = await commit_ingest(database, batch, IngestVia.REST)
        opened: set[int] = set()
        for outcome in outcomes:
            if outcome.status is IngestStatus.ACCEPTED:
                summary.accepted += 1
            elif outcome.status is IngestStatus.DUPLICATE:
                summary.duplicates += 1
            else:
                summary.conflicts += 1
            # Set on every event of a ticket this transaction opened, not only the first.
            if outcome.ticket_opened and outcome.ticket_id is not None:
                opened.add(outcome.ticket_id)
        summary.tickets_opened += len(opened)
        opened_in_run.extend(opened)
        # Events come oldest first.
        summary.first_occurred_at = summary.first_occurred_at or batch[0].occurred_at
        summary.last_occurred_at = batch[-1].occurred_at
        stored += len(batch)
        if on_progress is not None:
            on_progress(stored, run.events)
    # The history ends at the window's end (the same for every run of the seed), and
    # never in the future.
    summary.tickets_resolved = await write_ticket_history(
        database, run, opened_in_run, as_of=min(run.window_end, datetime.now(UTC))
    )
    logger.info(
        "demo data seeded",
        extra={
            "fields": {
                "random_seed": run.random_seed,
                "accepted": summary.accepted,
                "duplicates": summary.duplicates,
                "conflicts": summary.conflicts,
                "tickets_opened": summary.tickets_opened,
                "tickets_resolved": summary.tickets_resolved,
            }
        },
    )
    return summary
