"""Initial schema: feedback, customers, api keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 06:18:46.332580
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("location_ids", postgresql.ARRAY(sa.String(length=64)), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customers")),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "ingested_via",
            sa.Enum(
                "rest",
                "kafka",
                name="ingested_via",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum(
                "web",
                "mobile_app",
                "email",
                "sms",
                "voice",
                "chat",
                "social",
                "in_store",
                "review",
                "other",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("customer_phone", sa.String(length=16), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("customer_locale", sa.String(length=35), nullable=True),
        sa.Column("location_id", sa.String(length=64), nullable=True),
        sa.Column("touchpoint", sa.String(length=64), nullable=True),
        sa.Column("journey_stage", sa.String(length=64), nullable=True),
        sa.Column("nps", sa.SmallInteger(), nullable=True),
        sa.Column("csat", sa.SmallInteger(), nullable=True),
        sa.Column("csat_scale", sa.SmallInteger(), nullable=True),
        sa.Column("ces", sa.SmallInteger(), nullable=True),
        sa.Column("ces_scale", sa.SmallInteger(), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("rating_scale", sa.SmallInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column(
            "sentiment_label",
            sa.Enum(
                "negative",
                "neutral",
                "positive",
                name="sentiment_label",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ticket_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(ces IS NULL AND ces_scale IS NULL) OR (ces_scale IN (5, 7) AND ces BETWEEN 1 AND ces_scale)",
            name=op.f("ck_feedback_ces_range"),
        ),
        sa.CheckConstraint(
            "(csat IS NULL AND csat_scale IS NULL) OR (csat_scale IN (5, 7) AND csat BETWEEN 1 AND csat_scale)",
            name=op.f("ck_feedback_csat_range"),
        ),
        sa.CheckConstraint(
            "(rating IS NULL AND rating_scale IS NULL) OR (rating_scale IN (5, 10) AND rating BETWEEN 1 AND rating_scale)",
            name=op.f("ck_feedback_rating_range"),
        ),
        sa.CheckConstraint("nps BETWEEN 0 AND 10", name=op.f("ck_feedback_nps_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("event_id", name=op.f("uq_feedback_event_id")),
    )
    op.create_index(
        "ix_feedback_channel_occurred_at",
        "feedback",
        ["channel", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_feedback_customer_id_occurred_at",
        "feedback",
        ["customer_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_feedback_location_id_occurred_at",
        "feedback",
        ["location_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index("ix_feedback_occurred_at_id", "feedback", ["occurred_at", "id"], unique=False)
    op.create_index(
        "ix_feedback_source_occurred_at", "feedback", ["source", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_feedback_ticket_id",
        "feedback",
        ["ticket_id"],
        unique=False,
        postgresql_where=sa.text("ticket_id IS NOT NULL"),
    )
    # `?q=` (text contains) uses a trigram index where the pg_trgm extension can be
    # installed (the embedded server and most managed PostgreSQL can); elsewhere the
    # filter still works, by scanning.
    op.execute(
        """
        DO $$
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            CREATE INDEX ix_feedback_text_trgm ON feedback USING gin (lower(text) gin_trgm_ops);
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_trgm unavailable; ?q= will scan';
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_feedback_text_trgm")
    op.drop_index(
        "ix_feedback_ticket_id",
        table_name="feedback",
        postgresql_where=sa.text("ticket_id IS NOT NULL"),
    )
    op.drop_index("ix_feedback_source_occurred_at", table_name="feedback")
    op.drop_index("ix_feedback_occurred_at_id", table_name="feedback")
    op.drop_index("ix_feedback_location_id_occurred_at", table_name="feedback")
    op.drop_index("ix_feedback_customer_id_occurred_at", table_name="feedback")
    op.drop_index("ix_feedback_channel_occurred_at", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("customers")
    op.drop_table("api_keys")
