"""Which rule, if any, decides that a feedback event needs a ticket (SPEC section 6).

All given conditions must hold; a list condition holds when any of its elements
matches; an empty list or a null is no condition. Rules are tried by ascending
position (then id), and the first enabled match decides. Rules are compiled once per
ingest transaction: keyword lists become one case-insensitive whole-word pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.models.enums import ScoreMetric, TicketPriority
from app.schemas.feedback import FeedbackEventIn

# The "bottom box" (poor) of each metric and scale: values up to this are poor.
POOR_UP_TO: Mapping[tuple[ScoreMetric, int | None], int] = {
    (ScoreMetric.NPS, None): 6,  # detractors
    (ScoreMetric.CSAT, 5): 2,
    (ScoreMetric.CSAT, 7): 3,
    (ScoreMetric.CES, 7): 3,
    (ScoreMetric.CES, 5): 2,
    (ScoreMetric.RATING, 5): 2,
    (ScoreMetric.RATING, 10): 4,
}


def is_poor(metric: ScoreMetric, value: int, scale: int | None) -> bool:
    ceiling = POOR_UP_TO.get((metric, None if metric is ScoreMetric.NPS else scale))
    return ceiling is not None and value <= ceiling


@dataclass(frozen=True, slots=True)
class RuleAction:
    priority: TicketPriority
    assignee: str | None
    team: str | None
    targets: tuple[str, ...]  # integration names; empty: every subscribed integration
    sla_hours: float | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int
    name: str
    channels: frozenset[str]
    location_ids: frozenset[str]
    touchpoints: frozenset[str]
    sources: frozenset[str]
    tags_any: frozenset[str]
    keywords: re.Pattern[str] | None
    poor_scores: frozenset[ScoreMetric]
    nps_max: int | None
    sentiment_max: float | None
    action: RuleAction

    def matches(self, event: FeedbackEventIn, sentiment_score: float | None) -> bool:
        if self.channels and event.channel.value not in self.channels:
            return False
        if self.location_ids and event.location_id not in self.location_ids:
            return False
        if self.touchpoints and event.touchpoint not in self.touchpoints:
            return False
        if self.sources and event.source not in self.sources:
            return False
        if self.tags_any and self.tags_any.isdisjoint(event.tags):
            return False
        if self.keywords is not None and (
            event.text is None or self.keywords.search(event.text) is None
        ):
            return False
        if self.poor_scores and not any(
            score.metric in self.poor_scores and is_poor(score.metric, score.value, score.scale)
            for score in event.scores
        ):
            return False
        if self.nps_max is not None:
            nps = event.score(ScoreMetric.NPS)
            if nps is None or nps.value > self.nps_max:
                return False
        return self.sentiment_max is None or (
            sentiment_score is not None and sentiment_score <= self.sentiment_max
        )


def _strings(conditions: Mapping[str, Any], key: str) -> frozenset[str]:
    return frozenset(str(item) for item in conditions.get(key) or ())


def _keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    words = [word.strip() for word in keywords if word and word.strip()]
    if not words:
        return None
    # Whole words: not preceded or followed by a word character (Unicode-aware), so
    # "refund" matches "Refund!" but not "refunded".
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def compile_rule(
    rule_id: int, name: str, conditions: Mapping[str, Any], action: Mapping[str, Any]
) -> CompiledRule:
    """From the stored JSON (the API validated it; missing keys mean no condition)."""
    nps_max = conditions.get("nps_max")
    sentiment_max = conditions.get("sentiment_max")
    sla_hours = action.get("sla_hours")
    return CompiledRule(
        id=rule_id,
        name=name,
        channels=_strings(conditions, "channels"),
        location_ids=_strings(conditions, "location_ids"),
        touchpoints=_strings(conditions, "touchpoints"),
        sources=_strings(conditions, "sources"),
        tags_any=_strings(conditions, "tags_any"),
        keywords=_keyword_pattern(conditions.get("keywords_any") or ()),
        poor_scores=frozenset(ScoreMetric(m) for m in conditions.get("poor_scores") or ()),
        nps_max=int(nps_max) if nps_max is not None else None,
        sentiment_max=float(sentiment_max) if sentiment_max is not None else None,
        action=RuleAction(
            priority=TicketPriority(action.get("priority") or TicketPriority.NORMAL),
            assignee=action.get("assignee") or None,
            team=action.get("team") or None,
            targets=tuple(action.get("targets") or ()),
            sla_hours=float(sla_hours) if sla_hours is not None else None,
        ),
    )


def first_match(
    rules: Sequence[CompiledRule], event: FeedbackEventIn, sentiment_score: float | None
) -> CompiledRule | None:
    """``rules`` are the enabled ones in (position, id) order."""
    for rule in rules:
        if rule.matches(event, sentiment_score):
            return rule
    return None
