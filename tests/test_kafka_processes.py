"""The Kafka consumer in real ``feedback-service`` processes: a SIGKILL mid-stream and a
restart, two ``consume`` processes in one group, and ``serve`` without a broker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.db import Database
from app.dependencies import AppState
from tests.fixtures.kafka import committed_offsets, event_message, produce, read_all
from tests.fixtures.server import (
    ServiceProcess,
    ServiceRunner,
    free_port,
    scratch_dir,
    service_runner,
)
from tests.test_kafka_ingest import (
    Names,
    end_offsets,
    events_with_keys,
    new_topics,
    positions,
    stored_count,
    stored_ids,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """FEEDBACK_DATA_DIR of the processes (unused: they use the session database)."""
    with scratch_dir(request.node.name) as home:
        yield home / "data"


@pytest.fixture
def runner(tmp_path: Path, data_dir: Path) -> Iterator[ServiceRunner]:
    with service_runner(tmp_path / "service") as started:
        yield started


def consumer_env(database_url: str, bootstrap: str, names: Names) -> dict[str, str]:
    return {
        "FEEDBACK_DATABASE_URL": database_url,
        "FEEDBACK_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FEEDBACK_KAFKA_TOPIC": names.topic,
        "FEEDBACK_KAFKA_DLQ_TOPIC": names.dlq,
        "FEEDBACK_KAFKA_GROUP_ID": names.group,
        "FEEDBACK_KAFKA_BATCH_MAX_EVENTS": "100",
        "FEEDBACK_KAFKA_BATCH_LINGER_MS": "0",
        "FEEDBACK_KAFKA_RETRY_MAX_BACKOFF_S": "1",
    }


async def consume_process(
    runner: ServiceRunner, data_dir: Path, env: dict[str, str]
) -> ServiceProcess:
    return await asyncio.to_thread(runner.start, data_dir, env=env, command=("consume",))


def scrape(service: ServiceProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the process's /metrics: (name, labels) -> value."""
    with service.client() as http:
        response = http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def lag_partitions(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], topic: str
) -> set[int]:
    """The partitions this process holds: its lag gauge has one series per assigned
    partition."""
    found: set[int] = set()
    for name, labels in samples:
        label_map = dict(labels)
        if name == "feedback_kafka_consumer_lag" and label_map.get("topic") == topic:
            found.add(int(label_map["partition"]))
    return found


async def settled_count(database: Database, quiet_s: float = 0.5) -> int:
    count = await stored_count(database)
    while True:
        await asyncio.sleep(quiet_s)
        again = await stored_count(database)
        if again == count:
            return count
        count = again


async def test_a_consumer_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    state: AppState, database_url: str, kafka_bootstrap: str, runner: ServiceRunner, data_dir: Path
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=4)
    events = events_with_keys("killed", 5000)
    await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])
    source = await read_all(kafka_bootstrap, names.topic, expected=len(events))
    where = positions(source)
    env = consumer_env(database_url, kafka_bootstrap, names)

    first = await consume_process(runner, data_dir, env)

    async def some_stored() -> bool:
        return await stored_count(state.database) >= 1000

    await wait_for(some_stored, within=60, what="the first process storing", step=0.02)
    first.kill()
    # A COMMIT the server had received still completes: wait until the count settles.
    stored_by_first = await settled_count(state.database)
    assert stored_by_first < len(events), "the kill came too late to be mid-stream"
    # Offsets are never ahead of the database, even after a SIGKILL.
    committed = await committed_offsets(kafka_bootstrap, names.group, names.topic)
    below_committed = {
        event_id
        for event_id, (partition, offset) in where.items()
        if offset < (committed.get(partition) or 0)
    }
    assert below_committed <= await stored_ids(state.database)

    second = await consume_process(runner, data_dir, env)

    async def all_stored() -> bool:
        return await stored_count(state.database) >= len(events)

    await wait_for(all_stored, within=90, what="the restarted process storing the rest")
    assert await stored_count(state.database) == len(events)
    assert await stored_ids(state.database) == {e["event_id"] for e in events}

    async def at_the_end() -> bool:
        committed = await committed_offsets(kafka_bootstrap, names.group, names.topic)
        return committed == end_offsets(source)

    await wait_for(at_the_end, within=20, what="offsets at the end of every partition")

    with second.client() as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["kafka"] == "ok"
        assert set(checks.values()) == {"ok"}, checks
        assert http.get("/healthz").status_code == 200
        # Only the consumer runs here: no API.
        assert http.get("/v1/feedback").status_code == 404
        assert http.post("/v1/feedback", json=events[0]).status_code == 404
    samples = scrape(second)
    topic = names.topic
    # The second process stored exactly what the first had not; what the first stored
    # but had not committed came back as duplicates, not as new rows.
    assert (
        sample(samples, "feedback_kafka_messages_total", topic=topic, outcome="stored")
        == len(events) - stored_by_first
    )
    duplicates = sample(samples, "feedback_kafka_messages_total", topic=topic, outcome="duplicate")
    assert duplicates == stored_by_first - len(below_committed)
    consumed = sample(samples, "feedback_kafka_consumed_messages_total", topic=topic)
    assert consumed >= len(events) - stored_by_first + duplicates
    assert (
        sample(samples, "feedback_kafka_messages_total", topic=topic, outcome="dead_lettered") == 0
    )
    assert (
        sample(
            samples,
            "feedback_ingested_events_total",
            channel="in_store",
            via="kafka",
            status="accepted",
        )
        == len(events) - stored_by_first
    )

    async def no_lag_anywhere() -> bool:
        lag = {
            dict(labels)["partition"]: value
            for (name, labels), value in (await asyncio.to_thread(scrape, second)).items()
            if name == "feedback_kafka_consumer_lag" and dict(labels).get("topic") == topic
        }
        return lag == {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0}

    await wait_for(no_lag_anywhere, within=10, what="a zero lag gauge for every partition")


