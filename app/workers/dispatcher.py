"""The outbox dispatcher: sends pending deliveries to their integrations.

``dispatcher_concurrency`` workers each hold one pooled connection. A worker claims one
due delivery with ``FOR UPDATE SKIP LOCKED`` (never one queued behind an undelivered
delivery of the same ticket to the same integration, so an update never overtakes its
create), sends it while holding the row lock, records the attempt and commits. Several
dispatchers, in one process or many, never send a delivery twice at the same time; if
one dies mid-send its transaction ends, the lock goes, and another sends the delivery
again with the same ``webhook-id`` (receivers de-duplicate on it).

Outcomes: delivered; a retryable failure (network, timeout, 408, 425, 429, 5xx) is due
again after the next delay of ``FEEDBACK_DELIVERY_RETRY_SCHEDULE`` (±20% jitter), or
after the vendor's ``Retry-After``; a permanent failure, or a retryable one after the
last delay, is ``dead`` (``POST /v1/deliveries/{id}/retry`` re-queues it). Workers wake
on ``NOTIFY feedback_deliveries`` (written with every delivery) and poll every
``dispatcher_poll_interval_s`` as the fallback that also picks up retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from app.config import Settings
from app.db import DRIVER_CONNECTION_ERRORS, Database, DriverConnection
from app.integrations.base import (
    DeliveryError,
    DeliveryResult,
    OutgoingEvent,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from app.integrations.registry import KIND_SPECS, IntegrationKind
from app.models.enums import DeliveryStatus
from app.repositories import outbox
from app.repositories import tickets as tickets_repo
from app.repositories.outbox import ClaimedDelivery
from app.repositories.tickets import TimelineEntry
from app.telemetry import DELIVERY_AGE, DELIVERY_ATTEMPTS, DELIVERY_LATENCY, OUTBOX_DEPTH
from app.workers.ingest_writer import HeldConnection

logger = logging.getLogger(__name__)

JITTER = 0.2
DEPTH_REFRESH_S = 5.0
ERROR_BACKOFF_S = 1.0
MAX_RETRY_AFTER_S = 24 * 3600.0


def webhook_id(delivery_id: int) -> str:
    """The stable id of a delivery's message (``webhook-id``), the same on every try."""
    return f"msg_{delivery_id}"


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every delivery shares: explicit timeouts, no redirects (one could
    lead past the SSRF guard), bounded connections."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.delivery_timeout_s, connect=min(5.0, settings.delivery_timeout_s)
        ),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=4 * settings.dispatcher_concurrency),
        headers={"user-agent": "feedback-service"},
    )


