"""What the ingest pipeline reads to route poor feedback: enabled rules, enabled
integrations and the owners of locations (small tables, read per transaction)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.db import DriverConnection


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: int
    name: str
    conditions: dict[str, Any]
    action: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IntegrationTarget:
    id: int
    name: str
    events: frozenset[str]


@dataclass(frozen=True, slots=True)
class LocationOwner:
    owner: str | None
    team: str | None


async def enabled_rules(connection: DriverConnection) -> list[StoredRule]:
    records = await connection.fetch(
        "SELECT id, name, conditions::text AS conditions, action::text AS action "
        "FROM rules WHERE enabled ORDER BY position, id"
    )
    return [
        StoredRule(r["id"], r["name"], orjson.loads(r["conditions"]), orjson.loads(r["action"]))
        for r in records
    ]


async def enabled_integrations(connection: DriverConnection) -> list[IntegrationTarget]:
    records = await connection.fetch(
        "SELECT id, name, events FROM integrations WHERE enabled ORDER BY id"
    )
    return [IntegrationTarget(r["id"], r["name"], frozenset(r["events"])) for r in records]


async def location_owners(
    connection: DriverConnection, location_ids: Sequence[str]
) -> dict[str, LocationOwner]:
    if not location_ids:
        return {}
    records = await connection.fetch(
        "SELECT location_id, owner, team FROM locations WHERE location_id = ANY($1::varchar[])",
        list(location_ids),
    )
    return {r["location_id"]: LocationOwner(r["owner"], r["team"]) for r in records}
