"""API keys: creation, authentication, revocation, bootstrap."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from app.models.api_key import ApiKeyRow
from app.models.enums import Scope
from app.repositories import api_keys as repo
from app.services.access import Principal

logger = logging.getLogger(__name__)

KEY_PREFIX = "fbk_"
_DISPLAY_PREFIX_CHARS = 8  # "fbk_" + 4 random chars: tells keys apart in lists


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


_KEY_PATTERN = re.compile(r"fbk_[A-Za-z0-9_-]{20,196}")


def is_well_formed(key: str) -> bool:
    return _KEY_PATTERN.fullmatch(key) is not None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    row: ApiKeyRow
    key: str


def principal_from_row(row: ApiKeyRow) -> Principal:
    scopes = frozenset(Scope(s) for s in row.scopes if s in Scope.__members__.values())
    return Principal(
        key_id=row.id,
        name=row.name,
        scopes=scopes,
        location_ids=frozenset(row.location_ids) if row.location_ids is not None else None,
    )


def check_presented(presented: str | None) -> bytes:
    """The digest to look up, or 401 for a missing or malformed key."""
    if not presented:
        raise Unauthenticated("Send 'Authorization: Bearer <api key>'.")
    if not is_well_formed(presented):
        raise Unauthenticated("The API key is not valid.")
    return hash_key(presented)


async def authenticate(session: AsyncSession, digest: bytes) -> Principal:
    # Looking up the digest (not the key) leaks nothing useful through timing.
    row = await repo.find_active_by_hash(session, digest)
    if row is None:
        raise Unauthenticated("The API key is not valid or has been revoked.")
    return principal_from_row(row)


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    scopes: Sequence[Scope],
    location_ids: Sequence[str] | None,
    creator: Principal | None,
    key: str | None = None,
) -> CreatedKey:
    """Create a key. A location-restricted creator can only hand out keys restricted to a
    subset of its own locations (no escalation)."""
    if creator is not None and creator.location_ids is not None:
        if location_ids is None:
            raise Forbidden("A location-restricted key can only create location-restricted keys.")
        creator.require_locations(location_ids)
    key = key or generate_key()
    if not is_well_formed(key):
        raise InvalidInput(f"API keys must look like '{KEY_PREFIX}<random>' (24-200 characters).")
    row = await repo.insert(
        session,
        name=name,
        key_prefix=key[:_DISPLAY_PREFIX_CHARS],
        key_hash=hash_key(key),
        scopes=sorted({s.value for s in scopes}),
        location_ids=sorted(set(location_ids)) if location_ids is not None else None,
    )
    logger.info("api key created", extra={"fields": {"key_id": row.id, "scopes": row.scopes}})
    return CreatedKey(row=row, key=key)


async def list_keys(
    session: AsyncSession, *, viewer: Principal | None, after_id: int | None, limit: int
) -> list[ApiKeyRow]:
    """A location-restricted viewer sees only keys confined to its own locations."""
    within = viewer.readable_locations() if viewer is not None else None
    return await repo.list_page(session, within_locations=within, after_id=after_id, limit=limit)


async def revoke_key(session: AsyncSession, key_id: int, *, by: Principal | None) -> None:
    row = await repo.get(session, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    # A restricted admin may revoke only keys confined to its own locations.
    if (
        by is not None
        and by.location_ids is not None
        and (row.location_ids is None or not set(row.location_ids) <= by.location_ids)
    ):
        raise Forbidden("This API key may not revoke keys beyond its locations.")
    await repo.revoke(session, key_id, datetime.now(UTC))
    # Delivered at commit to every replica, which then forget the keys they cached.
    await repo.notify_changed(session, KEYS_CHANGED_CHANNEL, str(key_id))
    logger.info("api key revoked", extra={"fields": {"key_id": key_id}})


async def ensure_bootstrap_keys(session: AsyncSession, bootstrap_key: str | None) -> str | None:
    """Create ``FEEDBACK_BOOTSTRAP_ADMIN_KEY`` if missing; with no key at all, create an
    admin key and return it, so the caller can show it once."""
    await repo.lock_for_bootstrap(session)  # replicas starting together: one creates
    if bootstrap_key is not None:
        if not is_well_formed(bootstrap_key):
            raise ValueError(
                f"FEEDBACK_BOOTSTRAP_ADMIN_KEY must look like '{KEY_PREFIX}<random>' "
                "(20-196 of A-Z a-z 0-9 _ -); generate one with: python3 -c "
                "\"import secrets; print('fbk_' + secrets.token_urlsafe(32))\""
            )
        if not await repo.exists_with_hash(session, hash_key(bootstrap_key)):
            await create_key(
                session,
                name="bootstrap admin",
                scopes=[Scope.ADMIN],
                location_ids=None,
                creator=None,
                key=bootstrap_key,
            )
        return None
    if await repo.count_all(session) == 0:
        created = await create_key(
            session, name="first admin", scopes=[Scope.ADMIN], location_ids=None, creator=None
        )
        return created.key
    return None


KEYS_CHANGED_CHANNEL = "feedback_api_keys_changed"
CACHE_MAX_ENTRIES = 10_000
CACHE_MAX_AGE_S = 300.0


class PrincipalCache:
    """Authenticated keys by digest, so that a request needs no database round trip.

    Correctness rests on notifications: every revocation NOTIFYs all replicas in the
    revoking transaction, and a notification empties the cache. While the listening
    connection is down the cache stores nothing (``trusted`` is False), so a revocation
    is never missed; ``CACHE_MAX_AGE_S`` is only a backstop. Unknown keys are never
    cached (no memory to exhaust by guessing).
    """

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self.trusted = False
        # Bumped by every invalidation. A lookup that started before a revocation's
        # notice arrived must not cache what it read (it may be the revoked key).
        self.generation = 0

    def get(self, digest: bytes, now: float) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or not self.trusted:
            return None
        principal, stored_at = entry
        if now - stored_at > CACHE_MAX_AGE_S:
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: bytes, principal: Principal, now: float, generation: int) -> None:
        if not self.trusted or generation != self.generation:
            return
        if len(self._entries) >= CACHE_MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (principal, now)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def set_trusted(self, connected: bool) -> None:
        self.clear()
        self.trusted = connected
