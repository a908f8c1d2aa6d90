"""Customers: journey across channels, and erasure (SPEC section 5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.dependencies import Admin, DriverDep, FeedbackReader, SnapshotDep
from app.routers.docs import NOT_FOUND, problem
from app.schemas.common import Text128
from app.schemas.customers import JourneyOut
from app.services import customers as service

router = APIRouter(prefix="/v1/customers", tags=["customers"])

CustomerId = Annotated[
    Text128,
    Path(
        description="The customer's id, as sent in customer.id (URL-encoded; it may contain '/')."
    ),
]


# ``:path``: a customer id may contain "/" (customer.id is any text up to 128
# characters), and it arrives decoded; the default converter stops at "/", so such a
# customer could be neither read nor erased.
@router.get(
    "/{customer_id:path}/journey",
    summary="A customer's feedback and tickets across channels, oldest first",
    description=(
        "Every feedback event of the customer (and, for keys with `tickets:read`, every "
        "ticket) in time order: feedback by `occurred_at`, tickets by `created_at`. "
        "`summary` covers the whole journey. A location-restricted key sees only its "
        "locations (summary included); 404 when nothing of the customer is visible. "
        "Keyset-paginated with `limit`/`cursor`."
    ),
    responses={**NOT_FOUND},
)
async def customer_journey(
    customer_id: CustomerId,
    connection: SnapshotDep,
    principal: FeedbackReader,
    # The default of every list (SPEC section 2).
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JourneyOut:
    return await service.customer_journey(
        connection, principal, customer_id, cursor=cursor, limit=limit
    )


@router.delete(
    "/{customer_id:path}",
    status_code=204,
    summary="Erase a customer's personal data (right to erasure)",
    description=(
        "In one transaction, blanks the customer's identifiers (id, email, phone, name, "
        "locale), feedback text and metadata in every feedback event; the customer and "
        "notes on their tickets; and the same fields in the payloads of their deliveries, "
        "pending or sent (pending ones are still sent, without the personal data). "
        "Scores, channel, location, touchpoint, language, sentiment and tags stay, "
        "anonymous, so every metric is unchanged. Idempotent: 204 also when nothing was "
        "stored. Not reached: copies already sent to CRMs/helpdesks (erase there too) "
        "and messages still in Kafka topics (the DLQ's retention applies). A "
        "location-restricted admin key may erase only customers all of whose data lies "
        "in its locations (else 403)."
    ),
    responses={403: problem("The key lacks admin, or the customer has data elsewhere.")},
)
async def erase_customer(
    customer_id: CustomerId, connection: DriverDep, principal: Admin
) -> Response:
    await service.erase_customer(connection, principal, customer_id)
    return Response(status_code=204)
