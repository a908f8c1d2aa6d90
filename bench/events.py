"""Realistic feedback events as pre-encoded HTTP requests.

Encoding JSON per request would cost the load generator more CPU than the server spends
on some requests, so each event is encoded once with a marker where its sequence number
goes; a request is then a few byte joins. The sequence number is zero-padded to a fixed
width, so every request of one kind has the same Content-Length and one header block.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.schemas.feedback import EXAMPLE_EVENT

SEQ_MARK = "{seq}"
SEQ_DIGITS = 10
BATCH_EVENTS = 500  # events per batch request, and per COPY call of the baseline


def seq_text(seq: int) -> str:
    return str(seq).zfill(SEQ_DIGITS)


def event_id(id_prefix: str, seq: str) -> str:
    return f"{id_prefix}-{seq}"


def customer_id(id_prefix: str, seq: str) -> str:
    return f"C-{id_prefix}-{seq}"


def event_document(id_prefix: str, occurred_at: datetime) -> dict[str, Any]:
    """The spec's example event (every field a channel system sends), with its own ids.

    Every event gets its own customer id as well as its own event id: with one shared
    customer, concurrent transactions would queue on that customer's row lock and the
    benchmark would measure lock waits instead of ingest cost.
    """
    document = copy.deepcopy(EXAMPLE_EVENT)
    document["event_id"] = event_id(id_prefix, SEQ_MARK)
    document["occurred_at"] = occurred_at.isoformat()
    document["customer"]["id"] = customer_id(id_prefix, SEQ_MARK)
    document["tags"] = ["queue", "staff"]
    document["metadata"] = {"receipt": "R-88812", "register": 4}
    # The dearest text analysis ingest does: no language given, so it is detected, and
    # English, so it gets a sentiment score too (German would get none).
    del document["language"]
    document["text"] = DETRACTOR_TEXT
    return document


DETRACTOR_TEXT = "The queue took twenty minutes and nobody helped us. Awful!"
PROMOTER_TEXT = "Quick and friendly staff, everything was great. Thank you!"


def promoter_document(id_prefix: str, occurred_at: datetime) -> dict[str, Any]:
    """The same event from a happy customer: no rule opens a ticket for it. Encoded, it
    is exactly as long as the detractor's, so requests keep one Content-Length."""
    document = event_document(id_prefix, occurred_at)
    document["scores"] = [
        {"metric": "nps", "value": 9},
        {"metric": "csat", "value": 5, "scale": 5},
    ]
    assert len(PROMOTER_TEXT) == len(document["text"])
    document["text"] = PROMOTER_TEXT
    return document


class MixedTemplate:
    """Detractors (the spec's example, NPS 3: a ticket each) for ``detractor_share`` of
    the sequence numbers, evenly spread; promoters (no ticket) for the rest."""

    def __init__(self, id_prefix: str, detractor_share: float) -> None:
        self._detractor = EventTemplate(id_prefix)
        self._promoter = EventTemplate(id_prefix, promoter=True)
        self._per_hundred = round(detractor_share * 100)

    def render(self, seq: int) -> bytes:
        template = self._detractor if seq % 100 < self._per_hundred else self._promoter
        return template.render(seq)


class EventTemplate:
    """One encoded event whose ids are filled in per sequence number. The spec's example
    is a detractor (NPS 3): the default rules open a ticket for each of these."""

    def __init__(self, id_prefix: str, *, promoter: bool = False) -> None:
        # A minute ago: the service rejects events more than 5 minutes in the future.
        occurred_at = datetime.now(UTC) - timedelta(minutes=1)
        document = (promoter_document if promoter else event_document)(id_prefix, occurred_at)
        encoded = orjson.dumps(document)
        self._parts = encoded.split(SEQ_MARK.encode())

    def render(self, seq: int) -> bytes:
        return seq_text(seq).encode().join(self._parts)


SINGLE_PATH = "/v1/feedback"
BATCH_PATH = "/v1/feedback/batch"


class RequestFactory:
    """POST requests for one endpoint, each with events never sent before.

    ``events_per_request`` 1 sends a bare event to SINGLE_PATH; more sends a
    ``{"events": [...]}`` envelope to BATCH_PATH.
    """

    def __init__(
        self,
        *,
        port: int,
        token: str | None,
        events_per_request: int,
        id_prefix: str,
        detractor_share: float = 1.0,
    ) -> None:
        self._template = MixedTemplate(id_prefix, detractor_share)
        self._events_per_request = events_per_request
        self._next_seq = 0
        content_length = len(self._body(0))
        path = SINGLE_PATH if events_per_request == 1 else BATCH_PATH
        headers = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            f"Content-Length: {content_length}",
        ]
        if token is not None:
            headers.append(f"Authorization: Bearer {token}")
        self._head = ("\r\n".join(headers) + "\r\n\r\n").encode()

    def next_request(self) -> bytes:
        body = self._body(self._next_seq)
        self._next_seq += self._events_per_request
        return self._head + body

    def _body(self, first_seq: int) -> bytes:
        if self._events_per_request == 1:
            return self._template.render(first_seq)
        events = b",".join(
            self._template.render(seq)
            for seq in range(first_seq, first_seq + self._events_per_request)
        )
        return b'{"events":[' + events + b"]}"
