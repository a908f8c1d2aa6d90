"""``feedback-service replay-dead-letters``: send dead letters back to their topic.

Reads the dead-letter topic in a consumer group of its own (``<group id>.replay`` by
default) from that group's committed position up to the end the topic had when the
replay started, produces each message (same key and value, original headers without
the DLQ's ``x-*`` ones) to its ``x-original-topic``, and commits after the broker has
acknowledged. Run it after fixing what made the messages fail (a schema upgrade, a
database problem): the consumer then treats them like any other message; one that
still fails goes to the dead-letter topic again, with its reason, and is not replayed
by this run. ``--reason`` replays only the given reasons; the others are passed over
(and committed: a later run with the same group does not see them again; use another
``--group`` to read the topic from its start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.config import Settings
from app.workers.kafka_consumer import (
    DLQ_HEADERS,
    ERROR_HEADER,
    ORIGINAL_TOPIC_HEADER,
    kafka_client_options,
)

POLL_TIMEOUT_MS = 1000
MAX_IDLE_POLLS = 5  # nothing fetched for this long: the partition has nothing to replay


@dataclass(slots=True)
class ReplaySummary:
    replayed: int = 0
    passed_over: int = 0


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


def _reason(record: Any) -> str:
    error = _header(record, ERROR_HEADER) or ""
    return error.partition(":")[0]


async def replay_dead_letters(
    settings: Settings, *, reasons: Collection[str] = (), group: str | None = None
) -> ReplaySummary:
    options = kafka_client_options(settings)
    consumer = AIOKafkaConsumer(
        **options,
        group_id=group or f"{settings.kafka_group_id}.replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        **options, acks="all", max_request_size=settings.kafka_max_message_bytes + 64 * 1024
    )
    summary = ReplaySummary()
    await consumer.start()
    await producer.start()
    try:
        numbers = await _partitions(consumer, settings.kafka_dlq_topic)
        partitions = [TopicPartition(settings.kafka_dlq_topic, n) for n in numbers]
        consumer.assign(partitions)
        # The end of each partition as the first fetch reports it (its high-water mark,
        # which every broker reports alike): letters produced after that are not this
        # run's to replay.
        ends: dict[TopicPartition, int | None] = {}
        remaining = set(partitions)
        idle_polls = 0
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=POLL_TIMEOUT_MS)
            sends = []
            offsets: dict[TopicPartition, int] = {}
            for partition, records in batch.items():
                end = ends.setdefault(partition, consumer.highwater(partition))
                for record in records:
                    if end is not None and record.offset >= end:
                        break
                    offsets[partition] = record.offset + 1
                    if reasons and _reason(record) not in reasons:
                        summary.passed_over += 1
                        continue
                    target = _header(record, ORIGINAL_TOPIC_HEADER) or settings.kafka_topic
                    headers = [(k, v) for k, v in record.headers or () if k not in DLQ_HEADERS]
                    sends.append(
                        await producer.send(
                            target, value=record.value, key=record.key, headers=headers
                        )
                    )
            await asyncio.gather(*sends)  # acknowledged before the offsets move
            summary.replayed += len(sends)
            if offsets:
                await consumer.commit(offsets)
            idle_polls = 0 if batch else idle_polls + 1
            for partition in list(remaining):
                if ends.get(partition) is None:
                    ends[partition] = consumer.highwater(partition)
                end = ends[partition]
                caught_up = end is not None and await consumer.position(partition) >= end
                if caught_up or idle_polls >= MAX_IDLE_POLLS:
                    remaining.discard(partition)
    finally:
        await producer.stop()
        await consumer.stop()
    return summary


async def _partitions(consumer: Any, topic: str) -> list[int]:
    for _ in range(20):
        numbers = consumer.partitions_for_topic(topic)
        if numbers:
            return sorted(numbers)
        await consumer.topics()
        await asyncio.sleep(0.25)
    raise LookupError(f"the dead-letter topic {topic} does not exist")
