"""API key storage."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.api_key import ApiKeyRow


async def find_active_by_hash(session: AsyncSession, key_hash: bytes) -> ApiKeyRow | None:
    result = await session.execute(
        select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
    )
    return result.scalar_one_or_none()


async def exists_with_hash(session: AsyncSession, key_hash: bytes) -> bool:
    result = await session.execute(select(ApiKeyRow.id).where(ApiKeyRow.key_hash == key_hash))
    return result.first() is not None


async def count_all(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0)


async def insert(
    session: AsyncSession,
    *,
    name: str,
    key_prefix: str,
    key_hash: bytes,
    scopes: Sequence[str],
    location_ids: Sequence[str] | None,
) -> ApiKeyRow:
    row = ApiKeyRow(
        name=name,
        key_prefix=key_prefix,
        key_hash=key_hash,
        scopes=list(scopes),
        location_ids=list(location_ids) if location_ids is not None else None,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row, ["created_at"])
    return row


async def list_page(
    session: AsyncSession,
    *,
    within_locations: Sequence[str] | None,
    after_id: int | None,
    limit: int,
) -> list[ApiKeyRow]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.id).limit(limit)
    if after_id is not None:
        query = query.where(ApiKeyRow.id > after_id)
    if within_locations is not None:
        query = query.where(
            ApiKeyRow.location_ids.is_not(None),
            ApiKeyRow.location_ids.contained_by(list(within_locations)),
        )
    return list((await session.execute(query)).scalars())


async def get(session: AsyncSession, key_id: int) -> ApiKeyRow | None:
    return await session.get(ApiKeyRow, key_id)


async def revoke(session: AsyncSession, key_id: int, at: datetime) -> None:
    await session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def notify_changed(session: AsyncSession, channel: str, payload: str) -> None:
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


_BOOTSTRAP_LOCK_ID = 0x6662_6B5F_6B65_7973


async def lock_for_bootstrap(session: AsyncSession) -> None:
    """Serialise start-up key creation across replicas (released at commit)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _BOOTSTRAP_LOCK_ID})
