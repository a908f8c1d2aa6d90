"""Integrations (SPEC section 6): create/patch bodies and what is shown.

``config`` and ``secrets`` arrive as plain objects and are validated by the service
with the kind's models (``app.integrations.registry.KIND_SPECS``), so that an error
points at ``["config", ...]`` or ``["secrets", ...]`` whatever the kind. The OpenAPI
document still shows every kind's fields (``anyOf``, one schema per kind).

Secrets are write-only: no response model has a field that could hold one, except
``IntegrationCreated``'s two generated secrets, shown once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, WithJsonSchema

from app.integrations.base import EventType
from app.integrations.registry import KIND_SPECS, IntegrationKind

INTEGRATION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

IntegrationName = Annotated[
    str,
    StringConstraints(pattern=INTEGRATION_NAME_PATTERN),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INTEGRATION_NAME_PATTERN,
            "maxLength": 64,
            "description": "1-64 of a-z 0-9 _ -, starting with a letter or digit.",
        }
    ),
]


def _inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` written in place, so that it can be
    embedded anywhere in the OpenAPI document (the kinds' models nest only shallowly
    and never recursively)."""
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _per_kind_schema(part: str, models: Mapping[IntegrationKind, type[BaseModel]]) -> Any:
    variants = []
    for kind, model in models.items():
        variant = _inline_definitions(model.model_json_schema())
        variant["title"] = f"{kind.value} {part}"
        variants.append(variant)
    return WithJsonSchema(
        {
            "type": "object",
            "description": f"The {part} of the integration's kind (one schema per kind).",
            "anyOf": variants,
        }
    )


KindConfig = Annotated[
    dict[str, Any],
    _per_kind_schema("config", {kind: spec.config_model for kind, spec in KIND_SPECS.items()}),
]
KindSecrets = Annotated[
    dict[str, Any],
    _per_kind_schema("secrets", {kind: spec.secrets_model for kind, spec in KIND_SPECS.items()}),
]

EXAMPLE_INTEGRATION: dict[str, Any] = {
    "name": "zendesk-eu",
    "kind": "zendesk",
    "enabled": True,
    "events": ["ticket.created", "ticket.updated", "ticket.resolved"],
    "config": {"base_url": "https://acme.zendesk.com", "email": "cx-bot@acme.example"},
    "secrets": {"api_token": "zendesk-api-token"},
}

_EVENTS_DESCRIPTION = (
    "Event types to deliver, within the kind's supported ones (webhook: all four; CRM "
    "and helpdesk kinds: the ticket.* events)."
)


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_INTEGRATION})

    name: IntegrationName
    kind: IntegrationKind
    enabled: StrictBool = True
    events: list[EventType] | None = Field(
        default=None,
        min_length=1,
        max_length=len(EventType),
        description=f"{_EVENTS_DESCRIPTION} Omitted: every supported event type.",
    )
    config: KindConfig = Field(default_factory=dict)
    secrets: KindSecrets = Field(
        default_factory=dict,
        description="Write-only: stored, never returned or logged. A webhook takes none "
        "(its signing_secret is generated).",
    )


class IntegrationPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"enabled": False, "secrets": {"api_token": "new-token"}}},
    )

    enabled: StrictBool | None = None
    events: list[EventType] | None = Field(
        default=None, min_length=1, max_length=len(EventType), description=_EVENTS_DESCRIPTION
    )
    config: KindConfig | None = Field(
        default=None, description="The complete new config (validated as on create)."
    )
    secrets: KindSecrets | None = Field(
        default=None,
        description="Secrets to set: the keys given replace the stored ones, the others are kept.",
    )


class IntegrationOut(BaseModel):
    id: str
    name: str
    kind: IntegrationKind
    enabled: bool
    events: list[EventType]
    config: dict[str, Any] = Field(description="With the kind's defaults filled in.")
    secrets_set: list[str] = Field(description="Names of the stored secrets (never their values).")
    created_at: datetime
    updated_at: datetime


class IntegrationCreated(IntegrationOut):
    inbound_secret: str = Field(
        description="Verifies POST /v1/inbound/{name} (Standard Webhooks, whsec_...). "
        "Shown only in this response; store it now."
    )
    signing_secret: str | None = Field(
        description="Kind webhook: the secret outgoing webhooks are signed with "
        "(whsec_...), shown only in this response; null for other kinds."
    )


class IntegrationPage(BaseModel):
    items: list[IntegrationOut]
    next_cursor: str | None


class IntegrationTestResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ok": True, "status_code": 200, "detail": "HTTP 200 OK", "error": None},
                {"ok": False, "status_code": 401, "detail": None, "error": "HTTP 401 Unauthorized"},
            ]
        }
    )

    ok: bool
    status_code: int | None = Field(description="The vendor's HTTP status, when it answered.")
    detail: str | None = Field(description="What succeeded (ok: true).")
    error: str | None = Field(
        description="Why it failed (ok: false): a status, a reason or an exception class "
        "name, never a secret or a vendor response body."
    )
