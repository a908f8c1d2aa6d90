"""Service configuration: every setting is an environment variable prefixed ``FEEDBACK_``.

A ``.env`` file in the working directory is read too. Every field here is
documented in the README's configuration table and in ``.env.example``.
"""

from __future__ import annotations

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

    @model_validator(mode="after")
    def _pool_outlives_writers(self) -> Settings:
        # Each group-commit writer keeps one pooled connection for good; requests need
        # the rest.
        if self.db_pool_size + self.db_max_overflow <= self.ingest_group_writers:
            raise ValueError(
                "FEEDBACK_DB_POOL_SIZE + FEEDBACK_DB_MAX_OVERFLOW must exceed "
                "FEEDBACK_INGEST_GROUP_WRITERS (each writer holds a connection)"
            )
        return self


def load_settings() -> Settings:
    return Settings()
