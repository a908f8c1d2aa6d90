"""``python -m bench.metrics``: GET /v1/metrics over a million stored events (issue 5).

1. Starts an embedded PostgreSQL in a temporary directory (or reuses the cluster kept
   in ``--keep-data DIR``), migrates it and loads N events (default 1,000,000) with
   their tickets over the 90 days up to now (``bench/metrics_data.py``: set-based SQL
   for the rows, ``add_to_daily_rollup`` for the daily sums, then VACUUM ANALYZE).
2. Starts ``feedback-service serve`` against it and creates a key restricted to two
   locations (``POST /v1/api-keys``).
3. Phases, each at a fixed arrival rate (default 5 requests/s for 30 s, open loop:
   latency runs from each request's scheduled time), over the whole 90 days:
   ``group_by=day`` and ``group_by=location_id`` (the target), ``group_by=day`` with the
   restricted key, and ``group_by=touchpoint``, which the rollup cannot answer (the
   slow path: every feedback row of the range). Before each phase one request, not
   counted, checks the answer: every group's counts must equal a straight aggregation
   over the feedback table.
4. Baseline, in the same run: the same feedback sums as one SQL statement over the
   feedback table grouped by UTC day (no HTTP, no rollup), timed ``--baseline-runs``
   times after one warm-up run.
5. Where the time goes: CPU per request of the service and of PostgreSQL, and EXPLAIN
   ANALYZE of the statements the service runs for each phase, with a custom plan and
   with the generic one (asyncpg prepares every statement; after five executions on a
   connection PostgreSQL switches to the generic plan when it estimates it no dearer,
   so under steady load the service mostly runs that one).

Target (issue 5): p95 ≤ 300 ms grouped by day and by location on the 2-core machine,
with no failed request. Any answer but 200 is an error. Report: ``bench/results/
metrics.md`` and ``metrics.json``; plans in ``metrics-explain.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg

from app.db import DriverConnection
from app.embedded_postgres import ConnectionInfo
from app.repositories import metrics as repo
from app.repositories.metrics import FEEDBACK_SUMS, MetricsDimension, MetricsQuery
from bench import metrics_data
from bench.cpu import CpuStopwatch
from bench.database import Database, connect, embedded_postgres
from bench.http_client import HttpConnection, HttpProtocolError
from bench.load import percentile, run_schedule
from bench.processes import PROJECT_ROOT, BenchError, running_server, service_command, service_env

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
TARGET_P95_MS = 300.0
REQUEST_TIMEOUT_S = 30.0  # the service's statement timeout is 30 s too
IDLE_TIMEOUT_S = 60.0
TRANSPORT_ERROR = 0  # status recorded when no HTTP answer arrived
RESTRICTED_LOCATIONS = metrics_data.LOCATIONS[1:3]  # a manager of two (busy) stores
QUICK_EVENTS = 100_000
QUICK_DURATION_S = 5.0


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    group_by: MetricsDimension
    restricted: bool  # the key for RESTRICTED_LOCATIONS instead of the admin key
    has_target: bool


PHASES = (
    PhaseSpec("by day", MetricsDimension.DAY, restricted=False, has_target=True),
    PhaseSpec("by location", MetricsDimension.LOCATION_ID, restricted=False, has_target=True),
    PhaseSpec(
        "by day, key for 2 locations", MetricsDimension.DAY, restricted=True, has_target=True
    ),
    PhaseSpec(
        "by touchpoint (no rollup)", MetricsDimension.TOUCHPOINT, restricted=False, has_target=False
    ),
)


@dataclass(frozen=True)
class Latencies:
    """Percentiles (nearest rank) of the successful requests, in ms."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latencies:
        ordered = sorted(values_ms)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 0.50),
            p95=percentile(ordered, 0.95),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else None,
        )


@dataclass(frozen=True)
class StatementTiming:
    """EXPLAIN ANALYZE of one statement the service runs: execution time in ms."""

    statement: str  # "feedback" or "tickets"
    custom_ms: float
    generic_ms: float


