"""Standard Webhooks signatures (https://www.standardwebhooks.com), both directions.

Outgoing webhooks are signed with the integration's ``signing_secret``; the inbound
status webhook (``POST /v1/inbound/{name}``) is verified with its ``inbound_secret``.

Written against the standard with the standard library rather than imported from the
``standardwebhooks`` reference package: its ``verify`` has a fixed five-minute window
and no injectable clock, and malformed headers (a signature without a comma, bad
base64, a non-UTF-8 body) escape it as ValueError/binascii.Error/UnicodeDecodeError
instead of its verification error, which an endpoint facing the internet must not
turn into a 500. The tests check both implementations accept each other's signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format marker, not a secret)
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# Bounds on what is read from the headers: ample for real senders, cheap to refuse.
MAX_ID_LENGTH = 256
MAX_SIGNATURE_HEADER_LENGTH = 4096
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSignatureError(Exception):
    """The message is not proven to come from the secret's holder, or is too old/new."""


def generate_secret() -> str:
    """A new secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_...`` secret (the prefix is optional).

    Raises ValueError (without quoting the secret) for anything that is not base64."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("webhook secret must not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message: ``v1,<base64 HMAC>``."""
    digest = _digest(secret_key(secret), msg_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    # The timestamp is signed as it appears in the header, so a sender's spelling of it
    # (leading zeros, say) cannot make a valid signature fail.
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed_content, hashlib.sha256).digest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Return if ``body`` with ``headers`` carries a valid, timely signature.

    Raises InvalidSignatureError for missing headers, a timestamp that is not a number
    or is more than ``tolerance_s`` away from ``now`` (replays, clock skew), or when no
    ``v1`` signature in the space-separated list matches (compared in constant time).
    """
    # Header names are case-insensitive; a plain dict from a test or a framework may not be.
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER, "")
    timestamp_text = lowered.get(TIMESTAMP_HEADER, "")
    signatures = lowered.get(SIGNATURE_HEADER, "")
    if not (msg_id and timestamp_text and signatures):
        raise InvalidSignatureError(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    if len(msg_id) > MAX_ID_LENGTH or len(signatures) > MAX_SIGNATURE_HEADER_LENGTH:
        raise InvalidSignatureError("webhook headers are too long")
    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise InvalidSignatureError(f"{TIMESTAMP_HEADER} is not a Unix timestamp")
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise InvalidSignatureError(f"{TIMESTAMP_HEADER} is too old")
    if timestamp > current + tolerance_s:
        raise InvalidSignatureError(f"{TIMESTAMP_HEADER} is too far in the future")

    try:
        key = secret_key(secret)
    except ValueError:
        raise InvalidSignatureError("the verifying secret is not a valid webhook secret") from None
    expected = _digest(key, msg_id, timestamp_text, body)
    for candidate in signatures.split(" "):
        version, comma, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION or not comma:
            continue
        try:
            received = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, received):
            return
    raise InvalidSignatureError("no matching signature")
