"""Opaque keyset cursors: base64url of a small JSON array of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import InvalidInput

MAX_CURSOR_CHARS = 512


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    invalid = cursor_error()
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid from None
    if not isinstance(decoded, list):
        raise invalid
    return decoded


def cursor_error() -> InvalidInput:
    return InvalidInput(
        "The cursor is not valid; use next_cursor from a previous page.",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
    )


def decode_time_position(cursor: str) -> tuple[datetime, int]:
    """A cursor of ``encode_cursor(timestamp.isoformat(), row_id)``: the last row's
    (timestamp, id) of a list ordered newest first."""
    values = decode_cursor(cursor)
    try:
        moment = datetime.fromisoformat(values[0])
        row_id = int(values[1])
        if moment.tzinfo is None or len(values) != 2 or not 0 <= row_id < 2**63:
            raise ValueError("not a cursor of ours")
        moment = moment.astimezone(UTC)
    except (IndexError, TypeError, ValueError, OverflowError):
        raise cursor_error() from None
    return moment, row_id
