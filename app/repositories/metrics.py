"""Metrics SQL: the daily rollup written by ingest, and the aggregations read from it.

Feedback figures are integer sums (``FEEDBACK_SUMS``) computed by the same aggregate
expressions whether they come from the daily rollup (whole UTC days, grouped by day,
location or channel) or straight from the feedback table (partial days at the edges
of the range, and any query involving touchpoint, journey stage or source). Ticket
figures come from the tickets table: the tickets opened in the range, and what has
become of them since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from app.db import DriverConnection
from app.models.enums import OPEN_TICKET_STATUSES
from app.models.metrics import NO_LOCATION


class MetricsDimension(StrEnum):
    CHANNEL = "channel"
    LOCATION_ID = "location_id"
    TOUCHPOINT = "touchpoint"
    JOURNEY_STAGE = "journey_stage"
    SOURCE = "source"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


TIME_DIMENSIONS = frozenset({MetricsDimension.DAY, MetricsDimension.WEEK, MetricsDimension.MONTH})
# What the daily rollup can answer; anything else reads the feedback table.
_ROLLUP_DIMENSIONS = TIME_DIMENSIONS | {MetricsDimension.CHANNEL, MetricsDimension.LOCATION_ID}

# Every feedback figure, as an aggregate over feedback rows ``f``. The column names are
# the rollup table's. CSAT top-two-box: 4-5 of 5, 6-7 of 7; CES top box: 5-7 of 7,
# 4-5 of 5. Ratings are summed per scale so the mean can be rebuilt exactly.
FEEDBACK_SUMS: tuple[tuple[str, str], ...] = (
    ("responses", "count(*)"),
    ("nps_responses", "count(f.nps)"),
    ("promoters", "count(*) FILTER (WHERE f.nps >= 9)"),
    ("passives", "count(*) FILTER (WHERE f.nps BETWEEN 7 AND 8)"),
    ("detractors", "count(*) FILTER (WHERE f.nps <= 6)"),
    ("csat_responses", "count(f.csat)"),
    ("csat_top", "count(*) FILTER (WHERE f.csat >= f.csat_scale - 1)"),
    ("ces_responses", "count(f.ces)"),
    ("ces_top", "count(*) FILTER (WHERE f.ces >= CASE f.ces_scale WHEN 7 THEN 5 ELSE 4 END)"),
    ("rating5_responses", "count(*) FILTER (WHERE f.rating_scale = 5)"),
    ("rating5_sum", "coalesce(sum(f.rating) FILTER (WHERE f.rating_scale = 5), 0)"),
    ("rating10_responses", "count(*) FILTER (WHERE f.rating_scale = 10)"),
    ("rating10_sum", "coalesce(sum(f.rating) FILTER (WHERE f.rating_scale = 10), 0)"),
    ("sentiment_negative", "count(*) FILTER (WHERE f.sentiment_label = 'negative')"),
    ("sentiment_neutral", "count(*) FILTER (WHERE f.sentiment_label = 'neutral')"),
    ("sentiment_positive", "count(*) FILTER (WHERE f.sentiment_label = 'positive')"),
)
SUM_COLUMNS = tuple(name for name, _ in FEEDBACK_SUMS)

_UTC_DAY = "(f.occurred_at AT TIME ZONE 'UTC')::date"

_ADD_TO_ROLLUP_SQL = f"""
    INSERT INTO feedback_daily_rollup AS r (day, location_id, channel, {", ".join(SUM_COLUMNS)})
    SELECT {_UTC_DAY}, coalesce(f.location_id, '{NO_LOCATION}'), f.channel,
           {", ".join(expression for _, expression in FEEDBACK_SUMS)}
    FROM unnest($1::bigint[]) AS stored(id)
    CROSS JOIN LATERAL (SELECT * FROM feedback WHERE feedback.id = stored.id LIMIT 1) AS f
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (day, location_id, channel) DO UPDATE SET
        {", ".join(f"{name} = r.{name} + excluded.{name}" for name in SUM_COLUMNS)}
