"""Who is calling, and what their API key lets them see and change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import Forbidden
from app.models.enums import Scope


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    scopes: frozenset[Scope]
    location_ids: frozenset[str] | None  # None: every location

    def has_scope(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def require_scope(self, scope: Scope) -> None:
        if not self.has_scope(scope):
            raise Forbidden(f"This API key lacks the '{scope.value}' scope.")

    def may_access_location(self, location_id: str | None) -> bool:
        """Unrestricted keys reach everything; restricted ones only their locations
        (feedback without a location belongs to no restricted key)."""
        if self.location_ids is None:
            return True
        return location_id is not None and location_id in self.location_ids

    def require_locations(self, location_ids: Iterable[str]) -> None:
        """Explicitly asking for a location outside the key's list is refused, not filtered."""
        if self.location_ids is None:
            return
        outside = sorted(set(location_ids) - self.location_ids)
        if outside:
            raise Forbidden(f"This API key may not access location(s): {', '.join(outside)}.")

    def require_write_location(self, location_id: str | None) -> None:
        """A restricted key writes only events that name one of its locations."""
        if self.location_ids is None:
            return
        if location_id is None:
            raise Forbidden("This API key must send events with one of its location_ids.")
        self.require_locations([location_id])

    def readable_locations(self) -> list[str] | None:
        return sorted(self.location_ids) if self.location_ids is not None else None
