"""Freshdesk (kind ``freshdesk``): one Freshdesk ticket per feedback ticket.

- create: ``POST {base_url}/api/v2/tickets`` with ``subject, description`` (HTML),
  ``priority, status`` and the requester; the id is ``id`` of the answer.
- update: ``PUT {base_url}/api/v2/tickets/{id}`` with subject, description (it lists
  the feedback, so new feedback shows), priority and status. Without a known Freshdesk
  id the ticket is created instead.
- auth: HTTP Basic ``{api_key}:X`` (Freshdesk's convention: the key as user name, any
  password).
- check: ``GET {base_url}/api/v2/tickets?per_page=1`` (reads, creates nothing).

Words: priority 1 low, 2 medium (our normal), 3 high, 4 urgent; status 2 open (also
in_progress), 3 pending (waiting), 4 resolved, 5 closed.

The requester: Freshdesk refuses a ticket without one (an email, a phone with a name,
or an existing contact). We send the customer's email when known; else their phone,
named by their name or, lacking one, by the phone number itself; else
``fallback_requester_email`` when configured (a team address, say: the ticket then
shows that no customer contact is known). With none of these, the delivery fails
permanently with a message saying so, rather than inventing a contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from app.integrations.base import DeliveryResult, OutgoingEvent, PermanentDeliveryError
from app.integrations.fields import BaseUrl, Credential, parse_settings
from app.integrations.ticket_content import (
    TicketContent,
    TicketPriority,
    TicketStatus,
    read_ticket_event,
)
from app.integrations.transport import created_record_id, encode_json, send_request
from app.schemas.common import EmailAddress

PRIORITY_CODES: Mapping[TicketPriority, int] = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
STATUS_CODES: Mapping[TicketStatus, int] = {
    "open": 2,
    "in_progress": 2,
    "waiting": 3,
    "resolved": 4,
    "closed": 5,
}
# Freshdesk's basic auth takes the API key as the user name; the password is ignored.
UNUSED_PASSWORD = "X"  # noqa: S105 (Freshdesk ignores it)


class FreshdeskConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "base_url": "https://acme.freshdesk.com",
                    "fallback_requester_email": "cx-team@acme.example",
                }
            ]
        },
    )

    base_url: BaseUrl
    fallback_requester_email: EmailAddress | None = Field(
        default=None,
        description="Requester of tickets whose customer has no email or phone. Unset: "
        "such tickets are not delivered (Freshdesk needs a requester).",
    )


class FreshdeskSecrets(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"api_key": "freshdesk-api-key"}]},
    )

    api_key: Credential


@dataclass(frozen=True, slots=True)
class FreshdeskAdapter:
    config: FreshdeskConfig
    secrets: FreshdeskSecrets
    allow_private: bool = False

    async def send(self, http: httpx.AsyncClient, event: OutgoingEvent) -> DeliveryResult:
        content = read_ticket_event(event)
        if event.external_id is None:
            return await self._create(http, content)
        return await self._update(http, content, event.external_id)

    async def check(self, http: httpx.AsyncClient) -> DeliveryResult:
        response = await send_request(
            http,
            "GET",
            self._tickets_url(),
            allow_private=self.allow_private,
            auth=self._auth(),
            params={"per_page": 1},
        )
        return DeliveryResult(status_code=response.status_code)

    async def _create(self, http: httpx.AsyncClient, content: TicketContent) -> DeliveryResult:
        fields = self._ticket_fields(content) | self._requester(content)
        response = await send_request(
            http,
            "POST",
            self._tickets_url(),
            allow_private=self.allow_private,
            body=encode_json(fields),
            auth=self._auth(),
        )
        freshdesk_id = created_record_id(response, "id")
        return DeliveryResult(response.status_code, freshdesk_id, self._agent_url(freshdesk_id))

    async def _update(
        self, http: httpx.AsyncClient, content: TicketContent, freshdesk_id: str
    ) -> DeliveryResult:
        response = await send_request(
            http,
            "PUT",
            self._tickets_url(freshdesk_id),
            allow_private=self.allow_private,
            body=encode_json(self._ticket_fields(content)),
            auth=self._auth(),
        )
        return DeliveryResult(response.status_code, freshdesk_id, self._agent_url(freshdesk_id))

    def _ticket_fields(self, content: TicketContent) -> dict[str, Any]:
        ticket = content.ticket
        return {
            "subject": content.subject(),
            "description": content.description_html(),
            "priority": PRIORITY_CODES[ticket.priority],
            "status": STATUS_CODES[ticket.status],
        }

    def _requester(self, content: TicketContent) -> dict[str, str]:
        customer = content.ticket.customer
        if customer is not None and customer.email:
            return {"email": customer.email}
        if customer is not None and customer.phone:
            return {"phone": customer.phone, "name": customer.name or customer.phone}
        if self.config.fallback_requester_email is not None:
            return {"email": self.config.fallback_requester_email}
        raise PermanentDeliveryError(
            "the customer has no email or phone and no fallback_requester_email is "
            "configured; Freshdesk needs a requester"
        )

    def _tickets_url(self, freshdesk_id: str | None = None) -> str:
        url = f"{self.config.base_url}/api/v2/tickets"
        return url if freshdesk_id is None else f"{url}/{quote(freshdesk_id, safe='')}"

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.secrets.api_key.get_secret_value(), UNUSED_PASSWORD)

    def _agent_url(self, freshdesk_id: str) -> str:
        return f"{self.config.base_url}/a/tickets/{quote(freshdesk_id, safe='')}"


def build_freshdesk_adapter(
    config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
) -> FreshdeskAdapter:
    return FreshdeskAdapter(
        config=parse_settings(FreshdeskConfig, config, part="config"),
        secrets=parse_settings(FreshdeskSecrets, secrets, part="secrets"),
        allow_private=allow_private,
    )
