"""Generic signed webhooks (kind ``webhook``).

Every event is POSTed to ``config.url`` as ``{"type", "timestamp", "data"}`` and signed
per Standard Webhooks with the service-generated ``signing_secret``:

- ``webhook-id``: the delivery id, the same on every retry, so receivers can de-duplicate;
- ``webhook-timestamp``: Unix seconds of this attempt (receivers refuse old ones);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

The body is serialised once and those exact bytes are both signed and sent. Any 2xx
answer is success; the receiver's body is ignored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from secrets import token_hex
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

from app.integrations import signing
from app.integrations.base import DeliveryResult, OutgoingEvent
from app.integrations.fields import WebhookUrl, parse_settings
from app.integrations.transport import encode_json, send_request

TEST_EVENT_TYPE = "integration.test"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://hooks.example.com/feedback"}]},
    )

    url: WebhookUrl


class WebhookSecrets(BaseModel):
    """Nothing to supply: the service generates ``signing_secret`` and shows it once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})


def _usable_signing_secret(value: SecretStr) -> SecretStr:
    signing.secret_key(value.get_secret_value())  # raises ValueError, quoting nothing
    return value


class StoredWebhookSecrets(BaseModel):
    """The secrets an adapter is built from: the generated ``signing_secret``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    signing_secret: Annotated[SecretStr, AfterValidator(_usable_signing_secret)]


def rfc3339(moment: datetime) -> str:
    """UTC with a ``Z``, as the REST API writes timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WebhookAdapter:
    url: str
    signing_secret: SecretStr
    allow_private: bool = False

    async def send(self, http: httpx.AsyncClient, event: OutgoingEvent) -> DeliveryResult:
        body = encode_json(
            {"type": event.event_type, "timestamp": rfc3339(event.occurred_at), "data": event.data}
        )
        response = await self._post(http, event.delivery_id, body)
        return DeliveryResult(status_code=response.status_code)

    async def check(self, http: httpx.AsyncClient) -> DeliveryResult:
        body = encode_json(
            {"type": TEST_EVENT_TYPE, "timestamp": rfc3339(datetime.now(UTC)), "data": {}}
        )
        response = await self._post(http, f"msg_test_{token_hex(12)}", body)
        return DeliveryResult(status_code=response.status_code)

    async def _post(self, http: httpx.AsyncClient, msg_id: str, body: bytes) -> httpx.Response:
        timestamp = int(time.time())
        signature = signing.sign(self.signing_secret.get_secret_value(), msg_id, timestamp, body)
        headers = {
            signing.ID_HEADER: msg_id,
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signature,
        }
        return await send_request(
            http, "POST", self.url, allow_private=self.allow_private, body=body, headers=headers
        )


def build_webhook_adapter(
    config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
) -> WebhookAdapter:
    settings = parse_settings(WebhookConfig, config, part="config")
    stored = parse_settings(StoredWebhookSecrets, secrets, part="secrets")
    return WebhookAdapter(
        url=settings.url, signing_secret=stored.signing_secret, allow_private=allow_private
    )
