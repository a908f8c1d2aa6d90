"""The benchmark run: which servers start when, and which phases run against them.

Order: the real service (single-event phases, then batch phases), the COPY baseline
with the service stopped, then the no-database baseline server. Only one server runs
at a time, so each has both cores (but for the idle PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.cpu import CpuStopwatch
from bench.database import (
    CopySpec,
    Database,
    copy_baseline,
    embedded_postgres,
    reset_ingest_tables,
)
from bench.events import BATCH_EVENTS
from bench.load import LoadResult, LoadSpec
from bench.processes import (
    PROJECT_ROOT,
    BenchError,
    RunningServer,
    run_load,
    running_server,
    service_command,
    service_env,
)
from bench.report import Phase, PhaseResult

FIXED_RATE_FRACTION = 0.7
SETTLE_S = 0.5
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
Scope = Literal["single", "batch", "all"]


@dataclass(frozen=True)
class Options:
    duration_s: float
    warmup_s: float
    only: Scope
    connections: int  # single-event phases
    batch_connections: int  # batch phases and COPY: the same concurrency for both
    detractor_share: float = 0.3  # events that open a ticket

    @property
    def runs_single(self) -> bool:
        return self.only in ("single", "all")

    @property
    def runs_batch(self) -> bool:
        return self.only in ("batch", "all")


def _nodb_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.nodb_app", "--port", str(port)]


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _summary(result: LoadResult) -> str:
    p99 = "-" if result.p99_ms is None else f"{result.p99_ms:.1f} ms"
    return (
        f"{result.ok_per_s:,.1f} req/s, {result.events_per_s:,.0f} events/s, "
        f"p99 {p99}, {result.failed} failed"
    )


class BenchmarkRun:
    def __init__(self, options: Options, database: Database, log_dir: Path) -> None:
        self.options = options
        self.database = database
        self.log_dir = log_dir
        self.results: dict[Phase, PhaseResult] = {}
        # Event ids are unique per run and phase, though tables are emptied between phases.
        self._id_prefix = f"bench{secrets.token_hex(3)}"

    def run(self) -> None:
        api_key = "fbk_" + secrets.token_urlsafe(24)  # 32 characters after the prefix
        environment = service_env(self.database.info, api_key)
        with running_server("service", service_command, environment, self.log_dir) as service:
            if self.options.runs_single:
                single = (Phase.SERVICE_SINGLE_MAX, Phase.SERVICE_SINGLE_FIXED)
                self._max_then_fixed(service, api_key, 1, *single)
            if self.options.runs_batch:
                batch = (Phase.SERVICE_BATCH_MAX, Phase.SERVICE_BATCH_FIXED)
                self._max_then_fixed(service, api_key, BATCH_EVENTS, *batch)
        if self.options.runs_batch:
            self._copy_phase()
        if self.options.runs_single:
            with running_server("nodb-baseline", _nodb_command, os.environ, self.log_dir) as nodb:
                self._http_phase(Phase.NODB_SINGLE_MAX, nodb, None, 1, rate_per_s=None)
                # The same offered rate as the service got: latencies compare like for like.
                service_rate = self.results[Phase.SERVICE_SINGLE_FIXED].load.offered_per_s
                self._http_phase(Phase.NODB_SINGLE_FIXED, nodb, None, 1, service_rate)

    def _max_then_fixed(
        self,
        server: RunningServer,
        api_key: str,
        events: int,
        max_phase: Phase,
        fixed_phase: Phase,
    ) -> None:
        """Find the most the server sustains, then drive it at a share of that."""
        best = self._http_phase(max_phase, server, api_key, events, rate_per_s=None)
        if best.ok == 0:
            raise BenchError(f"{max_phase}: no request succeeded ({best.statuses})")
        rate = FIXED_RATE_FRACTION * best.ok_per_s
        self._http_phase(fixed_phase, server, api_key, events, rate)

    def _http_phase(
        self,
        phase: Phase,
        server: RunningServer,
        api_key: str | None,
        events_per_request: int,
        rate_per_s: float | None,
    ) -> LoadResult:
        connections = (
            self.options.connections if events_per_request == 1 else self.options.batch_connections
        )
        spec = LoadSpec(
            port=server.port,
            token=api_key,
            events_per_request=events_per_request,
            id_prefix=f"{self._id_prefix}-{len(self.results)}",
            connections=connections,
            duration_s=self.options.duration_s,
            # A fixed-rate phase follows a closed-loop one on the same warm server.
            warmup_s=self.options.warmup_s if rate_per_s is None else 0.0,
            rate_per_s=rate_per_s,
            detractor_share=self.options.detractor_share,
        )
        rate = "closed loop" if rate_per_s is None else f"{rate_per_s:,.1f} req/s"
        _progress(f"{phase}: {rate}, {connections} connections, {spec.duration_s:g} s")
        return self._record(phase, connections, server.pid, lambda: run_load(spec))

    def _copy_phase(self) -> None:
        spec = CopySpec(
            id_prefix=f"{self._id_prefix}-{len(self.results)}",
            connections=self.options.batch_connections,
            duration_s=self.options.duration_s,
            warmup_s=self.options.warmup_s,
        )
        _progress(f"{Phase.COPY_BATCH_MAX}: {spec.connections} connections, {spec.duration_s:g} s")
        self._record(
            Phase.COPY_BATCH_MAX,
            spec.connections,
            None,  # no server: the COPY client is this process
            lambda: copy_baseline(self.database.info, spec),
        )

    def _record(
        self,
        phase: Phase,
        connections: int,
        server_pid: int | None,
        measure: Callable[[], LoadResult],
    ) -> LoadResult:
        # Every phase starts from empty tables and a fresh checkpoint, so no phase pays
        # for the rows or dirty pages of the one before it.
        reset_ingest_tables(self.database.info)
        # A closed connection's backend counts in PostgreSQL's CPU time only once the
        # postmaster has reaped it: let that happen on both sides of the measurement.
        time.sleep(SETTLE_S)
        server_cpu = CpuStopwatch(server_pid)
        database_cpu = CpuStopwatch(self.database.postmaster_pid)
        result = measure()
        time.sleep(SETTLE_S)
        self.results[phase] = PhaseResult(
            load=result,
            connections=connections,
            server_cpu_s=server_cpu.elapsed_s(),
            database_cpu_s=database_cpu.elapsed_s(),
        )
        _progress(f"{phase}: {_summary(result)}")
        return result


def run_benchmark(options: Options) -> BenchmarkRun:
    """Start PostgreSQL in a temporary directory, run every phase, stop everything."""
    with (
        tempfile.TemporaryDirectory(prefix="feedback-bench-") as data_dir,
        embedded_postgres(Path(data_dir) / "pg") as database,
    ):
        run = BenchmarkRun(options, database, RESULTS_DIR / "logs")
        run.run()
    return run
