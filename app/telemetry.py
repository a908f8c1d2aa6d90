"""Prometheus metrics and the ASGI middleware that measures and logs each request.

The middleware is plain ASGI (no BaseHTTPMiddleware): it is on every request's path,
including the hot ingest path, so it must cost microseconds.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections import Counter as Counter_
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, problem_response
from app.logs import request_id_var

if TYPE_CHECKING:
    from app.models.enums import IngestVia
    from app.schemas.feedback import FeedbackEventIn
    from app.services.ingest import IngestOutcome

logger = logging.getLogger("app.access")
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition for no use

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INGESTED_EVENTS = Counter(
    "feedback_ingested_events_total",
    "Feedback events processed by the ingest pipeline.",
    ["channel", "via", "status"],
)
INGEST_LATENCY = Histogram(
    "feedback_ingest_latency_seconds",
    "Time to validate-and-commit one ingest transaction (a group of events).",
    ["via"],
    buckets=LATENCY_BUCKETS,
)
INGEST_GROUP_SIZE = Histogram(
    "feedback_ingest_group_size",
    "Events per ingest transaction.",
    ["via"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
KAFKA_CONSUMED = Counter(
    "feedback_kafka_consumed_messages_total", "Messages read from the topic.", ["topic"]
)
KAFKA_MESSAGES = Counter(
    "feedback_kafka_messages_total",
    "Consumed messages by outcome once their offsets are committed: stored, duplicate "
    "(skipped), dead_lettered.",
    ["topic", "outcome"],
)
KAFKA_DEAD_LETTERS = Counter(
    "feedback_kafka_dead_letters_total",
    "Messages produced to the dead-letter topic, by reason.",
    ["topic", "reason"],
)
KAFKA_RETRIES = Counter(
    "feedback_kafka_batch_retries_total",
    "Batches read again after a pause, by cause (database, dead_letter_topic, offset_commit).",
    ["cause"],
)
KAFKA_LAG = Gauge(
    "feedback_kafka_consumer_lag",
    "Messages in the partition after this consumer's position (assigned partitions).",
    ["topic", "partition"],
)
TICKETS_OPENED = Counter("feedback_tickets_opened_total", "Tickets opened by rules.")
TICKETS_RESOLVED = Counter(
    "feedback_tickets_resolved_total", "Tickets moved to resolved (API or inbound status)."
)
DELIVERY_ATTEMPTS = Counter(
    "feedback_delivery_attempts_total",
    "Delivery attempts by integration and outcome (delivered, retry, dead).",
    ["integration", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "feedback_delivery_attempt_duration_seconds",
    "Duration of one delivery attempt (the request to the integration).",
    ["integration", "outcome"],
    buckets=LATENCY_BUCKETS,
)
DELIVERY_AGE = Histogram(
    "feedback_delivery_latency_seconds",
    "From the change that caused a delivery to its successful delivery.",
    ["integration"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0),
)
OUTBOX_DEPTH = Gauge(
    "feedback_outbox_deliveries",
    "Deliveries in the outbox by status (pending, delivered, dead), refreshed by dispatchers.",
    ["status"],
)
STREAM_CLIENTS = Gauge("feedback_stream_clients", "Open GET /v1/stream connections.")
STREAM_EVENTS = Counter(
    "feedback_stream_events_total",
    "Events rendered for live-stream clients of this process, by type.",
    ["type"],
)
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration until the response is complete.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)


def record_ingest(
    events: Sequence[FeedbackEventIn], outcomes: Sequence[IngestOutcome], via: IngestVia
) -> None:
    counts: Counter_[tuple[str, str]] = Counter_(
        (event.channel.value, outcome.status.value)
        for event, outcome in zip(events, outcomes, strict=True)
    )
    for (channel, status), count in counts.items():  # one label lookup per kind, not event
        INGESTED_EVENTS.labels(channel, via.value, status).inc(count)
    opened = sum(1 for outcome in outcomes if outcome.ticket_opened)
    if opened:
        TICKETS_OPENED.inc(opened)


def record_rejected(channel: str, via: IngestVia, count: int = 1) -> None:
    INGESTED_EVENTS.labels(channel, via.value, "rejected").inc(count)


def metrics_exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


# Unique, not secret: a per-process random prefix and a counter (no syscall per request).
_REQUEST_ID_PREFIX = os.urandom(4).hex()
_request_sequence = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_sequence):08x}"


_PLAIN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_CONVERTOR = re.compile(r":\w+}")  # "{feedback_id:int}" is labelled "{feedback_id}"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestTelemetryMiddleware:
    """Request id, body size limits, access log and HTTP metrics for every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        large_body_paths: dict[str, int],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_body_paths = large_body_paths
        self._series_cache: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else _new_request_id()
        token = request_id_var.set(request_id)
        status_holder = [500]
        limit = self.large_body_paths.get(scope["path"], self.max_body_bytes)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                response = problem_response(
                    413,
                    PayloadTooLarge.title,
                    f"The body may be at most {limit} bytes.",
                    PayloadTooLarge.problem_type,
                )
                await response(scope, receive, send_with_id)
                return
            await self.app(scope, _limited(receive, limit), send_with_id)
        except Exception as exc:
            # Reaches here only unhandled (a bug): log it while the request id is known;
            # the outermost error middleware then answers a bare 500 problem.
            logger.error("unhandled error", exc_info=exc, extra={"fields": {"path": scope["path"]}})
            raise
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            status = status_holder[0]
            route = self._route(scope, status)
            counter, histogram = self._series(method, route, status)
            counter.inc()
            histogram.observe(elapsed)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "request",
                    extra={
                        "fields": {
                            "method": method,
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                        }
                    },
                )
            request_id_var.reset(token)

    def _series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        """Label lookups cost microseconds each; the label sets are few (route templates),
        so their series are kept at hand."""
        key = (method, route, status)
        series = self._series_cache.get(key)
        if series is None:
            series = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_LATENCY.labels(method, route),
            )
            self._series_cache[key] = series
        return series

    @staticmethod
    def _route(scope: Scope, status: int) -> str:
        """The matched route's path template (API routes record it in the scope): raw
        paths can hold customer ids, and templates keep metric labels few. Plain routes
        (the docs pages) record nothing, have fixed paths, and are named by them when
        served; anything else unrouted is "unmatched"."""
        route = scope.get("route")
        if route is not None:
            return _CONVERTOR.sub("}", str(getattr(route, "path", "unmatched")))
        return str(scope["path"]) if status < 400 and scope["path"] in _PLAIN_PATHS else "unmatched"


def _limited(receive: Receive, limit: int) -> Receive:
    """Count streamed body bytes (chunked uploads have no Content-Length)."""
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
        return message

    return wrapped
