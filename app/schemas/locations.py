"""Locations and who owns them (SPEC section 6, routing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Text64, Text200

EXAMPLE_LOCATION: dict[str, Any] = {
    "name": "Berlin Alexanderplatz",
    "owner": "maria.keller@example.com",
    "team": "berlin-store-ops",
    "region": "eu-central",
}


class LocationIn(BaseModel):
    """The body of ``PUT /v1/locations/{location_id}``; it replaces every field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_LOCATION})

    name: Text200 | None = None
    owner: Text200 | None = Field(
        default=None, description="Assignee of the location's tickets when the rule names none."
    )
    team: Text200 | None = Field(
        default=None, description="Team of the location's tickets when the rule names none."
    )
    region: Text64 | None = None


class LocationOut(BaseModel):
    location_id: str
    name: str | None
    owner: str | None
    team: str | None
    region: str | None
    created_at: datetime
    updated_at: datetime


class LocationPage(BaseModel):
    items: list[LocationOut]
    next_cursor: str | None
