"""Metrics (SPEC section 7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.dependencies import MetricsReader, SnapshotDep
from app.models.enums import Channel
from app.repositories.metrics import MetricsDimension
from app.schemas.common import Rfc3339Datetime, Text64
from app.schemas.metrics import MetricsOut
from app.services import metrics as service

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

Repeatable64 = Annotated[list[Text64] | None, Query(description="Repeatable.", max_length=100)]


@router.get(
    "",
    summary="NPS, CSAT, CES, ratings, sentiment and tickets, in total and by group",
    description=(
        "Figures for feedback that occurred in [`from`, `to`) (default: the 30 days up to "
        "now) and for the tickets opened in that range. Filters repeat to match any of "
        "several values. `group_by` splits the figures by `channel`, `location_id`, "
        "`touchpoint`, `journey_stage`, `source`, or by UTC `day`, `week` (ISO, from "
        "Monday) or `month`; at most 1,000 periods.\n\n"
        "- **NPS** = % promoters (9-10) minus % detractors (0-6) of the responses with an NPS.\n"
        "- **CSAT** = % top-two-box (4-5 of 5, 6-7 of 7); **CES** = % top box (5-7 of 7, "
        "4-5 of 5); 5- and 7-point answers count together.\n"
        "- **rating** mean on the 5-point scale (10-point ratings mapped linearly).\n"
        "- Scores have one decimal (rating two), rounded half away from zero; null when "
        "a group has no responses for that metric.\n"
        "- **tickets**: of the tickets opened in the range, how many were resolved since, "
        "are open now, breached their SLA, and the median time to resolution. A ticket's "
        "touchpoint, journey stage and source are those of the feedback that opened it.\n\n"
        "A location-restricted key gets figures for its locations only (feedback without "
        "a location is not counted); naming another location is a 403."
    ),
    response_model_exclude_none=False,
)
async def get_metrics(
    connection: SnapshotDep,
    principal: MetricsReader,
    from_: Annotated[Rfc3339Datetime | None, Query(alias="from")] = None,
    to: Rfc3339Datetime | None = None,
    group_by: MetricsDimension | None = None,
    channel: Annotated[list[Channel] | None, Query(description="Repeatable.")] = None,
    location_id: Repeatable64 = None,
    touchpoint: Repeatable64 = None,
    source: Repeatable64 = None,
) -> MetricsOut:
    request = service.MetricsRequest(
        occurred_from=from_,
        occurred_to=to,
        group_by=group_by,
        channels=[c.value for c in channel or ()],
        location_ids=location_id or (),
        touchpoints=touchpoint or (),
        sources=source or (),
    )
    return await service.compute_metrics(connection, principal, request, now=datetime.now(UTC))