@dataclass(frozen=True)
class PhaseResult:
    name: str
    group_by: str
    restricted: bool
    has_target: bool
    rate_per_s: float
    duration_s: float
    requests: int  # scheduled
    latency: Latencies  # of the 200 answers
    statuses: dict[str, int]  # "0": no HTTP answer (transport error or timeout)
    never_answered: int  # still outstanding when the drain timeout ran out
    service_cpu_ms_per_request: float | None
    database_cpu_ms_per_request: float | None
    check: str  # the answer compared with a straight aggregation: "ok" or what differs
    statements: list[StatementTiming] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.requests - self.latency.count

    @property
    def verdict(self) -> str:
        if not self.has_target:
            return "— (no target)"
        met = (
            self.errors == 0
            and self.latency.p95 is not None
            and self.latency.p95 <= TARGET_P95_MS
            and self.check == "ok"
        )
        return "PASS" if met else "FAIL"


@dataclass(frozen=True)
class Options:
    events: int
    rate_per_s: float
    duration_s: float
    connections: int
    baseline_runs: int
    keep_data: Path | None
    command: str


def _progress(message: str) -> None:
    print(f"[bench.metrics] {message}", file=sys.stderr, flush=True)


# -- PostgreSQL: connecting, migrating, loading ------------------------------------------


async def _connect(info: ConnectionInfo) -> asyncpg.Connection:
    # Baseline and EXPLAIN run longer than the service's statements may; no limit.
    return await connect(
        info, server_settings={"statement_timeout": "0", "application_name": "bench-metrics"}
    )


