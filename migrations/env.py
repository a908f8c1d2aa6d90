"""Alembic environment: runs on the connection the service hands over, or on
FEEDBACK_DATABASE_URL when invoked through the ``alembic`` command."""

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import Base

target_metadata = Base.metadata


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Created by the migration only where the pg_trgm extension is available.
    return not (type_ == "index" and name == "ix_feedback_text_trgm")


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from app.config import load_settings
    from app.db import asyncpg_url

    settings = load_settings()
    if settings.database_url is None:
        raise SystemExit(
            "Set FEEDBACK_DATABASE_URL, or use `feedback-service migrate` for the embedded database."
        )
    engine = create_async_engine(
        asyncpg_url(settings.database_url.get_secret_value()), poolclass=pool.NullPool
    )
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run_on(given)
elif context.is_offline_mode():
    context.configure(url="postgresql://", target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_standalone())