class DeliveryDispatcher:
    def __init__(self, settings: Settings, database: Database, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._database = database
        self._http = http
        self._delays = settings.retry_delays_s
        self._stopping = asyncio.Event()
        self._wake_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._work(n), name=f"dispatcher-{n}")
            for n in range(self._settings.dispatcher_concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._refresh_depth(), name="outbox-depth"))

    async def stop(self) -> None:
        """Let each worker finish the delivery in hand (bounded by the request timeout),
        then end them."""
        self._stopping.set()
        self.wake()
        _, still_running = await asyncio.wait(
            self._tasks, timeout=self._settings.delivery_timeout_s + 5
        )
        for task in still_running:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def wake(self, _payload: str = "") -> None:
        """New or re-queued deliveries exist (NOTIFY): every idle worker looks."""
        event, self._wake_event = self._wake_event, asyncio.Event()
        event.set()

    # --- workers ---------------------------------------------------------------------------

    async def _work(self, number: int) -> None:
        held = HeldConnection(self._database)
        try:
            while not self._stopping.is_set():
                # Taken before looking, so a wake-up between the look and the wait counts.
                wake = self._wake_event
                try:
                    worked = await self._deliver_one(await held.get())
                except Exception as exc:  # the database, mostly: wait, then go on
                    if isinstance(exc, DRIVER_CONNECTION_ERRORS):
                        await held.discard(exc)
                    logger.warning(
                        "dispatcher cycle failed; retrying",
                        extra={"fields": {"error": type(exc).__name__, "worker": number}},
                    )
                    await self._sleep(ERROR_BACKOFF_S)
                    continue
                if not worked:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            wake.wait(), self._settings.dispatcher_poll_interval_s
                        )
        finally:
            await held.release()

    async def _deliver_one(self, connection: DriverConnection) -> bool:
        """Claim, send and record one delivery; False when nothing is due."""
        async with connection.transaction():
            delivery = await outbox.claim_due_delivery(connection)
            if delivery is None:
                return False
            await self._attempt(connection, delivery)
        return True

    async def _attempt(self, connection: DriverConnection, delivery: ClaimedDelivery) -> None:
        integration = await connection.fetchrow(
            "SELECT name, kind, config::text AS config, secrets::text AS secrets "
            "FROM integrations WHERE id = $1",
            delivery.integration_id,
        )
        if integration is None:  # deleted meanwhile: its deliveries went with it
            return
        name: str = integration["name"]
        started = time.perf_counter()
        result: DeliveryResult | None = None
        error: DeliveryError | None = None
        try:
            adapter = KIND_SPECS[IntegrationKind(integration["kind"])].build(
                orjson.loads(integration["config"]),
                orjson.loads(integration["secrets"]),
                allow_private=self._settings.allow_private_targets,
            )
            external_id = (
                await tickets_repo.external_id_of(
                    connection, delivery.ticket_id, delivery.integration_id
                )
                if delivery.ticket_id is not None
                else None
            )
            result = await adapter.send(self._http, _outgoing(delivery, external_id))
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # an adapter bug must not stop the dispatcher
            logger.exception(
                "delivery failed unexpectedly", extra={"fields": {"integration": name}}
            )
            error = RetryableDeliveryError(f"internal error ({type(exc).__name__})")
        duration = time.perf_counter() - started
        outcome, next_in = self._outcome(delivery, error)
        await outbox.record_attempt(
            connection,
            delivery.id,
            outcome=outcome,
            status_code=result.status_code if result else (error.status_code if error else None),
            error=error.message[:500] if error else None,
            duration_ms=round(duration * 1000),
            next_attempt_in_s=next_in,
        )
        if result is not None and result.external_id and delivery.ticket_id is not None:
            await self._remember_external_ref(connection, delivery, name, result)
        DELIVERY_ATTEMPTS.labels(name, outcome).inc()
        DELIVERY_LATENCY.labels(name, outcome).observe(duration)
        if outcome == "delivered":
            DELIVERY_AGE.labels(name).observe(
                max(0.0, (datetime.now(UTC) - delivery.created_at).total_seconds())
            )
        elif outcome == "dead":
            logger.warning(
                "delivery dead",
                extra={
                    "fields": {
                        "delivery_id": delivery.id,
                        "integration": name,
                        "attempts": delivery.attempts + 1,
                        "error": error.message if error else None,
                    }
                },
            )

    def _outcome(
        self, delivery: ClaimedDelivery, error: DeliveryError | None
    ) -> tuple[str, float | None]:
        if error is None:
            return "delivered", None
        if isinstance(error, PermanentDeliveryError) or not isinstance(
            error, RetryableDeliveryError
        ):
            return "dead", None
        retry = delivery.attempts  # this attempt's index among the retries
        if retry >= len(self._delays):
            return "dead", None
        if error.retry_after_s is not None:
            return "retry", min(error.retry_after_s, MAX_RETRY_AFTER_S)
        delay = self._delays[retry]
        return "retry", delay * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 -- jitter

    async def _remember_external_ref(
        self,
        connection: DriverConnection,
        delivery: ClaimedDelivery,
        integration_name: str,
        result: DeliveryResult,
    ) -> None:
        assert delivery.ticket_id is not None
        assert result.external_id is not None
        if await tickets_repo.record_external_ref(
            connection,
            delivery.ticket_id,
            delivery.integration_id,
            result.external_id,
            result.external_url,
        ):
            await tickets_repo.add_timeline(
                connection,
                [
                    TimelineEntry(
                        delivery.ticket_id,
                        "external_ref",
                        f"Created in {integration_name} as {result.external_id}",
                    )
                ],
            )

    # --- housekeeping ----------------------------------------------------------------------

    async def _refresh_depth(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self._database.driver_connection() as connection:
                    depth = await outbox.depth_by_status(connection)
                for status in DeliveryStatus:
                    OUTBOX_DEPTH.labels(status.value).set(depth.get(status.value, 0))
            except Exception as exc:  # the gauge waits for the database like everyone
                logger.debug(
                    "outbox depth not refreshed", extra={"fields": {"error": type(exc).__name__}}
                )
            await self._sleep(DEPTH_REFRESH_S)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _outgoing(delivery: ClaimedDelivery, external_id: str | None) -> OutgoingEvent:
    payload: dict[str, Any] = delivery.payload
    return OutgoingEvent(
        delivery_id=webhook_id(delivery.id),
        event_type=delivery.event_type,
        occurred_at=delivery.occurred_at.astimezone(UTC),
        data=payload.get("data", {}),
        feedback=payload.get("feedback", []),
        external_id=external_id,
    )
