"""Daily metrics rollup (per UTC day, location and channel), filled from the feedback
already stored; tickets indexed by customer (journeys, erasure).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUMS = (
    "responses",
    "nps_responses",
    "promoters",
    "passives",
    "detractors",
    "csat_responses",
    "csat_top",
    "ces_responses",
    "ces_top",
    "rating5_responses",
    "rating5_sum",
    "rating10_responses",
    "rating10_sum",
    "sentiment_negative",
    "sentiment_neutral",
    "sentiment_positive",
)

# The same figures as app.repositories.metrics.FEEDBACK_SUMS, frozen as of this revision.
_BACKFILL = """
    INSERT INTO feedback_daily_rollup
    SELECT (f.occurred_at AT TIME ZONE 'UTC')::date, coalesce(f.location_id, ''), f.channel,
           count(*), count(f.nps),
           count(*) FILTER (WHERE f.nps >= 9),
           count(*) FILTER (WHERE f.nps BETWEEN 7 AND 8),
           count(*) FILTER (WHERE f.nps <= 6),
           count(f.csat), count(*) FILTER (WHERE f.csat >= f.csat_scale - 1),
           count(f.ces),
           count(*) FILTER (WHERE f.ces >= CASE f.ces_scale WHEN 7 THEN 5 ELSE 4 END),
           count(*) FILTER (WHERE f.rating_scale = 5),
           coalesce(sum(f.rating) FILTER (WHERE f.rating_scale = 5), 0),
           count(*) FILTER (WHERE f.rating_scale = 10),
           coalesce(sum(f.rating) FILTER (WHERE f.rating_scale = 10), 0),
           count(*) FILTER (WHERE f.sentiment_label = 'negative'),
           count(*) FILTER (WHERE f.sentiment_label = 'neutral'),
           count(*) FILTER (WHERE f.sentiment_label = 'positive')
    FROM feedback f
    GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_table(
        "feedback_daily_rollup",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint(
            "day", "location_id", "channel", name=op.f("pk_feedback_daily_rollup")
        ),
    )
    op.execute(_BACKFILL)
    op.create_index(
        op.f("ix_tickets_customer_id_created_at"),
        "tickets",
        ["customer_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tickets_customer_id_created_at"), table_name="tickets")
    op.drop_table("feedback_daily_rollup")
