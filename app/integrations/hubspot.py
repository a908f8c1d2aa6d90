"""HubSpot Service Hub (kind ``hubspot``): one HubSpot ticket per feedback ticket.

- create: ``POST {base_url}/crm/v3/objects/tickets`` with ``{"properties": {subject,
  content, hs_pipeline, hs_pipeline_stage, hs_ticket_priority}}``; the id is ``id``.
- update: ``PATCH {base_url}/crm/v3/objects/tickets/{id}`` with the same properties
  (``content`` lists the feedback, so new feedback shows). Without a known HubSpot id
  the ticket is created instead.
- auth: ``Authorization: Bearer {access_token}`` (a private app's access token with the
  ``tickets`` scope).
- check: ``GET {base_url}/crm/v3/objects/tickets?limit=1`` (reads, creates nothing).

Words: ``hs_ticket_priority`` takes LOW, MEDIUM, HIGH (normal -> MEDIUM, urgent -> HIGH).
Pipelines and their stages are ids that differ per portal, so both are configurable;
the defaults are those of HubSpot's default support pipeline "0": stage "1" New,
"2" Waiting on contact, "3" Waiting on us, "4" Closed. We map open -> 1,
in_progress -> 3, waiting -> 2 (we wait for the customer), resolved and closed -> 4.
Links to records need the portal (hub) id, so ``external_url`` is set only when
``portal_id`` is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.integrations.base import DeliveryResult, OutgoingEvent
from app.integrations.fields import BaseUrl, Credential, ShortText, parse_settings
from app.integrations.ticket_content import (
    TicketContent,
    TicketPriority,
    TicketStatus,
    read_ticket_event,
)
from app.integrations.transport import created_record_id, encode_json, send_request

PRIORITY_WORDS: Mapping[TicketPriority, str] = {
    "low": "LOW",
    "normal": "MEDIUM",
    "high": "HIGH",
    "urgent": "HIGH",
}
DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_APP_URL = "https://app.hubspot.com"
TICKET_OBJECT_TYPE_ID = "0-5"  # HubSpot's object type id for tickets, used in record links


class TicketStageIds(BaseModel):
    """The pipeline stage id used for each of our ticket statuses."""

    model_config = ConfigDict(extra="forbid")

    open: ShortText = "1"
    in_progress: ShortText = "3"
    waiting: ShortText = "2"
    resolved: ShortText = "4"
    closed: ShortText = "4"

    def stage_for(self, status: TicketStatus) -> str:
        stages: Mapping[TicketStatus, str] = {
            "open": self.open,
            "in_progress": self.in_progress,
            "waiting": self.waiting,
            "resolved": self.resolved,
            "closed": self.closed,
        }
        return stages[status]


class HubSpotConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"base_url": DEFAULT_BASE_URL, "pipeline_id": "0", "portal_id": "1234567"}]
        },
    )

    base_url: BaseUrl = DEFAULT_BASE_URL
    pipeline_id: ShortText = Field(default="0", description="hs_pipeline of created tickets")
    stage_ids: TicketStageIds = Field(default_factory=TicketStageIds)
    portal_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")] | None = Field(
        default=None, description="The HubSpot account (hub) id; enables links to tickets."
    )
    app_url: BaseUrl = Field(
        default=DEFAULT_APP_URL, description="Where people open HubSpot (EU: app-eu1...)."
    )


class HubSpotSecrets(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"access_token": "pat-na1-00000000-0000-0000"}]},
    )

    access_token: Credential


@dataclass(frozen=True, slots=True)
class HubSpotAdapter:
    config: HubSpotConfig
    secrets: HubSpotSecrets
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
            headers=self._auth_headers(),
            params={"limit": 1},
        )
        return DeliveryResult(status_code=response.status_code)

    async def _create(self, http: httpx.AsyncClient, content: TicketContent) -> DeliveryResult:
        response = await send_request(
            http,
            "POST",
            self._tickets_url(),
            allow_private=self.allow_private,
            body=encode_json({"properties": self._properties(content)}),
            headers=self._auth_headers(),
        )
        hubspot_id = created_record_id(response, "id")
        return DeliveryResult(response.status_code, hubspot_id, self._record_url(hubspot_id))

    async def _update(
        self, http: httpx.AsyncClient, content: TicketContent, hubspot_id: str
    ) -> DeliveryResult:
        response = await send_request(
            http,
            "PATCH",
            self._tickets_url(hubspot_id),
            allow_private=self.allow_private,
            body=encode_json({"properties": self._properties(content)}),
            headers=self._auth_headers(),
        )
        return DeliveryResult(response.status_code, hubspot_id, self._record_url(hubspot_id))

    def _properties(self, content: TicketContent) -> dict[str, str]:
        ticket = content.ticket
        return {
            "subject": content.subject(),
            "content": content.description(),
            "hs_pipeline": self.config.pipeline_id,
            "hs_pipeline_stage": self.config.stage_ids.stage_for(ticket.status),
            "hs_ticket_priority": PRIORITY_WORDS[ticket.priority],
        }

    def _tickets_url(self, hubspot_id: str | None = None) -> str:
        url = f"{self.config.base_url}/crm/v3/objects/tickets"
        return url if hubspot_id is None else f"{url}/{quote(hubspot_id, safe='')}"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.access_token.get_secret_value()}"}

    def _record_url(self, hubspot_id: str) -> str | None:
        if self.config.portal_id is None:
            return None
        return (
            f"{self.config.app_url}/contacts/{self.config.portal_id}/record/"
            f"{TICKET_OBJECT_TYPE_ID}/{quote(hubspot_id, safe='')}"
        )


def build_hubspot_adapter(
    config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
) -> HubSpotAdapter:
    return HubSpotAdapter(
        config=parse_settings(HubSpotConfig, config, part="config"),
        secrets=parse_settings(HubSpotSecrets, secrets, part="secrets"),
        allow_private=allow_private,
    )
