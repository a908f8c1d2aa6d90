"""Reusable field types for the API contract."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import email_validator
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

# PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8:
# both are rejected at the edge as validation errors instead of failing in the database.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def reject_unstorable(value: str) -> str:
    # Surrogates are never ASCII: plain ASCII text needs only the (fast) NUL test.
    if "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value)):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


# RFC 3339 date-time (a missing offset is left to AwareDatetime, whose error says so).
# Pydantic alone would also take Unix numbers and
# date-only strings; the contract says RFC 3339 and nothing else.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$"
)


def _require_rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "datetime_format",
            "must be an RFC 3339 date-time with an offset, e.g. 2026-11-20T10:15:00+01:00",
        )
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise ValueError("is outside the supported date range") from None


Rfc3339Datetime = Annotated[
    AwareDatetime, BeforeValidator(_require_rfc3339), AfterValidator(_to_utc)
]

Text64 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(reject_unstorable),
]
Text128 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(reject_unstorable),
]
Text200 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(reject_unstorable),
]
LanguageTag = Annotated[
    str,
    StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
]


# Email addresses. email-validator (the standard, behind pydantic's EmailStr) costs
# ~50 us per address, most of an event's validation. Plain ASCII addresses, nearly all
# of them, are checked here against the RFC 5322 dot-atom form with the same limits and
# the same domain normalisation; anything else (quoted or international addresses)
# still goes to email-validator.
_DOT_ATOM_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]$"
)
# Domains email-validator refuses by default (RFC 6761 special-use names).
_SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _normalise_email(value: str) -> str:
    if len(value) <= 254 and _DOT_ATOM_EMAIL.fullmatch(value):
        local, _, domain = value.rpartition("@")
        domain = domain.lower()
        last_label = domain.rsplit(".", 1)[-1]
        if len(local) <= 64 and last_label not in _SPECIAL_USE_DOMAINS:
            return f"{local}@{domain}"
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError:
        # The library's message can quote parts of the address: keep it out of responses.
        raise PydanticCustomError("value_error", "value is not a valid email address") from None


EmailAddress = Annotated[
    str,
    StringConstraints(max_length=320),
    AfterValidator(_normalise_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
