"""Status flowing back from integrations (SPEC section 6): a signed webhook per
integration, verified with its inbound secret instead of an API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, StringConstraints, ValidationError

from app.dependencies import DriverDep
from app.errors import invalid_input, validation_errors
from app.models.enums import TicketStatus
from app.routers.docs import NOT_FOUND, json_body, problem
from app.schemas.tickets import INBOUND_EXAMPLE, InboundStatus
from app.services import tickets as service
from app.telemetry import TICKETS_RESOLVED

router = APIRouter(prefix="/v1/inbound", tags=["tickets"])

IntegrationName = Annotated[
    str,
    Path(description="The integration's name."),
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
]


class InboundResult(BaseModel):
    ticket_id: str
    status: TicketStatus
    changed: bool


@router.post(
    "/{integration_name}",
    summary="Receive a ticket status change from an integration",
    description=(
        "Signed like outgoing webhooks (Standard Webhooks): `webhook-id`, "
        "`webhook-timestamp` (within 5 minutes of now) and `webhook-signature: "
        "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>` keyed with the "
        "integration's `inbound_secret`. No API key. Body: `external_id` (the id in the "
        "integration's system) or `ticket_id` (ours), `status` (ours, or new/open, "
        "pending/hold, solved, closed), optional `note` and `actor`. A change to "
        "`resolved` sets `resolved_at` and sends `ticket.resolved` to the ticket's other "
        "integrations. Reporting the current status again changes nothing."
    ),
    responses={
        401: problem("Missing, invalid or expired signature."),
        **NOT_FOUND,
        409: problem("Reopening it is refused: its customer has another open ticket."),
    },
    openapi_extra=json_body("InboundStatus", INBOUND_EXAMPLE),
)
async def receive_status(
    integration_name: IntegrationName, request: Request, connection: DriverDep
) -> InboundResult:
    body = await request.body()
    integration = await service.inbound_integration(connection, integration_name)
    service.verify_inbound(integration, request.headers, body)
    try:
        report = InboundStatus.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_input(validation_errors(exc.errors())) from None
    result = await service.apply_inbound_status(connection, integration, report)
    if result.resolved:
        TICKETS_RESOLVED.inc()
    return InboundResult(
        ticket_id=result.ticket.id, status=result.ticket.status, changed=result.changed
    )
