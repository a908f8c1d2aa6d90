"""The Kafka baseline: a plain aiokafka consumer-group member that reads the topic in
the service's batch size and commits each batch's offsets, and does nothing else (no
validation, no database). ``python -m bench.kafka_baseline BOOTSTRAP TOPIC GROUP BATCH``
runs until it is stopped (SIGTERM)."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer


async def consume(bootstrap: str, topic: str, group: str, batch: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            records = await consumer.getmany(timeout_ms=200, max_records=batch)
            if records:
                await consumer.commit(
                    {partition: rows[-1].offset + 1 for partition, rows in records.items()}
                )
    finally:
        await consumer.stop()


def main() -> int:
    bootstrap, topic, group, batch = sys.argv[1:5]
    asyncio.run(consume(bootstrap, topic, group, int(batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
