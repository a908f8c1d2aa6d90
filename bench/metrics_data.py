"""The stored events of ``python -m bench.metrics``: N feedback events over 90 days.

Loading a million events through HTTP would take longer than the benchmark itself and
is not what it measures, so rows go straight into ``feedback`` and ``tickets`` with
set-based SQL (``INSERT ... SELECT ... FROM generate_series``, 100k events per
transaction). The daily rollup is then filled by the production code,
``app.repositories.metrics.add_to_daily_rollup``, with the ids of each chunk: the same
aggregation ingest runs, so the fast path reads exactly what it would read in service.

What the rows look like (every draw its own ``random()``, seeded, so a given N always
gives the same data):

- ``occurred_at`` over the 90 days up to the load's *anchor* (the moment loading
  started), busier on recent days and in opening hours (08-20 UTC);
- 20 locations (skewed: flagship stores get more), 8% without a location; all 10
  channels, weighted; a source per channel; 12 touchpoints; 5 journey stages;
- NPS on ~70% (every event with a ticket is a 0-4 detractor), CSAT on 40% (5- and
  7-point), CES on 25% (7- and 5-point), ratings on 30% (5- and 10-point);
- text with a language on half of the events, a sentiment on those in English or
  French (the languages the service scores);
- a ticket for 10% of the events, with the feedback's location, channel and time,
  each for its own customer (at most one open ticket per customer); tickets older
  than three days are mostly resolved or closed, newer ones mostly open; 85% have an
  SLA; resolution takes from half an hour to a few days.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from app.db import migration_heads
from app.models.enums import Channel
from app.repositories.metrics import FEEDBACK_SUMS, add_to_daily_rollup

DAYS = 90
CHUNK_EVENTS = 100_000
TICKET_SHARE = 0.10
MARKER_FILE = "bench-metrics.json"  # in a --keep-data directory: what its cluster holds

CITIES = (
    "berlin", "london", "paris", "madrid", "rome", "amsterdam", "lisbon", "munich",
    "manchester", "lyon", "barcelona", "milan", "rotterdam", "porto", "hamburg",
    "birmingham", "marseille", "valencia", "turin", "cologne",
)  # fmt: skip
LOCATIONS = tuple(f"store-{city}-{n:02d}" for n, city in enumerate(CITIES, start=1))
TOUCHPOINTS = (
    "checkout", "delivery", "customer-service", "store-visit", "product", "website",
    "returns", "mobile-app", "billing", "pickup", "installation", "onboarding",
)  # fmt: skip
JOURNEY_STAGES = ("awareness", "consideration", "purchase", "delivery", "after-sales")
CHANNEL_WEIGHTS: tuple[tuple[Channel, float], ...] = (
    (Channel.WEB, 25), (Channel.MOBILE_APP, 18), (Channel.EMAIL, 15),
    (Channel.IN_STORE, 12), (Channel.SMS, 8), (Channel.VOICE, 7), (Channel.CHAT, 6),
    (Channel.REVIEW, 5), (Channel.SOCIAL, 3), (Channel.OTHER, 1),
)  # fmt: skip
SOURCES: dict[Channel, tuple[str, ...]] = {
    Channel.WEB: ("web-survey", "web-widget"),
    Channel.MOBILE_APP: ("app-survey", "app-store-review"),
    Channel.EMAIL: ("post-purchase-email", "email-reply"),
    Channel.IN_STORE: ("store-kiosk", "receipt-qr"),
    Channel.SMS: ("sms-survey",),
    Channel.VOICE: ("ivr-de", "ivr-uk", "ivr-fr"),
    Channel.CHAT: ("chat-widget",),
    Channel.REVIEW: ("google-reviews", "trustpilot"),
    Channel.SOCIAL: ("twitter", "facebook", "instagram"),
    Channel.OTHER: ("csv-import",),
}
LANGUAGE_WEIGHTS = (("en", 40), ("de", 20), ("fr", 15), ("es", 10), ("nl", 5), ("it", 5), ("pt", 5))
COMMENTS = (
    "Quick delivery and the parcel was well packed, thank you.",
    "The staff in the store were friendly but the queue at the till was far too long.",
    "Checkout kept failing on my phone, I had to try three times before it worked.",
    "Great value for money, I will order again.",
    "Nobody answered my emails about the missing item for over a week.",
    "The app is easy to use and the order tracking is accurate.",
    "Returned a jacket, the refund took much longer than promised.",
    "Helpful advice on the phone, the problem was solved in one call.",
)
# Score distributions: weights of the values 0..10 (NPS) or 1..scale (the rest).
NPS_WEIGHTS = (2, 1, 1, 2, 2, 3, 6, 10, 14, 27, 32)
CSAT5_WEIGHTS = (4, 6, 12, 35, 43)
CSAT7_WEIGHTS = (3, 3, 5, 10, 20, 30, 29)
CES7_WEIGHTS = (3, 5, 8, 14, 22, 26, 22)
CES5_WEIGHTS = (5, 10, 20, 35, 30)
RATING5_WEIGHTS = (6, 6, 12, 30, 46)
RATING10_WEIGHTS = (3, 2, 3, 4, 6, 8, 12, 20, 20, 22)


def _quote(value: str) -> str:
    if "'" in value:  # every value is a constant of this module; refuse rather than escape
        raise ValueError(value)
    return f"'{value}'"


def _weighted(draw: str, choices: Sequence[tuple[str, float]]) -> str:
    """SQL picking one of ``choices`` (SQL expressions) by weight, from a uniform draw
    in [0, 1) named ``draw``."""
    total = sum(weight for _, weight in choices)
    branches, cumulative = [], 0.0
    for expression, weight in choices[:-1]:
        cumulative += weight
        branches.append(f"WHEN {draw} < {cumulative / total:.6f} THEN {expression}")
    return f"CASE {' '.join(branches)} ELSE {choices[-1][0]} END"


def _score(draw: str, weights: Sequence[float], lowest: int) -> str:
    return _weighted(draw, [(str(lowest + n), w) for n, w in enumerate(weights)])


def _text_array(values: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(_quote(value) for value in values) + "]"


def _skewed_pick(values: Sequence[str], draw: str, skew: float) -> str:
    """One of ``values``, the first ones more often (``skew`` > 1)."""
    index = f"1 + floor({len(values)} * power({draw}, {skew}))::int"
    return f"({_text_array(values)})[{index}]"


# One uniform draw in [0, 1) per decision, drawn once per row in the innermost query: a
# volatile function in a subquery's select list is evaluated per row and the subquery
# is not inlined, so a draw can be used in several places and means the same in each.
_DRAWS = (
    "delay", "location", "has_location", "channel", "source", "touchpoint", "journey",
    "ticket", "nps_on", "nps", "csat_on", "csat_scale", "csat", "ces_on", "ces_scale",
    "ces", "rating_on", "rating_scale", "rating", "text_on", "comment", "language",
    "sentiment", "customer", "known", "email", "via", "metadata", "status",
    "resolution", "sla", "priority",
)  # fmt: skip
_CHANNEL = _weighted("t.u_channel", [(_quote(c.value), w) for c, w in CHANNEL_WEIGHTS])

# $1, $2: the chunk's first and last sequence number; $3: the anchor; $4: N; $5-$7 the
# timeline (``Timeline``). Event i occurs at the (i - 0.5) / N quantile of the
# timeline, so ids follow time as they do when events are ingested as they happen
# (the physical order of the table matters to every range scan on occurred_at).
_GENERATE = f"""
CREATE TEMP TABLE bench_rows ON COMMIT DROP AS
SELECT g.*,
       least(g.occurred_at + g.delay_s * interval '1 second', $3::timestamptz) AS received_at,
       CASE WHEN g.has_ticket THEN g.i END AS ticket_id
