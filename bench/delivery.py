"""``python -m bench.delivery``: from a detractor's POST to its ticket's webhook.

1. Starts an embedded PostgreSQL, ``feedback-service serve`` (API, group commit and
   the outbox dispatcher; ``FEEDBACK_ALLOW_PRIVATE_TARGETS=true`` so it may call the
   local receiver) and a webhook receiver (``python -m bench.webhook_receiver``, its own
   process) on free loopback ports.
2. Registers the receiver as a ``webhook`` integration subscribed to ``ticket.created``.
3. Sends mixed feedback at a fixed arrival rate (default 200 events/s for 30 s) over
   keep-alive connections: 30% detractors (NPS 0-3, each its own customer, so each
   opens a ticket through the default rule "Strong detractors"), the rest promoters
   (no ticket). The send time of each event is its *scheduled* time, so a late sender
   counts against the service, not for it.
4. The receiver notes when each ``ticket.created`` arrives (``time.monotonic``, one
   clock for all local processes) and for which ticket; the POST's answer names the
   ticket its event opened; latency = arrival - scheduled send of that event.
   Reported: p50/p95/p99/max and how many detractors' deliveries arrived.

Target (issue 4): p95 ≤ 250 ms and p99 ≤ 1 s at 200 events/s on the 2-core machine.
The report is printed and written to ``bench/results/delivery.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from app.schemas.feedback import EXAMPLE_EVENT
from bench.database import embedded_postgres
from bench.http_client import HttpConnection
from bench.load import percentile
from bench.processes import PROJECT_ROOT, BenchError, free_port, running_server, stop_process

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DETRACTOR_SHARE = 0.3
DRAIN_TIMEOUT_S = 30.0
TARGET_P95_MS = 250.0
TARGET_P99_MS = 1000.0


@dataclass(frozen=True)
class Outcome:
    sent: int
    detractors: int
    failed: int
    latencies_ms: list[float]  # sorted

    def p(self, fraction: float) -> float | None:
        return percentile(self.latencies_ms, fraction)


def _event(seq: int, run: str, detractor: bool) -> dict[str, object]:
    event = copy.deepcopy(EXAMPLE_EVENT)
    event["event_id"] = f"{run}-{seq}"
    event["occurred_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    event["customer"] = {"id": f"C-{run}-{seq}", "locale": "de-DE"}
    if detractor:
        event["scores"] = [{"metric": "nps", "value": seq % 4}]
    else:
        event["scores"] = [{"metric": "nps", "value": 9 + seq % 2}, {"metric": "csat", "value": 5}]
        event["text"] = "Schnell und freundlich."
    return event


def _request(port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send_load(
    port: int, token: str, rate: float, duration_s: float, connections: int, run: str
) -> tuple[dict[str, float], int, int]:
    """Returns ({ticket id: scheduled send time of the event that opened it}, sent,
    failed)."""
    total = int(rate * duration_s)
    # Three in ten events are detractors (a deterministic mix).
    plan = [(seq, seq % 10 < DETRACTOR_SHARE * 10) for seq in range(total)]
    requests = [
        (seq, detractor, _request(port, token, orjson.dumps(_event(seq, run, detractor))))
        for seq, detractor in plan
    ]
    queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
    scheduled: dict[str, float] = {}  # ticket id (from the response) -> scheduled send
    failed = 0
    detractors = 0

    async def worker() -> None:
        nonlocal failed
        connection = HttpConnection("127.0.0.1", port)
        try:
            while True:
                request, at = await queue.get()
                try:
                    status, body = await connection.exchange(request)
                except OSError:
                    status, body = 0, b""
                if status != 202:
                    failed += 1
                else:
                    ticket_id = orjson.loads(body).get("ticket_id")
                    if ticket_id is not None:
                        scheduled[ticket_id] = at
                queue.task_done()
        finally:
            await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.monotonic() + 0.2
    for index, (_seq, detractor, request) in enumerate(requests):
        at = start + index / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        detractors += detractor
        queue.put_nowait((request, at))
    await queue.join()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    if len(scheduled) != detractors:
        raise BenchError(f"{detractors} detractors sent but {len(scheduled)} tickets opened")
    return scheduled, total, failed


def _progress(message: str) -> None:
    print(f"[bench.delivery] {message}", file=sys.stderr, flush=True)


def _api(port: int, token: str, method: str, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, object] = json.loads(response.read())
        return result


def _arrivals(receiver_port: int) -> dict[str, float]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{receiver_port}/arrivals", timeout=10
    ) as response:
        data: dict[str, float] = json.loads(response.read())
        return data


def measure(rate: float, duration_s: float, connections: int) -> Outcome:
    token = "fbk_" + secrets.token_urlsafe(24)
    run = f"d{secrets.token_hex(3)}"
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    receiver_port = free_port()
    with (log_dir / "webhook-receiver.log").open("wb") as output:
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook_receiver", str(receiver_port)],
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="feedback-bench-delivery-") as data_dir,
            embedded_postgres(Path(data_dir) / "pg") as database,
        ):
            env = {
                **os.environ,
                "FEEDBACK_DATABASE_URL": database.info.sqlalchemy_url(),
                "FEEDBACK_BOOTSTRAP_ADMIN_KEY": token,
                "FEEDBACK_ALLOW_PRIVATE_TARGETS": "true",
                "FEEDBACK_LOG_LEVEL": "WARNING",
            }
            executable = Path(sys.executable).parent / "feedback-service"

            def command(port: int) -> list[str]:
                return [str(executable), "serve", "--port", str(port)]

            with running_server("service-delivery", command, env, log_dir) as service:
                _api(
                    service.port,
                    token,
                    "POST",
                    "/v1/integrations",
                    {
                        "name": "bench-receiver",
                        "kind": "webhook",
                        "events": ["ticket.created"],
                        "config": {"url": f"http://127.0.0.1:{receiver_port}/hook"},
                    },
                )
                scheduled, sent, failed = asyncio.run(
                    _send_load(service.port, token, rate, duration_s, connections, run)
                )
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                arrivals = _arrivals(receiver_port)
                while len(arrivals) < len(scheduled) and time.monotonic() < deadline:
                    time.sleep(0.5)
                    arrivals = _arrivals(receiver_port)
                if len(arrivals) < len(scheduled):
                    _progress(f"only {len(arrivals)} of {len(scheduled)} webhooks arrived")
    finally:
        stop_process(receiver)
    latencies = sorted(
        (arrivals[event_id] - at) * 1000
        for event_id, at in scheduled.items()
        if event_id in arrivals
    )
    return Outcome(sent=sent, detractors=len(scheduled), failed=failed, latencies_ms=latencies)


def render(outcome: Outcome, *, rate: float, duration_s: float, command: str) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} ms"

    p95, p99 = outcome.p(0.95), outcome.p(0.99)
    arrived = len(outcome.latencies_ms)
    ok95 = p95 is not None and p95 <= TARGET_P95_MS and arrived == outcome.detractors
    ok99 = p99 is not None and p99 <= TARGET_P99_MS and arrived == outcome.detractors
    return "\n".join(
        [
            "## Delivery latency benchmark",
            "",
            f"`{command}`: {rate:g} events/s for {duration_s:g} s "
            f"({outcome.sent:,} events, {outcome.failed} failed), "
            f"{outcome.detractors:,} detractors each opening a ticket; "
            f"{arrived:,} `ticket.created` webhooks arrived ({os.cpu_count()} CPUs).",
            "",
            "| POST → webhook arrival | measured | target | pass/fail |",
            "|---|---|---|---|",
            f"| p50 | {ms(outcome.p(0.5))} | — | — |",
            f"| p95 | {ms(p95)} | ≤ {TARGET_P95_MS:g} ms | {'PASS' if ok95 else 'FAIL'} |",
            f"| p99 | {ms(p99)} | ≤ {TARGET_P99_MS:g} ms | {'PASS' if ok99 else 'FAIL'} |",
            f"| max | {ms(outcome.latencies_ms[-1] if outcome.latencies_ms else None)} | — | — |",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="5 s of load: a smoke run")
    args = parser.parse_args(argv)
    duration = 5.0 if args.quick else args.duration
    if not 1 <= args.rate <= 5000 or not 1 <= duration <= 600 or not 1 <= args.connections <= 256:
        parser.error("--rate 1..5000, --duration 1..600, --connections 1..256")
    command = " ".join(["python -m bench.delivery", *(argv if argv is not None else sys.argv[1:])])
    try:
        outcome = measure(args.rate, duration, args.connections)
    except BenchError as exc:
        print(f"bench.delivery: {exc}", file=sys.stderr)
        return 1
    report = render(outcome, rate=args.rate, duration_s=duration, command=command)
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "delivery.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
