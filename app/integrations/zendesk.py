"""Zendesk Support (kind ``zendesk``): one Zendesk ticket per feedback ticket.

- create: ``POST {base_url}/api/v2/tickets`` with ``{"ticket": {subject, comment: {body},
  priority, requester, tags, external_id}}``; the id is ``ticket.id`` of the answer.
  ``Idempotency-Key`` is the delivery id, so a retry after a timeout does not create a
  second ticket (Zendesk keeps keys for about two hours).
- update (``ticket.updated``/``ticket.resolved``): ``PUT {base_url}/api/v2/tickets/{id}``
  with status, priority and a comment describing the change and the newest feedback.
  Without a known Zendesk id the ticket is created instead.
- auth: HTTP Basic ``{email}/token:{api_token}`` (an agent's API token).
- check: ``GET {base_url}/api/v2/users/me`` (creates nothing).

Words: our priorities are Zendesk's (low, normal, high, urgent); statuses map
open/in_progress -> open, waiting -> pending, resolved -> solved, closed -> closed; a
create leaves out the status of a ticket that is still open (Zendesk's "new").
The requester is the customer when their email is known (named by their name, else
their email); otherwise Zendesk makes the API user the requester. Comments are private
(``public: false``): they hold internal notes and scores, and a public comment would
be emailed to the customer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from app.integrations.base import DeliveryResult, OutgoingEvent
from app.integrations.fields import BaseUrl, Credential, parse_settings
from app.integrations.ticket_content import (
    TicketContent,
    TicketPriority,
    TicketStatus,
    read_ticket_event,
)
from app.integrations.transport import created_record_id, encode_json, send_request
from app.schemas.common import EmailAddress

STATUS_WORDS: Mapping[TicketStatus, str] = {
    "open": "open",
    "in_progress": "open",
    "waiting": "pending",
    "resolved": "solved",
    "closed": "closed",
}
PRIORITY_WORDS: Mapping[TicketPriority, str] = {
    "low": "low",
    "normal": "normal",
    "high": "high",
    "urgent": "urgent",
}
SERVICE_TAG = "feedback_loop"
MAX_TAGS = 20
_TAG_UNSAFE = re.compile(r"[^a-z0-9_\-:/.]+")


class ZendeskConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"base_url": "https://acme.zendesk.com", "email": "cx-bot@acme.example"}]
        },
    )

    base_url: BaseUrl
    email: EmailAddress  # the agent whose API token is used


class ZendeskSecrets(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"api_token": "zendesk-api-token"}]},
    )

    api_token: Credential


def zendesk_tags(content: TicketContent) -> list[str]:
    """Zendesk tags are lower-case words without spaces: ours, the channel, and the
    feedback's own tags, made safe and de-duplicated."""
    raw = [SERVICE_TAG]
    if content.ticket.channel:
        raw.append(f"channel_{content.ticket.channel}")
    for feedback in content.feedback:
        raw.extend(feedback.tags)
    tags: list[str] = []
    for tag in raw:
        safe = _TAG_UNSAFE.sub("_", tag.lower()).strip("_")[:80]
        if safe and safe not in tags:
            tags.append(safe)
    return tags[:MAX_TAGS]


@dataclass(frozen=True, slots=True)
class ZendeskAdapter:
    config: ZendeskConfig
    secrets: ZendeskSecrets
    allow_private: bool = False

    async def send(self, http: httpx.AsyncClient, event: OutgoingEvent) -> DeliveryResult:
        content = read_ticket_event(event)
        if event.external_id is None:
            return await self._create(http, event, content)
        return await self._update(http, content, event.external_id)

    async def check(self, http: httpx.AsyncClient) -> DeliveryResult:
        response = await send_request(
            http,
            "GET",
            f"{self.config.base_url}/api/v2/users/me",
            allow_private=self.allow_private,
            auth=self._auth(),
        )
        return DeliveryResult(status_code=response.status_code)

    async def _create(
        self, http: httpx.AsyncClient, event: OutgoingEvent, content: TicketContent
    ) -> DeliveryResult:
        ticket = content.ticket
        fields: dict[str, Any] = {
            "subject": content.subject(),
            "comment": {"body": content.description(), "public": False},
            "priority": PRIORITY_WORDS[ticket.priority],
            "tags": zendesk_tags(content),
            "external_id": ticket.id,
        }
        if ticket.status != "open":
            # A fresh ticket stays Zendesk's "new" (what its unassigned views look for);
            # one created late, after it moved on here, says where it is now.
            fields["status"] = STATUS_WORDS[ticket.status]
        customer = ticket.customer
        if customer is not None and customer.email:
            fields["requester"] = {"name": customer.name or customer.email, "email": customer.email}
        response = await send_request(
            http,
            "POST",
            f"{self.config.base_url}/api/v2/tickets",
            allow_private=self.allow_private,
            body=encode_json({"ticket": fields}),
            headers={"Idempotency-Key": event.delivery_id},
            auth=self._auth(),
        )
        zendesk_id = created_record_id(response, "ticket", "id")
        return DeliveryResult(response.status_code, zendesk_id, self._agent_url(zendesk_id))

    async def _update(
        self, http: httpx.AsyncClient, content: TicketContent, zendesk_id: str
    ) -> DeliveryResult:
        ticket = content.ticket
        fields = {
            "status": STATUS_WORDS[ticket.status],
            "priority": PRIORITY_WORDS[ticket.priority],
            "comment": {"body": content.update_comment(), "public": False},
        }
        response = await send_request(
            http,
            "PUT",
            f"{self.config.base_url}/api/v2/tickets/{quote(zendesk_id, safe='')}",
            allow_private=self.allow_private,
            body=encode_json({"ticket": fields}),
            auth=self._auth(),
        )
        return DeliveryResult(response.status_code, zendesk_id, self._agent_url(zendesk_id))

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(
            f"{self.config.email}/token", self.secrets.api_token.get_secret_value()
        )

    def _agent_url(self, zendesk_id: str) -> str:
        return f"{self.config.base_url}/agent/tickets/{quote(zendesk_id, safe='')}"


def build_zendesk_adapter(
    config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
) -> ZendeskAdapter:
    return ZendeskAdapter(
        config=parse_settings(ZendeskConfig, config, part="config"),
        secrets=parse_settings(ZendeskSecrets, secrets, part="secrets"),
        allow_private=allow_private,
    )