FROM (
    SELECT t.*,
        to_timestamp(($5::float8[])[t.slot]
            + (t.q - ($6::float8[])[t.slot]) * ($7::float8[])[t.slot]) AS occurred_at,
        floor(t.u_delay * t.u_delay * 300) AS delay_s,
        CASE WHEN t.u_has_location < 0.92
             THEN {_skewed_pick(LOCATIONS, "t.u_location", 1.3)} END AS location_id,
        {_CHANNEL} AS channel,
        {_skewed_pick(TOUCHPOINTS, "t.u_touchpoint", 1.5)} AS touchpoint,
        {_skewed_pick(JOURNEY_STAGES, "t.u_journey", 1.2)} AS journey_stage,
        t.u_ticket < {TICKET_SHARE} AS has_ticket
    FROM (
        SELECT u.*, width_bucket(u.q, $6::float8[]) AS slot
        FROM (
            SELECT i, (i - 0.5) / $4::float8 AS q,
                   {", ".join(f"random() AS u_{name}" for name in _DRAWS)}
            FROM generate_series($1::bigint, $2::bigint) AS i
        ) AS u
    ) AS t
) AS g
"""  # noqa: S608 - assembled from this module's constants only


@dataclass(frozen=True)
class Timeline:
    """How events spread over [anchor - 90 days, anchor), as slots (cut at every UTC
    hour) each holding a share of the events: busier in opening hours (08-20 UTC, four
    times the night's rate) and on recent days (the rate doubles over the 90 days)."""

    starts: list[float]  # epoch seconds
    cumulative: list[float]  # share of the events before each slot: 0 first, ascending
    seconds_per_share: list[float]  # slot length / slot share: quantile -> time

    @classmethod
    def ending_at(cls, anchor: datetime) -> Timeline:
        start = anchor - timedelta(days=DAYS)
        bounds = [start]
        hour = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while hour < anchor:
            bounds.append(hour)
            hour += timedelta(hours=1)
        bounds.append(anchor)
        span = (anchor - start).total_seconds()
        weights = []
        for begin, end in itertools.pairwise(bounds):
            rate = (4.0 if 8 <= begin.hour < 20 else 1.0) * 2 ** (
                (begin - start).total_seconds() / span
            )
            weights.append(rate * (end - begin).total_seconds())
        total = sum(weights)
        shares = [weight / total for weight in weights]
        cumulative = [0.0, *itertools.accumulate(shares)][:-1]
        return cls(
            starts=[begin.timestamp() for begin in bounds[:-1]],
            cumulative=cumulative,
            seconds_per_share=[
                (end - begin).total_seconds() / share
                for (begin, end), share in zip(itertools.pairwise(bounds), shares, strict=True)
            ],
        )


_FEEDBACK_COLUMNS = (
    "id", "event_id", "content_hash", "occurred_at", "received_at", "ingested_via",
    "channel", "source", "customer_id", "customer_email", "customer_locale",
    "location_id", "touchpoint", "journey_stage", "nps", "csat", "csat_scale", "ces",
    "ces_scale", "rating", "rating_scale", "text", "language", "sentiment_label",
    "sentiment_score", "metadata", "ticket_id",
)  # fmt: skip
_SOURCE = (
    "CASE g.channel "
    + " ".join(
        f"WHEN {_quote(channel.value)} THEN {_skewed_pick(sources, 'g.u_source', 1.0)}"
        for channel, sources in SOURCES.items()
    )
    + " END"
)
_SENTIMENT = _weighted("g.u_sentiment", [("'negative'", 25), ("'neutral'", 25), ("'positive'", 50)])
_LANGUAGE = _weighted("r.u_language", [(_quote(code), w) for code, w in LANGUAGE_WEIGHTS])
_COMMENT = f"({_text_array(COMMENTS)})[1 + floor(g.u_comment * {len(COMMENTS)})::int]"

# $1: N, which sizes the pool of returning customers.
_INSERT_FEEDBACK = f"""
INSERT INTO feedback ({", ".join(_FEEDBACK_COLUMNS)})
SELECT g.i, 'bm-' || g.i, sha256(('bm-' || g.i)::bytea), g.occurred_at, g.received_at,
    CASE WHEN g.u_via < 0.85 THEN 'rest' ELSE 'kafka' END,
    g.channel, {_SOURCE},
    g.customer_id,
    CASE WHEN g.u_email < 0.6 THEN lower(g.customer_id) || '@example.com' END,
    CASE WHEN g.customer_id IS NOT NULL THEN coalesce(g.language, 'en') END,
    g.location_id, g.touchpoint, g.journey_stage,
    -- Every event with a ticket is a strong detractor (0-4), as the default rule wants.
    CASE WHEN g.has_ticket THEN floor(g.u_nps * 5)::int
         WHEN g.u_nps_on < 0.667 THEN {_score("g.u_nps", NPS_WEIGHTS, 0)} END,
    CASE g.csat_scale WHEN 5 THEN {_score("g.u_csat", CSAT5_WEIGHTS, 1)}
         WHEN 7 THEN {_score("g.u_csat", CSAT7_WEIGHTS, 1)} END,
    g.csat_scale,
    CASE g.ces_scale WHEN 7 THEN {_score("g.u_ces", CES7_WEIGHTS, 1)}
         WHEN 5 THEN {_score("g.u_ces", CES5_WEIGHTS, 1)} END,
    g.ces_scale,
    CASE g.rating_scale WHEN 5 THEN {_score("g.u_rating", RATING5_WEIGHTS, 1)}
         WHEN 10 THEN {_score("g.u_rating", RATING10_WEIGHTS, 1)} END,
    g.rating_scale,
    CASE WHEN g.language IS NOT NULL THEN {_COMMENT} END,
    g.language,
    -- The service scores English and French text only.
    CASE WHEN g.language IN ('en', 'fr') THEN
        CASE WHEN g.has_ticket THEN 'negative' ELSE {_SENTIMENT} END END,
    CASE WHEN g.language IN ('en', 'fr') THEN round((g.u_sentiment * 2 - 1)::numeric, 3) END,
    CASE WHEN g.u_metadata < 0.5 THEN jsonb_build_object('order_id', 'O-' || g.i) END,
    g.ticket_id
FROM (
    SELECT r.*,
        CASE WHEN r.u_csat_on < 0.40 THEN CASE WHEN r.u_csat_scale < 0.7 THEN 5 ELSE 7 END
        END AS csat_scale,
        CASE WHEN r.u_ces_on < 0.25 THEN CASE WHEN r.u_ces_scale < 0.6 THEN 7 ELSE 5 END
        END AS ces_scale,
        CASE WHEN r.u_rating_on < 0.30 THEN CASE WHEN r.u_rating_scale < 0.7 THEN 5 ELSE 10 END
        END AS rating_scale,
        CASE WHEN r.u_text_on < 0.5 THEN {_LANGUAGE} END AS language,
        -- A customer of its own for every ticket (at most one open ticket per
        -- customer); the others come back about four times each, a fifth are anonymous.
        CASE WHEN r.has_ticket THEN 'CT' || r.i
             WHEN r.u_known < 0.8 THEN 'C' || (1 + floor(r.u_customer * $1::bigint / 4))
        END AS customer_id
    FROM bench_rows r
) AS g
"""  # noqa: S608 - assembled from this module's constants only

_TICKET_STATUS_RECENT = _weighted(
    "r.u_status",
    [("'open'", 40), ("'in_progress'", 30), ("'waiting'", 10), ("'resolved'", 20)],
)
_TICKET_STATUS_OLD = _weighted(
    "r.u_status",
    [("'resolved'", 55), ("'closed'", 35), ("'open'", 4), ("'in_progress'", 4), ("'waiting'", 2)],
)
# $1: the anchor. Opened when the feedback arrived; newer tickets are mostly still open.
_INSERT_TICKETS = f"""
INSERT INTO tickets (id, status, priority, reason, team, location_id, channel, customer_id,
                     customer, sla_due_at, created_at, updated_at, resolved_at)
SELECT t.i, t.status, t.priority, 'Strong detractors', 'customer-care', t.location_id,
       t.channel, 'CT' || t.i, jsonb_build_object('id', 'CT' || t.i), t.sla_due_at,
       t.received_at, coalesce(t.resolved_at, t.received_at), t.resolved_at
FROM (
    SELECT r.*, s.status,
        CASE WHEN r.u_priority < 0.2 THEN 'urgent' WHEN r.u_priority < 0.6 THEN 'high'
             ELSE 'normal' END AS priority,
        CASE WHEN r.u_sla < 0.85 THEN r.received_at
            + CASE WHEN r.u_priority < 0.2 THEN interval '4 hours' ELSE interval '24 hours' END
        END AS sla_due_at,
        CASE WHEN s.status IN ('resolved', 'closed') THEN least($1::timestamptz,
            r.received_at + (1800 + 300000 * power(r.u_resolution, 2.5)) * interval '1 second')
        END AS resolved_at
    FROM bench_rows r,
    LATERAL (SELECT CASE WHEN r.received_at > $1::timestamptz - interval '3 days'
                         THEN {_TICKET_STATUS_RECENT} ELSE {_TICKET_STATUS_OLD} END AS status) s
    WHERE r.has_ticket
) AS t
"""  # noqa: S608 - assembled from this module's constants only


def _fingerprint(events: int) -> str:
    """Changes whenever the data a cached cluster holds would differ."""
    parts = [
        str(events),
        _GENERATE,
        _INSERT_FEEDBACK,
        _INSERT_TICKETS,
        repr(FEEDBACK_SUMS),
        repr(sorted(migration_heads())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LoadedData:
    events: int
    tickets: int
    anchor: datetime  # the range measured is [anchor - 90 days, anchor)
    load_s: float | None  # None: reused from --keep-data
    steps_s: dict[str, float]

    @property
    def range_start(self) -> datetime:
        return self.anchor - timedelta(days=DAYS)


async def _load_chunk(
    connection: asyncpg.Connection,
    first: int,
    last: int,
    anchor: datetime,
    events: int,
    timeline: Timeline,
) -> tuple[float, float]:
    """One transaction per chunk, like ingest: the rows, then their daily sums."""
    async with connection.transaction():
        started = time.perf_counter()
        await connection.execute(
            _GENERATE,
            first,
            last,
            anchor,
            events,
            timeline.starts,
            timeline.cumulative,
            timeline.seconds_per_share,
        )
        # Tickets first: feedback.ticket_id refers to them.
        await connection.execute(_INSERT_TICKETS, anchor)
        await connection.execute(_INSERT_FEEDBACK, events)
        rows_s = time.perf_counter() - started
        started = time.perf_counter()
        await add_to_daily_rollup(connection, range(first, last + 1))
        return rows_s, time.perf_counter() - started


async def load(
    connection: asyncpg.Connection, events: int, progress: Callable[[str], None]
) -> LoadedData:
    """Fill empty, migrated tables with ``events`` events; VACUUM ANALYZE them."""
    anchor = datetime.now(UTC).replace(microsecond=0)
    timeline = Timeline.ending_at(anchor)
    started = time.perf_counter()
    # Loading is not measured and is redone after a crash: no need to wait for each
    # WAL flush.
    await connection.execute("SET synchronous_commit = off")
    await connection.execute("SET statement_timeout = 0")
    await connection.execute("SELECT setseed(0.42)")  # the same N gives the same data
    rows_s = rollup_s = 0.0
    for first in range(1, events + 1, CHUNK_EVENTS):
        last = min(first + CHUNK_EVENTS - 1, events)
        chunk_rows_s, chunk_rollup_s = await _load_chunk(
            connection, first, last, anchor, events, timeline
        )
        rows_s += chunk_rows_s
        rollup_s += chunk_rollup_s
        progress(f"loaded {last:,} of {events:,} events ({time.perf_counter() - started:.0f} s)")
    # Ids were given explicitly: move the identity sequences past them, so the service
    # can still store feedback and open tickets in this database.
    for table in ("feedback", "tickets"):
        await connection.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constant
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
        )
    vacuum_started = time.perf_counter()
    # Planner statistics and an all-visible map (index-only scans), as a database that
    # has been running for a while would have from autovacuum.
    await connection.execute("VACUUM ANALYZE feedback, tickets, feedback_daily_rollup")
    await connection.execute("CHECKPOINT")
    vacuum_s = time.perf_counter() - vacuum_started
    tickets: int = await connection.fetchval("SELECT count(*) FROM tickets")
    return LoadedData(
        events=events,
        tickets=tickets,
        anchor=anchor,
        load_s=time.perf_counter() - started,
        steps_s={"rows": rows_s, "rollup": rollup_s, "vacuum_analyze": vacuum_s},
    )


# -- the --keep-data cache ------------------------------------------------------------------


@dataclass(frozen=True)
class CachedData:
    """What ``<dir>/bench-metrics.json`` says its cluster holds."""

    fingerprint: str
    events: int
    tickets: int
    anchor: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "fingerprint": self.fingerprint,
                "events": self.events,
                "tickets": self.tickets,
                "anchor": self.anchor.isoformat(),
            }
        )


