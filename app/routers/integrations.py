"""Integrations: CRM, helpdesk and webhook targets (admin scope, keys without location
limits). Secrets are write-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.dependencies import Admin, SessionDep, StateDep
from app.models.closed_loop import IntegrationRow
from app.routers.docs import NOT_FOUND, problem
from app.schemas.integrations import (
    INTEGRATION_NAME_PATTERN,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationOut,
    IntegrationPage,
    IntegrationPatch,
    IntegrationTestResult,
)
from app.services import integrations
from app.services.integrations import secret_names

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])

NamePath = Annotated[
    str,
    Path(pattern=INTEGRATION_NAME_PATTERN, max_length=64, description="The integration's name."),
]

_GLOBAL = (
    "Integrations are global configuration: the key needs the `admin` scope and no "
    "location restriction (a location-restricted admin gets 403)."
)
_SECRETS = "Responses never contain secrets: `secrets_set` names the stored ones."
_SSRF = (
    "Target URLs (`url`, `base_url`, `instance_url`) resolving to loopback, private or "
    "otherwise non-public addresses are refused with 422 unless the service runs with "
    "`FEEDBACK_ALLOW_PRIVATE_TARGETS=true` (SSRF guard)."
)
INVALID_CONFIG: dict[int | str, dict[str, Any]] = {
    422: problem(
        "Validation failed (`errors` points into `config`/`secrets` without quoting "
        "values), an event type the kind does not support, or a refused target URL."
    )
}


def _out(row: IntegrationRow) -> IntegrationOut:
    return IntegrationOut(
        id=str(row.id),
        name=row.name,
        kind=row.kind,
        enabled=row.enabled,
        events=row.events,
        config=row.config,
        secrets_set=secret_names(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post(
    "",
    status_code=201,
    summary="Create an integration",
    description=(
        "`config` and `secrets` are validated with the kind's schema (see the body "
        "schema: one per kind). `events` defaults to every event type the kind supports "
        "(webhook: all four; zendesk, salesforce, hubspot, freshdesk: `ticket.*`).\n\n"
        "The answer holds, this once, `inbound_secret` (verifies status webhooks sent "
        "to `POST /v1/inbound/{name}`) and, for kind `webhook`, `signing_secret` (signs "
        "outgoing webhooks, Standard Webhooks); both `whsec_...`. Store them now. "
        f"{_SECRETS} {_SSRF} {_GLOBAL}"
    ),
    responses={
        **INVALID_CONFIG,
        409: problem("An integration with this name exists."),
    },
)
async def create_integration(
    body: IntegrationCreate, session: SessionDep, principal: Admin, state: StateDep
) -> IntegrationCreated:
    created = await integrations.create_integration(
        session,
        principal,
        name=body.name,
        kind=body.kind,
        enabled=body.enabled,
        events=body.events,
        config=body.config,
        secrets=body.secrets,
        allow_private=state.settings.allow_private_targets,
    )
    return IntegrationCreated(
        **_out(created.row).model_dump(),
        inbound_secret=created.inbound_secret,
        signing_secret=created.signing_secret,
    )


@router.get(
    "",
    summary="List integrations",
    description=f"By name. {_SECRETS} {_GLOBAL}",
)
async def list_integrations(
    session: SessionDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> IntegrationPage:
    rows, next_cursor = await integrations.list_integrations(
        session, principal, cursor=cursor, limit=limit
    )
    return IntegrationPage(items=[_out(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{name}",
    summary="Read one integration",
    description=f"{_SECRETS} {_GLOBAL}",
    responses={**NOT_FOUND},
)
async def get_integration(name: NamePath, session: SessionDep, principal: Admin) -> IntegrationOut:
    return _out(await integrations.read_integration(session, principal, name))


@router.patch(
    "/{name}",
    summary="Change an integration",
    description=(
        "Only the fields given change: `enabled`; `events`; `config` (replaced whole, "
        "validated as on create); `secrets` (the keys given replace the stored ones, the "
        "others are kept; generated secrets cannot be set). The name and kind are fixed. "
        f"{_SECRETS} {_SSRF} {_GLOBAL}"
    ),
    responses={**NOT_FOUND, **INVALID_CONFIG},
)
async def patch_integration(
    name: NamePath,
    body: IntegrationPatch,
    session: SessionDep,
    principal: Admin,
    state: StateDep,
) -> IntegrationOut:
    row = await integrations.update_integration(
        session,
        principal,
        name,
        enabled=body.enabled,
        events=body.events,
        config=body.config,
        secrets=body.secrets,
        allow_private=state.settings.allow_private_targets,
    )
    return _out(row)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete an integration",
    description=(
        "Deletes it with its deliveries (pending ones are never sent). Refused with 409 "
        f"while a rule names it in `action.targets`. {_GLOBAL}"
    ),
    responses={**NOT_FOUND, 409: problem("A rule still targets this integration.")},
)
async def delete_integration(name: NamePath, session: SessionDep, principal: Admin) -> Response:
    await integrations.delete_integration(session, principal, name)
    return Response(status_code=204)


@router.post(
    "/{name}/test",
    summary="Test an integration's connection and credentials",
    description=(
        "Calls the vendor without creating anything there (Zendesk: `GET "
        "/api/v2/users/me`; Salesforce: the Case object's description; HubSpot and "
        "Freshdesk: a one-ticket list; webhook: a signed `integration.test` message). "
        "Works for disabled integrations too. The answer is 200 either way: `ok: true` with the "
        "vendor's status, or `ok: false` with the reason (a status such as `HTTP 401 "
        f"Unauthorized`, a refused target, a timeout). {_GLOBAL}"
    ),
    responses={**NOT_FOUND},
)
async def test_integration(
    name: NamePath, session: SessionDep, principal: Admin, state: StateDep
) -> IntegrationTestResult:
    check = await integrations.check_connection(
        session,
        principal,
        name,
        allow_private=state.settings.allow_private_targets,
        timeout_s=state.settings.delivery_timeout_s,
    )
    return IntegrationTestResult(
        ok=check.ok, status_code=check.status_code, detail=check.detail, error=check.error
    )
