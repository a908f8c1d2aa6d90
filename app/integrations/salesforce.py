"""Salesforce Service Cloud (kind ``salesforce``): one Case per feedback ticket.

- create: ``POST {instance_url}/services/data/v{api_version}/sobjects/Case`` with
  ``Subject, Description, Priority, Origin, Status`` and, when known, ``SuppliedEmail``
  and ``SuppliedName`` (Web-to-Case contact fields); the id is ``id`` of the answer.
- update: ``PATCH …/sobjects/Case/{id}`` (answers 204) with the same Subject,
  Description (it lists the feedback, so new feedback shows), Priority and Status.
  Without a known Case id the Case is created instead.
- auth: ``Authorization: Bearer {access_token}`` (an OAuth access token of a connected
  app; refreshing it is the operator's job: an expired token is a permanent 401).
- check: ``GET …/sobjects/Case`` (the Case object's basic information): it proves the
  token, the API version and access to Cases. ``GET …/limits`` was considered and not
  used: it needs the "View Setup and Configuration" permission, which an integration
  user created just for this usually does not have.

Words: Priority is Salesforce's default picklist (Low, Medium, High; urgent -> High).
Status and Origin are org-specific picklists, so they are configurable; the defaults
are Salesforce's default values: open -> New, in_progress and waiting -> Working
(the default picklist has no waiting state), resolved and closed -> Closed; Origin Web.
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
    "low": "Low",
    "normal": "Medium",
    "high": "High",
    "urgent": "High",
}
DEFAULT_API_VERSION = "62.0"
MAX_SUPPLIED_FIELD_CHARS = 80  # SuppliedEmail and SuppliedName are 80-character fields


class CaseStatusValues(BaseModel):
    """The Case ``Status`` picklist value used for each of our ticket statuses."""

    model_config = ConfigDict(extra="forbid")

    open: ShortText = "New"
    in_progress: ShortText = "Working"
    waiting: ShortText = "Working"
    resolved: ShortText = "Closed"
    closed: ShortText = "Closed"

    def value_for(self, status: TicketStatus) -> str:
        values: Mapping[TicketStatus, str] = {
            "open": self.open,
            "in_progress": self.in_progress,
            "waiting": self.waiting,
            "resolved": self.resolved,
            "closed": self.closed,
        }
        return values[status]


class SalesforceConfig(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"instance_url": "https://acme.my.salesforce.com", "api_version": "62.0"}]
        },
    )

    instance_url: BaseUrl
    api_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{2,3}\.0$")] = Field(
        default=DEFAULT_API_VERSION, description="REST API version, e.g. 62.0"
    )
    origin: ShortText = Field(default="Web", description="Case Origin picklist value")
    status_values: CaseStatusValues = Field(default_factory=CaseStatusValues)


class SalesforceSecrets(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"access_token": "00D...salesforce-access-token"}]},
    )

    access_token: Credential


@dataclass(frozen=True, slots=True)
class SalesforceAdapter:
    config: SalesforceConfig
    secrets: SalesforceSecrets
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
            self._case_url(),
            allow_private=self.allow_private,
            headers=self._auth_headers(),
        )
        return DeliveryResult(status_code=response.status_code)

    async def _create(self, http: httpx.AsyncClient, content: TicketContent) -> DeliveryResult:
        fields = self._case_fields(content)
        fields["Origin"] = self.config.origin
        customer = content.ticket.customer
        if customer is not None:
            # Longer values would make Salesforce refuse the whole Case (STRING_TOO_LONG).
            if customer.email and len(customer.email) <= MAX_SUPPLIED_FIELD_CHARS:
                fields["SuppliedEmail"] = customer.email
            if customer.name:
                fields["SuppliedName"] = customer.name[:MAX_SUPPLIED_FIELD_CHARS]
        response = await send_request(
            http,
            "POST",
            self._case_url(),
            allow_private=self.allow_private,
            body=encode_json(fields),
            headers=self._auth_headers(),
        )
        case_id = created_record_id(response, "id")
        return DeliveryResult(response.status_code, case_id, self._lightning_url(case_id))

    async def _update(
        self, http: httpx.AsyncClient, content: TicketContent, case_id: str
    ) -> DeliveryResult:
        response = await send_request(
            http,
            "PATCH",
            self._case_url(case_id),
            allow_private=self.allow_private,
            body=encode_json(self._case_fields(content)),
            headers=self._auth_headers(),
        )
        return DeliveryResult(response.status_code, case_id, self._lightning_url(case_id))

    def _case_fields(self, content: TicketContent) -> dict[str, Any]:
        ticket = content.ticket
        return {
            "Subject": content.subject(),
            "Description": content.description(),
            "Priority": PRIORITY_WORDS[ticket.priority],
            "Status": self.config.status_values.value_for(ticket.status),
        }

    def _case_url(self, case_id: str | None = None) -> str:
        url = f"{self.config.instance_url}/services/data/v{self.config.api_version}/sobjects/Case"
        return url if case_id is None else f"{url}/{quote(case_id, safe='')}"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.access_token.get_secret_value()}"}

    def _lightning_url(self, case_id: str) -> str:
        return f"{self.config.instance_url}/lightning/r/Case/{quote(case_id, safe='')}/view"


def build_salesforce_adapter(
    config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
) -> SalesforceAdapter:
    return SalesforceAdapter(
        config=parse_settings(SalesforceConfig, config, part="config"),
        secrets=parse_settings(SalesforceSecrets, secrets, part="secrets"),
        allow_private=allow_private,
    )
