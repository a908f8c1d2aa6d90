"""Integrations: validated configuration, write-only secrets, the SSRF guard at
configuration time, and connection tests.

Integrations, like rules and the delivery outbox, are global configuration: they act on
every location's tickets, so only an API key without a location restriction manages
them (``require_global_admin``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, Forbidden, NotFound, invalid_input, validation_errors
from app.integrations.base import DeliveryError, EventType, RetryableDeliveryError
from app.integrations.registry import KIND_SPECS, IntegrationKind, KindSpec
from app.integrations.signing import generate_secret
from app.integrations.ssrf import UnsafeTargetError, ensure_public_target
from app.models.closed_loop import IntegrationRow
from app.repositories import integrations as repo
from app.repositories import rules as rules_repo
from app.services.access import Principal
from app.services.pagination import cursor_error, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)

# Config fields the adapters send requests to, checked by the SSRF guard when an
# integration is configured (and again by the adapters before every request). Other
# URLs, such as HubSpot's app_url, only make links for people to open.
TARGET_URL_FIELDS = ("url", "base_url", "instance_url")


def require_global_admin(principal: Principal, what: str) -> None:
    """Rules, integrations and deliveries span every location: a key restricted to some
    locations may not see or change them."""
    if principal.location_ids is not None:
        raise Forbidden(
            f"{what} are global configuration: use an API key that is not restricted to locations."
        )


@dataclass(frozen=True, slots=True)
class CreatedIntegration:
    row: IntegrationRow
    inbound_secret: str
    signing_secret: str | None  # kind webhook only


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    ok: bool
    status_code: int | None
    detail: str | None = None
    error: str | None = None


def spec_of(row: IntegrationRow) -> KindSpec:
    return KIND_SPECS[IntegrationKind(row.kind)]


def secret_names(row: IntegrationRow) -> list[str]:
    return sorted(row.secrets)


async def get_integration(session: AsyncSession, name: str) -> IntegrationRow:
    """The integration called ``name`` (with its secrets: never show them), or 404."""
    row = await repo.get_by_name(session, name)
    if row is None:
        raise NotFound(f"Integration '{name}' does not exist.")
    return row


async def list_integrations(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[list[IntegrationRow], str | None]:
    """One page by name, and the cursor of the next page (None on the last)."""
    require_global_admin(principal, "Integrations")
    after = None
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 1 or not isinstance(values[0], str):
            raise cursor_error()
        after = values[0]
    rows = await repo.list_page(session, after=after, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].name) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def read_integration(
    session: AsyncSession, principal: Principal, name: str
) -> IntegrationRow:
    require_global_admin(principal, "Integrations")
    return await get_integration(session, name)


async def create_integration(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    kind: IntegrationKind,
    enabled: bool,
    events: Sequence[EventType] | None,
    config: Mapping[str, Any],
    secrets: Mapping[str, Any],
    allow_private: bool,
) -> CreatedIntegration:
    """Validate ``config``/``secrets`` with the kind's models, refuse private targets
    (unless allowed), generate the inbound secret (and a webhook's signing secret), store.
    409 when the name is taken."""
    require_global_admin(principal, "Integrations")
    spec = KIND_SPECS[kind]
    errors: list[dict[str, Any]] = []
    chosen_events = _checked_events(kind, spec, events, errors)
    checked_config = _validated(spec.config_model, config, "config", errors)
    checked_secrets = _validated(spec.secrets_model, secrets, "secrets", errors)
    if errors:
        raise invalid_input(errors)
    assert checked_config is not None
    assert checked_secrets is not None
    stored_config = checked_config.model_dump(mode="json")
    await _refuse_private_targets(stored_config, allow_private)
    generated = {secret: generate_secret() for secret in sorted(spec.generated_secrets)}
    inbound_secret = generate_secret()
    row = await repo.insert_if_new(
        session,
        name=name,
        kind=kind.value,
        enabled=enabled,
        events=chosen_events,
        config=stored_config,
        secrets={**_secret_values(checked_secrets), **generated},
        inbound_secret=inbound_secret,
    )
    if row is None:
        raise Conflict(f"An integration named '{name}' already exists.")
    logger.info("integration created", extra={"fields": {"integration": name, "kind": kind.value}})
    return CreatedIntegration(
        row=row, inbound_secret=inbound_secret, signing_secret=generated.get("signing_secret")
    )


async def update_integration(
    session: AsyncSession,
    principal: Principal,
    name: str,
    *,
    enabled: bool | None,
    events: Sequence[EventType] | None,
    config: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
    allow_private: bool,
) -> IntegrationRow:
    """Change what is given: ``config`` is replaced whole, ``secrets`` only under the
    keys given (a generated secret cannot be replaced)."""
    require_global_admin(principal, "Integrations")
    row = await get_integration(session, name)
    kind = IntegrationKind(row.kind)
    spec = KIND_SPECS[kind]
    errors: list[dict[str, Any]] = []
    new_events = row.events if events is None else _checked_events(kind, spec, events, errors)
    new_config = row.config
    if config is not None:
        checked_config = _validated(spec.config_model, config, "config", errors)
        if checked_config is not None:
            new_config = checked_config.model_dump(mode="json")
    new_secrets = row.secrets
    if secrets is not None:
        generated = {k: v for k, v in row.secrets.items() if k in spec.generated_secrets}
        supplied = {k: v for k, v in row.secrets.items() if k not in spec.generated_secrets}
        checked_secrets = _validated(spec.secrets_model, {**supplied, **secrets}, "secrets", errors)
        if checked_secrets is not None:
            new_secrets = {**_secret_values(checked_secrets), **generated}
    if errors:
        raise invalid_input(errors)
    if config is not None:
        await _refuse_private_targets(new_config, allow_private)
    row = await repo.update(
        session,
        row,
        enabled=row.enabled if enabled is None else enabled,
        events=new_events,
        config=new_config,
        secrets=new_secrets,
    )
    logger.info("integration updated", extra={"fields": {"integration": name}})
    return row


async def delete_integration(session: AsyncSession, principal: Principal, name: str) -> None:
    """Delete it with its deliveries; refused (409) while a rule names it as a target,
    since that rule's tickets would silently go nowhere."""
    require_global_admin(principal, "Integrations")
    row = await get_integration(session, name)
    rules = await rules_repo.targeting(session, name)
    if rules:
        listed = ", ".join(f"{rule.id} '{rule.name}'" for rule in rules)
        raise Conflict(
            f"Integration '{name}' is a target of rule(s) {listed}; remove it from their "
            "targets first."
        )
    await repo.delete_by_id(session, row.id)
    logger.info("integration deleted", extra={"fields": {"integration": name}})


async def check_connection(
    session: AsyncSession,
    principal: Principal,
    name: str,
    *,
    allow_private: bool,
    timeout_s: float,
) -> ConnectionCheck:
    """Ask the vendor whether the stored configuration works, creating nothing there (a
    webhook receives a signed ``integration.test`` message). Failures are answers, not
    errors: their message names a status or an exception class, never a secret."""
    require_global_admin(principal, "Integrations")
    row = await get_integration(session, name)
    try:
        adapter = spec_of(row).build(row.config, row.secrets, allow_private=allow_private)
        # A client per test (tests are rare), configured like the dispatcher's.
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as http:
            result = await adapter.check(http)
    except DeliveryError as exc:
        logger.info(
            "integration test failed",
            extra={"fields": {"integration": name, "status_code": exc.status_code}},
        )
        return ConnectionCheck(ok=False, status_code=exc.status_code, error=exc.message)
    reason = httpx.codes.get_reason_phrase(result.status_code)
    return ConnectionCheck(
        ok=True,
        status_code=result.status_code,
        detail=f"HTTP {result.status_code} {reason}".rstrip(),
    )


def _checked_events(
    kind: IntegrationKind,
    spec: KindSpec,
    events: Sequence[EventType] | None,
    errors: list[dict[str, Any]],
) -> list[str]:
    """The events to store, in a canonical order; problems are appended to ``errors``."""
    if events is None:
        return [event.value for event in EventType if event in spec.supported_events]
    supported = ", ".join(event.value for event in EventType if event in spec.supported_events)
    for index, event in enumerate(events):
        if event not in spec.supported_events:
            errors.append(
                {
                    "loc": ["events", index],
                    "msg": f"{kind.value} integrations do not support '{event.value}' "
                    f"(supported: {supported})",
                    "type": "unsupported_event",
                }
            )
    chosen = set(events)
    return [event.value for event in EventType if event in chosen]


def _validated(
    model: type[Model], values: Mapping[str, Any], part: str, errors: list[dict[str, Any]]
) -> Model | None:
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        # Field paths and problems only: never the input, which may be a secret.
        for error in validation_errors(exc.errors(include_input=False, include_url=False)):
            errors.append({**error, "loc": [part, *error["loc"]]})
        return None


def _secret_values(secrets: BaseModel) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in secrets.model_dump(exclude_none=True).items():
        values[key] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return values


async def _refuse_private_targets(config: Mapping[str, Any], allow_private: bool) -> None:
    errors = []
    for field in TARGET_URL_FIELDS:
        url = config.get(field)
        if not isinstance(url, str):
            continue
        try:
            await ensure_public_target(url, allow_private=allow_private)
        except UnsafeTargetError as exc:
            errors.append(
                {
                    "loc": ["config", field],
                    "msg": f"refused by the SSRF guard: {exc}",
                    "type": "unsafe_target",
                }
            )
        except RetryableDeliveryError:
            # The name does not resolve right now (a DNS outage, a record still to be
            # created): accepted; the guard runs again before every request.
            continue
    if errors:
        raise invalid_input(errors)
