"""The delivery outbox: inspect deliveries and re-queue dead ones (admin scope, keys
without location limits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.dependencies import Admin, SessionDep
from app.models.closed_loop import DeliveryAttemptRow
from app.models.enums import DeliveryStatus
from app.repositories.deliveries import DeliveryFilter
from app.routers.docs import NOT_FOUND, problem
from app.schemas.deliveries import DeliveryAttemptOut, DeliveryDetail, DeliveryOut, DeliveryPage
from app.schemas.integrations import INTEGRATION_NAME_PATTERN
from app.services import deliveries
from app.services.deliveries import DeliveryView

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

MAX_ID = 2**63 - 1
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's id.")]

_GLOBAL = (
    "Deliveries belong to global configuration (integrations): the key needs the "
    "`admin` scope and no location restriction (a location-restricted admin gets 403)."
)


def _out(view: DeliveryView) -> DeliveryOut:
    row = view.row
    return DeliveryOut(
        id=str(row.id),
        integration=view.integration_name,
        event_type=row.event_type,
        ticket_id=str(row.ticket_id) if row.ticket_id is not None else None,
        feedback_id=str(row.feedback_id) if row.feedback_id is not None else None,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


def _attempt_out(attempt: DeliveryAttemptRow) -> DeliveryAttemptOut:
    return DeliveryAttemptOut(
        at=attempt.at,
        outcome=attempt.outcome,
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
    )


@router.get(
    "",
    summary="List deliveries, newest first",
    description=(
        "Every delivery of the outbox with its state: `pending` (waiting for its first "
        "attempt or its next retry at `next_attempt_at`), `delivered`, or `dead` (a "
        "permanent failure or retries exhausted; re-queue with `POST .../retry`). "
        f"Filters combine. {_GLOBAL}"
    ),
)
async def list_deliveries(
    session: SessionDep,
    principal: Admin,
    status: DeliveryStatus | None = None,
    integration: Annotated[
        str | None,
        Query(pattern=INTEGRATION_NAME_PATTERN, max_length=64, description="Integration name."),
    ] = None,
    ticket_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeliveryPage:
    filters = DeliveryFilter(status=status, integration_name=integration, ticket_id=ticket_id)
    views, next_cursor = await deliveries.list_deliveries(
        session, principal, filters, cursor=cursor, limit=limit
    )
    return DeliveryPage(items=[_out(view) for view in views], next_cursor=next_cursor)


@router.get(
    "/{delivery_id:int}",
    summary="Read one delivery with every attempt",
    description=f"`attempts_log` lists every attempt, oldest first. {_GLOBAL}",
    responses={**NOT_FOUND},
)
async def get_delivery(
    delivery_id: DeliveryId, session: SessionDep, principal: Admin
) -> DeliveryDetail:
    view, attempts = await deliveries.get_delivery(session, principal, delivery_id)
    return DeliveryDetail(
        **_out(view).model_dump(), attempts_log=[_attempt_out(a) for a in attempts]
    )


@router.post(
    "/{delivery_id:int}/retry",
    summary="Re-queue a dead delivery",
    description=(
        "Only a `dead` delivery (else 409). It becomes `pending`, due at once, with "
        "`attempts` reset to 0 so that it gets the whole retry schedule again; "
        "`last_error` and `last_status_code` stay until the next attempt. Dispatchers "
        f"are woken at commit. {_GLOBAL}"
    ),
    responses={**NOT_FOUND, 409: problem("The delivery is not dead.")},
)
async def retry_delivery(
    delivery_id: DeliveryId, session: SessionDep, principal: Admin
) -> DeliveryOut:
    return _out(await deliveries.retry_delivery(session, principal, delivery_id))
