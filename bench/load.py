"""The load generator: closed-loop (max throughput) and open-loop (fixed arrival rate).

It runs in a process of its own (``python -m bench.load``: spec as JSON on stdin, result
as JSON on stdout), so that it takes as little as possible from the cores the servers
use, and never shares an event loop with anything it measures.

Open loop: request *i* is due at ``start + i / rate`` whatever happened to earlier
requests, and its latency runs from that due time, not from when a connection was free
to send it. A slow server therefore shows up as latency instead of silently lowering the
offered rate (coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import uvloop

from bench.events import RequestFactory
from bench.http_client import HttpConnection, HttpProtocolError

HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0  # open loop: how long answers may trail the last due time
TRANSPORT_ERROR = 0  # status recorded when no HTTP answer arrived
RETRY_PAUSE_S = 0.05  # after a transport error: no hot loop against a dead server
SCHEDULE_LEAD_S = 0.05  # open loop: time for the workers to start waiting


@dataclass(frozen=True)
class LoadSpec:
    port: int
    token: str | None
    events_per_request: int
    id_prefix: str
    connections: int
    duration_s: float
    warmup_s: float = 0.0
    rate_per_s: float | None = None  # None: closed loop, as fast as the answers come
    detractor_share: float = 1.0  # events that open a ticket (see bench.events)

    def time_budget_s(self) -> float:
        """An upper bound on the run, for the parent's timeout."""
        return self.warmup_s + self.duration_s + REQUEST_TIMEOUT_S + DRAIN_TIMEOUT_S + 30


@dataclass(frozen=True)
class LoadResult:
    ok: int  # 2xx answers counted in the window
    failed: int  # other answers, transport errors, timeouts, requests never answered
    window_s: float
    p50_ms: float | None  # latency percentiles of the 2xx answers
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[str, int]
    events_per_request: int
    offered_per_s: float | None
    ok_total: int  # 2xx answers in the whole phase, warm-up included: CPU time divides by it
    client_cpu_cores: float  # the load generator's own CPU use: it must stay well below 1

    @property
    def events_total(self) -> int:
        return self.ok_total * self.events_per_request

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.ok_per_s * self.events_per_request


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class Recorder:
    def __init__(self) -> None:
        self.ok_latencies_s: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.ok_outside_window = 0
        self._started_cpu_s = time.process_time()
        self._started_s = time.perf_counter()

    @property
    def count(self) -> int:
        return self.statuses.total()

    def record(self, latency_s: float, status: int) -> None:
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.ok_latencies_s.append(latency_s)

    def record_outside_window(self, status: int) -> None:
        if 200 <= status < 300:
            self.ok_outside_window += 1

    def result(
        self,
        window_s: float,
        events_per_request: int,
        offered_per_s: float | None = None,
        never_answered: int = 0,
    ) -> LoadResult:
        latencies_ms = sorted(latency * 1000 for latency in self.ok_latencies_s)
        ok = len(latencies_ms)
        statuses = {str(status): n for status, n in sorted(self.statuses.items())}
        if never_answered:
            statuses["never answered"] = never_answered
        return LoadResult(
            ok=ok,
            failed=self.count - ok + never_answered,
            window_s=window_s,
            p50_ms=percentile(latencies_ms, 0.50),
            p99_ms=percentile(latencies_ms, 0.99),
            max_ms=latencies_ms[-1] if latencies_ms else None,
            statuses=statuses,
            events_per_request=events_per_request,
            offered_per_s=offered_per_s,
            ok_total=ok + self.ok_outside_window,
            client_cpu_cores=(time.process_time() - self._started_cpu_s)
            / max(time.perf_counter() - self._started_s, 1e-9),
        )


