"""Kafka ingestion: a consumer-group member feeding the shared ingest pipeline.

One cycle: poll a batch (up to ``kafka_batch_max_events`` messages, waiting at most
``kafka_batch_linger_ms`` for it to fill), validate each message with the REST schema,
store the valid events in one transaction (``commit_ingest``, ``ingested_via: kafka``),
produce the bad ones and conflicting duplicates to the dead-letter topic and wait for
the broker's acknowledgement, and only then commit each partition's offset. Exact
duplicates are skipped by the pipeline's de-duplication.

Delivery is at-least-once end to end and exactly-once in the database: whatever goes
wrong between the poll and the offset commit (database outage, broker hiccup, a kill)
leaves the offsets where they were, so the same messages are read again and stored
events come back as duplicates. The one visible repeat is a dead letter produced twice
when a cycle fails after its DLQ write; replaying the DLQ is idempotent for the same
reason.

When a cycle fails for a reason that is not the messages' fault (the database or the
broker is unreachable, the schema is not migrated, any unexpected error), the consumer
rewinds to the first unstored message, pauses its partitions and retries with capped,
jittered exponential backoff: consumption stops, nothing is skipped. A message the
database refuses on its own (a value PostgreSQL rejects although it passed validation)
is isolated and dead-lettered instead, so it cannot stall its partition.

Rebalances: the listener waits for the cycle in progress to finish (its offsets are
committed before the lock is released), and a cycle whose poll overlapped a rebalance
is dropped unprocessed: the partitions' next owner reads those messages from the
committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.helpers import create_ssl_context
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.db import DRIVER_CONNECTION_ERRORS, Database
from app.errors import validation_errors
from app.models.enums import DeadLetterReason, IngestVia
from app.schemas.feedback import FeedbackEventIn, IngestStatus
from app.services.enrichment import TextInsight
from app.services.ingest import IngestOutcome
from app.telemetry import (
    KAFKA_CONSUMED,
    KAFKA_DEAD_LETTERS,
    KAFKA_LAG,
    KAFKA_MESSAGES,
    KAFKA_RETRIES,
    record_rejected,
)
from app.workers.ingest_writer import HeldConnection, ingest_in_transaction
from app.workers.text_analysis import INLINE, TextAnalysisPool

logger = logging.getLogger(__name__)

# Headers the DLQ adds (an earlier copy is replaced when a replayed message fails again).
ERROR_HEADER = "x-error"
ORIGINAL_TOPIC_HEADER = "x-original-topic"
ORIGINAL_PARTITION_HEADER = "x-original-partition"
ORIGINAL_OFFSET_HEADER = "x-original-offset"
DLQ_HEADERS = frozenset(
    {ERROR_HEADER, ORIGINAL_TOPIC_HEADER, ORIGINAL_PARTITION_HEADER, ORIGINAL_OFFSET_HEADER}
)
MAX_ERROR_HEADER_CHARS = 1000
READINESS_TIMEOUT_S = 3.0
PARSE_SLICE = 50  # messages validated between two yields to the event loop
# PostgreSQL errors that belong to one event's values (classes 22 and 23), not to the
# database's state: such an event is dead-lettered rather than retried for ever.
EVENT_SPECIFIC_DB_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# The producer's or the broker's refusal of a dead letter's size: sent without its value.
TOO_LARGE_FOR_THE_DLQ = (MessageSizeTooLargeError, RecordTooLargeError)
# Any other failure of the database or the connection to it: the batch is retried.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    SQLAlchemyError,
    *DRIVER_CONNECTION_ERRORS,
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Any  # aiokafka ConsumerRecord
    reason: DeadLetterReason
    error: str  # the x-error header: why, never the message's content
    fields: tuple[str, ...] = ()  # the invalid fields' locations, for the log line


@dataclass(slots=True)
class ParsedBatch:
    events: list[FeedbackEventIn] = field(default_factory=list)
    event_records: list[Any] = field(default_factory=list)  # parallel to events
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _error_text(reason: DeadLetterReason, detail: str) -> str:
    text = f"{reason.value}: {detail}"
    if len(text) > MAX_ERROR_HEADER_CHARS:
        text = text[: MAX_ERROR_HEADER_CHARS - 1] + "…"
    return text


def parse_records(records: Sequence[Any], max_message_bytes: int) -> ParsedBatch:
    """Validate each message with the REST schema; bad ones become dead letters."""
    parsed = ParsedBatch()
    for record in records:
        value: bytes | None = record.value
        if not value:
            reason = DeadLetterReason.EMPTY
            detail = "the message has no value"
            parsed.dead_letters.append(DeadLetter(record, reason, _error_text(reason, detail)))
            continue
        if len(value) > max_message_bytes:
            reason = DeadLetterReason.TOO_LARGE
            detail = f"{len(value)} bytes, the limit is {max_message_bytes}"
            parsed.dead_letters.append(DeadLetter(record, reason, _error_text(reason, detail)))
            continue
        try:
            event = FeedbackEventIn.model_validate_json(value)
        except ValidationError as exc:
            parsed.dead_letters.append(_invalid(record, exc))
            continue
        parsed.events.append(event)
        parsed.event_records.append(record)
    return parsed


def _invalid(record: Any, exc: ValidationError) -> DeadLetter:
    errors = validation_errors(exc.errors())
    if any(error["type"] == "json_invalid" for error in errors):
        reason = DeadLetterReason.INVALID_JSON
        return DeadLetter(record, reason, _error_text(reason, "the message is not valid JSON"))
    reason = DeadLetterReason.INVALID_EVENT
    locations = tuple(".".join(map(str, error["loc"])) or "(event)" for error in errors)
    detail = "; ".join(
        f"{location}: {error['msg']}" for location, error in zip(locations, errors, strict=True)
    )
    return DeadLetter(record, reason, _error_text(reason, detail), locations)


def _conflict(record: Any, event_id: str) -> DeadLetter:
    reason = DeadLetterReason.CONFLICT
    detail = f"event_id '{event_id}' is already stored with different content"
    return DeadLetter(record, reason, _error_text(reason, detail))


def _dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    record = letter.record
    kept = [(key, value) for key, value in (record.headers or ()) if key not in DLQ_HEADERS]
    return [
        *kept,
        (ERROR_HEADER, letter.error.encode()),
        (ORIGINAL_TOPIC_HEADER, str(record.topic).encode()),
        (ORIGINAL_PARTITION_HEADER, str(record.partition).encode()),
        (ORIGINAL_OFFSET_HEADER, str(record.offset).encode()),
    ]


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by the consumer, the DLQ producer and
    the CLI tools."""
    assert settings.kafka_bootstrap_servers is not None
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap_servers.split(",")],
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # checked by Settings
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    password = settings.kafka_ssl_keyfile_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
        keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        password=password.get_secret_value() if password else None,
    )
    return context


