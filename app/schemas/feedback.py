"""The feedback event (SPEC section 3), its stored form, and ingest results."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.models.enums import Channel, IngestVia, ScoreMetric, SentimentLabel
from app.models.feedback import FeedbackRow
from app.schemas.common import (
    EmailAddress,
    LanguageTag,
    Rfc3339Datetime,
    Text64,
    Text128,
    Text200,
    reject_unstorable,
)

MAX_FUTURE_SKEW = timedelta(minutes=5)
EARLIEST_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_METADATA_BYTES = 16 * 1024
MAX_TEXT_CHARS = 10_000
MAX_TAGS = 20
MAX_BATCH_EVENTS = 1000

EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

# metric -> (allowed scales, default scale); NPS has a fixed 0-10 range and no scale.
SCALES: dict[ScoreMetric, tuple[frozenset[int], int]] = {
    ScoreMetric.CSAT: (frozenset({5, 7}), 5),
    ScoreMetric.CES: (frozenset({7, 5}), 7),
    ScoreMetric.RATING: (frozenset({5, 10}), 5),
}

EXAMPLE_EVENT: dict[str, Any] = {
    "event_id": "pos-eu-7f3a9c21",
    "occurred_at": "2026-11-20T10:15:00+01:00",
    "channel": "in_store",
    "source": "pos-eu",
    "customer": {
        "id": "C-1001",
        "email": "ana@example.com",
        "phone": "+4915112345678",
        "name": "Ana Roth",
        "locale": "de-DE",
    },
    "location_id": "store-berlin-01",
    "touchpoint": "checkout",
    "journey_stage": "purchase",
    "scores": [{"metric": "nps", "value": 3}, {"metric": "csat", "value": 2, "scale": 5}],
    "text": "Die Schlange war 20 Minuten lang und niemand hat geholfen.",
    "language": "de",
    "tags": ["queue"],
    "metadata": {"receipt": "R-88812"},
}


_METRIC_ORDER = {metric: position for position, metric in enumerate(ScoreMetric)}


class Score(BaseModel):
    """One score. Every metric is "higher is better".

    ``scale`` is declared before ``value`` so that each is checked as its own field and
    an error points at it (``["scores", 0, "value"]``)."""

    model_config = ConfigDict(extra="forbid")

    metric: ScoreMetric
    scale: StrictInt | None = Field(
        default=None,
        validate_default=True,
        description="csat: 5 (default) or 7; ces: 7 (default) or 5; rating: 5 (default) or 10; "
        "nps: omit (fixed 0-10). Stored with the default filled in.",
    )
    value: StrictInt = Field(description="nps: 0-10; csat/ces/rating: 1..scale.", examples=[3])

    @field_validator("scale")
    @classmethod
    def _known_scale(cls, scale: int | None, info: ValidationInfo) -> int | None:
        metric = info.data.get("metric")
        if metric is None:  # the metric itself was invalid: reported there
            return scale
        if metric is ScoreMetric.NPS:
            if scale is not None:
                raise ValueError("nps has a fixed 0-10 range: omit scale")
            return None
        allowed, default = SCALES[metric]
        if scale is None:
            return default
        if scale not in allowed:
            raise ValueError(
                f"{metric.value} scale must be {' or '.join(map(str, sorted(allowed)))}"
            )
        return scale

    @field_validator("value")
    @classmethod
    def _value_in_range(cls, value: int, info: ValidationInfo) -> int:
        metric = info.data.get("metric")
        if metric is None or "scale" not in info.data:  # reported on those fields
            return value
        low, high = (0, 10) if metric is ScoreMetric.NPS else (1, info.data["scale"])
        if not low <= value <= high:
            raise ValueError(f"{metric.value} value must be between {low} and {high}")
        return value


class Customer(BaseModel):
    """Who gave the feedback; every field optional (anonymous feedback is allowed)."""

    model_config = ConfigDict(extra="forbid")

    id: Text128 | None = None
    email: EmailAddress | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{1,14}$")] | None = Field(
        default=None, description="E.164, e.g. +4915112345678"
    )
    name: Text200 | None = None
    locale: LanguageTag | None = Field(default=None, description="BCP 47, e.g. de-DE")

    def is_empty(self) -> bool:
        return not (self.id or self.email or self.phone or self.name or self.locale)


Tag = Text64
Text = Annotated[
    str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(reject_unstorable)
]


def _unstorable_json(value: Any) -> str | None:
    """What PostgreSQL's jsonb could not store as sent, at any depth: NUL in keys or
    strings, and NaN/Infinity (not JSON; they would silently become null)."""
    if isinstance(value, str):
        return "must not contain NUL characters" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must not contain NaN or Infinity"
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return "must not contain NUL characters"
            problem = _unstorable_json(item)
            if problem is not None:
                return problem
    if isinstance(value, list):
        for item in value:
            problem = _unstorable_json(item)
            if problem is not None:
                return problem
    return None


class FeedbackEventIn(BaseModel):
    """A feedback event as sent by a channel system (REST body or Kafka message value)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_EVENT})

    event_id: Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)] = Field(
        description="Idempotency key: 1-128 chars of [A-Za-z0-9._:-], starting alphanumeric."
    )
    occurred_at: Rfc3339Datetime = Field(
        description="RFC 3339 with offset; from 1970 to at most 5 minutes in the future. "
        "Stored in UTC."
    )
    channel: Channel
    source: Text64 | None = Field(default=None, description="The producing system.")
    customer: Customer | None = None
    location_id: Text64 | None = None
    touchpoint: Text64 | None = None
    journey_stage: Text64 | None = None
    scores: list[Score] = Field(default_factory=list, max_length=4)
    text: Text | None = Field(
        default=None, description="Up to 10,000 characters; whitespace-only counts as absent."
    )
    language: LanguageTag | None = Field(default=None, description="BCP 47 tag, e.g. de")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] | None = Field(
        default=None, description="Any JSON object up to 16 KiB when serialised."
    )

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime) -> datetime:
        if value - datetime.now(UTC) > MAX_FUTURE_SKEW:
            raise ValueError("must not be more than 5 minutes in the future")
        if value < EARLIEST_OCCURRED_AT:
            # Feedback from before 1970 is a client bug (a zero timestamp, say); and the
            # extreme 0001-01-01 would round-trip through PostgreSQL as -infinity.
            raise ValueError("must not be before 1970-01-01T00:00:00Z")
        return value

    @field_validator("scores")
    @classmethod
    def _one_score_per_metric(cls, scores: list[Score]) -> list[Score]:
        seen: set[ScoreMetric] = set()
        for score in scores:
            if score.metric in seen:
                raise ValueError(f"metric {score.metric.value} given more than once")
            seen.add(score.metric)
        # One canonical order (as reads return them), so equal events hash alike.
        return sorted(scores, key=lambda score: _METRIC_ORDER[score.metric])

    @field_validator("text")
    @classmethod
    def _blank_text_is_absent(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value

    @field_validator("customer")
    @classmethod
    def _empty_customer_is_absent(cls, value: Customer | None) -> Customer | None:
        return None if value is None or value.is_empty() else value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            encoded = orjson.dumps(value)
        except orjson.JSONEncodeError:
            raise ValueError(
                "must be storable JSON: integers within 64 bits, no unpaired surrogates"
            ) from None
        if len(encoded) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes when serialised")
        problem = _unstorable_json(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _needs_score_or_text(self) -> FeedbackEventIn:
        if not self.scores and self.text is None:
            raise ValueError("an event needs at least one score or a non-empty text")
        return self

    def score(self, metric: ScoreMetric) -> Score | None:
        for score in self.scores:
            if score.metric is metric:
                return score
        return None


class ScoreOut(BaseModel):
    metric: ScoreMetric
    value: int
    scale: int | None = Field(description="null for nps (fixed 0-10)")


class Sentiment(BaseModel):
    label: SentimentLabel
    score: float = Field(ge=-1, le=1)


class CustomerOut(BaseModel):
    id: str | None
    email: str | None
    phone: str | None
    name: str | None
    locale: str | None


class FeedbackOut(BaseModel):
    """A stored feedback event: the event as sent plus what the service added."""

    id: str = Field(description="The service's id of the stored event.")
    event_id: str = Field(description="The producer's idempotency key.")
    occurred_at: datetime = Field(description="When the feedback was given; returned in UTC.")
    received_at: datetime = Field(description="When the service stored it.")
    ingested_via: IngestVia = Field(description="rest or kafka")
    channel: Channel
    source: str | None
    customer: CustomerOut | None = Field(description="null for anonymous feedback")
    location_id: str | None
    touchpoint: str | None
    journey_stage: str | None
    scores: list[ScoreOut] = Field(description="In the order nps, csat, ces, rating.")
    text: str | None
    language: str | None = Field(
        description="As sent; otherwise detected from the text (39 languages), or null "
        "when the text is too short or its language uncertain."
    )
    sentiment: Sentiment | None = Field(
        description="From the text, for English and French; null without text or in "
        "another language (no analyser: no guess)."
    )
    tags: list[str]
    metadata: dict[str, Any] | None
    ticket_id: str | None = Field(description="The follow-up ticket, if one was opened.")


class FeedbackPage(BaseModel):
    items: list[FeedbackOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class IngestResponse(BaseModel):
    """The stored event's id; for a duplicate, the id stored the first time."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "1",
                "event_id": "pos-eu-7f3a9c21",
                "status": "accepted",
                "ticket_id": None,
            }
        }
    )

    id: str
    event_id: str
    status: Literal[IngestStatus.ACCEPTED, IngestStatus.DUPLICATE]
    ticket_id: str | None


class BatchRequest(BaseModel):
    """The batch body. When it does not validate as a whole, the batch endpoint
    validates each event on its own, so that valid events are stored even when others
    are rejected."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"events": [EXAMPLE_EVENT]}}
    )

    events: list[FeedbackEventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchItemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class BatchItemResult(BaseModel):
    index: int
    event_id: str | None = Field(description="null when the item has no usable event_id")
    status: IngestStatus
    id: str | None = None
    ticket_id: str | None = None
    errors: list[BatchItemError] | None = None


class BatchResponse(BaseModel):
    """Counts add up to the number of events sent."""

    accepted: int
    duplicates: int
    conflicts: int = Field(description="Same event_id as a stored event, different content.")
    rejected: int = Field(description="Failed validation (or outside the key's locations).")
    results: list[BatchItemResult]


def feedback_out(row: FeedbackRow) -> FeedbackOut:
    """The REST representation of a stored row."""
    scores: list[ScoreOut] = []
    if row.nps is not None:
        scores.append(ScoreOut(metric=ScoreMetric.NPS, value=row.nps, scale=None))
    if row.csat is not None:
        scores.append(ScoreOut(metric=ScoreMetric.CSAT, value=row.csat, scale=row.csat_scale))
    if row.ces is not None:
        scores.append(ScoreOut(metric=ScoreMetric.CES, value=row.ces, scale=row.ces_scale))
    if row.rating is not None:
        scores.append(ScoreOut(metric=ScoreMetric.RATING, value=row.rating, scale=row.rating_scale))
    has_customer = any(
        (
            row.customer_id,
            row.customer_email,
            row.customer_phone,
            row.customer_name,
            row.customer_locale,
        )
    )
    return FeedbackOut(
        id=str(row.id),
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        received_at=row.received_at,
        ingested_via=row.ingested_via,
        channel=row.channel,
        source=row.source,
        customer=CustomerOut(
            id=row.customer_id,
            email=row.customer_email,
            phone=row.customer_phone,
            name=row.customer_name,
            locale=row.customer_locale,
        )
        if has_customer
        else None,
        location_id=row.location_id,
        touchpoint=row.touchpoint,
        journey_stage=row.journey_stage,
        scores=scores,
        text=row.text,
        language=row.language,
        sentiment=Sentiment(label=row.sentiment_label, score=row.sentiment_score)
        if row.sentiment_label is not None and row.sentiment_score is not None
        else None,
        tags=list(row.tags),
        metadata=row.extra_metadata,
        ticket_id=str(row.ticket_id) if row.ticket_id is not None else None,
    )
