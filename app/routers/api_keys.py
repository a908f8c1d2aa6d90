"""API key management (admin scope)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.dependencies import Admin, SessionDep, StateDep
from app.models.api_key import ApiKeyRow
from app.models.enums import Scope
from app.routers.docs import NOT_FOUND
from app.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, ApiKeyPage
from app.services import api_keys
from app.services.pagination import cursor_error, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


def _out(row: ApiKeyRow) -> ApiKeyOut:
    return ApiKeyOut(
        id=str(row.id),
        name=row.name,
        key_prefix=row.key_prefix,
        scopes=[Scope(s) for s in row.scopes],
        location_ids=row.location_ids,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    description="The key itself is returned only in this response; only its hash is stored. "
    "A location-restricted admin can only create keys restricted to its own locations.",
)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: Admin
) -> ApiKeyCreated:
    created = await api_keys.create_key(
        session,
        name=body.name,
        scopes=body.scopes,
        location_ids=body.location_ids,
        creator=principal,
    )
    row = created.row
    return ApiKeyCreated(
        id=str(row.id),
        name=row.name,
        scopes=[Scope(s) for s in row.scopes],
        location_ids=row.location_ids,
        key=created.key,
        created_at=row.created_at,
    )


@router.get(
    "",
    summary="List API keys (never the keys themselves)",
    description="A location-restricted admin sees only keys confined to its own locations.",
)
async def list_api_keys(
    session: SessionDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ApiKeyPage:
    after_id = None
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 1 or not isinstance(values[0], int) or not 0 <= values[0] < 2**63:
            raise cursor_error()
        after_id = values[0]
    rows = await api_keys.list_keys(session, viewer=principal, after_id=after_id, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return ApiKeyPage(items=[_out(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.delete(
    "/{key_id:int}",
    status_code=204,
    summary="Revoke an API key (effective at once)",
    responses={**NOT_FOUND},
)
async def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SessionDep,
    principal: Admin,
    state: StateDep,
) -> Response:
    await api_keys.revoke_key(session, key_id, by=principal)
    # This replica forgets at once; the others when the revocation's NOTIFY reaches them.
    state.principals.clear()
    return Response(status_code=204)
