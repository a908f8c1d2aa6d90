"""ORM tables, one module per aggregate. Importing this package registers them all."""

from app.models.api_key import ApiKeyRow
from app.models.base import Base
from app.models.closed_loop import (
    DeliveryAttemptRow,
    DeliveryRow,
    IntegrationRow,
    LocationRow,
    RuleRow,
    TicketExternalRefRow,
    TicketRow,
    TicketTimelineRow,
)
from app.models.customer import CustomerRow
from app.models.feedback import FeedbackRow
from app.models.metrics import FeedbackDailyRollupRow

__all__ = [
    "ApiKeyRow",
    "Base",
    "CustomerRow",
    "DeliveryAttemptRow",
    "DeliveryRow",
    "FeedbackDailyRollupRow",
    "FeedbackRow",
    "IntegrationRow",
    "LocationRow",
    "RuleRow",
    "TicketExternalRefRow",
    "TicketRow",
    "TicketTimelineRow",
]
