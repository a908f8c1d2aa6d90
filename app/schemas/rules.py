"""Rules (SPEC section 6): the API body, which is also the stored form.

``RuleRow.conditions`` and ``RuleRow.action`` hold ``RuleConditions.model_dump()`` and
``RuleAction.model_dump()``: every key present, lists empty and numbers null when the
condition is not used. ``app.services.rule_matching`` reads those documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from app.models.enums import Channel, ScoreMetric, TicketPriority
from app.schemas.common import Text64, Text200
from app.schemas.integrations import IntegrationName

MAX_CONDITION_VALUES = 100
MAX_LOCATION_IDS = 500
MAX_TARGETS = 20
MAX_SLA_HOURS = 24 * 365
MAX_POSITION = 2**31 - 1  # the column is a PostgreSQL integer

# Keywords match case-insensitive whole words (or phrases) in the feedback text.
Keyword = Text64

EXAMPLE_RULE: dict[str, Any] = {
    "name": "Berlin detractors",
    "enabled": True,
    "position": 10,
    "conditions": {
        "channels": ["in_store"],
        "location_ids": ["store-berlin-01"],
        "touchpoints": [],
        "sources": [],
        "tags_any": [],
        "keywords_any": ["refund"],
        "poor_scores": ["nps", "csat"],
        "nps_max": None,
        "sentiment_max": None,
    },
    "action": {
        "priority": "high",
        "assignee": None,
        "team": None,
        "targets": ["zendesk-eu"],
        "sla_hours": 24,
    },
}


class RuleConditions(BaseModel):
    """All given conditions must hold; a list holds when any element matches; an empty
    list or a null is no condition."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] = Field(default_factory=list, max_length=len(Channel))
    location_ids: list[Text64] = Field(default_factory=list, max_length=MAX_LOCATION_IDS)
    touchpoints: list[Text64] = Field(default_factory=list, max_length=MAX_CONDITION_VALUES)
    sources: list[Text64] = Field(default_factory=list, max_length=MAX_CONDITION_VALUES)
    tags_any: list[Text64] = Field(default_factory=list, max_length=MAX_CONDITION_VALUES)
    keywords_any: list[Keyword] = Field(
        default_factory=list,
        max_length=MAX_CONDITION_VALUES,
        description="Case-insensitive whole words (or phrases) in the feedback text.",
    )
    poor_scores: list[ScoreMetric] = Field(
        default_factory=list,
        max_length=len(ScoreMetric),
        description="Matches when any listed metric is present and in its bottom box.",
    )
    nps_max: StrictInt | None = Field(default=None, ge=0, le=10, description="NPS <= value.")
    sentiment_max: StrictFloat | None = Field(
        default=None, ge=-1, le=1, description="Sentiment score (-1..1) <= value."
    )


class RuleAction(BaseModel):
    """What a matching rule does: the ticket's priority, owner and SLA, and where it goes."""

    model_config = ConfigDict(extra="forbid")

    priority: TicketPriority = TicketPriority.NORMAL
    assignee: Text200 | None = Field(
        default=None, description="Else the location's owner, else none."
    )
    team: Text200 | None = Field(default=None, description="Else the location's team.")
    targets: list[IntegrationName] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="Integration names; empty means every enabled integration subscribed "
        "to the event type.",
    )
    sla_hours: StrictInt | None = Field(
        default=None, ge=1, le=MAX_SLA_HOURS, description="Hours until the ticket is due."
    )


class RuleIn(BaseModel):
    """The body of ``POST /v1/rules`` and ``PUT /v1/rules/{id}`` (a PUT replaces all)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_RULE})

    name: Text200
    enabled: StrictBool = True
    position: StrictInt = Field(
        ge=0, le=MAX_POSITION, description="Rules are tried by ascending position, then id."
    )
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    action: RuleAction = Field(default_factory=RuleAction)


class RuleOut(BaseModel):
    id: str
    name: str
    enabled: bool
    position: int
    conditions: RuleConditions
    action: RuleAction
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    items: list[RuleOut]
    next_cursor: str | None