"""


async def add_to_daily_rollup(connection: DriverConnection, feedback_ids: Sequence[int]) -> None:
    """Add newly stored feedback to the daily sums, in the ingest transaction.

    Rows are upserted in key order (concurrent transactions lock alike, no deadlock);
    the ingest pipeline calls this last, so the rows stay locked only until commit.

    The new rows are read one index lookup per id (``LATERAL ... LIMIT 1``) rather than
    with ``id = ANY($1)``: a connection's cached plan for the latter, made while the
    table was small (a new database, the first minute of ingest), is a sequential scan,
    kept as the table grows: 1.7 ms a single-event group at 20,000 rows, and growing.
    """
    if feedback_ids:
        await connection.execute(_ADD_TO_ROLLUP_SQL, list(feedback_ids))


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    occurred_from: datetime
    occurred_to: datetime  # exclusive
    group_by: MetricsDimension | None = None
    channels: Sequence[str] = ()
    location_ids: Sequence[str] = ()
    touchpoints: Sequence[str] = ()
    sources: Sequence[str] = ()
    allowed_location_ids: Sequence[str] | None = None  # the API key's restriction

    def rollup_answers(self) -> bool:
        return (
            not self.touchpoints
            and not self.sources
            and (self.group_by is None or self.group_by in _ROLLUP_DIMENSIONS)
        )


GroupKey = str | date | None
NO_GROUP = "*"  # the key of the only "group" when there is no group_by


class _Params:
    """Positional parameters for asyncpg, numbered as they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _feedback_key(dimension: MetricsDimension | None, *, rollup: bool) -> str:
    alias = "r" if rollup else "f"
    day = "r.day" if rollup else _UTC_DAY
    match dimension:
        case None:
            return f"'{NO_GROUP}'"
        case MetricsDimension.DAY:
            return day
        case MetricsDimension.WEEK:  # ISO weeks: Monday
            return f"date_trunc('week', {day})::date"
        case MetricsDimension.MONTH:
            return f"date_trunc('month', {day})::date"
        case MetricsDimension.LOCATION_ID if rollup:
            return f"nullif(r.location_id, '{NO_LOCATION}')"
        case _:
            return f"{alias}.{dimension.value}"


def _dimension_filters(
    query: MetricsQuery,
    params: _Params,
    *,
    channel: str,
    location_id: str,
    touchpoint: str,
    source: str,
) -> list[str]:
    """The key's location restriction and the filters, on the columns named."""
    conditions = []
    if query.allowed_location_ids is not None:
        conditions.append(
            f"{location_id} = ANY({params.add(list(query.allowed_location_ids))}::text[])"
        )
    for column, values in (
        (channel, query.channels),
        (location_id, query.location_ids),
        (touchpoint, query.touchpoints),
        (source, query.sources),
    ):
        if values:
            conditions.append(f"{column} = ANY({params.add(list(values))}::text[])")
    return conditions


def _filters_on(query: MetricsQuery, params: _Params, alias: str) -> list[str]:
    """Filters on one table's own columns (the feedback table or its daily rollup)."""
    return _dimension_filters(
        query,
        params,
        channel=f"{alias}.channel",
        location_id=f"{alias}.location_id",
        touchpoint=f"{alias}.touchpoint",
        source=f"{alias}.source",
    )


def _whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """The UTC days lying wholly inside [start, end), as [first, stop); None if none."""
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    first, stop = start_utc.date(), end_utc.date()
    if start_utc.timetz() != time(0, tzinfo=UTC):
        if first >= stop:  # checked first: the day after 9999-12-31 cannot be computed
            return None
        first += timedelta(days=1)
    return (first, stop) if first < stop else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


async def feedback_sums(
    connection: DriverConnection, query: MetricsQuery
) -> dict[GroupKey, dict[str, int]]:
    """Per group, the integer sums named in ``SUM_COLUMNS``; groups without feedback absent."""
    params = _Params()
    parts: list[str] = []
    whole_days = _whole_days(query.occurred_from, query.occurred_to)
    raw_ranges: list[tuple[datetime, datetime]] = [(query.occurred_from, query.occurred_to)]
    if query.rollup_answers() and whole_days is not None:
        first, stop = whole_days
        conditions = [f"r.day >= {params.add(first)}", f"r.day < {params.add(stop)}"]
        conditions += _filters_on(query, params, "r")
        parts.append(
            f"SELECT {_feedback_key(query.group_by, rollup=True)} AS key, "
            + ", ".join(f"r.{name}" for name in SUM_COLUMNS)
            + " FROM feedback_daily_rollup r WHERE "
            + " AND ".join(conditions)
        )
        raw_ranges = [
            (query.occurred_from, _midnight(first)),
            (_midnight(stop), query.occurred_to),
        ]
    raw_ranges = [(start, end) for start, end in raw_ranges if start < end]
    if raw_ranges:
        ranges = " OR ".join(
            f"(f.occurred_at >= {params.add(start)} AND f.occurred_at < {params.add(end)})"
            for start, end in raw_ranges
        )
        conditions = [f"({ranges})", *_filters_on(query, params, "f")]
        parts.append(
            f"SELECT {_feedback_key(query.group_by, rollup=False)} AS key, "
            + ", ".join(f"{expression} AS {name}" for name, expression in FEEDBACK_SUMS)
            + " FROM feedback f WHERE "
            + " AND ".join(conditions)
            + " GROUP BY 1"
        )
    sql = (
        "SELECT key, "
        + ", ".join(f"sum({name})::bigint AS {name}" for name in SUM_COLUMNS)
        + " FROM ("
        + " UNION ALL ".join(parts)
        + ") AS parts GROUP BY key"
    )
    records = await connection.fetch(sql, *params.values)
    return {record["key"]: {name: record[name] for name in SUM_COLUMNS} for record in records}


