"""The contract between the outbox dispatcher and the vendor adapters.

An adapter turns one :class:`OutgoingEvent` into HTTP requests on the caller's shared
``httpx.AsyncClient`` (the caller owns it and its timeouts) and either returns a
:class:`DeliveryResult` or raises a :class:`DeliveryError`:

- :class:`RetryableDeliveryError` when trying again later may succeed: network errors,
  timeouts, 408, 425, 429 and 5xx (with ``Retry-After`` when the vendor sent one);
- :class:`PermanentDeliveryError` when it cannot: any other status, a refused target,
  an unusable configuration.

Error messages are shown in ``GET /v1/deliveries`` (``last_error``), so they hold status
codes, reason phrases and exception class names only: never secrets, auth headers, URLs
(a query string may carry a token) or vendor response bodies (they may echo customer data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx


class EventType(StrEnum):
    FEEDBACK_RECEIVED = "feedback.received"
    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    TICKET_RESOLVED = "ticket.resolved"


ALL_EVENT_TYPES = frozenset(EventType)
TICKET_EVENT_TYPES = frozenset(
    {EventType.TICKET_CREATED, EventType.TICKET_UPDATED, EventType.TICKET_RESOLVED}
)

# Statuses where a later attempt may succeed (RFC 9110: 408 Request Timeout,
# RFC 8470: 425 Too Early, RFC 6585: 429 Too Many Requests); every 5xx is added below.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A delivery failed; ``str(error)`` is safe to store and show."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class RetryableDeliveryError(DeliveryError):
    """Try again later; ``retry_after_s`` is the vendor's ``Retry-After``, if any."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: the delivery is dead until someone changes something."""


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One delivery as the dispatcher hands it to an adapter.

    ``data`` is the REST JSON of the ticket (ticket events) or of the feedback event
    (``feedback.received``); ``feedback`` is, for ticket events, the REST JSON of the
    feedback events that explain the ticket, newest last (may be empty).
    ``external_id`` is the id this integration's vendor gave the ticket, when known.
    """

    delivery_id: str  # stable across retries: the webhook-id, and an idempotency key
    event_type: str
    occurred_at: datetime  # aware, UTC
    data: Mapping[str, Any]
    feedback: Sequence[Mapping[str, Any]] = ()
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status_code: int
    external_id: str | None = None  # the vendor's id of the record created or updated
    external_url: str | None = None  # where a person opens that record, when derivable


class IntegrationAdapter(Protocol):
    async def send(self, http: httpx.AsyncClient, event: OutgoingEvent) -> DeliveryResult:
        """Deliver one event; raises RetryableDeliveryError or PermanentDeliveryError."""
        ...

    async def check(self, http: httpx.AsyncClient) -> DeliveryResult:
        """Prove the credentials and the connection work without creating anything in a
        vendor system (a webhook receives a signed ``integration.test`` message)."""
        ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date
    (RFC 9110 section 10.2.3), never negative; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    remaining = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, remaining)


def classify_response(response: httpx.Response) -> None:
    """Return for 2xx; raise the matching DeliveryError for anything else.

    Redirects are not followed (a redirect could lead past the SSRF guard), so a 3xx is
    permanent like any other unexpected status."""
    status = response.status_code
    if 200 <= status < 300:
        return
    # The standard phrase, not the one on the wire: that text is the vendor's to choose.
    message = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        raise RetryableDeliveryError(
            message,
            status_code=status,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    raise PermanentDeliveryError(message, status_code=status)
