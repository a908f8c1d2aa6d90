"""NPS, CSAT, CES, rating, sentiment and ticket figures for what the caller may see.

PostgreSQL adds up exact integer counts (``repositories.metrics``); the scores are
worked out here from those counts with exact fractions, rounded half away from zero,
so totals and groups agree with a hand calculation to the last decimal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import islice

from app.db import DriverConnection
from app.errors import InvalidInput
from app.repositories import metrics as repo
from app.repositories.metrics import (
    SUM_COLUMNS,
    TIME_DIMENSIONS,
    GroupKey,
    MetricsDimension,
    MetricsQuery,
    TicketSums,
)
from app.schemas.metrics import (
    MetricFigures,
    MetricGroup,
    MetricsOut,
    NpsFigures,
    RatingFigures,
    SentimentFigures,
    ShareFigures,
    TicketFigures,
)
from app.services.access import Principal

DEFAULT_RANGE = timedelta(days=30)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
MAX_TIME_GROUPS = 1_000  # ~2.7 years by day; beyond that, group by week or month


@dataclass(frozen=True, slots=True)
class MetricsRequest:
    occurred_from: datetime | None
    occurred_to: datetime | None
    group_by: MetricsDimension | None
    channels: Sequence[str] = ()
    location_ids: Sequence[str] = ()
    touchpoints: Sequence[str] = ()
    sources: Sequence[str] = ()


def _rounded(value: Fraction, places: str) -> float:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(places), rounding=ROUND_HALF_UP))


def _percent(part: int, whole: int) -> float | None:
    return _rounded(Fraction(100 * part, whole), "0.1") if whole else None


def _rating_mean(sums: dict[str, int]) -> float | None:
    on_five, on_ten = sums["rating5_responses"], sums["rating10_responses"]
    if not on_five + on_ten:
        return None
    # 10-point ratings mapped linearly onto 1..5: 1 + (v - 1) * 4 / 9.
    total = sums["rating5_sum"] + on_ten + Fraction(4, 9) * (sums["rating10_sum"] - on_ten)
    return _rounded(total / (on_five + on_ten), "0.01")


_NO_FEEDBACK = dict.fromkeys(SUM_COLUMNS, 0)
_NO_TICKETS = TicketSums(0, 0, 0, None, 0)


def _figures(sums: dict[str, int], tickets: TicketSums) -> MetricFigures:
    return MetricFigures(
        responses=sums["responses"],
        nps=NpsFigures(
            score=_percent(sums["promoters"] - sums["detractors"], sums["nps_responses"]),
            promoters=sums["promoters"],
            passives=sums["passives"],
            detractors=sums["detractors"],
            responses=sums["nps_responses"],
        ),
        csat=ShareFigures(
            score=_percent(sums["csat_top"], sums["csat_responses"]),
            responses=sums["csat_responses"],
        ),
        ces=ShareFigures(
            score=_percent(sums["ces_top"], sums["ces_responses"]),
            responses=sums["ces_responses"],
        ),
        rating=RatingFigures(
            mean=_rating_mean(sums),
            responses=sums["rating5_responses"] + sums["rating10_responses"],
        ),
        sentiment=SentimentFigures(
            negative=sums["sentiment_negative"],
            neutral=sums["sentiment_neutral"],
            positive=sums["sentiment_positive"],
        ),
        tickets=TicketFigures(
            opened=tickets.opened,
            resolved=tickets.resolved,
            open_now=tickets.open_now,
            median_resolution_seconds=tickets.median_resolution_seconds,
            sla_breached=tickets.sla_breached,
        ),
    )


def _period_start(day: date, dimension: MetricsDimension) -> date:
    if dimension is MetricsDimension.WEEK:
        return day - timedelta(days=day.weekday())
    if dimension is MetricsDimension.MONTH:
        return day.replace(day=1)
    return day


def _next_period(start: date, dimension: MetricsDimension) -> date:
    if dimension is MetricsDimension.DAY:
        return start + timedelta(days=1)
    if dimension is MetricsDimension.WEEK:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _periods(start: datetime, end: datetime, dimension: MetricsDimension) -> Iterator[date]:
    """Every period touching [start, end), by its first day (UTC)."""
    period = _period_start(start.astimezone(UTC).date(), dimension)
    last_day = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while period <= last_day:
        yield period
        try:
            period = _next_period(period, dimension)
        except OverflowError:  # the period holding 9999-12-31 is the last there is
            return


def _key_text(key: GroupKey, dimension: MetricsDimension) -> str | None:
    if isinstance(key, date):
        return key.strftime("%Y-%m") if dimension is MetricsDimension.MONTH else key.isoformat()
    return key


def _expected_keys(query: MetricsQuery, dimension: MetricsDimension) -> list[GroupKey]:
    """Groups shown even without data: every period, and values named in a filter."""
    if dimension in TIME_DIMENSIONS:
        return list(_periods(query.occurred_from, query.occurred_to, dimension))
    named: dict[MetricsDimension, Sequence[str]] = {
        MetricsDimension.CHANNEL: query.channels,
        MetricsDimension.LOCATION_ID: query.location_ids,
        MetricsDimension.TOUCHPOINT: query.touchpoints,
        MetricsDimension.SOURCE: query.sources,
    }
    return list(named.get(dimension, ()))


def _ordered(keys: set[GroupKey]) -> list[GroupKey]:
    """Periods in time order; other values alphabetically, the missing value (null) last."""
    return sorted(keys, key=lambda key: (key is None, str(key) if key is not None else ""))


def _resolve_range(
    occurred_from: datetime | None, occurred_to: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    end = occurred_to or now
    # A `to` less than 30 days after 0001-01-01 gets a shorter default range: datetime
    # cannot go earlier, and a valid date must not cause a 500.
    start = occurred_from or max(end, _EARLIEST + DEFAULT_RANGE) - DEFAULT_RANGE
    if start >= end:
        raise InvalidInput(
            "'from' must be before 'to'.",
            errors=[
                {"loc": ["query", "from"], "msg": "must be before 'to'", "type": "value_error"}
            ],
        )
    return start.astimezone(UTC), end.astimezone(UTC)


async def compute_metrics(
    connection: DriverConnection,
    principal: Principal,
    request: MetricsRequest,
    *,
    now: datetime,
) -> MetricsOut:
    principal.require_locations(request.location_ids)
    start, end = _resolve_range(request.occurred_from, request.occurred_to, now)
    query = MetricsQuery(
        occurred_from=start,
        occurred_to=end,
        group_by=request.group_by,
        channels=request.channels,
        location_ids=request.location_ids,
        touchpoints=request.touchpoints,
        sources=request.sources,
        allowed_location_ids=principal.readable_locations(),
    )
    dimension = request.group_by
    # Counting stops just past the limit: walking day by day through a range of
    # thousands of years would hold up the event loop for seconds.
    if (
        dimension in TIME_DIMENSIONS
        and sum(1 for _ in islice(_periods(start, end, dimension), MAX_TIME_GROUPS + 1))
        > MAX_TIME_GROUPS
    ):
        raise InvalidInput(
            f"More than {MAX_TIME_GROUPS} {dimension.value}s in the range; "
            "narrow it or group by a longer period.",
            errors=[
                {"loc": ["query", "group_by"], "msg": "too many periods", "type": "value_error"}
            ],
        )

    await repo.sort_in_memory(connection)
    feedback = await repo.feedback_sums(connection, query)
    tickets, ticket_total = await repo.ticket_sums(connection, query)
    total_sums = dict(_NO_FEEDBACK)
    for sums in feedback.values():
        for name in SUM_COLUMNS:
            total_sums[name] += sums[name]
    groups: list[MetricGroup] = []
    if dimension is not None:
        keys = _ordered({*feedback, *tickets, *_expected_keys(query, dimension)})
        groups = [
            MetricGroup(
                key=_key_text(key, dimension),
                **_figures(
                    feedback.get(key, _NO_FEEDBACK), tickets.get(key, _NO_TICKETS)
                ).model_dump(),
            )
            for key in keys
        ]
    return MetricsOut(
        from_=start,
        to=end,
        group_by=dimension.value if dimension is not None else None,
        total=_figures(total_sums, ticket_total),
        groups=groups,
    )
