"""Engine and session factories, schema migrations, and the embedded PostgreSQL default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings
from app.embedded_postgres import EmbeddedPostgres

if TYPE_CHECKING:
    DriverConnection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    DriverConnection: TypeAlias = Any

# What the driver raises when the connection (not the statement) failed.
DRIVER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    # The protocol still consuming a killed backend's error when the transaction tries
    # to roll back ("another operation is in progress"): the connection is unusable.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout keeps migrations/ beside app/; a wheel carries them inside app/.
MIGRATIONS_DIR = next(
    (
        path
        for path in (_PACKAGE_DIR.parent / "migrations", _PACKAGE_DIR / "_migrations")
        if (path / "env.py").exists()
    ),
    _PACKAGE_DIR.parent / "migrations",
)
# Any constant shared by all replicas: serialises concurrent migrations at start-up.
MIGRATION_LOCK_ID = 0x6662_6B5F_6D69_6772


def asyncpg_url(url: str) -> str:
    """Accept the usual ``postgresql://`` / ``postgres://`` forms and select asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError("FEEDBACK_DATABASE_URL must be a postgresql:// URL")
    return parsed.render_as_string(hide_password=False)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migration_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


@dataclass
class Database:
    """Owns the engine (and the embedded server, when there is one) for one process."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    embedded: EmbeddedPostgres | None = None
    expected_heads: set[str] = field(default_factory=migration_heads)

    @classmethod
    async def open(cls, settings: Settings) -> Database:
        embedded: EmbeddedPostgres | None = None
        if settings.database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir)
            info = await asyncio.to_thread(embedded.start)
            url = info.sqlalchemy_url()
        else:
            url = asyncpg_url(settings.database_url.get_secret_value())
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_s,
            pool_recycle=1800,
            # A ping per checkout finds connections that died with a database restart
            # before a request does. The hot ingest path holds its connections and
            # does not pay it.
            pool_pre_ping=True,
            connect_args={
                "server_settings": {
                    "application_name": "feedback-service",
                    "statement_timeout": str(settings.db_statement_timeout_ms),
                },
                "timeout": 10,
            },
        )
        return cls(
            engine=engine,
            sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
            embedded=embedded,
        )

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[DriverConnection]:
        """A pooled connection as the asyncpg connection itself.

        The ingest write path runs its few set-based statements on it directly: through
        the ORM session a transaction cost ~900 us of CPU, on the driver ~350 us, and
        single-event ingest runs many small transactions. The pool still owns the
        connection (sizing, and dropping it when a connection error leaves this block)."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            if raw.driver_connection is None:  # only after the pool invalidated it
                raise ConnectionError("the pooled database connection is gone")
            driver: DriverConnection = raw.driver_connection
            try:
                yield driver
            except DRIVER_CONNECTION_ERRORS as exc:
                if not isinstance(exc, asyncpg.QueryCanceledError):  # a timeout is not
                    # SQLAlchemy did not see this failure: tell the pool to discard it.
                    await connection.invalidate()
                raise

    async def close(self) -> None:
        await self.engine.dispose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)

    async def migrate(self) -> None:
        """Upgrade to the newest schema; safe when several replicas start at once."""
        async with self.engine.connect() as connection:
            # One transaction: the lock goes with it (also when the upgrade fails, which
            # then reports its own error), and neither waiting for another replica's
            # migration nor a long migration is cut off by the statement timeout.
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
            await connection.run_sync(_upgrade)
            await connection.commit()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def is_migrated(self) -> bool:
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current_heads) == self.expected_heads