def read_marker(directory: Path, events: int) -> CachedData | None:
    """The cached data, if ``directory`` holds a complete load of ``events`` events made
    by this version of the loader for this schema; else None."""
    try:
        data = json.loads((directory / MARKER_FILE).read_text())
        cached = CachedData(
            fingerprint=data["fingerprint"],
            events=int(data["events"]),
            tickets=int(data["tickets"]),
            anchor=datetime.fromisoformat(data["anchor"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return cached if cached.fingerprint == _fingerprint(events) else None


def prepare_cache_dir(directory: Path) -> None:
    """Make ``directory`` ready for a fresh load. Only a cluster this benchmark made
    (its marker is there, complete or not) is deleted; anything else in the way is an
    error."""
    cluster = directory / "pg"
    marker = directory / MARKER_FILE
    if marker.exists():
        shutil.rmtree(cluster, ignore_errors=True)
    elif cluster.exists() and any(cluster.iterdir()):
        raise FileExistsError(
            f"{cluster} exists but was not made by bench.metrics ({MARKER_FILE} missing); "
            "remove it or choose another --keep-data directory"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Claims the cluster before it exists, without describing any data: an interrupted
    # load is reloaded next time rather than reused or refused.
    marker.write_text(json.dumps({"loading": True}))


def write_marker(directory: Path, loaded: LoadedData) -> None:
    cached = CachedData(_fingerprint(loaded.events), loaded.events, loaded.tickets, loaded.anchor)
    (directory / MARKER_FILE).write_text(cached.to_json())
