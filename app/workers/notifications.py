"""PostgreSQL LISTEN/NOTIFY for in-process reactions to changes made by any replica.

One dedicated connection (outside the pool) listens; on loss it reconnects with
backoff. Subscribers hear every notification of their channel, and are told when the
connection is lost and when it is back, so that whatever they cache on the strength
of notifications can stop trusting it while they might be missing some.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.engine import URL

logger = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.5, 1, 2, 5, 10)
KEEPALIVE_INTERVAL_S = 15.0
KEEPALIVE_TIMEOUT_S = 5.0


@dataclass
class Subscription:
    channel: str
    on_notify: Callable[[str], None]
    on_connection_change: Callable[[bool], None] = field(default=lambda connected: None)


def asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, url: URL, subscriptions: list[Subscription]) -> None:
        self._dsn = asyncpg_dsn(url)
        self._subscriptions = subscriptions
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def subscribe(self, subscription: Subscription) -> None:
        """Add a subscriber (before ``start``)."""
        self._subscriptions.append(subscription)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="postgres-listener")
        # Start-up waits briefly for the first connection; if the database is slow the
        # subscribers simply run uncached until it comes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Whatever ended the task must not keep the caller from shutting down.
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            lost = asyncio.Event()
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": "feedback-listener"}
                )
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                for subscription in self._subscriptions:
                    await connection.add_listener(
                        subscription.channel,
                        lambda _c, _pid, _ch, payload, s=subscription: s.on_notify(payload),
                    )
                attempt = 0
                self._set_connected(True)
                await self._until_lost(connection, lost)
                logger.warning("notification connection lost; reconnecting")
            except Exception as exc:  # any failure: not trusted, reconnect with backoff
                logger.warning(
                    "notification connection failed",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            finally:
                self._set_connected(False)
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=2))
            await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
            attempt += 1

    @staticmethod
    async def _until_lost(connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Wait for the termination callback, and probe the connection now and then: a
        half-open TCP connection never calls back, and notifications would silently stop."""
        while True:
            try:
                await asyncio.wait_for(lost.wait(), timeout=KEEPALIVE_INTERVAL_S)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(connection.fetchval("SELECT 1"), KEEPALIVE_TIMEOUT_S)
            except Exception:
                return

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected.is_set():
            return
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        for subscription in self._subscriptions:
            subscription.on_connection_change(connected)
