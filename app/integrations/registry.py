"""Which integration kinds exist, what each one is configured with, and how it is built.

The API validates ``config`` and ``secrets`` of ``POST /v1/integrations`` with a kind's
``config_model`` and ``secrets_model`` (both ``extra="forbid"``, with OpenAPI examples);
the dispatcher builds adapters with ``build`` from what was stored. ``generated_secrets``
names the secrets the service makes itself and shows once (the webhook's
``signing_secret``); they are stored beside the user's and passed to ``build``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel

from app.integrations.base import (
    ALL_EVENT_TYPES,
    TICKET_EVENT_TYPES,
    EventType,
    IntegrationAdapter,
)
from app.integrations.freshdesk import FreshdeskConfig, FreshdeskSecrets, build_freshdesk_adapter
from app.integrations.hubspot import HubSpotConfig, HubSpotSecrets, build_hubspot_adapter
from app.integrations.salesforce import (
    SalesforceConfig,
    SalesforceSecrets,
    build_salesforce_adapter,
)
from app.integrations.webhook import WebhookConfig, WebhookSecrets, build_webhook_adapter
from app.integrations.zendesk import ZendeskConfig, ZendeskSecrets, build_zendesk_adapter


class IntegrationKind(StrEnum):
    WEBHOOK = "webhook"
    ZENDESK = "zendesk"
    SALESFORCE = "salesforce"
    HUBSPOT = "hubspot"
    FRESHDESK = "freshdesk"


class AdapterBuilder(Protocol):
    def __call__(
        self, config: Mapping[str, Any], secrets: Mapping[str, str], *, allow_private: bool = False
    ) -> IntegrationAdapter:
        """Build an adapter from stored settings; PermanentDeliveryError if they are
        invalid. ``allow_private`` is FEEDBACK_ALLOW_PRIVATE_TARGETS (the SSRF guard)."""
        ...


@dataclass(frozen=True, slots=True)
class KindSpec:
    config_model: type[BaseModel]
    secrets_model: type[BaseModel]
    supported_events: frozenset[EventType]
    build: AdapterBuilder
    generated_secrets: frozenset[str] = frozenset()


KIND_SPECS: Mapping[IntegrationKind, KindSpec] = MappingProxyType(
    {
        IntegrationKind.WEBHOOK: KindSpec(
            config_model=WebhookConfig,
            secrets_model=WebhookSecrets,
            supported_events=ALL_EVENT_TYPES,
            build=build_webhook_adapter,
            generated_secrets=frozenset({"signing_secret"}),
        ),
        IntegrationKind.ZENDESK: KindSpec(
            config_model=ZendeskConfig,
            secrets_model=ZendeskSecrets,
            supported_events=TICKET_EVENT_TYPES,
            build=build_zendesk_adapter,
        ),
        IntegrationKind.SALESFORCE: KindSpec(
            config_model=SalesforceConfig,
            secrets_model=SalesforceSecrets,
            supported_events=TICKET_EVENT_TYPES,
            build=build_salesforce_adapter,
        ),
        IntegrationKind.HUBSPOT: KindSpec(
            config_model=HubSpotConfig,
            secrets_model=HubSpotSecrets,
            supported_events=TICKET_EVENT_TYPES,
            build=build_hubspot_adapter,
        ),
        IntegrationKind.FRESHDESK: KindSpec(
            config_model=FreshdeskConfig,
            secrets_model=FreshdeskSecrets,
            supported_events=TICKET_EVENT_TYPES,
            build=build_freshdesk_adapter,
        ),
    }
)
