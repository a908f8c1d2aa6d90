"""The Kafka consumer in-process against a real broker (Tansu) and the session PostgreSQL:
validation and dead letters, exactly-once storage, offsets, metrics, database outages,
graceful stops, rebalances and readiness. Every test uses its own topics and group."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import text

import app.workers.kafka_consumer as kafka_consumer_module
from app.config import Settings
from app.db import Database
from app.dependencies import AppState
from app.embedded_postgres import EmbeddedPostgres
from app.models.enums import DeadLetterReason, IngestVia
from app.workers.kafka_consumer import (
    DeadLetter,
    KafkaIngestConsumer,
    _dead_letter_headers,
    parse_records,
)
from tests.conftest import make_event
from tests.fixtures.kafka import (
    committed_offsets,
    create_topic,
    event_message,
    headers_of,
    produce,
    read_all,
    unique_name,
)
from tests.fixtures.server import free_port, scratch_dir

Message = tuple[bytes | None, bytes | None]

PII = ("ana@example.com", "+4915112345678", "Ana Roth", "Die Schlange war 20 Minuten")
SECRET = "hunter2-s3cr3t"


# -- helpers ---------------------------------------------------------------------------------


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def kafka_metrics(topic: str) -> dict[str, float]:
    """This topic's consumer counters (names shortened), for before/after comparisons."""
    values = {
        "consumed": metric("feedback_kafka_consumed_messages_total", topic=topic),
        "retries_database": metric("feedback_kafka_batch_retries_total", cause="database"),
    }
    for outcome in ("stored", "duplicate", "dead_lettered"):
        values[outcome] = metric("feedback_kafka_messages_total", topic=topic, outcome=outcome)
    for reason in DeadLetterReason:
        values[f"dlq_{reason.value}"] = metric(
            "feedback_kafka_dead_letters_total", topic=topic, reason=reason.value
        )
    return values


def ingested(channel: str, status: str) -> float:
    return metric("feedback_ingested_events_total", channel=channel, via="kafka", status=status)


def processed(topic: str) -> float:
    """Messages whose offsets are committed (stored, duplicate or dead-lettered)."""
    counts = kafka_metrics(topic)
    return counts["stored"] + counts["duplicate"] + counts["dead_lettered"]


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, step: float = 0.1
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


@dataclass(frozen=True)
class Names:
    topic: str
    dlq: str
    group: str


async def new_topics(bootstrap: str, partitions: int) -> Names:
    """Fresh topic (with ``partitions``), DLQ (one partition) and group names; the topics
    exist before any consumer asks for them (Tansu would auto-create 4 partitions)."""
    names = Names(unique_name("feedback"), unique_name("feedback-dlq"), unique_name("group"))
    await create_topic(bootstrap, names.topic, partitions)
    await create_topic(bootstrap, names.dlq, 1)
    return names


def consumer_settings(settings: Settings, bootstrap: str, names: Names, **update: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": names.topic,
        "kafka_dlq_topic": names.dlq,
        "kafka_group_id": names.group,
        "kafka_batch_linger_ms": 20,
        "kafka_retry_max_backoff_s": 1.0,
    }
    values.update(update)
    return settings.model_copy(update=values)