async def test_two_consume_processes_split_the_partitions_and_store_each_event_once(
    state: AppState, database_url: str, kafka_bootstrap: str, runner: ServiceRunner, data_dir: Path
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=4)
    env = consumer_env(database_url, kafka_bootstrap, names)
    members = [await consume_process(runner, data_dir, env) for _ in range(2)]

    async def split() -> bool:
        held = [lag_partitions(await asyncio.to_thread(scrape, m), names.topic) for m in members]
        return all(held) and not held[0] & held[1] and held[0] | held[1] == {0, 1, 2, 3}

    await wait_for(split, within=90, what="both processes holding partitions", step=0.5)

    events = events_with_keys("pair", 4000)
    await produce(kafka_bootstrap, names.topic, [event_message(e) for e in events])

    async def all_stored() -> bool:
        return await stored_count(state.database) >= len(events)

    await wait_for(all_stored, within=60, what="every event stored")
    assert await stored_ids(state.database) == {e["event_id"] for e in events}
    assert await stored_count(state.database) == len(events)

    samples = [await asyncio.to_thread(scrape, m) for m in members]
    stored = [
        sample(s, "feedback_kafka_messages_total", topic=names.topic, outcome="stored")
        for s in samples
    ]
    duplicates = [
        sample(s, "feedback_kafka_messages_total", topic=names.topic, outcome="duplicate")
        for s in samples
    ]
    assert all(count > 0 for count in stored), stored
    assert sum(stored) == len(events)
    assert duplicates == [0, 0]
    held = [lag_partitions(s, names.topic) for s in samples]
    assert held[0], held
    assert held[1], held
    assert not held[0] & held[1], held
    assert held[0] | held[1] == {0, 1, 2, 3}


async def test_serve_without_a_reachable_broker_starts_but_is_not_ready(
    state: AppState, database_url: str, kafka_bootstrap: str, runner: ServiceRunner, data_dir: Path
) -> None:
    names = await new_topics(kafka_bootstrap, partitions=1)
    env = consumer_env(database_url, f"127.0.0.1:{free_port()}", names)
    service = runner.start(data_dir, env=env, wait=False)

    def probe() -> tuple[int, dict[str, str]] | None:
        try:
            with httpx.Client(base_url=service.base_url, timeout=5.0) as http:
                assert http.get("/healthz").status_code == 200
                ready = http.get("/readyz")
        except httpx.TransportError:
            return None
        checks: dict[str, str] = ready.json()["checks"]
        return ready.status_code, checks

    deadline = time.monotonic() + 60
    seen: list[tuple[int, dict[str, str]]] = []
    while time.monotonic() < deadline and len(seen) < 10:
        assert service.running(), service.output()
        result = await asyncio.to_thread(probe)
        if result is not None:
            seen.append(result)
        await asyncio.sleep(0.3)
    assert len(seen) == 10, service.output()
    for status, checks in seen:
        assert status == 503
        assert checks["database"] == "ok"
        assert checks["migrations"] == "ok"
        assert checks["kafka"] != "ok"
    assert seen[-1][1]["kafka"] == "KafkaConnectionError", seen[-1]

    # SIGTERM: a clean shutdown (uvicorn re-raises the signal once it has shut down),
    # not held up by the consumer's reconnect loop.
    started = time.monotonic()
    assert service.stop() in (0, -signal.SIGTERM), service.output()
    assert time.monotonic() - started < 10
    assert '"msg":"service stopped"' in service.stdout(), service.output()
