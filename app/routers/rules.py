"""Rules: which feedback opens a ticket (admin scope, keys without location limits)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.dependencies import Admin, SessionDep
from app.models.closed_loop import RuleRow
from app.routers.docs import NOT_FOUND, problem
from app.schemas.rules import RuleAction, RuleConditions, RuleIn, RuleOut, RulePage
from app.services import rules

router = APIRouter(prefix="/v1/rules", tags=["rules"])

RuleId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The rule's id.")]

_GLOBAL = (
    "Rules are global configuration: the key needs the `admin` scope and no location "
    "restriction (a location-restricted admin gets 403)."
)
_BODY = (
    "Conditions left out are empty (no condition); `action` defaults to priority "
    "`normal`, no assignee, team or SLA, and every subscribed integration as target. "
    "`action.targets` must name existing integrations (else 422 naming them)."
)
UNKNOWN_TARGETS: dict[int | str, dict[str, Any]] = {
    422: problem("Validation failed, or `action.targets` names unknown integrations.")
}


def _out(row: RuleRow) -> RuleOut:
    return RuleOut(
        id=str(row.id),
        name=row.name,
        enabled=row.enabled,
        position=row.position,
        conditions=RuleConditions.model_validate(row.conditions),
        action=RuleAction.model_validate(row.action),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "",
    summary="List rules in evaluation order",
    description="By ascending `position`, then `id`: the first enabled rule that matches "
    "an event decides its ticket. " + _GLOBAL,
)
async def list_rules(
    session: SessionDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RulePage:
    rows, next_cursor = await rules.list_rules(session, principal, cursor=cursor, limit=limit)
    return RulePage(items=[_out(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Create a rule",
    description=f"{_BODY} {_GLOBAL}",
    responses={**UNKNOWN_TARGETS},
)
async def create_rule(body: RuleIn, session: SessionDep, principal: Admin) -> RuleOut:
    return _out(await rules.create_rule(session, principal, body))


@router.get(
    "/{rule_id:int}",
    summary="Read one rule",
    description=_GLOBAL,
    responses={**NOT_FOUND},
)
async def get_rule(rule_id: RuleId, session: SessionDep, principal: Admin) -> RuleOut:
    return _out(await rules.get_rule(session, principal, rule_id))


@router.put(
    "/{rule_id:int}",
    summary="Replace a rule",
    description=f"The body replaces the whole rule (as on create). {_BODY} {_GLOBAL}",
    responses={**NOT_FOUND, **UNKNOWN_TARGETS},
)
async def replace_rule(
    rule_id: RuleId, body: RuleIn, session: SessionDep, principal: Admin
) -> RuleOut:
    return _out(await rules.replace_rule(session, principal, rule_id, body))


@router.delete(
    "/{rule_id:int}",
    status_code=204,
    summary="Delete a rule",
    description="Tickets the rule opened stay as they are. " + _GLOBAL,
    responses={**NOT_FOUND},
)
async def delete_rule(rule_id: RuleId, session: SessionDep, principal: Admin) -> Response:
    await rules.delete_rule(session, principal, rule_id)
    return Response(status_code=204)
