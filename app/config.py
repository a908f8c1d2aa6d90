"""Service configuration: every setting is an environment variable prefixed ``FEEDBACK_``.

A ``.env`` file in the working directory is read too. Every field here is
documented in the README's configuration table and in ``.env.example``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KIB = 1024
MIB = 1024 * KIB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FEEDBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage ---------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: an embedded "
        "PostgreSQL is started under data_dir.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Home of the embedded PostgreSQL.")
    # A fixed-size pool by default: connections opened and closed under load (overflow)
    # cost PostgreSQL a backend process and an authentication handshake each.
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_pool_timeout_s: float = Field(
        default=10, gt=0, description="Wait for a connection; then 503"
    )
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)

    # --- HTTP ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_request_bytes: int = Field(default=1 * MIB, ge=KIB, description="Body limit (not batch)")
    max_batch_request_bytes: int = Field(default=5 * MIB, ge=KIB)

    # --- access ----------------------------------------------------------------------------
    bootstrap_admin_key: SecretStr | None = None

    # --- ingest ----------------------------------------------------------------------------
    ingest_group_max_events: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="At most this many single-event POSTs share one transaction.",
    )
    ingest_group_writers: int = Field(
        default=2, ge=1, le=16, description="Concurrent group-commit transactions."
    )
    ingest_queue_size: int = Field(
        default=10_000, ge=1, description="Single events waiting for a group commit (bounded)."
    )

    text_analysis_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Worker processes that detect language and sentiment of ingested "
        "events (single events, batches, Kafka batches) beside the event loop; 0: analyse "
        "on the event loop.",
    )

    # --- Kafka ingestion (SPEC section 4) -------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated host:port list. Unset: no Kafka consumer runs.",
    )
    kafka_topic: str = Field(default="feedback.events", min_length=1, max_length=249)
    kafka_group_id: str = Field(default="feedback-service", min_length=1, max_length=255)
    kafka_dlq_topic: str = Field(default="feedback.events.dlq", min_length=1, max_length=249)
    kafka_client_id: str = Field(default="feedback-service", min_length=1, max_length=255)
    kafka_batch_max_events: int = Field(
        default=500, ge=1, le=5000, description="Messages per ingest transaction (at most)."
    )
    kafka_batch_linger_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="How long a batch waits to fill once its first message is in.",
    )
    kafka_max_message_bytes: int = Field(
        default=1 * MIB, ge=KIB, description="Larger messages go to the DLQ (too_large)."
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a new consumer group starts: earliest reads the topic's history.",
    )
    kafka_retry_max_backoff_s: float = Field(
        default=30, gt=0, le=300, description="Longest pause between retries in an outage."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle to verify the brokers (default: system CAs)."
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    kafka_ssl_keyfile_password: SecretStr | None = None

    # --- closing the loop (SPEC section 6) ------------------------------------------------
    delivery_retry_schedule: str = Field(
        default="5,30,120,600,1800,3600,7200,14400,28800",
        description="Seconds before each retry of a failed delivery (jittered by up to "
        "20%); after the last one the delivery is dead.",
    )
    delivery_timeout_s: float = Field(
        default=10, gt=0, le=120, description="Timeout of each request to an integration."
    )
    dispatcher_concurrency: int = Field(
        default=8, ge=1, le=64, description="Deliveries in flight per dispatcher process."
    )
    dispatcher_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Fallback poll for due deliveries (NOTIFY wakes the dispatcher at once).",
    )
    allow_private_targets: bool = Field(
        default=False,
        description="Allow integration URLs that resolve to loopback or private addresses "
        "(the SSRF guard refuses them by default).",
    )

    # --- live stream -----------------------------------------------------------------------
    stream_heartbeat_s: float = Field(
        default=15.0,
        ge=0.1,
        le=300,
        description="Seconds between SSE heartbeat comments on GET /v1/stream (keeps "
        "proxies from closing an idle stream; a revoked key's stream ends at the next one).",
    )
    stream_max_clients: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Open GET /v1/stream connections per process; more are refused with 503.",
    )
    stream_client_buffer: int = Field(
        default=1_000,
        ge=10,
        le=100_000,
        description="Events buffered per stream client; a client that falls this far "
        "behind is disconnected (it reconnects and reads what it missed via GET /v1/feedback).",
    )

    # --- tracing ---------------------------------------------------------------------------
    otel_enabled: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry tracing, metrics and logs (global "
        "providers; FASTAPI_OTEL_AUTO_CONFIGURE=true sets exporters from OTEL_* variables). "
        "Off by default: it costs every request even with no exporter.",
    )

    # --- logs ------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("delivery_retry_schedule")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,30,120") from None
        if not delays or len(delays) > 50 or any(not 0 < d <= 7 * 86400 for d in delays):
            raise ValueError("must hold 1 to 50 delays, each above 0 and at most 7 days")
        return value

    @property
    def retry_delays_s(self) -> list[float]:
        return [float(part) for part in self.delivery_retry_schedule.split(",")]

    @model_validator(mode="after")
    def _kafka_settings_fit_together(self) -> Settings:
        if self.kafka_topic == self.kafka_dlq_topic:
            raise ValueError("FEEDBACK_KAFKA_DLQ_TOPIC must differ from FEEDBACK_KAFKA_TOPIC")
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "FEEDBACK_KAFKA_SECURITY_PROTOCOL=SASL_* needs FEEDBACK_KAFKA_SASL_MECHANISM, "
                "FEEDBACK_KAFKA_SASL_USERNAME and FEEDBACK_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _pool_outlives_writers(self) -> Settings:
        # Each group-commit writer and dispatcher worker keeps one pooled connection for
        # good; requests need the rest.
        if (
            self.db_pool_size + self.db_max_overflow
            <= self.ingest_group_writers + self.dispatcher_concurrency
        ):
            raise ValueError(
                "FEEDBACK_DB_POOL_SIZE + FEEDBACK_DB_MAX_OVERFLOW must exceed "
                "FEEDBACK_INGEST_GROUP_WRITERS + FEEDBACK_DISPATCHER_CONCURRENCY (each writer "
                "and each dispatcher worker holds a connection)"
            )
        return self


@dataclass(frozen=True, slots=True)
class ProcessRoles:
    """What one process runs; `serve` runs everything, `consume` only the consumer."""

    api: bool = True  # the /v1 endpoints (operations endpoints are always served)
    consumer: bool = True  # the Kafka consumer, when FEEDBACK_KAFKA_BOOTSTRAP_SERVERS is set
    dispatcher: bool = True  # the outbox dispatcher (deliveries to integrations)


def load_settings() -> Settings:
    return Settings()
