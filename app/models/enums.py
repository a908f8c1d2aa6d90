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


class TicketStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_TICKET_STATUSES = frozenset(
    {TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING}
)


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first attempt or its next retry
    DELIVERED = "delivered"
    DEAD = "dead"  # a permanent failure or the last retry failed; POST .../retry revives it
