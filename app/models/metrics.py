"""Daily sums of feedback figures, the fast path of ``GET /v1/metrics``.

One row per UTC day, location and channel, kept up to date inside every ingest
transaction (so it is exactly as committed as the feedback itself). Every column is
an integer sum, so any set of rows adds up to exact figures: NPS, CSAT and CES are
shares of counts and the rating mean is rebuilt from per-scale sums. Metrics filtered
or grouped by touchpoint, journey stage or source read the feedback table instead.
"""

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# Feedback without a location is summed under this key: a primary key cannot hold NULL
# and a real location_id is never empty.
NO_LOCATION = ""


class FeedbackDailyRollupRow(Base):
    __tablename__ = "feedback_daily_rollup"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)

    responses: Mapped[int] = mapped_column(BigInteger)
    nps_responses: Mapped[int] = mapped_column(BigInteger)
    promoters: Mapped[int] = mapped_column(BigInteger)
    passives: Mapped[int] = mapped_column(BigInteger)
    detractors: Mapped[int] = mapped_column(BigInteger)
    csat_responses: Mapped[int] = mapped_column(BigInteger)
    csat_top: Mapped[int] = mapped_column(BigInteger)
    ces_responses: Mapped[int] = mapped_column(BigInteger)
    ces_top: Mapped[int] = mapped_column(BigInteger)
    rating5_responses: Mapped[int] = mapped_column(BigInteger)
    rating5_sum: Mapped[int] = mapped_column(BigInteger)
    rating10_responses: Mapped[int] = mapped_column(BigInteger)
    rating10_sum: Mapped[int] = mapped_column(BigInteger)
    sentiment_negative: Mapped[int] = mapped_column(BigInteger)
    sentiment_neutral: Mapped[int] = mapped_column(BigInteger)
    sentiment_positive: Mapped[int] = mapped_column(BigInteger)
