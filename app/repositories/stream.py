"""Live-stream notifications: what a transaction changed, announced at its commit.

NOTIFY is transactional: replicas hear of an event only once it is committed, and
never of one rolled back. A notification carries ids only (PostgreSQL caps a payload
at 8,000 bytes); each listening replica loads the rows once for all its streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import orjson

from app.db import DriverConnection

STREAM_CHANNEL = "feedback_stream"
# 300 ids of up to 19 digits, or 300 [id, type] pairs, stay well under 8,000 bytes.
IDS_PER_NOTIFICATION = 300

T = TypeVar("T")


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [
        items[start : start + IDS_PER_NOTIFICATION]
        for start in range(0, len(items), IDS_PER_NOTIFICATION)
    ]


async def announce(
    connection: DriverConnection,
    feedback_ids: Sequence[int],
    ticket_events: Sequence[tuple[int, str]],
) -> None:
    """Announce stored feedback (``{"f": [id, ...]}``) and ticket events
    (``{"t": [[id, type], ...]}``), in that order, at commit."""
    payloads = [orjson.dumps({"f": chunk}).decode() for chunk in _chunks(feedback_ids)]
    payloads += [orjson.dumps({"t": chunk}).decode() for chunk in _chunks(ticket_events)]
    if payloads:
        await connection.execute(
            # unnest yields in array order, and notifications arrive in sending order.
            "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
            STREAM_CHANNEL,
            payloads,
        )
