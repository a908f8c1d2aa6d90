"""Vocabulary shared by the database, the API and the services."""

from enum import StrEnum


class Channel(StrEnum):
    WEB = "web"
    MOBILE_APP = "mobile_app"
    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    CHAT = "chat"
    SOCIAL = "social"
    IN_STORE = "in_store"
    REVIEW = "review"
    OTHER = "other"


class IngestVia(StrEnum):
    REST = "rest"
    KAFKA = "kafka"


class ScoreMetric(StrEnum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"
    RATING = "rating"


class SentimentLabel(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Scope(StrEnum):
    FEEDBACK_WRITE = "feedback:write"
    FEEDBACK_READ = "feedback:read"
    TICKETS_READ = "tickets:read"
    TICKETS_WRITE = "tickets:write"
    METRICS_READ = "metrics:read"
    ADMIN = "admin"


class DeadLetterReason(StrEnum):
    """Why a Kafka message went to the dead-letter topic (the x-error prefix)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    CONFLICT = "conflict"
    STORAGE_REJECTED = "storage_rejected"