@asynccontextmanager
async def running(
    consumer_settings: Settings, database: Database
) -> AsyncIterator[KafkaIngestConsumer]:
    consumer = KafkaIngestConsumer(consumer_settings, database)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def stored_rows(database: Database) -> dict[str, tuple[str, int | None, str | None]]:
    """event_id -> (ingested_via, nps, text) of every stored event."""
    async with database.sessionmaker() as session:
        rows = (
            await session.execute(text("SELECT event_id, ingested_via, nps, text FROM feedback"))
        ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def stored_count(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int((await session.execute(text("SELECT count(*) FROM feedback"))).scalar_one())


async def stored_ids(database: Database) -> set[str]:
    async with database.sessionmaker() as session:
        return set((await session.execute(text("SELECT event_id FROM feedback"))).scalars())


def end_offsets(records: Sequence[Any]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for record in records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def events_with_keys(prefix: str, count: int, **overrides: Any) -> list[dict[str, Any]]:
    """Valid events spread over partitions (each keyed by its own customer id)."""
    return [
        make_event(
            f"{prefix}-{n}",
            customer={"id": f"{prefix}-C{n}", "email": "ana@example.com", "name": "Ana Roth"},
            **overrides,
        )
        for n in range(count)
    ]


def positions(records: Sequence[Any]) -> dict[str, tuple[int, int]]:
    """event_id -> (partition, offset) of every JSON event in ``records``."""
    found: dict[str, tuple[int, int]] = {}
    for record in records:
        event_id = orjson.loads(record.value)["event_id"]
        assert event_id not in found, f"{event_id} produced twice"
        found[event_id] = (record.partition, record.offset)
    return found


async def produce_each(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    """Like ``produce``, with headers, and for messages over aiokafka's default 1 MiB
    request limit; one at a time, each acknowledged before the next."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        for key, value, headers in messages:
            await (await producer.send(topic, value=value, key=key, headers=headers))
    finally:
        await producer.stop()


# -- parse_records and the DLQ headers (no broker) -------------------------------------------


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def fake(value: bytes | None, offset: int = 0, **kwargs: Any) -> FakeRecord:
    return FakeRecord("feedback.events", 2, offset, b"key", value, **kwargs)


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, DeadLetterReason.EMPTY, "the message has no value"),
        (b"", DeadLetterReason.EMPTY, "the message has no value"),
        (b"x" * 1025, DeadLetterReason.TOO_LARGE, "1025 bytes, the limit is 1024"),
        (
            orjson.dumps(make_event("big", text="t" * 2000)),
            DeadLetterReason.TOO_LARGE,
            "bytes, the limit is 1024",
        ),
        (f"token={SECRET} {{".encode(), DeadLetterReason.INVALID_JSON, "not valid JSON"),
        (b"\xff\xfe\x00garbage", DeadLetterReason.INVALID_JSON, "not valid JSON"),
        (b"[1, 2]", DeadLetterReason.INVALID_EVENT, "(event)"),
        (b'"just a string"', DeadLetterReason.INVALID_EVENT, "(event)"),
        (
            orjson.dumps(make_event("bad-nps", scores=[{"metric": "nps", "value": 42}])),
            DeadLetterReason.INVALID_EVENT,
            "scores.0.value",
        ),
        (
            orjson.dumps({k: v for k, v in make_event("no-channel").items() if k != "channel"}),
            DeadLetterReason.INVALID_EVENT,
            "channel",
        ),
    ],
)
def test_parse_records_dead_letters_each_kind_of_bad_message(
    value: bytes | None, reason: DeadLetterReason, detail: str
) -> None:
    good = orjson.dumps(make_event("good-1"))
    parsed = parse_records([fake(good, 0), fake(value, 1), fake(good, 2)], max_message_bytes=1024)

    assert [event.event_id for event in parsed.events] == ["good-1", "good-1"]
    assert [record.offset for record in parsed.event_records] == [0, 2]
    assert len(parsed.dead_letters) == 1
    letter = parsed.dead_letters[0]
    assert letter.record.offset == 1
    assert letter.reason is reason
    assert letter.error.startswith(f"{reason.value}: ")
    assert detail in letter.error
    assert len(letter.error) <= kafka_consumer_module.MAX_ERROR_HEADER_CHARS
    # Why, never what: no message content in the header.
    assert SECRET not in letter.error
    for fragment in PII:
        assert fragment not in letter.error


def test_parse_records_accepts_a_message_exactly_at_the_size_limit() -> None:
    value = orjson.dumps(make_event("edge"))
    parsed = parse_records([fake(value)], max_message_bytes=len(value))
    assert [event.event_id for event in parsed.events] == ["edge"]
    parsed = parse_records([fake(value)], max_message_bytes=len(value) - 1)
    assert [letter.reason for letter in parsed.dead_letters] == [DeadLetterReason.TOO_LARGE]


def test_invalid_event_error_names_every_bad_field_and_is_capped() -> None:
    event = make_event("many-bad", channel="carrier-pigeon", customer={"email": "not-an-email"})
    parsed = parse_records([fake(orjson.dumps(event))], max_message_bytes=1 << 20)
    (letter,) = parsed.dead_letters
    assert letter.reason is DeadLetterReason.INVALID_EVENT
    assert set(letter.fields) == {"channel", "customer.email"}
    assert "channel: " in letter.error
    assert "customer.email: " in letter.error
    assert "not-an-email" not in letter.error

    tags = [f"{'x' * 70}{n}" for n in range(20)]  # every tag too long: a long error text
    parsed = parse_records(
        [fake(orjson.dumps(make_event("long-error", tags=tags)))], max_message_bytes=1 << 20
    )
    (letter,) = parsed.dead_letters
    assert len(letter.error) == kafka_consumer_module.MAX_ERROR_HEADER_CHARS
    assert letter.error.endswith("…")


def test_dead_letter_headers_replace_an_earlier_copy_and_keep_the_others() -> None:
    replayed = FakeRecord(
        "feedback.events.replay",
        3,
        17,
        b"key",
        b"{",
        headers=(
            ("trace-id", b"abc"),
            ("x-error", b"conflict: from the first time"),
            ("x-original-topic", b"feedback.events"),
            ("x-original-partition", b"0"),
            ("x-original-offset", b"5"),
            ("tenant", b"eu"),
        ),
    )
    letter = DeadLetter(replayed, DeadLetterReason.INVALID_JSON, "invalid_json: not JSON")
    headers = _dead_letter_headers(letter)

    assert headers == [
        ("trace-id", b"abc"),
        ("tenant", b"eu"),
        ("x-error", b"invalid_json: not JSON"),
        ("x-original-topic", b"feedback.events.replay"),
        ("x-original-partition", b"3"),
        ("x-original-offset", b"17"),
    ]
    assert _dead_letter_headers(DeadLetter(fake(None), DeadLetterReason.EMPTY, "empty: x")) == [
        ("x-error", b"empty: x"),
        ("x-original-topic", b"feedback.events"),
        ("x-original-partition", b"2"),
        ("x-original-offset", b"0"),
    ]


# -- one consumer, every kind of message -----------------------------------------------------


@dataclass(frozen=True)
class Expected:
    stored: dict[str, dict[str, Any]]  # event_id -> the version that must be stored
    dead: Counter[tuple[bytes | None, bytes | None, str]]  # (key, value, reason)
    duplicates: int
    messages: list[Message]


def mixed_messages(seed: int) -> Expected:
    """3,000 messages: 2,700 new events, 100 exact duplicates (keys reordered), 50
    conflicting duplicates, 50 schema-invalid events, 50 non-JSON messages, 30 empty
    ones and 20 over the 4 KiB limit, in a shuffled order in which every duplicate
    comes after its original (same key, so same partition)."""
    rng = random.Random(seed)
    originals = events_with_keys(f"mix{seed}", 2700)
    placed: list[tuple[float, Message]] = [
        (float(n), event_message(event)) for n, event in enumerate(originals)
    ]
    dead: Counter[tuple[bytes | None, bytes | None, str]] = Counter()

    def anywhere(message: Message, reason: str | None = None) -> None:
        placed.append((rng.uniform(-1, len(originals)), message))
        if reason is not None:
            dead[(message[0], message[1], reason)] += 1

    chosen = rng.sample(range(len(originals)), 150)
    for n in chosen[:100]:  # exact duplicates, serialised differently
        key, _ = event_message(originals[n])
        value = orjson.dumps(originals[n], option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        placed.append((rng.uniform(n + 0.1, len(originals)), (key, value)))
    for n in chosen[100:]:  # same event_id, other content
        key, _ = event_message(originals[n])
        conflicting = dict(originals[n], scores=[{"metric": "nps", "value": 9}])
        value = orjson.dumps(conflicting)
        placed.append((rng.uniform(n + 0.1, len(originals)), (key, value)))
        dead[(key, value, "conflict")] += 1
    invalid_kinds: list[dict[str, Any]] = [
        {"scores": [{"metric": "nps", "value": 42}]},
        {"channel": "carrier-pigeon"},
        {"customer": {"email": "ana@example.com", "phone": "12345"}},
        {"occurred_at": "2020-01-01 10:00"},
        {"unexpected": "field"},
    ]
    for n in range(50):
        event = make_event(f"invalid{seed}-{n}", **invalid_kinds[n % len(invalid_kinds)])
        anywhere((f"invalid-{n}".encode(), orjson.dumps(event)), "invalid_event")
    for n in range(50):
        value = f'{{"event_id": "leak-{n}", "password": "{SECRET}", '.encode()
        anywhere((f"garbage-{n}".encode(), value), "invalid_json")
    for n in range(30):
        anywhere((f"empty-{n}".encode(), None if n % 2 else b""), "empty")
    for n in range(20):
        big = make_event(f"big{seed}-{n}", text="Die Schlange war 20 Minuten lang. " * 150)
        value = orjson.dumps(big) if n % 2 else SECRET.encode() * 400
        anywhere((f"big-{n}".encode(), value), "too_large")
    placed.sort(key=lambda item: item[0])
    return Expected(
        stored={event["event_id"]: event for event in originals},
        dead=dead,
        duplicates=100,
        messages=[message for _, message in placed],
    )


async def test_every_kind_of_message_is_stored_once_or_dead_lettered_with_its_reason(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=4)
    expected = mixed_messages(seed=1)
    assert len(expected.messages) == 3000
    await produce(kafka_bootstrap, names.topic, expected.messages)
    # Two messages with headers: a replayed dead letter that fails again (its old DLQ
    # headers are replaced, the others kept) and a valid event (stored as usual).
    replayed_value = b"not JSON either, replayed from the DLQ"
    headered_event = make_event("headered-1", customer={"id": "headered-C1"})
    await produce_each(
        kafka_bootstrap,
        names.topic,
        [
            (
                b"replayed-0",
                replayed_value,
                [
                    ("trace-id", b"t-1"),
                    ("x-error", b"conflict: from the first time"),
                    ("x-original-offset", b"999"),
                ],
            ),
            (*event_message(headered_event), [("trace-id", b"t-2")]),
        ],
    )
    expected.dead[(b"replayed-0", replayed_value, "invalid_json")] += 1
    expected.stored[headered_event["event_id"]] = headered_event
    source = await read_all(kafka_bootstrap, names.topic, expected=3002)
    assert len(source) == 3002
    ends = end_offsets(source)
    assert set(ends) == {0, 1, 2, 3}
    where = {(r.key, r.value): (r.partition, r.offset) for r in source}

    before = kafka_metrics(names.topic)
    ingest_before = {s: ingested("in_store", s) for s in ("accepted", "duplicate", "conflict")}
    rejected_before = ingested("unknown", "rejected")
    test_settings = consumer_settings(
        settings, kafka_bootstrap, names, kafka_max_message_bytes=4096
    )
    async with running(test_settings, state.database) as consumer:

        async def all_processed() -> bool:
            return (
                processed(names.topic)
                - (before["stored"] + before["duplicate"] + before["dead_lettered"])
                >= 3002
            )

        await wait_for(all_processed, within=90, what="3,002 messages processed")
        assert await consumer.readiness() == "ok"

    # The database: every valid event once, the first version of each, via kafka.
    rows = await stored_rows(state.database)
    assert set(rows) == set(expected.stored)
    assert {via for via, _, _ in rows.values()} == {IngestVia.KAFKA.value}
    assert {nps for _, nps, _ in rows.values()} == {3}  # never a conflicting version

    # The DLQ: exactly the bad messages, each with its reason and origin.
    dead_letters = await read_all(kafka_bootstrap, names.dlq, expected=201, timeout_s=30)
    found: Counter[tuple[bytes | None, bytes | None, str]] = Counter()
    for record in dead_letters:
        headers = headers_of(record)
        names_of_headers = [name for name, _ in record.headers]
        assert len(names_of_headers) == len(set(names_of_headers)), record.headers
        reason = headers["x-error"].split(":", 1)[0]
        found[(record.key, record.value, reason)] += 1
        assert headers["x-error"].startswith(f"{reason}: ")
        assert headers["x-original-topic"] == names.topic
        original = where[(record.key, record.value)]
        assert (int(headers["x-original-partition"]), int(headers["x-original-offset"])) == original
        header_text = " ".join(headers.values())
        assert SECRET not in header_text
        for fragment in PII:
            assert fragment not in header_text
    assert found == expected.dead
    (replayed,) = [r for r in dead_letters if r.key == b"replayed-0"]
    assert headers_of(replayed) == {
        "trace-id": "t-1",
        "x-error": "invalid_json: the message is not valid JSON",
        "x-original-topic": names.topic,
        "x-original-partition": str(where[(b"replayed-0", replayed_value)][0]),
        "x-original-offset": str(where[(b"replayed-0", replayed_value)][1]),
    }
    # An empty value stays what it was (null or zero bytes).
    assert Counter(r.value for r in dead_letters if not r.value) == Counter({None: 15, b"": 15})

    # Offsets: the end of every partition.
    assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == ends

    # Metrics moved by exactly these amounts.
    after = kafka_metrics(names.topic)
    moved = {name: after[name] - before[name] for name in after}
    assert moved == {
        "consumed": 3002,
        "retries_database": 0,
        "stored": 2701,
        "duplicate": 100,
        "dead_lettered": 201,
        "dlq_empty": 30,
        "dlq_too_large": 20,
        "dlq_invalid_json": 51,
        "dlq_invalid_event": 50,
        "dlq_conflict": 50,
        "dlq_storage_rejected": 0,
    }
    assert {
        s: ingested("in_store", s) - ingest_before[s] for s in ("accepted", "duplicate", "conflict")
    } == {"accepted": 2701, "duplicate": 100, "conflict": 50}
    assert ingested("unknown", "rejected") - rejected_before == 151


# -- an event PostgreSQL refuses although it passed validation -------------------------------

REFUSE_FUNCTION = "kafka_test_refuse_event"
REFUSE_TRIGGER_SQL = f"""
CREATE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_id LIKE 'refused-check-%' THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
    ELSIF NEW.event_id LIKE 'refused-data-%' THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {REFUSE_FUNCTION} BEFORE INSERT ON feedback
    FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}();
"""


@asynccontextmanager
async def database_refuses_some_events(database: Database) -> AsyncIterator[None]:
    """No value the schema accepts makes PostgreSQL refuse the row (NUL, surrogates,
    lengths, ranges, NaN, 64-bit integers, dates are all checked before), so a trigger
    plays that part: it raises a class 23 (integrity) or class 22 (data) error for
    events named refused-check-* or refused-data-*."""
    async with database.driver_connection() as connection:
        await connection.execute(f"DROP FUNCTION IF EXISTS {REFUSE_FUNCTION}() CASCADE")
        await connection.execute(REFUSE_TRIGGER_SQL)  # one simple-protocol script
    try:
        yield
    finally:
        async with database.driver_connection() as connection:
            await connection.execute(f"DROP FUNCTION IF EXISTS {REFUSE_FUNCTION}() CASCADE")


async def test_an_event_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=1)
    events = events_with_keys("fine", 300)
    refused = [*events_with_keys("refused-check", 2), *events_with_keys("refused-data", 2)]
    for n, event in enumerate(refused):
        events.insert(40 + 60 * n, event)
    await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])
    where = positions(await read_all(kafka_bootstrap, names.topic, expected=len(events)))
    before = kafka_metrics(names.topic)

    test_settings = consumer_settings(settings, kafka_bootstrap, names)
    async with (
        database_refuses_some_events(state.database),
        running(test_settings, state.database),
    ):

        async def done() -> bool:
            return processed(names.topic) - processed_before >= len(events)

        processed_before = before["stored"] + before["duplicate"] + before["dead_lettered"]
        await wait_for(done, within=60, what="every message processed")

    assert await stored_ids(state.database) == {e["event_id"] for e in events} - {
        e["event_id"] for e in refused
    }
    dead_letters = await read_all(kafka_bootstrap, names.dlq, expected=len(refused), timeout_s=20)
    assert sorted(
        (headers_of(r)["x-error"], r.value, int(headers_of(r)["x-original-offset"]))
        for r in dead_letters
    ) == sorted(
        (
            "storage_rejected: the database refused the event's values",
            orjson.dumps(e),
            where[e["event_id"]][1],
        )
        for e in refused
    )
    assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == {0: len(events)}
    after = kafka_metrics(names.topic)
    assert after["dlq_storage_rejected"] - before["dlq_storage_rejected"] == len(refused)
    assert after["stored"] - before["stored"] == 300
    assert after["retries_database"] == before["retries_database"]


# -- a database outage -----------------------------------------------------------------------


@pytest.fixture
def outage_home(request: pytest.FixtureRequest) -> Iterator[Path]:
    with scratch_dir(request.node.name) as home:
        yield home


async def test_a_database_outage_pauses_consumption_and_loses_or_doubles_nothing(
    settings: Settings, kafka_bootstrap: str, outage_home: Path
) -> None:
    server = EmbeddedPostgres(outage_home)
    info = await asyncio.to_thread(server.start)
    database: Database | None = None
    try:
        database = await Database.open(
            settings.model_copy(update={"database_url": SecretStr(info.sqlalchemy_url())})
        )
        await database.migrate()
        names = await new_topics(kafka_bootstrap, partitions=2)
        first = events_with_keys("before-outage", 400)
        second = events_with_keys("during-outage", 600)
        await produce(kafka_bootstrap, names.topic, [event_message(e) for e in first])
        ends_before = end_offsets(await read_all(kafka_bootstrap, names.topic, expected=400))
        before = kafka_metrics(names.topic)
        test_settings = consumer_settings(
            settings, kafka_bootstrap, names, kafka_batch_max_events=100
        )
        db = database
        async with running(test_settings, db) as consumer:

            async def first_stored() -> bool:
                return await stored_count(db) == len(first)

            await wait_for(first_stored, within=60, what="the first events stored")
            await wait_for(
                lambda: committed_equals(kafka_bootstrap, names, ends_before),
                within=20,
                what="the first events' offsets committed",
            )

            await asyncio.to_thread(server.stop)
            await produce(kafka_bootstrap, names.topic, [event_message(e) for e in second])

            async def retried(times: int) -> bool:
                return (
                    kafka_metrics(names.topic)["retries_database"] - before["retries_database"]
                    >= times
                )

            await wait_for(lambda: retried(3), within=30, what="three retries in the outage")
            # Consumption paused: nothing committed past the stored events.
            assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == ends_before
            assert kafka_metrics(names.topic)["stored"] - before["stored"] == len(first)
            # Still retrying (the backoff is capped at 1 s), so still running.
            retries_so_far = kafka_metrics(names.topic)["retries_database"]
            await wait_for(
                lambda: retried(int(retries_so_far - before["retries_database"]) + 1),
                within=10,
                what="another retry",
            )

            restarted = EmbeddedPostgres(outage_home, port=info.port)
            assert (await asyncio.to_thread(restarted.start)).port == info.port
            server = restarted

            async def all_stored() -> bool:
                return await stored_count(db) == len(first) + len(second)

            await wait_for(all_stored, within=60, what="every event stored after the outage")
            ends = end_offsets(await read_all(kafka_bootstrap, names.topic, expected=1000))
            await wait_for(
                lambda: committed_equals(kafka_bootstrap, names, ends),
                within=20,
                what="offsets at the end",
            )
            assert await consumer.readiness() == "ok"

        assert await stored_ids(db) == {e["event_id"] for e in first + second}
        after = kafka_metrics(names.topic)
        assert after["stored"] - before["stored"] == 1000
        assert after["dead_lettered"] == before["dead_lettered"]
    finally:
        if database is not None:
            await database.close()
        await asyncio.to_thread(server.stop)


async def committed_equals(bootstrap: str, names: Names, ends: dict[int, int]) -> bool:
    return await committed_offsets(bootstrap, names.group, names.topic) == ends


# -- graceful stop ---------------------------------------------------------------------------


async def test_stop_drains_the_cycle_in_progress_and_the_next_member_finishes_the_rest(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=2)
    events = events_with_keys("drain", 3000)
    await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])
    source = await read_all(kafka_bootstrap, names.topic, expected=len(events))
    where = positions(source)
    before = kafka_metrics(names.topic)
    # Small batches, so that the stop lands in the middle of the stream.
    test_settings = consumer_settings(
        settings, kafka_bootstrap, names, kafka_batch_max_events=25, kafka_batch_linger_ms=0
    )

    consumer = KafkaIngestConsumer(test_settings, state.database)
    await consumer.start()
    try:

        async def some_stored() -> bool:
            return await stored_count(state.database) >= 300

        await wait_for(some_stored, within=60, what="some events stored", step=0.02)
    finally:
        await consumer.stop()

    committed = await committed_offsets(kafka_bootstrap, names.group, names.topic)
    stored = await stored_ids(state.database)
    assert len(stored) < len(events), "the stop came too late to test a drain"
    below_committed = {
        event_id
        for event_id, (partition, offset) in where.items()
        if offset < (committed.get(partition) or 0)
    }
    # Exactly the committed messages are stored: the cycle in progress finished (stored
    # and committed), and nothing stored was left uncommitted.
    assert stored == below_committed

    async with running(test_settings, state.database):

        async def all_stored() -> bool:
            return await stored_count(state.database) == len(events)

        await wait_for(all_stored, within=60, what="the rest stored by the next member")
    assert await stored_ids(state.database) == set(where)
    assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == end_offsets(source)
    after = kafka_metrics(names.topic)
    # Nothing was read twice: no message came back as a duplicate.
    assert after["stored"] - before["stored"] == len(events)
    assert after["duplicate"] == before["duplicate"]
    assert after["consumed"] - before["consumed"] == len(events)


# -- rebalance -------------------------------------------------------------------------------


MEMBER_SETTING = "kafka_test.member"
RECORD_MEMBER_SQL = """
CREATE TABLE kafka_test_stored_by (
    seq bigserial PRIMARY KEY, event_id varchar(128) NOT NULL, member text NOT NULL
);
CREATE FUNCTION kafka_test_record_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kafka_test_stored_by (event_id, member)
    VALUES (NEW.event_id, coalesce(current_setting('kafka_test.member', true), ''));
    RETURN NEW;
END $$;
CREATE TRIGGER kafka_test_record_member AFTER INSERT ON feedback
    FOR EACH ROW EXECUTE FUNCTION kafka_test_record_member();
"""
DROP_RECORD_MEMBER_SQL = """
DROP TABLE IF EXISTS kafka_test_stored_by;
DROP FUNCTION IF EXISTS kafka_test_record_member() CASCADE;
"""


@dataclass
class MemberDatabase(Database):
    """A Database whose connections name their member in a session setting, which a
    trigger copies next to each stored event: both in-process members share one
    Prometheus registry, so the metrics cannot tell who stored what."""

    member: str = ""

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        async with super().driver_connection() as connection:
            await connection.execute(
                f"SELECT set_config('{MEMBER_SETTING}', $1, false)", self.member
            )
            yield connection


@asynccontextmanager
async def member_databases(
    database: Database, settings: Settings, *members: str
) -> AsyncIterator[list[MemberDatabase]]:
    async with database.driver_connection() as connection:
        await connection.execute(DROP_RECORD_MEMBER_SQL)
        await connection.execute(RECORD_MEMBER_SQL)
    opened: list[MemberDatabase] = []
    try:
        for member in members:
            base = await Database.open(settings)
            opened.append(MemberDatabase(base.engine, base.sessionmaker, member=member))
        yield opened
    finally:
        for member_database in opened:
            await member_database.close()
        async with database.driver_connection() as connection:
            await connection.execute(DROP_RECORD_MEMBER_SQL)


async def stored_by_member(database: Database) -> list[tuple[int, str, str]]:
    """(seq, event_id, member) of every stored event, in insertion order."""
    async with database.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT seq, event_id, member FROM kafka_test_stored_by ORDER BY seq")
        )
        return [(int(seq), str(event_id), str(member)) for seq, event_id, member in rows]


async def test_two_members_split_the_partitions_and_one_takes_over_when_the_other_stops(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=4)
    test_settings = consumer_settings(
        settings, kafka_bootstrap, names, kafka_batch_max_events=50, kafka_batch_linger_ms=0
    )
    produced: list[str] = []
    stop_producing = asyncio.Event()

    async def keep_producing() -> None:
        """Messages keep flowing: 40 events every 100 ms until told to stop (or 2
        minutes have passed)."""
        chunk = 0
        deadline = time.monotonic() + 120
        while not stop_producing.is_set() and time.monotonic() < deadline:
            events = events_with_keys(f"rebalance-{chunk}", 40)
            await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])
            produced.extend(e["event_id"] for e in events)
            chunk += 1
            await asyncio.sleep(0.1)

    async def count(member: str) -> int:
        return sum(1 for _, _, m in await stored_by_member(state.database) if m == member)

    async def last_seq() -> int:
        return max((seq for seq, _, _ in await stored_by_member(state.database)), default=0)

    before = kafka_metrics(names.topic)
    async with member_databases(state.database, settings, "a", "b") as (database_a, database_b):
        producer = asyncio.create_task(keep_producing())
        a = KafkaIngestConsumer(test_settings, database_a)
        b = KafkaIngestConsumer(test_settings, database_b)
        try:
            await a.start()

            async def a_storing() -> bool:
                return await count("a") >= 200

            await wait_for(a_storing, within=60, what="a storing")
            await b.start()

            async def b_storing() -> bool:
                return await count("b") >= 200

            await wait_for(b_storing, within=60, what="b storing")
            await asyncio.sleep(1.0)  # both members work side by side for a while
            before_a_stops = await last_seq()
            await a.stop()
            after_a_stopped = await last_seq()
            b_so_far = await count("b")

            async def b_took_over() -> bool:
                return await count("b") >= b_so_far + 400

            await wait_for(b_took_over, within=60, what="b storing after a stopped")
            stop_producing.set()
            await producer

            async def all_stored() -> bool:
                return await stored_count(state.database) == len(produced)

            await wait_for(all_stored, within=60, what="every produced event stored")
        finally:
            stop_producing.set()
            await producer
            await a.stop()
            await b.stop()

        stored = await stored_by_member(state.database)

    source = await read_all(kafka_bootstrap, names.topic, expected=len(produced))
    partition_of = {event_id: partition for event_id, (partition, _) in positions(source).items()}

    # Every event stored exactly once, by one of the two.
    assert await stored_ids(state.database) == set(produced)
    assert sorted(event_id for _, event_id, _ in stored) == sorted(produced)
    assert {member for _, _, member in stored} == {"a", "b"}
    # Side by side (from b's first event until a began to stop), the members held
    # disjoint, non-empty sets of partitions.
    b_first = min(seq for seq, _, member in stored if member == "b")
    side_by_side = [(e, m) for seq, e, m in stored if b_first <= seq <= before_a_stops]
    a_side = {partition_of[e] for e, m in side_by_side if m == "a"}
    b_side = {partition_of[e] for e, m in side_by_side if m == "b"}
    assert a_side, (a_side, b_side)
    assert b_side, (a_side, b_side)
    assert not a_side & b_side, (a_side, b_side)
    assert a_side | b_side == {0, 1, 2, 3}
    # After a left, b read every partition, a's included.
    assert {partition_of[e] for seq, e, m in stored if seq > after_a_stopped} == {0, 1, 2, 3}
    assert {m for seq, _, m in stored if seq > after_a_stopped} == {"b"}
    assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == end_offsets(source)
    after = kafka_metrics(names.topic)
    assert after["stored"] - before["stored"] == len(produced)
    assert after["duplicate"] == before["duplicate"], "a rebalance replayed stored messages"


# -- readiness -------------------------------------------------------------------------------


async def test_readiness_is_not_ok_without_a_broker_and_ok_with_one(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=1)
    nowhere = consumer_settings(settings, f"127.0.0.1:{free_port()}", names)
    consumer = KafkaIngestConsumer(nowhere, state.database)
    assert await consumer.readiness() == "not running"
    await consumer.start()
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            seen.add(await consumer.readiness())
            await asyncio.sleep(0.1)
        assert "ok" not in seen
        assert "KafkaConnectionError" in seen, seen  # why it is not ready, once it tried
    finally:
        started = time.monotonic()
        await consumer.stop()
        assert time.monotonic() - started < 5, "stop waited for the unreachable broker"
    assert await consumer.readiness() == "not running"

    async with running(consumer_settings(settings, kafka_bootstrap, names), state.database) as ok:

        async def ready() -> bool:
            return await ok.readiness() == "ok"

        await wait_for(ready, within=30, what="readiness ok with the broker")


# -- poison messages that must not stall a partition -----------------------------------------


async def test_messages_far_over_the_size_limit_are_dead_lettered_without_stalling(
    state: AppState, settings: Settings, kafka_bootstrap: str
) -> None:
    """A protective FEEDBACK_KAFKA_MAX_MESSAGE_BYTES (64 KiB) below what the topic
    accepts: a 300 KiB and a 1.5 MiB message are too_large. The first dead letter
    carries the whole message; the second is more than a produce request may carry, so
    its value is left out and x-error says so (the original stays at its offset). The
    DLQ write must not fail on the size, or the partition would stall for ever."""
    names = await new_topics(kafka_bootstrap, partitions=1)
    big = b'{"event_id": "big", "text": "' + b"x" * (300 * 1024) + b'"}'
    huge = b'{"event_id": "huge", "text": "' + b"x" * (1536 * 1024) + b'"}'
    small = [events_with_keys(f"small-{n}", 3) for n in range(3)]
    messages: list[Message] = [
        *(event_message(e) for e in small[0]),
        (b"big", big),
        *(event_message(e) for e in small[1]),
        (b"huge", huge),
        *(event_message(e) for e in small[2]),
    ]
    await produce_each(kafka_bootstrap, names.topic, [(k, v, []) for k, v in messages])
    before = kafka_metrics(names.topic)
    retries_before = metric("feedback_kafka_batch_retries_total", cause="dead_letter_topic")
    test_settings = consumer_settings(
        settings, kafka_bootstrap, names, kafka_max_message_bytes=64 * 1024
    )
    async with running(test_settings, state.database):

        async def all_processed() -> bool:
            return processed(names.topic) - (
                before["stored"] + before["duplicate"] + before["dead_lettered"]
            ) >= len(messages)

        try:
            await wait_for(all_processed, within=20, what="the partition to move past them")
        except AssertionError as exc:
            retries = (
                metric("feedback_kafka_batch_retries_total", cause="dead_letter_topic")
                - retries_before
            )
            raise AssertionError(
                f"{exc}; {retries:.0f} retries with cause dead_letter_topic: "
                "the partition is stalled"
            ) from None

    assert await stored_ids(state.database) == {e["event_id"] for part in small for e in part}
    dead_letters = await read_all(kafka_bootstrap, names.dlq, expected=2, timeout_s=10)
    assert [(r.key, headers_of(r)["x-original-offset"]) for r in dead_letters] == [
        (b"big", "3"),
        (b"huge", "7"),
    ]
    for letter in dead_letters:
        assert headers_of(letter)["x-error"].startswith("too_large: ")
        assert headers_of(letter)["x-original-partition"] == "0"
    assert dead_letters[0].value == big
    assert dead_letters[1].value is None
    assert f"value ({len(huge)} bytes) left out" in headers_of(dead_letters[1])["x-error"]
    assert await committed_offsets(kafka_bootstrap, names.group, names.topic) == {0: len(messages)}


async def test_the_lag_gauge_shows_the_backlog_while_the_database_is_down(
    settings: Settings, kafka_bootstrap: str
) -> None:
    """The lag is what an operator watches in an outage: it must show the messages
    waiting, not the value from before the outage."""
    names = await new_topics(kafka_bootstrap, partitions=2)
    unreachable = f"postgresql+asyncpg://feedback:x@127.0.0.1:{free_port()}/feedback"
    database = await Database.open(
        settings.model_copy(update={"database_url": SecretStr(unreachable)})
    )
    events = events_with_keys("lagging", 300)
    await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])
    per_partition = end_offsets(await read_all(kafka_bootstrap, names.topic, expected=300))
    before = kafka_metrics(names.topic)
    try:
        async with running(consumer_settings(settings, kafka_bootstrap, names), database):

            async def retried() -> bool:
                return (
                    kafka_metrics(names.topic)["retries_database"] - before["retries_database"] >= 3
                )

            await wait_for(retried, within=30, what="retries while the database is down")

            def lag() -> dict[int, float | None]:
                return {
                    partition: REGISTRY.get_sample_value(
                        "feedback_kafka_consumer_lag",
                        {"topic": names.topic, "partition": str(partition)},
                    )
                    for partition in per_partition
                }

            async def lag_shows_the_backlog() -> bool:
                return lag() == {p: float(end) for p, end in per_partition.items()}

            try:
                await wait_for(lag_shows_the_backlog, within=5, what="the lag gauge")
            except AssertionError:
                raise AssertionError(
                    f"lag gauge {lag()} while {per_partition} messages wait "
                    "(nothing stored, nothing committed)"
                ) from None
    finally:
        await database.close()
