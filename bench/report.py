"""The markdown report: a summary against the baselines and targets, then every phase."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from bench.events import BATCH_EVENTS
from bench.load import LoadResult

MISSING = "—"
Percentile = Literal["p50", "p99"]


class Phase(StrEnum):
    """The measured phases: keys of the results, rows of the phase table."""

    SERVICE_SINGLE_MAX = "service single, max"
    SERVICE_SINGLE_FIXED = "service single, fixed rate"
    NODB_SINGLE_MAX = "no-db baseline single, max"
    NODB_SINGLE_FIXED = "no-db baseline single, fixed rate"
    SERVICE_BATCH_MAX = "service batch, max"
    SERVICE_BATCH_FIXED = "service batch, fixed rate"
    COPY_BATCH_MAX = "COPY baseline, max"


@dataclass(frozen=True)
class PhaseResult:
    load: LoadResult
    connections: int
    server_cpu_s: float | None  # the HTTP server process (None: no server, e.g. COPY)
    database_cpu_s: float | None  # PostgreSQL: postmaster and every backend

    def cpu_us_per_event(self, cpu_s: float | None) -> float | None:
        events = self.load.events_total
        return None if cpu_s is None or events == 0 else cpu_s / events * 1e6

    @property
    def total_cpu_us_per_event(self) -> float | None:
        parts = [self.server_cpu_s, self.database_cpu_s]
        known = [part for part in parts if part is not None]
        return self.cpu_us_per_event(sum(known)) if known else None


@dataclass(frozen=True)
class Targets:
    batch_share_of_copy: float = 0.25
    single_share_of_nodb: float = 0.50
    single_p99_ms: float = 50.0


@dataclass(frozen=True)
class RunInfo:
    command: str
    duration_s: float
    warmup_s: float
    fixed_rate_fraction: float
    detractor_share: float = 1.0


@dataclass(frozen=True)
class SummaryRow:
    metric: str
    measured: str
    baseline: str
    ratio: str
    target: str
    verdict: str

    def cells(self) -> list[str]:
        return [self.metric, self.measured, self.baseline, self.ratio, self.target, self.verdict]


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:,.{digits}f} {unit}"


def _share(measured: float | None, baseline: float | None) -> float | None:
    if measured is None or baseline is None or baseline == 0:
        return None
    return measured / baseline


def _percent(share: float | None) -> str:
    return MISSING if share is None else f"{share:.0%}"


def _times(share: float | None) -> str:
    return MISSING if share is None else f"{share:.1f}x"


def _verdict(passed: bool | None) -> str:
    return MISSING if passed is None else ("PASS" if passed else "FAIL")


def _throughput_row(
    metric: str,
    measured: float | None,
    baseline: float | None,
    unit: str,
    min_share: float | None = None,
) -> SummaryRow:
    share = _share(measured, baseline)
    passed = None if min_share is None or share is None else share >= min_share
    return SummaryRow(
        metric=metric,
        measured=_num(measured, unit),
        baseline=_num(baseline, unit),
        ratio=_percent(share),
        target=MISSING if min_share is None else f"≥ {min_share:.0%} of baseline",
        verdict=_verdict(passed),
    )


def _percentile_ms(result: PhaseResult | None, which: Percentile) -> float | None:
    if result is None:
        return None
    return result.load.p50_ms if which == "p50" else result.load.p99_ms


def _latency_row(
    metric: str,
    measured: PhaseResult | None,
    baseline: PhaseResult | None,
    which: Percentile,
    limit_ms: float | None = None,
) -> SummaryRow:
    """A latency passes only if, besides being under the limit, every request got a 2xx:
    fast error answers must not make a percentile look good."""
    value = _percentile_ms(measured, which)
    passed = None
    if limit_ms is not None and measured is not None and value is not None:
        passed = value <= limit_ms and measured.load.failed == 0
    base = _percentile_ms(baseline, which)
    return SummaryRow(
        metric=metric,
        measured=_num(value, "ms", 1),
        baseline=_num(base, "ms", 1),
        ratio=_times(_share(value, base)),
        target=MISSING if limit_ms is None else f"≤ {limit_ms:g} ms",
        verdict=_verdict(passed),
    )


def _cpu_row(metric: str, measured: PhaseResult | None, baseline_us: float | None) -> SummaryRow:
    value = measured.total_cpu_us_per_event if measured else None
    return SummaryRow(
        metric=metric,
        measured=_num(value, "us"),
        baseline=_num(baseline_us, "us"),
        ratio=_times(_share(value, baseline_us)),
        target=MISSING,
        verdict=MISSING,
    )


def _at_rate(fixed: PhaseResult | None, fraction: float) -> str:
    rate = fixed.load.offered_per_s if fixed else None
    return f"at {_num(rate, 'req/s', 1)} ({fraction:.0%} of max)"


def _single_rows(results: dict[Phase, PhaseResult], info: RunInfo, t: Targets) -> list[SummaryRow]:
    service_max = results.get(Phase.SERVICE_SINGLE_MAX)
    if service_max is None:
        return []
    nodb_max = results.get(Phase.NODB_SINGLE_MAX)
    fixed = results.get(Phase.SERVICE_SINGLE_FIXED)
    nodb_fixed = results.get(Phase.NODB_SINGLE_FIXED)
    at_rate = _at_rate(fixed, info.fixed_rate_fraction)
    return [
        _throughput_row(
            f"single-event max throughput ({service_max.connections} connections)",
            service_max.load.ok_per_s,
            nodb_max.load.ok_per_s if nodb_max else None,
            "req/s",
            t.single_share_of_nodb,
        ),
        _throughput_row(
            f"single-event throughput {at_rate}",
            fixed.load.ok_per_s if fixed else None,
            nodb_fixed.load.ok_per_s if nodb_fixed else None,
            "req/s",
        ),
        _latency_row(f"single-event p50 {at_rate}", fixed, nodb_fixed, "p50"),
        _latency_row(f"single-event p99 {at_rate}", fixed, nodb_fixed, "p99", t.single_p99_ms),
        _cpu_row(
            "single-event CPU per event at max (server + PostgreSQL)",
            service_max,
            nodb_max.total_cpu_us_per_event if nodb_max else None,
        ),
    ]


def _batch_rows(results: dict[Phase, PhaseResult], info: RunInfo, t: Targets) -> list[SummaryRow]:
    service_max = results.get(Phase.SERVICE_BATCH_MAX)
    if service_max is None:
        return []
    copy_max = results.get(Phase.COPY_BATCH_MAX)
    fixed = results.get(Phase.SERVICE_BATCH_FIXED)
    at_rate = _at_rate(fixed, info.fixed_rate_fraction)
    return [
        _throughput_row(
            f"batch max ingest ({service_max.connections} connections, "
            f"{BATCH_EVENTS} events/request)",
            service_max.load.events_per_s,
            copy_max.load.events_per_s if copy_max else None,
            "rows/s",
            t.batch_share_of_copy,
        ),
        _throughput_row(
            f"batch ingest {at_rate}", fixed.load.events_per_s if fixed else None, None, "rows/s"
        ),
        _latency_row(f"batch request p50 {at_rate}", fixed, None, "p50"),
        _latency_row(f"batch request p99 {at_rate}", fixed, None, "p99"),
        _cpu_row(
            "batch CPU per row at max (server + PostgreSQL)",
            service_max,
            copy_max.cpu_us_per_event(copy_max.database_cpu_s) if copy_max else None,
        ),
    ]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cpu_cells(result: PhaseResult) -> str:
    parts = [
        result.cpu_us_per_event(result.server_cpu_s),
        result.cpu_us_per_event(result.database_cpu_s),
    ]
    return " + ".join(MISSING if part is None else f"{part:,.0f}" for part in parts)


def _phase_cells(phase: Phase, result: PhaseResult) -> list[str]:
    load = result.load
    statuses = ", ".join(f"{status}: {n:,}" for status, n in load.statuses.items())
    return [
        phase.value,
        "closed loop" if load.offered_per_s is None else "fixed rate",
        str(result.connections),
        _num(load.offered_per_s, "req/s", 1),
        f"{load.ok:,}",
        f"{load.failed:,}",
        _num(load.ok_per_s, "req/s", 1),
        _num(load.events_per_s, "events/s"),
        _num(load.p50_ms, "ms", 1),
        _num(load.p99_ms, "ms", 1),
        _num(load.max_ms, "ms", 1),
        _cpu_cells(result),
        f"{load.client_cpu_cores:.2f}",
        statuses or MISSING,
    ]


PHASE_HEADER = [
    "phase",
    "mode",
    "conns",
    "offered",
    "2xx",
    "failed",
    "throughput",
    "events/s",
    "p50",
    "p99",
    "max",
    "CPU us/event: server + PostgreSQL",
    "client CPU (cores)",
    "answers",
]


def render(results: dict[Phase, PhaseResult], info: RunInfo, targets: Targets) -> str:
    """The whole report as markdown: summary, phases, and how it was run."""
    summary = _single_rows(results, info, targets) + _batch_rows(results, info, targets)
    lines = [
        "## Ingest benchmark",
        "",
        *_markdown_table(
            ["metric", "measured", "baseline", "ratio", "target", "pass/fail"],
            [row.cells() for row in summary],
        ),
        "",
        "### Phases",
        "",
        *_markdown_table(
            PHASE_HEADER, [_phase_cells(phase, result) for phase, result in results.items()]
        ),
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}: `{info.command}`; "
        f"{info.duration_s:g} s per phase, closed-loop phases after a "
        f"{info.warmup_s:g} s warm-up; {info.detractor_share:.0%} of the events are "
        "detractors whose event opens a ticket (rules, ticket, timeline in the ingest "
        "transaction), the others promoters.",
        "",
    ]
    return "\n".join(lines)
