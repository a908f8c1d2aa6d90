"""Field types of the integration ``config`` and ``secrets`` models, and their parsing.

Every field is bounded (URLs, names, tokens), URLs are absolute http(s) without
credentials in them, and secrets are ``SecretStr`` so that a repr or a log line shows
``**********``. Secrets models also set ``hide_input_in_errors`` so that a validation
error never quotes a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from app.integrations.base import PermanentDeliveryError
from app.schemas.common import reject_unstorable

MAX_WEBHOOK_URL_LENGTH = 2048
MAX_BASE_URL_LENGTH = 512
MAX_CREDENTIAL_LENGTH = 4096

_URL_ERROR = "must be an absolute http or https URL"


def _http_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ValueError(_URL_ERROR) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(_URL_ERROR)
    if url.userinfo:
        # Credentials belong in ``secrets`` (write-only), not in a URL that is shown.
        raise ValueError("must not contain a user name or password")
    if url.fragment:
        raise ValueError("must not contain a #fragment")
    return value


def _base_url(value: str) -> str:
    if httpx.URL(_http_url(value)).query:
        raise ValueError("must not contain a ?query")
    # Paths are appended to it: one form, without the trailing slash.
    return value.rstrip("/")


WebhookUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_WEBHOOK_URL_LENGTH),
    AfterValidator(_http_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": MAX_WEBHOOK_URL_LENGTH}),
]
"""Where webhooks are POSTed; a query string is allowed (some receivers route by it)."""

BaseUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_BASE_URL_LENGTH),
    AfterValidator(_base_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": MAX_BASE_URL_LENGTH}),
]
"""A vendor API root such as ``https://acme.zendesk.com``; stored without a trailing slash."""

ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(reject_unstorable),
]
"""A vendor's word or id: a picklist value, a pipeline or stage id."""

_CREDENTIAL_CHARS = re.compile(r"[\x21-\x7e]+")


def _printable_credential(value: SecretStr) -> SecretStr:
    # Tokens go into HTTP headers: a space or line break would be refused by httpx on
    # every attempt, so it is refused here, once, at configuration time.
    if not _CREDENTIAL_CHARS.fullmatch(value.get_secret_value()):
        raise ValueError("must be printable ASCII without spaces")
    return value


Credential = Annotated[
    SecretStr,
    Field(min_length=1, max_length=MAX_CREDENTIAL_LENGTH),
    AfterValidator(_printable_credential),
]

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def parse_settings(
    model: type[SettingsModel], values: Mapping[str, Any], *, part: str
) -> SettingsModel:
    """Validate stored ``config``/``secrets`` when an adapter is built.

    The API validates them strictly (``extra="forbid"``) on the way in; here keys the
    model does not know are left out, so that other values stored beside them (an
    ``inbound_secret``, say) do not stop deliveries. The error names fields and problems
    only, never the values."""
    known = {name: value for name, value in values.items() if name in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(segment) for segment in error['loc']) or part}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise PermanentDeliveryError(f"invalid integration {part}: {problems}") from None