class _CycleFailed(Exception):
    """The cycle could not finish; its messages are read again after a pause."""

    def __init__(self, cause: str, error: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause
        self.error = error


class _Dropped:
    """A batch polled across a rebalance, left unprocessed."""


@dataclass(frozen=True, slots=True)
class _Cycle:
    batch: dict[Any, list[Any]]
    task: asyncio.Task[_CycleFailed | _Dropped | None]


class _FinishCycleBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: KafkaIngestConsumer) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The cycle in progress commits its offsets before it releases the lock; one
        # that polled but has not started sees the new epoch and drops its messages.
        if not revoked:
            return  # the first join of this member: nothing was assigned yet
        async with self._worker.cycle_lock:
            self._worker.assignment_epoch += 1
        self._worker.forget_lag(revoked)
        logger.info("kafka partitions revoked", extra={"fields": {"count": len(revoked)}})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        logger.info(
            "kafka partitions assigned",
            extra={"fields": {"partitions": sorted(p.partition for p in assigned)}},
        )


class KafkaIngestConsumer:
    """A long-running consumer with ``start()``/``stop()`` (see the module docstring)."""

    def __init__(
        self, settings: Settings, database: Database, text_analysis: TextAnalysisPool = INLINE
    ) -> None:
        if settings.kafka_bootstrap_servers is None:
            raise ValueError("FEEDBACK_KAFKA_BOOTSTRAP_SERVERS is not set")
        self._settings = settings
        self._database = database
        self._text_analysis = text_analysis
        self._topic = settings.kafka_topic
        self._max_message_bytes = settings.kafka_max_message_bytes
        self._fetch_bytes = max(1024 * 1024, settings.kafka_max_message_bytes)
        self.cycle_lock = asyncio.Lock()
        self.assignment_epoch = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._connected = False
        self._failure: str | None = None  # why the last cycle or connection attempt failed
        self._lag_updated_at = 0.0
        self._lag_series: set[TopicPartition] = set()  # partitions with a lag gauge series
        self._connection = HeldConnection(database)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Return at once; connecting (and reconnecting) happens in the background, so the
        process starts even while the broker is unreachable (readiness says so)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="kafka-consumer")

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Finish the cycle in progress (stored, dead-lettered, offsets committed), leave
        the group, then return. A cycle still stuck after ``timeout_s`` is cancelled:
        its offsets stay uncommitted and its messages are read again later."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            logger.warning("kafka consumer did not drain in time; cancelling")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def readiness(self) -> str:
        """'ok', or why the consumer cannot work right now (for /readyz)."""
        if self._task is None or self._task.done():
            return "not running"
        if not self._connected or self._consumer is None:
            return self._failure or "connecting to the broker"
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_S):
                await self._consumer.topics()  # a metadata round trip to a broker
        except Exception as exc:  # any failure to reach the broker means not ready
            return f"broker unreachable ({type(exc).__name__})"
        return "ok"

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._connect()
                failures = 0
                await self._consume_until_stopped()
            except Exception as exc:  # the broker went away, or anything unforeseen
                self._connected = False
                self._failure = f"{type(exc).__name__}"
                failures += 1
                logger.warning(
                    "kafka consumer restarting",
                    extra={"fields": {"error": type(exc).__name__, "attempt": failures}},
                )
            finally:
                await self._disconnect()
                await self._connection.release()
            if not self._stopping.is_set():
                await self._sleep(self._backoff(failures))

    async def _connect(self) -> None:
        options = kafka_client_options(self._settings)
        self._producer = AIOKafkaProducer(
            **options,
            acks="all",
            linger_ms=5,
            # A dead letter carries the whole original message, as large as a fetch may
            # bring (a larger one goes without its value: _send_letter).
            max_request_size=self._fetch_bytes + 64 * 1024,
        )
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=self._settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset=self._settings.kafka_auto_offset_reset,
            max_poll_records=self._settings.kafka_batch_max_events,
            max_partition_fetch_bytes=self._fetch_bytes,
        )
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_FinishCycleBeforeRevoke(self))
        self._connected = True
        self._failure = None
        logger.info("kafka consumer connected", extra={"fields": {"topic": self._topic}})

    async def _disconnect(self) -> None:
        self._connected = False
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        for client in (consumer, producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    # --- the cycle -------------------------------------------------------------------------

    async def _consume_until_stopped(self) -> None:
        """Two batches in flight: while one is being stored (PostgreSQL busy, this
        process waiting), the next is polled and validated (this process busy). A batch
        commits only after the one before it has; if one does not, every message
        fetched after the last commit is read again."""
        failures = 0
        in_flight: _Cycle | None = None
        try:
            while True:
                stopping = self._stopping.is_set()
                batch: dict[Any, list[Any]] = {}
                if not stopping:
                    epoch = self.assignment_epoch
                    batch = await self._poll()
                    parsed = await self._parse(batch)
                if in_flight is not None:
                    outcome = await in_flight.task
                    previous, in_flight = in_flight, None
                    if outcome is not None:  # not committed: nothing after it may be
                        async with self.cycle_lock:
                            self._rewind(previous.batch, batch)
                        if isinstance(outcome, _CycleFailed):
                            failures += 1
                            self._note_failure(outcome, failures)
                            # In an outage the lag is what operators watch: the backlog.
                            await self._update_lag()
                            await self._pause_for(self._backoff(failures))
                        continue
                    failures = 0
                    self._failure = None
                if stopping:
                    return
                if not batch:
                    await self._update_lag()
                    continue
                in_flight = _Cycle(
                    batch, asyncio.create_task(self._run_cycle(batch, parsed, epoch))
                )
                # Let the cycle run up to its first database round trip before this task
                # polls again: a poll served from prefetched messages never yields, and
                # the next batch's validation would run before this one reached PostgreSQL.
                await asyncio.sleep(0)
        finally:
            if in_flight is not None and not in_flight.task.done():
                in_flight.task.cancel()  # only when this task is cancelled itself

    async def _parse(self, batch: dict[Any, list[Any]]) -> ParsedBatch:
        """Validate in slices, yielding between them: the batch in flight gets the loop
        for its few Python steps and its database round trips while this one is parsed."""
        records = [record for partition_records in batch.values() for record in partition_records]
        if records:
            KAFKA_CONSUMED.labels(self._topic).inc(len(records))
        parsed = ParsedBatch()
        for start in range(0, len(records), PARSE_SLICE):
            part = parse_records(records[start : start + PARSE_SLICE], self._max_message_bytes)
            parsed.events += part.events
            parsed.event_records += part.event_records
            parsed.dead_letters += part.dead_letters
            await asyncio.sleep(0)
        return parsed

    async def _run_cycle(
        self, batch: dict[Any, list[Any]], parsed: ParsedBatch, epoch: int
    ) -> _CycleFailed | _Dropped | None:
        """Store, dead-letter and commit one batch; None when its offsets are committed."""
        async with self.cycle_lock:
            if epoch != self.assignment_epoch:
                # Partitions moved after this batch was polled: it stays unprocessed.
                # Partitions now elsewhere are read by their next owner from the committed
                # offsets; the caller rewinds ours to read the same messages again.
                return _Dropped()
            try:
                await self._process(batch, parsed)
            except _CycleFailed as failed:
                return failed
            except Exception as exc:  # unforeseen: retried like an outage, never skipped
                logger.exception("kafka batch failed unexpectedly")
                return _CycleFailed("unexpected", exc)
        await self._update_lag()
        return None

    def _note_failure(self, failed: _CycleFailed, attempt: int) -> None:
        self._failure = f"{failed.cause} ({type(failed.error).__name__})"
        KAFKA_RETRIES.labels(failed.cause).inc()
        logger.warning(
            "kafka batch not stored; pausing before a retry",
            extra={
                "fields": {
                    "cause": failed.cause,
                    "error": type(failed.error).__name__,
                    "attempt": attempt,
                }
            },
        )

    async def _poll(self) -> dict[Any, list[Any]]:
        """Up to batch_max_events messages; once one is in, wait at most the linger for
        more. Returns {} after a second with nothing, so stop requests are seen."""
        limit = self._settings.kafka_batch_max_events
        batch: dict[Any, list[Any]] = await self._consumer.getmany(
            timeout_ms=1000, max_records=limit
        )
        count = sum(len(records) for records in batch.values())
        if count == 0 or count >= limit or self._settings.kafka_batch_linger_ms == 0:
            return batch
        deadline = time.monotonic() + self._settings.kafka_batch_linger_ms / 1000
        while count < limit and not self._stopping.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            more = await self._consumer.getmany(timeout_ms=remaining_ms, max_records=limit - count)
            for partition, records in more.items():
                batch.setdefault(partition, []).extend(records)
                count += len(records)
        return batch

    async def _process(self, batch: dict[Any, list[Any]], parsed: ParsedBatch) -> None:
        """Store, dead-letter, then commit the offsets."""
        outcomes = await self._store(parsed)
        dead_letters = list(parsed.dead_letters)
        for record, event, outcome in zip(
            parsed.event_records, parsed.events, outcomes, strict=True
        ):
            if outcome is None:
                dead_letters.append(
                    DeadLetter(
                        record,
                        DeadLetterReason.STORAGE_REJECTED,
                        _error_text(
                            DeadLetterReason.STORAGE_REJECTED,
                            "the database refused the event's values",
                        ),
                    )
                )
            elif outcome.status is IngestStatus.CONFLICT:
                dead_letters.append(_conflict(record, event.event_id))
        await self._send_dead_letters(dead_letters)
        offsets = {partition: records[-1].offset + 1 for partition, records in batch.items()}
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # stored and dead-lettered already: a replay is harmless
            raise _CycleFailed("offset_commit", exc) from exc
        self._count_outcomes(outcomes, len(dead_letters))

    async def _store(self, parsed: ParsedBatch) -> list[IngestOutcome | None]:
        """One transaction for the batch; None marks an event the database refused."""
        if not parsed.events:
            return []
        insights = await self._text_analysis.analyse(parsed.events)
        try:
            return list(await self._ingest(parsed.events, insights))
        except EVENT_SPECIFIC_DB_ERRORS:
            pass  # one event's values: find it below, event by event
        outcomes: list[IngestOutcome | None] = []
        for event, insight in zip(parsed.events, insights, strict=True):
            try:
                outcomes.extend(await self._ingest([event], [insight]))
            except EVENT_SPECIFIC_DB_ERRORS as exc:
                logger.warning(
                    "kafka event refused by the database",
                    extra={"fields": {"event_id": event.event_id, "error": type(exc).__name__}},
                )
                outcomes.append(None)
        return outcomes

    async def _ingest(
        self, events: list[FeedbackEventIn], insights: list[TextInsight]
    ) -> list[IngestOutcome]:
        # On the connection this consumer holds: a pool checkout costs a ping per batch.
        try:
            return await ingest_in_transaction(
                await self._connection.get(), events, IngestVia.KAFKA, insights
            )
        except EVENT_SPECIFIC_DB_ERRORS:
            raise
        except DATABASE_ERRORS as exc:
            if isinstance(exc, DRIVER_CONNECTION_ERRORS) and not isinstance(
                exc, asyncpg.QueryCanceledError
            ):
                await self._connection.discard(exc)  # the next attempt connects afresh
            raise _CycleFailed("database", exc) from exc

    async def _send_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        if not dead_letters:
            return
        try:
            sends = [await self._send_letter(letter) for letter in dead_letters]
            results = await asyncio.gather(*sends, return_exceptions=True)
            for letter, result in zip(dead_letters, results, strict=True):
                if isinstance(result, TOO_LARGE_FOR_THE_DLQ):
                    await (await self._send_letter(letter, without_value=True))
                elif isinstance(result, BaseException):
                    raise result
        except Exception as exc:  # not acknowledged: the offsets must not move past it
            raise _CycleFailed("dead_letter_topic", exc) from exc
        for letter in dead_letters:
            record = letter.record
            KAFKA_DEAD_LETTERS.labels(self._topic, letter.reason.value).inc()
            if letter.reason is not DeadLetterReason.CONFLICT:
                record_rejected("unknown", IngestVia.KAFKA)
            logger.warning(
                "kafka message dead-lettered",
                extra={
                    "fields": {
                        "reason": letter.reason.value,
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        **({"invalid_fields": list(letter.fields)} if letter.fields else {}),
                    }
                },
            )

    async def _send_letter(
        self, letter: DeadLetter, *, without_value: bool = False
    ) -> asyncio.Future[Any]:
        """Queue one dead letter; its future resolves when the broker has it. A value the
        producer or the broker refuses as too large is left out, the headers saying so
        (the original stays readable at its topic, partition and offset)."""
        if not without_value:
            try:
                return cast(
                    "asyncio.Future[Any]",
                    await self._producer.send(
                        self._settings.kafka_dlq_topic,
                        value=letter.record.value,
                        key=letter.record.key,
                        headers=_dead_letter_headers(letter),
                    ),
                )
            except TOO_LARGE_FOR_THE_DLQ:
                pass
        size = len(letter.record.value or b"")
        omitted = replace(
            letter,
            error=_error_text(
                letter.reason,
                f"{letter.error.partition(': ')[2]}; value ({size} bytes) left out, too large "
                "for the dead-letter topic: read it at x-original-topic/partition/offset",
            ),
        )
        return cast(
            "asyncio.Future[Any]",
            await self._producer.send(
                self._settings.kafka_dlq_topic,
                value=None,
                key=letter.record.key,
                headers=_dead_letter_headers(omitted),
            ),
        )

    def _count_outcomes(self, outcomes: list[IngestOutcome | None], dead_lettered: int) -> None:
        stored = sum(1 for o in outcomes if o is not None and o.status is IngestStatus.ACCEPTED)
        duplicates = sum(
            1 for o in outcomes if o is not None and o.status is IngestStatus.DUPLICATE
        )
        if stored:
            KAFKA_MESSAGES.labels(self._topic, "stored").inc(stored)
        if duplicates:
            KAFKA_MESSAGES.labels(self._topic, "duplicate").inc(duplicates)
        if dead_lettered:
            KAFKA_MESSAGES.labels(self._topic, "dead_lettered").inc(dead_lettered)

    def _rewind(self, *batches: dict[Any, list[Any]]) -> None:
        """Point each partition back at its first uncommitted message."""
        first: dict[Any, int] = {}
        for batch in batches:
            for partition, records in batch.items():
                first[partition] = min(first.get(partition, records[0].offset), records[0].offset)
        for partition, offset in first.items():
            with contextlib.suppress(Exception):  # not assigned any more: nothing to rewind
                self._consumer.seek(partition, offset)

    async def _pause_for(self, seconds: float) -> None:
        """Stop fetching while waiting out a failure (no prefetching into a dead end)."""
        assigned = list(self._consumer.assignment())
        self._consumer.pause(*assigned)
        try:
            await self._sleep(seconds)
        finally:
            # Only partitions still assigned can be resumed; a rebalance during the pause
            # hands out fresh, unpaused ones.
            self._consumer.resume(*self._consumer.paused())

    async def _update_lag(self) -> None:
        """Lag per partition: messages after this member's position (what it has
        stored or dead-lettered, or rewound to), up to the last fetched high-water mark."""
        now = time.monotonic()
        if now - self._lag_updated_at < 1.0:
            return
        self._lag_updated_at = now
        for partition in self._consumer.assignment():
            highwater = self._consumer.highwater(partition)
            if highwater is None:
                continue  # nothing fetched from it yet
            try:
                async with asyncio.timeout(1.0):
                    position: int = await self._consumer.position(partition)
            except Exception:  # noqa: S112 -- revoked meanwhile or not known yet: next time
                continue
            if partition not in self._consumer.assignment():
                continue  # revoked while its position was awaited
            KAFKA_LAG.labels(partition.topic, str(partition.partition)).set(
                max(0, highwater - position)
            )
            self._lag_series.add(partition)
        # A rebalance can run while a position is awaited: whatever a stale assignment
        # labelled then goes now, or one partition would show on two members.
        self.forget_lag(self._lag_series - set(self._consumer.assignment()))

    def forget_lag(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the lag series of partitions this member no longer holds."""
        for partition in list(partitions):
            self._lag_series.discard(partition)
            with contextlib.suppress(KeyError):
                KAFKA_LAG.remove(partition.topic, str(partition.partition))

    # --- waiting ---------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        ceiling = min(self._settings.kafka_retry_max_backoff_s, 0.5 * 2.0 ** (failures - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not secrets

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once for a stop request."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
