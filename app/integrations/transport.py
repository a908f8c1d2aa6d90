"""One vendor request, guarded and classified: the only way adapters touch the network.

Every request passes the SSRF guard first, never follows redirects (a redirect could
lead past the guard), and ends either in a 2xx response or in a DeliveryError whose
message names no URL, header or response body.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import orjson

from app.integrations.base import PermanentDeliveryError, RetryableDeliveryError, classify_response
from app.integrations.ssrf import ensure_public_target

JSON_CONTENT_TYPE = "application/json"


async def send_request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    allow_private: bool,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    params: Mapping[str, str | int] | None = None,
) -> httpx.Response:
    """Send ``body`` (JSON bytes, sent exactly as given) and return a 2xx response.

    Raises UnsafeTargetError for a refused target, RetryableDeliveryError for timeouts,
    network errors and retryable statuses, PermanentDeliveryError otherwise."""
    await ensure_public_target(url, allow_private=allow_private)
    request_headers = {"Accept": JSON_CONTENT_TYPE}
    if body is not None:
        request_headers["Content-Type"] = JSON_CONTENT_TYPE
    request_headers.update(headers or {})
    try:
        response = await http.request(
            method,
            url,
            content=body,
            headers=request_headers,
            params=params,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            follow_redirects=False,
        )
    # The exception's own text is left out on purpose: it can quote the URL.
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"timed out ({type(exc).__name__})") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        # The request itself is malformed (say, a header value httpx refuses): sending
        # it again cannot help.
        raise PermanentDeliveryError(f"request refused by httpx ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RetryableDeliveryError(f"network error ({type(exc).__name__})") from None
    classify_response(response)
    return response


def encode_json(document: object) -> bytes:
    """The exact bytes sent (and, for webhooks, signed)."""
    return orjson.dumps(document, default=_plain_json)


def _plain_json(value: object) -> object:
    # OutgoingEvent carries read-only Mappings; orjson serialises only real dicts.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def created_record_id(response: httpx.Response, *path: str) -> str:
    """The vendor's id of the record a 2xx response created, found at ``path``.

    A success without a readable id is permanent: the record probably exists, and
    sending the create again would make a duplicate; the delivery's ``last_error``
    tells an admin to look."""
    missing = PermanentDeliveryError(
        f"HTTP {response.status_code} response has no {'.'.join(path)}; the record may "
        "exist in the vendor system without its id being known",
        status_code=response.status_code,
    )
    try:
        value: object = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise missing from None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise missing
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise missing
    return str(value)
