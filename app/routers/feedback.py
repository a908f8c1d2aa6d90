"""Feedback ingestion (single and batch) and reads."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import pydantic_core
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AfterValidator, StringConstraints, ValidationError

from app.dependencies import FeedbackReader, FeedbackWriter, SessionDep, StateDep, app_state
from app.errors import Conflict, InvalidInput, invalid_input, validation_errors
from app.models.enums import Channel, IngestVia, SentimentLabel
from app.repositories.feedback import FeedbackFilter
from app.routers.docs import CONFLICT, NOT_FOUND, TOO_LARGE, json_body
from app.schemas.common import Rfc3339Datetime, Text64, Text128, reject_unstorable
from app.schemas.feedback import (
    EXAMPLE_EVENT,
    MAX_BATCH_EVENTS,
    BatchItemError,
    BatchItemResult,
    BatchRequest,
    BatchResponse,
    FeedbackEventIn,
    FeedbackOut,
    FeedbackPage,
    IngestResponse,
    IngestStatus,
    feedback_out,
)
from app.services import feedback_reads
from app.services.access import Principal
from app.telemetry import record_rejected
from app.workers.ingest_writer import commit_ingest

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

MAX_ID = 2**63 - 1
FeedbackId = Annotated[int, Path(ge=1, le=MAX_ID, description="The id returned at ingest.")]


def _parse_event(body: bytes) -> FeedbackEventIn:
    try:
        return FeedbackEventIn.model_validate_json(body)
    except ValidationError as exc:
        record_rejected("unknown", IngestVia.REST)
        raise invalid_input(validation_errors(exc.errors())) from None


@router.post(
    "",
    status_code=202,
    response_model=IngestResponse,
    summary="Ingest one feedback event",
    response_description="Accepted: the event is stored and committed.",
    description=(
        "Validates the event, stores it, and answers only after it is committed to "
        "PostgreSQL.\n\n- new event: **202** `status: accepted`\n"
        "- same `event_id`, same content: **200** `status: duplicate` (the stored id)\n"
        "- same `event_id`, different content: **409** problem\n\n"
        "A location-restricted key must send events for one of its locations (else 403)."
    ),
    responses={
        200: {"model": IngestResponse, "description": "Already stored (exact duplicate)."},
        **CONFLICT,
        **TOO_LARGE,
    },
    openapi_extra=json_body("FeedbackEventIn", EXAMPLE_EVENT),
)
async def ingest_one(request: Request, principal: FeedbackWriter) -> Response:
    event = _parse_event(await request.body())
    principal.require_write_location(event.location_id)
    # app_state() rather than a StateDep parameter: one dependency less on the hot path.
    outcome = await app_state(request).ingest_writer.submit(event)
    if outcome.status is IngestStatus.CONFLICT:
        # No stored id here: the stored event may lie outside the caller's locations.
        raise Conflict(
            f"Event '{event.event_id}' is already stored with different content; "
            "send a new event_id for new feedback."
        )
    body = {
        "id": str(outcome.feedback_id),
        "event_id": outcome.event_id,
        "status": outcome.status.value,
        "ticket_id": str(outcome.ticket_id) if outcome.ticket_id is not None else None,
    }
    # The hottest endpoint answers with a prepared body (shape: IngestResponse, as
    # documented) rather than through response-model validation and serialisation.
    return Response(
        orjson.dumps(body),
        status_code=200 if outcome.status is IngestStatus.DUPLICATE else 202,
        media_type="application/json",
    )


def _parse_envelope(body: bytes) -> list[Any]:
    def malformed(msg: str, loc: list[str | int]) -> InvalidInput:
        return InvalidInput(msg, errors=[{"loc": loc, "msg": msg, "type": "value_error"}])

    try:
        # pydantic's parser, as for single events: integers stay exact (orjson would turn
        # integers beyond 64 bits into floats), so both endpoints judge alike.
        envelope = pydantic_core.from_json(body)
    except ValueError:
        raise malformed("The body is not valid JSON.", []) from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise malformed("The body must be an object with an 'events' array.", ["events"])
    if set(envelope) != {"events"}:
        extra = sorted(set(envelope) - {"events"})
        raise malformed(f"Unknown field(s): {', '.join(extra)}.", [extra[0]])
    events: list[Any] = envelope["events"]
    if not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise malformed(f"'events' must hold 1 to {MAX_BATCH_EVENTS} events.", ["events"])
    return events


def _all_valid_events(body: bytes) -> list[FeedbackEventIn] | None:
    """The events of a batch of which every event is valid (nearly every batch), in one
    pass of pydantic's JSON parser, ~15% cheaper than event by event; None when
    anything is invalid, for _parse_envelope and _check_item to say what and where."""
    try:
        return BatchRequest.model_validate_json(body).events
    except ValidationError:
        return None


def _item_event_id(item: Any) -> str | None:
    if isinstance(item, FeedbackEventIn):
        return item.event_id
    if isinstance(item, dict):
        event_id = item.get("event_id")
        if isinstance(event_id, str) and len(event_id) <= 128:
            return event_id
    return None


def _check_item(item: Any, principal: Principal) -> FeedbackEventIn | list[BatchItemError]:
    """``item``: an event as parsed JSON, or already validated."""
    try:
        event = FeedbackEventIn.model_validate(item)  # a validated event is returned as is
    except ValidationError as exc:
        return [BatchItemError(**e) for e in validation_errors(exc.errors())]
    if not principal.may_access_location(event.location_id):
        return [
            BatchItemError(
                loc=["location_id"],
                msg="outside the locations this API key may write",
                type="location_forbidden",
            )
        ]
    return event


@router.post(
    "/batch",
    summary="Ingest up to 1,000 events",
    description=(
        'Body `{"events": [...]}` of 1-1,000 events, at most 5 MiB (413 above). Each event '
        "is validated on its own: valid events are stored (in one transaction, committed "
        "before the answer) even when others are rejected. `results` follow input order; "
        "within one batch a repeated `event_id` is decided by its first occurrence (later "
        "ones are `duplicate` or `conflict`). Counts: `accepted + duplicates + conflicts + "
        "rejected` = number of events. A body that is not JSON or has no `events` array is "
        "a 422 problem."
    ),
    responses={**TOO_LARGE},
    openapi_extra=json_body("BatchRequest"),
)
async def ingest_batch(
    request: Request, principal: FeedbackWriter, state: StateDep
) -> BatchResponse:
    body = await request.body()
    valid_events = _all_valid_events(body)
    items: list[Any] = _parse_envelope(body) if valid_events is None else valid_events
    results: list[BatchItemResult | None] = [None] * len(items)
    valid: list[FeedbackEventIn] = []
    valid_indexes: list[int] = []
    for index, item in enumerate(items):
        checked = _check_item(item, principal)
        if isinstance(checked, FeedbackEventIn):
            valid.append(checked)
            valid_indexes.append(index)
            continue
        record_rejected("unknown", IngestVia.REST)  # an invalid item's channel is untrusted
        results[index] = BatchItemResult(
            index=index, event_id=_item_event_id(item), status=IngestStatus.REJECTED, errors=checked
        )
    outcomes = await commit_ingest(state.database, valid, IngestVia.REST, state.text_analysis)
    for index, outcome in zip(valid_indexes, outcomes, strict=True):
        # A conflict's stored event may lie outside the caller's locations: no ids.
        shown = outcome.status is not IngestStatus.CONFLICT
        results[index] = BatchItemResult(
            index=index,
            event_id=outcome.event_id,
            status=outcome.status,
            id=str(outcome.feedback_id) if shown and outcome.feedback_id is not None else None,
            ticket_id=str(outcome.ticket_id) if shown and outcome.ticket_id is not None else None,
        )
    final = [r for r in results if r is not None]
    counts = {status: 0 for status in IngestStatus}
    for result in final:
        counts[result.status] += 1
    return BatchResponse(
        accepted=counts[IngestStatus.ACCEPTED],
        duplicates=counts[IngestStatus.DUPLICATE],
        conflicts=counts[IngestStatus.CONFLICT],
        rejected=counts[IngestStatus.REJECTED],
        results=final,
    )


QueryText = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(reject_unstorable)
]


@router.get(
    "",
    summary="List feedback, newest first",
    description=(
        "Keyset-paginated by (`occurred_at`, `id`), newest first. Repeat `channel` and "
        "`location_id` to match any of several. `from` is inclusive, `to` exclusive "
        "(both on `occurred_at`). A location-restricted key sees only its locations; "
        "asking for another location is a 403."
    ),
)
async def list_feedback(
    session: SessionDep,
    principal: FeedbackReader,
    channel: Annotated[list[Channel] | None, Query(description="Repeatable.")] = None,
    location_id: Annotated[
        list[Text64] | None, Query(description="Repeatable.", max_length=100)
    ] = None,
    customer_id: Text128 | None = None,
    source: Text64 | None = None,
    from_: Annotated[Rfc3339Datetime | None, Query(alias="from")] = None,
    to: Rfc3339Datetime | None = None,
    nps_min: Annotated[int | None, Query(ge=0, le=10)] = None,
    nps_max: Annotated[int | None, Query(ge=0, le=10)] = None,
    sentiment: SentimentLabel | None = None,
    has_ticket: bool | None = None,
    q: Annotated[QueryText | None, Query(description="Text contains (case-insensitive).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FeedbackPage:
    filters = FeedbackFilter(
        channels=channel or (),
        location_ids=location_id or (),
        customer_id=customer_id,
        source=source,
        occurred_from=from_,
        occurred_to=to,
        nps_min=nps_min,
        nps_max=nps_max,
        sentiment=sentiment,
        has_ticket=has_ticket,
        text_contains=q,
    )
    page = await feedback_reads.list_feedback(
        session, principal, filters, cursor=cursor, limit=limit
    )
    return FeedbackPage(
        items=[feedback_out(row) for row in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{feedback_id:int}", summary="Read one feedback event", responses={**NOT_FOUND})
async def get_feedback(
    feedback_id: FeedbackId, session: SessionDep, principal: FeedbackReader
) -> FeedbackOut:
    return feedback_out(await feedback_reads.get_feedback(session, principal, feedback_id))
