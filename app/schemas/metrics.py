"""``GET /v1/metrics`` response (SPEC section 7)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class NpsFigures(BaseModel):
    score: float | None = Field(
        description="% promoters (9-10) minus % detractors (0-6), one decimal; null if none."
    )
    promoters: int
    passives: int
    detractors: int
    responses: int


class ShareFigures(BaseModel):
    score: float | None = Field(
        description="Share of responses in the top box, in %, one decimal; null without responses."
    )
    responses: int


class RatingFigures(BaseModel):
    mean: float | None = Field(
        description=(
            "Mean rating on the 5-point scale, two decimals: 10-point ratings are mapped "
            "linearly (1→1, 10→5). null without responses."
        )
    )
    responses: int


class SentimentFigures(BaseModel):
    negative: int
    neutral: int
    positive: int


class TicketFigures(BaseModel):
    opened: int = Field(description="Tickets opened in the range (and group).")
    resolved: int = Field(description="Of those, resolved or closed since.")
    open_now: int = Field(description="Of those, open, in progress or waiting now.")
    median_resolution_seconds: float | None = Field(
        description="Median time from opening to resolution of the resolved ones."
    )
    sla_breached: int = Field(
        description="Of those, resolved after their SLA, or unresolved and past it now."
    )


class MetricFigures(BaseModel):
    responses: int = Field(description="Feedback events (with or without scores).")
    nps: NpsFigures
    csat: ShareFigures = Field(description="% top-two-box: 4-5 of 5, 6-7 of 7.")
    ces: ShareFigures = Field(description="% top box: 5-7 of 7, 4-5 of 5.")
    rating: RatingFigures
    sentiment: SentimentFigures = Field(description="Feedback with text, by sentiment label.")
    tickets: TicketFigures


class _GroupKey(BaseModel):
    key: str | None = Field(
        description=(
            "The group's value: a channel, location, touchpoint, journey stage or source "
            "(null: events without one), or the first day of the period in UTC: "
            "`2026-11-20` (day), the Monday `2026-11-16` (week), `2026-11` (month)."
        )
    )


class MetricGroup(MetricFigures, _GroupKey):  # this order puts `key` first in the JSON
    """The figures of one group."""


class MetricsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", description="Start of the range (inclusive), UTC.")
    to: datetime = Field(description="End of the range (exclusive), UTC.")
    group_by: str | None
    total: MetricFigures
    groups: list[MetricGroup] = Field(
        description=(
            "Empty without group_by. Time groups cover every period of the range, also "
            "those without feedback; other groups are those with feedback or tickets, "
            "plus any value named in a filter."
        )
    )
