"""The live stream (SPEC section 7): Server-Sent Events of feedback and ticket events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.dependencies import FeedbackReader, StateDep, principal_of
from app.errors import AppError, InvalidInput, ServiceUnavailable
from app.integrations.base import ALL_EVENT_TYPES, TICKET_EVENT_TYPES, EventType
from app.models.enums import Scope
from app.routers.docs import problem
from app.schemas.common import Text64
from app.services.access import Principal
from app.workers.live_stream import LiveStream, StreamFilter

router = APIRouter(prefix="/v1/stream", tags=["stream"])

EVENT_STREAM = "text/event-stream"
# Tells an EventSource how long to wait before reconnecting after the stream ends.
RETRY_FRAME = b"retry: 3000\n\n"
HEARTBEAT_FRAME = b": heartbeat\n\n"


def _event_types(values: list[str] | None, principal: Principal) -> frozenset[EventType]:
    """Repeated or comma-separated; default: every type the key may read."""
    may_read_tickets = principal.has_scope(Scope.TICKETS_READ)
    if not values:
        return frozenset(ALL_EVENT_TYPES if may_read_tickets else {EventType.FEEDBACK_RECEIVED})
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - {t.value for t in ALL_EVENT_TYPES})
    if unknown:
        raise InvalidInput(
            f"Unknown event type(s): {', '.join(unknown)}.",
            errors=[
                {
                    "loc": ["query", "types"],
                    "msg": "expected feedback.received, ticket.created, ticket.updated "
                    "or ticket.resolved",
                    "type": "enum",
                }
            ],
        )
    types = frozenset(EventType(name) for name in names)
    if types & TICKET_EVENT_TYPES:
        principal.require_scope(Scope.TICKETS_READ)
    return types


async def _frames(
    request: Request, stream: LiveStream, stream_filter: StreamFilter, heartbeat_s: float
) -> AsyncIterator[bytes]:
    yield RETRY_FRAME
    with stream.subscribe(stream_filter) as client:
        while True:
            try:
                frame = await asyncio.wait_for(client.frames.get(), timeout=heartbeat_s)
            except TimeoutError:
                try:
                    await principal_of(request)  # revoked meanwhile: the stream ends
                except AppError:
                    return
                yield HEARTBEAT_FRAME
                continue
            if frame is None:
                return
            yield frame


@router.get(
    "",
    summary="Live stream of feedback and ticket events (Server-Sent Events)",
    description=(
        "A `text/event-stream` of `feedback.received`, `ticket.created`, "
        "`ticket.updated` and `ticket.resolved` events as they are committed, by any "
        "replica of the service (PostgreSQL LISTEN/NOTIFY). Each event's `data` is the "
        "JSON of the feedback (as `GET /v1/feedback/{id}`) or of the ticket as it is "
        "when sent (as `GET /v1/tickets/{id}`):\n\n"
        '```\nevent: feedback.received\ndata: {"id": "42", "event_id": ...}\n\n```\n\n'
        "`types` (repeatable or comma-separated) picks event types; the default is every "
        "type the key may read (ticket events need `tickets:read` as well). "
        "`location_id` (repeatable) narrows to locations; a location-restricted key gets "
        "only events of its locations, and naming another is a 403. A comment line "
        "(`: heartbeat`) is sent every `FEEDBACK_STREAM_HEARTBEAT_S` seconds; a revoked "
        "key's stream ends at the next one.\n\n"
        "There is no replay: events committed while a client is disconnected are not "
        "re-sent (read them with `GET /v1/feedback` / `GET /v1/tickets`). The server ends "
        "a stream whose client falls more than `FEEDBACK_STREAM_CLIENT_BUFFER` events "
        "behind, and every stream when its notification connection to PostgreSQL drops "
        "(events may have been missed): reconnect, and catch up from the lists."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The event stream (it stays open).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        503: problem("This process serves as many streams as it may; try another replica."),
    },
)
async def live_stream(
    request: Request,
    principal: FeedbackReader,
    state: StateDep,
    types: Annotated[
        list[str] | None,
        Query(
            description="Event types, repeatable or comma-separated.",
            max_length=8,
            examples=["feedback.received,ticket.created"],
        ),
    ] = None,
    location_id: Annotated[
        list[Text64] | None, Query(description="Repeatable.", max_length=100)
    ] = None,
) -> StreamingResponse:
    stream = state.live_stream
    if stream is None or stream.is_full():
        raise ServiceUnavailable("No more live streams can be opened on this process now.")
    event_types = _event_types(types, principal)
    principal.require_locations(location_id or ())
    allowed = principal.location_ids
    if location_id:
        allowed = frozenset(location_id)
    stream_filter = StreamFilter(types=event_types, location_ids=allowed)
    return StreamingResponse(
        _frames(request, stream, stream_filter, state.settings.stream_heartbeat_s),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