def _migrate(info: ConnectionInfo, log_dir: Path) -> None:
    """The service's own migrations, as ``feedback-service migrate`` runs them."""
    executable = Path(sys.executable).parent / "feedback-service"
    env = {**os.environ, "FEEDBACK_DATABASE_URL": info.sqlalchemy_url()}
    with (log_dir / "metrics-migrate.log").open("wb") as output:
        done = subprocess.run(
            [str(executable), "migrate"],
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        raise BenchError(f"feedback-service migrate failed; see {log_dir / 'metrics-migrate.log'}")


async def _load(info: ConnectionInfo, events: int) -> metrics_data.LoadedData:
    connection = await _connect(info)
    try:
        if await connection.fetchval("SELECT EXISTS (SELECT FROM feedback)"):
            raise BenchError("the feedback table is not empty: refusing to load into it")
        return await metrics_data.load(connection, events, _progress)
    finally:
        await connection.close()


def prepare_data(
    options: Options, data_dir: Path, log_dir: Path
) -> tuple[metrics_data.LoadedData, Path]:
    """The cluster directory, loaded: reused from ``--keep-data`` when it holds this
    N for this schema and loader, else loaded now (and kept when asked)."""
    if options.keep_data is not None:
        cached = metrics_data.read_marker(options.keep_data, options.events)
        if cached is not None:
            _progress(f"reusing the {cached.events:,} events kept in {options.keep_data}")
            loaded = metrics_data.LoadedData(
                events=cached.events,
                tickets=cached.tickets,
                anchor=cached.anchor,
                load_s=None,
                steps_s={},
            )
            return loaded, options.keep_data / "pg"
        try:
            metrics_data.prepare_cache_dir(options.keep_data)
        except FileExistsError as exc:
            raise BenchError(str(exc)) from None
        return _fresh_load(options, options.keep_data / "pg", log_dir), options.keep_data / "pg"
    return _fresh_load(options, data_dir / "pg", log_dir), data_dir / "pg"


def _fresh_load(options: Options, cluster: Path, log_dir: Path) -> metrics_data.LoadedData:
    with embedded_postgres(cluster) as database:
        started = time.perf_counter()
        _migrate(database.info, log_dir)
        _progress(f"migrated in {time.perf_counter() - started:.1f} s; loading")
        loaded = asyncio.run(_load(database.info, options.events))
    if options.keep_data is not None:
        # Written only after a clean stop: a marker always means a complete cluster.
        metrics_data.write_marker(options.keep_data, loaded)
    return loaded


# -- the service ---------------------------------------------------------------------------


def _call(port: int, token: str, method: str, path: str, body: object = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None


def _metrics_path(loaded: metrics_data.LoadedData, group_by: MetricsDimension) -> str:
    query = urllib.parse.urlencode(
        {
            "from": loaded.range_start.isoformat(),
            "to": loaded.anchor.isoformat(),
            "group_by": group_by.value,
        }
    )
    return f"/v1/metrics?{query}"


# -- the load: a fixed arrival rate ---------------------------------------------------------


@dataclass
class _Recorder:
    ok_latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


async def _get(connection: HttpConnection, request: bytes) -> int:
    """One request: its status, or TRANSPORT_ERROR; never raises, never waits unboundedly."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await connection.send(request)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpProtocolError):
        await connection.close()
        return TRANSPORT_ERROR


async def open_loop(
    port: int, request: bytes, rate_per_s: float, duration_s: float, connections: int
) -> tuple[_Recorder, int, int]:
    """Request i falls due at start + i / rate whatever happened to earlier ones, waits
    for a free connection if all are busy, and its latency runs from its due time (no
    coordinated omission). Returns the recorder, the requests scheduled and those never
    answered before the drain timeout."""
    total = max(1, round(rate_per_s * duration_s))
    due_times: asyncio.Queue[float | None] = asyncio.Queue()
    recorder = _Recorder()
    pool = [HttpConnection("127.0.0.1", port) for _ in range(connections)]
    # Connect before the clock starts: handshakes are not what is measured.
    await asyncio.gather(*(connection.open() for connection in pool))

    async def serve(connection: HttpConnection) -> None:
        while (due := await due_times.get()) is not None:
            status = await _get(connection, request)
            recorder.statuses[status] += 1
            if status == 200:
                recorder.ok_latencies_ms.append((time.perf_counter() - due) * 1000)

    workers = [asyncio.create_task(serve(connection)) for connection in pool]
    await run_schedule(
        due_times, workers, start=time.perf_counter() + 0.05, rate=rate_per_s, total=total
    )
    await asyncio.gather(*(connection.close() for connection in pool))
    return recorder, total, total - recorder.statuses.total()


def _request_bytes(port: int, token: str, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()


# -- what the answers must be, the baseline, and EXPLAIN ----------------------------------

_UTC_DAY = "(f.occurred_at AT TIME ZONE 'UTC')::date"
_STRAIGHT_KEYS = {
    MetricsDimension.DAY: _UTC_DAY,
    MetricsDimension.LOCATION_ID: "f.location_id",
    MetricsDimension.TOUCHPOINT: "f.touchpoint",
}


def straight_sql(group_by: MetricsDimension, restricted: bool) -> str:
    """The feedback figures as one statement over the feedback table, no rollup: the
    baseline (by day), and what every phase's answer must add up to."""
    where = "f.occurred_at >= $1 AND f.occurred_at < $2"
    if restricted:
        where += " AND f.location_id = ANY($3::text[])"
    sums = ", ".join(f"{expression} AS {name}" for name, expression in FEEDBACK_SUMS)
    return (
        f"SELECT {_STRAIGHT_KEYS[group_by]} AS key, {sums} "  # noqa: S608 - constants
        f"FROM feedback f WHERE {where} GROUP BY 1"
    )


def _straight_args(loaded: metrics_data.LoadedData, restricted: bool) -> list[object]:
    args: list[object] = [loaded.range_start, loaded.anchor]
    if restricted:
        args.append(list(RESTRICTED_LOCATIONS))
    return args


# The API's counts, by the names of FEEDBACK_SUMS (ratings count both scales together).
def _api_counts(group: dict[str, Any]) -> dict[str, int]:
    return {
        "responses": group["responses"],
        "nps_responses": group["nps"]["responses"],
        "promoters": group["nps"]["promoters"],
        "passives": group["nps"]["passives"],
        "detractors": group["nps"]["detractors"],
        "csat_responses": group["csat"]["responses"],
        "ces_responses": group["ces"]["responses"],
        "rating_responses": group["rating"]["responses"],
        "sentiment_negative": group["sentiment"]["negative"],
        "sentiment_neutral": group["sentiment"]["neutral"],
        "sentiment_positive": group["sentiment"]["positive"],
    }


def _sql_counts(record: asyncpg.Record | None) -> dict[str, int]:
    if record is None:
        return dict.fromkeys(_api_counts(_EMPTY_GROUP), 0)
    return {
        "responses": record["responses"],
        "nps_responses": record["nps_responses"],
        "promoters": record["promoters"],
        "passives": record["passives"],
        "detractors": record["detractors"],
        "csat_responses": record["csat_responses"],
        "ces_responses": record["ces_responses"],
        "rating_responses": record["rating5_responses"] + record["rating10_responses"],
        "sentiment_negative": record["sentiment_negative"],
        "sentiment_neutral": record["sentiment_neutral"],
        "sentiment_positive": record["sentiment_positive"],
    }


_EMPTY_GROUP: dict[str, Any] = {
    "responses": 0,
    "nps": {"responses": 0, "promoters": 0, "passives": 0, "detractors": 0},
    "csat": {"responses": 0},
    "ces": {"responses": 0},
    "rating": {"responses": 0},
    "sentiment": {"negative": 0, "neutral": 0, "positive": 0},
}


def _key_text(key: object) -> str | None:
    return key.isoformat() if isinstance(key, date) else cast(str | None, key)


def compare(answer: dict[str, Any], records: Sequence[asyncpg.Record], events: int) -> str:
    """'ok' when every group's counts (and the total's responses) equal the straight
    aggregation's; otherwise what differs."""
    expected = {_key_text(record["key"]): record for record in records}
    answered = {group["key"]: group for group in answer["groups"]}
    differences = []
    for key in sorted(set(expected) | set(answered), key=lambda k: (k is None, k or "")):
        got = _api_counts(answered.get(key, _EMPTY_GROUP))
        want = _sql_counts(expected.get(key))
        wrong = [f"{name} {got[name]} != {want[name]}" for name in got if got[name] != want[name]]
        if wrong:
            differences.append(f"{key}: {', '.join(wrong)}")
    total = answer["total"]["responses"]
    if total != events:
        differences.insert(0, f"total responses {total} != {events}")
    if not differences:
        return "ok"
    return f"{len(differences)} groups differ, e.g. " + "; ".join(differences[:3])


class _CapturingConnection:
    """Stands in for the driver connection: records the statements the repository
    builds, with their parameters, instead of running them."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[object, ...]]] = []

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        self.statements.append((sql, args))
        return []


async def service_statements(
    loaded: metrics_data.LoadedData, spec: PhaseSpec
) -> list[tuple[str, str, tuple[object, ...]]]:
    """(name, SQL, parameters) of the statements ``GET /v1/metrics`` runs for a phase,
    built by the repository functions the service calls, from the query it builds."""
    query = MetricsQuery(
        occurred_from=loaded.range_start,
        occurred_to=loaded.anchor,
        group_by=spec.group_by,
        allowed_location_ids=list(RESTRICTED_LOCATIONS) if spec.restricted else None,
    )
    capture = _CapturingConnection()
    await repo.feedback_sums(cast(DriverConnection, capture), query)
    await repo.ticket_sums(cast(DriverConnection, capture), query)
    names = ("feedback", "tickets")
    return [(name, sql, args) for name, (sql, args) in zip(names, capture.statements, strict=True)]


_EXECUTION_TIME = re.compile(r"Execution Time: ([0-9.]+) ms")


_PLAIN = re.compile(r"[A-Za-z0-9_.:+-]+")


def _literal(value: object) -> str:
    """A parameter as an SQL literal for EXECUTE: only the kinds the metrics queries
    take, whose text needs no quoting (anything else is refused, not escaped)."""
    if isinstance(value, datetime | date):
        items = [value.isoformat()]
        text = items[0]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
        text = "{" + ",".join(value) + "}"  # a text[] literal
    else:
        raise TypeError(f"no literal for {value!r}")
    if not all(_PLAIN.fullmatch(item) for item in items):
        raise ValueError(f"{value!r} would need quoting")
    return f"'{text}'"


async def _explain(
    connection: asyncpg.Connection, sql: str, args: Sequence[object], mode: str
) -> str:
    """EXPLAIN ANALYZE as the service runs the statement: prepared, then executed with
    a custom or the generic plan. (EXPLAIN of the statement itself with bind parameters
    always plans for their values, whatever plan_cache_mode says.)"""
    await connection.execute(f"SET plan_cache_mode = {mode}")
    await connection.execute(f"PREPARE bench_statement AS {sql}")
    try:
        arguments = ", ".join(_literal(value) for value in args)
        rows = await connection.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_statement({arguments})"
        )
    finally:
        await connection.execute("DEALLOCATE bench_statement")
    return "\n".join(row[0] for row in rows)


def _execution_ms(plan: str) -> float:
    found = _EXECUTION_TIME.search(plan)
    return float(found.group(1)) if found else float("nan")


async def explain_phase(
    info: ConnectionInfo, loaded: metrics_data.LoadedData, spec: PhaseSpec
) -> tuple[list[StatementTiming], str]:
    """EXPLAIN ANALYZE of the phase's statements with a custom plan (the service's first
    five executions of a prepared statement) and a generic one (what PostgreSQL may
    switch to from the sixth, when it does not estimate it dearer)."""
    connection = await _connect(info)
    timings, text = [], []
    try:
        # As the service's metrics transaction has it (repo.sort_in_memory).
        await connection.execute(f"SET work_mem = '{repo.SORT_MEMORY}'")
        for name, sql, args in await service_statements(loaded, spec):
            plans = {}
            for mode in ("force_custom_plan", "force_generic_plan"):
                plans[mode] = await _explain(connection, sql, args, mode)
                text.append(
                    f"### {spec.name}: {name} statement, {mode}\n\n{sql}\n\n{plans[mode]}\n"
                )
            timings.append(
                StatementTiming(
                    statement=name,
                    custom_ms=_execution_ms(plans["force_custom_plan"]),
                    generic_ms=_execution_ms(plans["force_generic_plan"]),
                )
            )
    finally:
        await connection.close()
    return timings, "\n".join(text)


async def _fetch_straight(
    info: ConnectionInfo, loaded: metrics_data.LoadedData, spec: PhaseSpec
) -> list[asyncpg.Record]:
    connection = await _connect(info)
    try:
        sql = straight_sql(spec.group_by, spec.restricted)
        records: list[asyncpg.Record] = await connection.fetch(
            sql, *_straight_args(loaded, spec.restricted)
        )
        return records
    finally:
        await connection.close()


async def _restricted_events(info: ConnectionInfo) -> int:
    connection = await _connect(info)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM feedback WHERE location_id = ANY($1::text[])",
            list(RESTRICTED_LOCATIONS),
        )
        return count
    finally:
        await connection.close()


async def baseline(info: ConnectionInfo, loaded: metrics_data.LoadedData, runs: int) -> Latencies:
    """The feedback sums by UTC day in one statement over the feedback table, timed
    from this client: no HTTP, no rollup, no tickets. One warm-up run first."""
    connection = await _connect(info)
    sql = straight_sql(MetricsDimension.DAY, restricted=False)
    args = _straight_args(loaded, restricted=False)
    timings_ms = []
    try:
        await connection.fetch(sql, *args)
        for _ in range(runs):
            started = time.perf_counter()
            await connection.fetch(sql, *args)
            timings_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return Latencies.of(timings_ms)


async def _wait_until_idle(info: ConnectionInfo) -> None:
    """No phase starts while the service still works on the previous one's requests
    (a client that gave up does not stop the statement it started)."""
    connection = await _connect(info)
    try:
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while time.monotonic() < deadline:
            busy = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'feedback-service' AND state = 'active'"
            )
            if busy == 0:
                return
            await asyncio.sleep(0.5)
        _progress(f"the service was still busy after {IDLE_TIMEOUT_S:.0f} s; going on")
    finally:
        await connection.close()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    options: Options
    loaded: metrics_data.LoadedData
    phases: list[PhaseResult] = field(default_factory=list)
    baseline: Latencies | None = None
    explain_text: list[str] = field(default_factory=list)


def _run_phase(
    run: RunResult,
    database: Database,
    service_port: int,
    service_pid: int,
    token: str,
    spec: PhaseSpec,
    restricted_events: int,
) -> None:
    options, loaded, info = run.options, run.loaded, database.info
    path = _metrics_path(loaded, spec.group_by)
    asyncio.run(_wait_until_idle(info))
    # One request first, not counted: it warms up the service and the caches, and the
    # answer is checked against a straight aggregation over the feedback table.
    answer = _call(service_port, token, "GET", path)
    expected_events = restricted_events if spec.restricted else loaded.events
    check = compare(answer, asyncio.run(_fetch_straight(info, loaded, spec)), expected_events)
    if check != "ok":
        _progress(f"{spec.name}: the answer differs from the feedback table: {check}")
    _progress(f"{spec.name}: {options.rate_per_s:g} req/s for {options.duration_s:g} s")
    service_cpu = CpuStopwatch(service_pid)
    database_cpu = CpuStopwatch(database.postmaster_pid)
    recorder, total, never_answered = asyncio.run(
        open_loop(
            service_port,
            _request_bytes(service_port, token, path),
            options.rate_per_s,
            options.duration_s,
            options.connections,
        )
    )
    asyncio.run(_wait_until_idle(info))  # CPU of late-finishing statements counts too
    service_cpu_s, database_cpu_s = service_cpu.elapsed_s(), database_cpu.elapsed_s()
    statuses = {str(status): count for status, count in sorted(recorder.statuses.items())}
    if never_answered:
        statuses["never answered"] = never_answered

    def per_request(cpu_s: float | None) -> float | None:
        return None if cpu_s is None else cpu_s * 1000 / total

    timings, plans = asyncio.run(explain_phase(info, loaded, spec))
    run.explain_text.append(plans)
    result = PhaseResult(
        name=spec.name,
        group_by=spec.group_by.value,
        restricted=spec.restricted,
        has_target=spec.has_target,
        rate_per_s=options.rate_per_s,
        duration_s=options.duration_s,
        requests=total,
        latency=Latencies.of(recorder.ok_latencies_ms),
        statuses=statuses,
        never_answered=never_answered,
        service_cpu_ms_per_request=per_request(service_cpu_s),
        database_cpu_ms_per_request=per_request(database_cpu_s),
        check=check,
        statements=timings,
    )
    run.phases.append(result)
    _progress(f"{spec.name}: p95 {_ms(result.latency.p95)}, {result.errors} errors ({statuses})")


def measure(options: Options) -> RunResult:
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        temporary = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="feedback-bench-metrics-")
        )
        loaded, cluster = prepare_data(options, Path(temporary), log_dir)
        if loaded.load_s is not None:
            steps = ", ".join(f"{name} {s:.1f} s" for name, s in loaded.steps_s.items())
            _progress(f"loaded {loaded.events:,} events in {loaded.load_s:.1f} s ({steps})")
        run = RunResult(options, loaded)
        database = stack.enter_context(embedded_postgres(cluster))
        admin_key = "fbk_" + secrets.token_urlsafe(24)
        service = stack.enter_context(
            running_server(
                "service-metrics",
                service_command,
                service_env(database.info, admin_key),
                log_dir,
            )
        )
        restricted_key = _call(
            service.port,
            admin_key,
            "POST",
            "/v1/api-keys",
            {
                "name": f"bench-metrics-{secrets.token_hex(3)}",
                "scopes": ["metrics:read"],
                "location_ids": list(RESTRICTED_LOCATIONS),
            },
        )["key"]
        restricted_events = asyncio.run(_restricted_events(database.info))
        for spec in PHASES:
            token = restricted_key if spec.restricted else admin_key
            _run_phase(run, database, service.port, service.pid, token, spec, restricted_events)
        asyncio.run(_wait_until_idle(database.info))
        _progress(f"baseline: {options.baseline_runs} runs of one SQL statement")
        run.baseline = asyncio.run(baseline(database.info, loaded, options.baseline_runs))
    return run


# -- the report -----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}x"


def _statuses(result: PhaseResult) -> str:
    bad = {status: n for status, n in result.statuses.items() if status != "200"}
    if not bad:
        return "0"
    named = ", ".join(
        f"{n} x {'no answer' if status == '0' else status}" for status, n in bad.items()
    )
    return f"{result.errors} ({named})"


def _load_line(loaded: metrics_data.LoadedData, options: Options) -> str:
    if loaded.load_s is None:
        return f"reused from `{options.keep_data}` (loaded earlier; loading is not measured)"
    steps = ", ".join(
        f"{name.replace('_', ' ')} {seconds:.0f} s" for name, seconds in loaded.steps_s.items()
    )
    return f"loaded in {loaded.load_s:.0f} s ({steps})"


def render(run: RunResult) -> str:
    options, loaded = run.options, run.loaded
    base_p95 = run.baseline.p95 if run.baseline else None
    lines = [
        "## Metrics read benchmark",
        "",
        f"`{options.command}`: {loaded.events:,} feedback events and {loaded.tickets:,} "
        f"tickets over the 90 days up to {loaded.anchor:%Y-%m-%d %H:%M} UTC, "
        f"{_load_line(loaded, options)}. Each phase: `GET /v1/metrics` over those 90 days "
        f"at {options.rate_per_s:g} requests/s for {options.duration_s:g} s (open loop, "
        f"latency from each request's scheduled time, {options.connections} connections); "
        f"{os.cpu_count()} CPUs.",
        "",
        "| phase | requests | p50 | p95 | p99 | max | errors | p95 / baseline p95 "
        f"| target: p95 ≤ {TARGET_P95_MS:g} ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in run.phases:
        latency = result.latency
        lines.append(
            f"| `group_by={result.group_by}`"
            + (f", key for {len(RESTRICTED_LOCATIONS)} locations" if result.restricted else "")
            + (" (no rollup)" if not result.has_target else "")
            + f" | {result.requests:,} | {_ms(latency.p50)} | {_ms(latency.p95)} "
            f"| {_ms(latency.p99)} | {_ms(latency.max)} | {_statuses(result)} "
            f"| {_ratio(latency.p95, base_p95)} | {result.verdict} |"
        )
    if run.baseline is not None:
        b = run.baseline
        lines.append(
            "| baseline: one SQL statement over `feedback` by day (no HTTP, no rollup) "
            f"| {b.count} runs | {_ms(b.p50)} | {_ms(b.p95)} | {_ms(b.p99)} | {_ms(b.max)} "
            "| 0 | 1.00x | — |"
        )
    lines += [
        "",
        "Where the time goes: CPU per request (service process; PostgreSQL, every "
        "backend), and the execution time of the service's two statements under EXPLAIN "
        "ANALYZE after the phase, with a custom plan / the generic plan (which a "
        "prepared statement runs from its sixth execution on a connection if PostgreSQL "
        "estimates it no dearer).",
        "",
        "| phase | service CPU / req | PostgreSQL CPU / req | feedback statement "
        "| tickets statement | answer = straight SQL |",
        "|---|---|---|---|---|---|",
    ]
    for result in run.phases:
        statements = {s.statement: s for s in result.statements}

        def plan_ms(name: str, statements: dict[str, StatementTiming] = statements) -> str:
            timing = statements.get(name)
            if timing is None:
                return "—"
            return f"{timing.custom_ms:,.1f} / {timing.generic_ms:,.1f} ms"

        lines.append(
            f"| {result.name} | {_ms(result.service_cpu_ms_per_request)} "
            f"| {_ms(result.database_cpu_ms_per_request)} | {plan_ms('feedback')} "
            f"| {plan_ms('tickets')} | {result.check} |"
        )
    lines.append("")
    return "\n".join(lines)


def to_json(run: RunResult) -> dict[str, Any]:
    options = asdict(run.options)
    options["keep_data"] = str(run.options.keep_data) if run.options.keep_data else None
    loaded = asdict(run.loaded)
    loaded["anchor"] = run.loaded.anchor.isoformat()
    loaded["range_start"] = run.loaded.range_start.isoformat()
    return {
        "benchmark": "metrics",
        "finished_at": datetime.now().astimezone().isoformat(),
        "cpus": os.cpu_count(),
        "target_p95_ms": TARGET_P95_MS,
        "options": options,
        "data": loaded,
        "restricted_locations": list(RESTRICTED_LOCATIONS),
        "phases": [
            {**asdict(result), "errors": result.errors, "verdict": result.verdict}
            for result in run.phases
        ],
        "baseline": asdict(run.baseline) if run.baseline else None,
    }


# -- command line -----------------------------------------------------------------------------


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics",
        description="GET /v1/metrics over N stored events at a fixed arrival rate "
        "(see bench/README.md).",
    )
    parser.add_argument("--events", type=int, default=None, help="events to store (1,000,000)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second (5)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (30)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--baseline-runs", type=int, default=10, help="timed baseline runs")
    parser.add_argument(
        "--keep-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the loaded cluster in DIR and reuse it next time (same N, schema, loader)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EVENTS:,} events and {QUICK_DURATION_S:g} s phases: a smoke run",
    )
    args = parser.parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else 1_000_000)
    duration = args.duration or (QUICK_DURATION_S if args.quick else 30.0)
    if not 1_000 <= events <= 20_000_000:
        parser.error("--events must be between 1,000 and 20,000,000")
    if not 0.1 <= args.rate <= 1_000 or not 1 <= duration <= 600:
        parser.error("--rate 0.1..1000, --duration 1..600")
    if not 1 <= args.connections <= 256 or not 1 <= args.baseline_runs <= 1_000:
        parser.error("--connections 1..256, --baseline-runs 1..1000")
    return Options(
        events=events,
        rate_per_s=args.rate,
        duration_s=duration,
        connections=args.connections,
        baseline_runs=args.baseline_runs,
        keep_data=args.keep_data.resolve() if args.keep_data else None,
        command=" ".join(["python -m bench.metrics", *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(arguments)
    started = time.monotonic()
    try:
        run = measure(options)
    except BenchError as exc:
        print(f"bench.metrics: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[bench.metrics] interrupted: every process it started is stopped", file=sys.stderr)
        return 130
    report = render(run)
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "metrics.md").write_text(report)
    (RESULTS_DIR / "metrics.json").write_text(json.dumps(to_json(run), indent=2) + "\n")
    (RESULTS_DIR / "metrics-explain.txt").write_text("\n".join(run.explain_text))
    elapsed = time.monotonic() - started
    _progress(f"written to {RESULTS_DIR / 'metrics.md'} and metrics.json ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