@dataclass(frozen=True, slots=True)
class TicketSums:
    opened: int
    resolved: int
    open_now: int
    median_resolution_seconds: float | None
    sla_breached: int


_OPEN_STATUSES = ", ".join(f"'{status.value}'" for status in sorted(OPEN_TICKET_STATUSES))
# Of the tickets opened in the range: how many were resolved (or closed) since, how many
# are open now, how long resolving took, and how many missed their SLA (resolved after
# it, or still unresolved past it).
_TICKET_FIGURES = f"""
    count(*) AS opened,
    count(t.resolved_at) AS resolved,
    count(*) FILTER (WHERE t.status IN ({_OPEN_STATUSES})) AS open_now,
    extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (
        ORDER BY t.resolved_at - t.created_at
    ) FILTER (WHERE t.resolved_at IS NOT NULL))::float8 AS median_resolution_seconds,
    count(*) FILTER (
        WHERE t.sla_due_at IS NOT NULL AND coalesce(t.resolved_at, now()) > t.sla_due_at
    ) AS sla_breached
"""
# Sorting rows into groups and each group's resolution times for its median takes some
# 9 MB per 100,000 tickets: PostgreSQL's default work_mem (4 MB) would sort them on
# disk, a third slower. For the caller's transaction only.
SORT_MEMORY = "64MB"


async def sort_in_memory(connection: DriverConnection) -> None:
    """Give this transaction's metrics statements room to sort in memory."""
    await connection.execute("SELECT set_config('work_mem', $1, true)", SORT_MEMORY)


# Touchpoint, journey stage and source of a ticket are those of the feedback that opened it.
_OPENING_FEEDBACK = """
    LEFT JOIN LATERAL (
        SELECT o.touchpoint, o.journey_stage, o.source FROM feedback o
        WHERE o.ticket_id = t.id ORDER BY o.id LIMIT 1
    ) f ON true
"""


def _ticket_key(dimension: MetricsDimension | None) -> str:
    day = "(t.created_at AT TIME ZONE 'UTC')::date"
    match dimension:
        case None:
            return f"'{NO_GROUP}'"
        case MetricsDimension.DAY:
            return day
        case MetricsDimension.WEEK:
            return f"date_trunc('week', {day})::date"
        case MetricsDimension.MONTH:
            return f"date_trunc('month', {day})::date"
        case MetricsDimension.CHANNEL | MetricsDimension.LOCATION_ID:
            return f"t.{dimension.value}"
        case _:
            return f"f.{dimension.value}"


async def ticket_sums(
    connection: DriverConnection, query: MetricsQuery
) -> tuple[dict[GroupKey, TicketSums], TicketSums]:
    """Per group and in total (a median does not add up, so PostgreSQL computes both)."""
    params = _Params()
    conditions = [
        f"t.created_at >= {params.add(query.occurred_from)}",
        f"t.created_at < {params.add(query.occurred_to)}",
        # A ticket's touchpoint and source are those of the feedback that opened it.
        *_dimension_filters(
            query,
            params,
            channel="t.channel",
            location_id="t.location_id",
            touchpoint="f.touchpoint",
            source="f.source",
        ),
    ]
    needs_feedback = bool(query.touchpoints or query.sources) or query.group_by in {
        MetricsDimension.TOUCHPOINT,
        MetricsDimension.JOURNEY_STAGE,
        MetricsDimension.SOURCE,
    }
    key = _ticket_key(query.group_by)
    grouped = query.group_by is not None
    sql = (
        f"SELECT {key if grouped else 'NULL'} AS key, "
        f"{f'grouping({key}) = 1' if grouped else 'true'} AS is_total, {_TICKET_FIGURES} "
        "FROM tickets t "
        + (_OPENING_FEEDBACK if needs_feedback else "")
        + " WHERE "
        + " AND ".join(conditions)
        + (f" GROUP BY GROUPING SETS (({key}), ())" if grouped else "")
    )
    groups: dict[GroupKey, TicketSums] = {}
    total = TicketSums(0, 0, 0, None, 0)
    for record in await connection.fetch(sql, *params.values):
        sums = TicketSums(
            opened=record["opened"],
            resolved=record["resolved"],
            open_now=record["open_now"],
            median_resolution_seconds=record["median_resolution_seconds"],
            sla_breached=record["sla_breached"],
        )
        if record["is_total"]:
            total = sums
        else:
            groups[record["key"]] = sums
    return groups, total
