"""Text analysis in worker processes (app/workers/text_analysis.py): the same answers
as inline analysis, a dead worker costs nothing but time, and workers never outlive a
service that was killed outright."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from app.schemas.feedback import FeedbackEventIn
from app.services.enrichment import analyse_texts
from app.workers.text_analysis import (
    INLINE,
    MAX_REPLACEMENTS,
    MIN_TEXTS_FOR_WORKERS,
    TextAnalysisPool,
)
from bench.text_analysis import load_samples
from tests.conftest import make_event


def events_with_text(count: int) -> list[FeedbackEventIn]:
    samples = load_samples()
    events = []
    for n in range(count):
        sample = samples[n % len(samples)]
        event = make_event(
            f"pool-{n}",
            text=sample["text"] if n % 7 else ...,  # some without text
            language=sample["language"] if n % 5 == 0 else ...,  # sent: kept as sent
        )
        events.append(FeedbackEventIn.model_validate(event))
    return events


def inline(events: list[FeedbackEventIn]) -> list[object]:
    return list(analyse_texts([(event.text, event.language) for event in events]))


def worker_pids(pool: TextAnalysisPool) -> set[int]:
    executor = pool._executor
    assert executor is not None
    return set(executor._processes)  # the executor's own record of its workers


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone too.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def pool() -> Iterator[TextAnalysisPool]:
    pool = TextAnalysisPool(processes=1)
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


async def test_workers_answer_as_inline_analysis_does(pool: TextAnalysisPool) -> None:
    large = events_with_text(3 * MIN_TEXTS_FOR_WORKERS)
    assert await pool.analyse(large) == inline(large)
    assert worker_pids(pool), "a large group goes to a worker process"
    small = large[:3]
    assert await pool.analyse(small) == inline(small)
    assert await INLINE.analyse(large) == inline(large)


async def test_a_dead_worker_costs_its_group_nothing(pool: TextAnalysisPool) -> None:
    events = events_with_text(2 * MIN_TEXTS_FOR_WORKERS)
    await pool.analyse(events)  # the worker is up and warm
    [victim] = worker_pids(pool)
    os.kill(victim, signal.SIGKILL)
    # The pool notices on its next use: that group is analysed inline, and a fresh
    # worker takes the ones after.
    assert await pool.analyse(events) == inline(events)
    assert await pool.analyse(events) == inline(events)
    assert victim not in worker_pids(pool)


def _cannot_start() -> None:
    raise RuntimeError("this worker cannot start")


class UnstartablePool(TextAnalysisPool):
    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_cannot_start,
        )


async def test_workers_that_keep_dying_are_given_up(caplog: pytest.LogCaptureFixture) -> None:
    pool = UnstartablePool(processes=1)
    pool.start()
    events = events_with_text(2 * MIN_TEXTS_FOR_WORKERS)  # enough texts for the workers
    try:
        for _ in range(MAX_REPLACEMENTS):
            assert await pool.analyse(events) == inline(events)  # never lost, never late
        assert pool._executor is None, "no more respawning"
        assert await pool.analyse(events) == inline(events)
    finally:
        pool.stop()
    assert "analysing inline from now on" in caplog.text


def test_workers_end_with_a_killed_service() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from app.workers.text_analysis import TextAnalysisPool
        from tests.test_text_analysis_pool import events_with_text

        async def main():
            pool = TextAnalysisPool(processes=2)
            pool.start()
            await pool.analyse(events_with_text(100))
            print(json.dumps(sorted(pool._executor._processes)), flush=True)
            time.sleep(600)

        asyncio.run(main())
        """
    )
    workers: list[int] = []
    service = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert service.stdout is not None
        workers = json.loads(service.stdout.readline())
        assert len(workers) == 2
        service.kill()
        service.wait(timeout=10)
        deadline = time.monotonic() + 15
        while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(gone(pid) for pid in workers), "workers outlived their killed parent"
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(timeout=10)
        for pid in workers:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
