"""API key management payloads."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models.enums import Scope
from app.schemas.common import Text64


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "Berlin store dashboard",
                "scopes": ["feedback:read", "metrics:read"],
                "location_ids": ["store-berlin-01"],
            }
        },
    )

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    location_ids: list[Text64] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Restrict the key to these locations; omit for all locations.",
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    key_prefix: str = Field(description="First characters of the key, to tell keys apart.")
    scopes: list[Scope]
    location_ids: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    location_ids: list[str] | None
    key: str = Field(description="The secret key. Shown only in this response; store it now.")
    created_at: datetime


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
