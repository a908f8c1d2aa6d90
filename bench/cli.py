"""Command line: ``python -m bench [--duration S | --quick] [--only single|batch|all]``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from bench.processes import BenchError
from bench.report import RunInfo, Targets, render
from bench.run import FIXED_RATE_FRACTION, RESULTS_DIR, Options, run_benchmark

DEFAULT_DURATION_S = 10.0
QUICK_DURATION_S = 2.0
MAX_WARMUP_S = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark REST ingestion against a no-database HTTP baseline and a "
        "COPY baseline (see bench/README.md).",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds measured per phase (default {DEFAULT_DURATION_S:g})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DURATION_S:g} s phases: a smoke run, not a measurement",
    )
    parser.add_argument("--only", choices=["single", "batch", "all"], default="all")
    parser.add_argument(
        "--connections", type=int, default=64, help="connections for single-event phases"
    )
    parser.add_argument(
        "--detractors",
        type=float,
        default=0.3,
        help="share of events from detractors, each opening a ticket (default 0.3; 1: all)",
    )
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=4,
        help="connections for batch phases and the COPY baseline",
    )
    return parser


def parse_options(argv: Sequence[str]) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick and args.duration is not None:
        parser.error("--quick and --duration exclude each other")
    duration = QUICK_DURATION_S if args.quick else (args.duration or DEFAULT_DURATION_S)
    if not 0 < duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")
    if not 0 <= args.detractors <= 1:
        parser.error("--detractors must be between 0 and 1")
    for name in ("connections", "batch_connections"):
        if not 1 <= getattr(args, name) <= 512:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 512")
    return Options(
        duration_s=duration,
        warmup_s=min(MAX_WARMUP_S, duration / 4),
        only=args.only,
        connections=args.connections,
        batch_connections=args.batch_connections,
        detractor_share=args.detractors,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(arguments)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        run = run_benchmark(options)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[bench] interrupted: every process it started is stopped", file=sys.stderr)
        return 130
    info = RunInfo(
        command=" ".join(["python -m bench", *arguments]),
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        fixed_rate_fraction=FIXED_RATE_FRACTION,
        detractor_share=options.detractor_share,
    )
    markdown = render(run.results, info, Targets())
    print(markdown)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(markdown)
    elapsed = time.monotonic() - started
    print(f"[bench] written to {RESULTS_DIR / 'latest.md'} ({elapsed:.0f} s)", file=sys.stderr)
    return 0