async def send_next(connection: HttpConnection, factory: RequestFactory) -> int:
    """Send the factory's next request: the status, or TRANSPORT_ERROR; never raises,
    never waits unboundedly."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await connection.send(factory.next_request())
    except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpProtocolError):
        await connection.close()
        await asyncio.sleep(RETRY_PAUSE_S)
        return TRANSPORT_ERROR


# One request on one connection (or one COPY call): returns its status.
Exchange = Callable[[], Awaitable[int]]


async def closed_loop(
    exchanges: Sequence[Exchange], *, warmup_s: float, duration_s: float, events_per_request: int
) -> LoadResult:
    """Each exchange is repeated as soon as its previous one is answered. Answers during
    the warm-up (caches, prepared statements, pools filling) are not counted."""
    recorder = Recorder()
    window_start = time.perf_counter() + warmup_s
    window_end = window_start + duration_s

    async def repeat(exchange: Exchange) -> None:
        while time.perf_counter() < window_end:
            sent = time.perf_counter()
            status = await exchange()
            answered = time.perf_counter()
            if window_start <= answered <= window_end:
                recorder.record(answered - sent, status)
            else:
                recorder.record_outside_window(status)

    await asyncio.gather(*(repeat(exchange) for exchange in exchanges))
    return recorder.result(duration_s, events_per_request)


async def release_on_schedule(
    due_times: asyncio.Queue[float | None], start: float, rate: float, total: int
) -> None:
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_times.put_nowait(due)


async def run_schedule(
    due_times: asyncio.Queue[float | None],
    workers: Sequence[asyncio.Task[None]],
    *,
    start: float,
    rate: float,
    total: int,
) -> None:
    """Release ``total`` due times at ``rate`` from ``start`` to the ``workers`` (each
    takes the next due time until it gets None), then end them; workers still busy
    ``DRAIN_TIMEOUT_S`` after the last release are cancelled."""
    await release_on_schedule(due_times, start, rate, total)
    for _ in workers:
        due_times.put_nowait(None)
    _, late = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
    for worker in late:
        worker.cancel()
    await asyncio.gather(*late, return_exceptions=True)


async def open_loop(
    exchanges: Sequence[Exchange], *, rate_per_s: float, duration_s: float, events_per_request: int
) -> LoadResult:
    """Requests fall due at a fixed rate; a due request waits for a free exchange if all
    are busy, and that wait counts in its latency."""
    total = max(1, round(rate_per_s * duration_s))
    due_times: asyncio.Queue[float | None] = asyncio.Queue()
    recorder = Recorder()
    last_answer = time.perf_counter()

    async def serve(exchange: Exchange) -> None:
        nonlocal last_answer
        while (due := await due_times.get()) is not None:
            status = await exchange()
            last_answer = time.perf_counter()
            recorder.record(last_answer - due, status)

    workers = [asyncio.create_task(serve(exchange)) for exchange in exchanges]
    start = time.perf_counter() + SCHEDULE_LEAD_S
    await run_schedule(due_times, workers, start=start, rate=rate_per_s, total=total)
    # Answers trailing the schedule stretch the window rather than inflate the rate.
    window_s = max(duration_s, last_answer - start)
    return recorder.result(
        window_s, events_per_request, rate_per_s, never_answered=total - recorder.count
    )


async def run_load(spec: LoadSpec) -> LoadResult:
    factory = RequestFactory(
        port=spec.port,
        token=spec.token,
        events_per_request=spec.events_per_request,
        id_prefix=spec.id_prefix,
        detractor_share=spec.detractor_share,
    )
    connections = [HttpConnection(HOST, spec.port) for _ in range(spec.connections)]
    # Connect before the clock starts: handshakes are not what is measured.
    await asyncio.gather(*(connection.open() for connection in connections))
    exchanges = [partial(send_next, connection, factory) for connection in connections]
    try:
        if spec.rate_per_s is None:
            return await closed_loop(
                exchanges,
                warmup_s=spec.warmup_s,
                duration_s=spec.duration_s,
                events_per_request=spec.events_per_request,
            )
        return await open_loop(
            exchanges,
            rate_per_s=spec.rate_per_s,
            duration_s=spec.duration_s,
            events_per_request=spec.events_per_request,
        )
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


def result_from_json(data: dict[str, Any]) -> LoadResult:
    return LoadResult(**data)


def main() -> None:
    spec = LoadSpec(**json.load(sys.stdin))
    result = uvloop.run(run_load(spec))
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
