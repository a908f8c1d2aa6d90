"""What the ingest pipeline reads to route poor feedback: enabled rules, enabled
integrations and the owners of locations (small tables, read per transaction, in one
round trip)."""

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


@dataclass(frozen=True, slots=True)
class Routing:
    rules: list[StoredRule]  # enabled, in (position, id) order
    integrations: list[IntegrationTarget]  # enabled
    integration_ids: dict[str, int]  # every integration by name, enabled or not
    owners: dict[str, LocationOwner]  # of the locations asked for


_ROUTING_SQL = """
    SELECT
      (SELECT coalesce(json_agg(json_build_object(
                 'id', id, 'name', name, 'conditions', conditions, 'action', action)
                 ORDER BY position, id), '[]')
       FROM rules WHERE enabled)::text AS rules,
      (SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'events', events)
                 ORDER BY id), '[]')
       FROM integrations WHERE enabled)::text AS integrations,
      (SELECT coalesce(json_object_agg(name, id), '{}') FROM integrations)::text
          AS integration_ids,
      (SELECT coalesce(json_agg(json_build_object(
                 'location_id', location_id, 'owner', owner, 'team', team)), '[]')
       FROM locations WHERE location_id = ANY($1::varchar[]))::text AS owners
"""


async def routing_for(connection: DriverConnection, location_ids: Sequence[str]) -> Routing:
    """Enabled rules and integrations, and the owners of ``location_ids``: one round
    trip, as every ingest transaction needs them."""
    record = await connection.fetchrow(_ROUTING_SQL, sorted(set(location_ids)))
    assert record is not None
    return Routing(
        rules=[
            StoredRule(r["id"], r["name"], r["conditions"], r["action"])
            for r in orjson.loads(record["rules"])
        ],
        integrations=[
            IntegrationTarget(i["id"], i["name"], frozenset(i["events"]))
            for i in orjson.loads(record["integrations"])
        ],
        integration_ids=orjson.loads(record["integration_ids"]),
        owners={
            o["location_id"]: LocationOwner(o["owner"], o["team"])
            for o in orjson.loads(record["owners"])
        },
    )


async def enabled_integrations(connection: DriverConnection) -> list[IntegrationTarget]:
    records = await connection.fetch(
        "SELECT id, name, events FROM integrations WHERE enabled ORDER BY id"
    )
    return [IntegrationTarget(r["id"], r["name"], frozenset(r["events"])) for r in records]
