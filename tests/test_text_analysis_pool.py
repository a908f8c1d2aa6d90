"""Text analysis in worker processes (app/workers/text_analysis.py): the same answers
as inline analysis, a dead worker costs nothing but time, and workers never outlive a
service that was killed outright."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator

import pytest

from app.schemas.feedback import FeedbackEventIn
from app.services.enrichment import analyse_texts
from app.workers.text_analysis import (
    INLINE,
    MAX_BACKLOG_FOR_SMALL_GROUPS,
    MAX_REPLACEMENTS,
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


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone too.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


async def ready_workers(pool: TextAnalysisPool, count: int = 1) -> list[int]:
    """The pool's worker pids once ``count`` have loaded their models."""
    deadline = time.monotonic() + 60
    while len(pool.worker_pids) < count:
        assert time.monotonic() < deadline, "workers never became ready"
        await asyncio.sleep(0.05)
    return pool.worker_pids


@pytest.fixture
async def pool() -> AsyncIterator[TextAnalysisPool]:
    pool = TextAnalysisPool(processes=1)
    await pool.start()
    try:
        await ready_workers(pool)
        yield pool
    finally:
        await pool.stop()


async def test_workers_answer_as_inline_analysis_does(pool: TextAnalysisPool) -> None:
    large = events_with_text(300)
    assert await pool.analyse(large) == inline(large)
    for size in (1, 2, 7):  # single events too: a hand-over costs less than analysing
        small = large[size : 2 * size]
        assert await pool.analyse(small) == inline(small)
    # Many groups in flight at once come back each with its own answers.
    groups = [large[n : n + 1 + n % 9] for n in range(0, 280, 4)]
    answers = await asyncio.gather(*(pool.analyse(group) for group in groups))
    assert answers == [inline(group) for group in groups]
    assert await INLINE.analyse(large) == inline(large)


async def test_a_cancelled_caller_does_not_shift_the_answers(pool: TextAnalysisPool) -> None:
    first, second = events_with_text(200)[:100], events_with_text(200)[100:]
    abandoned = asyncio.create_task(pool.analyse(first))
    await asyncio.sleep(0)  # sent to the worker
    abandoned.cancel()
    assert await pool.analyse(second) == inline(second)


async def test_a_small_group_does_not_queue_behind_batches(pool: TextAnalysisPool) -> None:
    batches = [events_with_text(500) for _ in range(3)]
    assert sum(event.text is not None for event in batches[0]) > MAX_BACKLOG_FOR_SMALL_GROUPS
    queued = [asyncio.create_task(pool.analyse(batch)) for batch in batches]
    await asyncio.sleep(0)  # all three sent to the worker
    single = events_with_text(1)
    assert await pool.analyse(single) == inline(single)
    assert not all(task.done() for task in queued), "the single event waited for the batches"
    assert await asyncio.gather(*queued) == [inline(batch) for batch in batches]


async def test_a_dead_worker_costs_its_groups_nothing(pool: TextAnalysisPool) -> None:
    events = events_with_text(400)
    [victim] = pool.worker_pids
    # Groups in flight when the worker dies are analysed inline; none waits forever.
    in_flight = [asyncio.create_task(pool.analyse(events)) for _ in range(3)]
    await asyncio.sleep(0.01)
    os.kill(victim, signal.SIGKILL)
    assert await asyncio.wait_for(asyncio.gather(*in_flight), 30) == [inline(events)] * 3
    # Until its replacement has loaded its models, groups are analysed inline too.
    assert await pool.analyse(events) == inline(events)
    [replacement] = await ready_workers(pool)
    assert replacement != victim
    assert gone(victim)
    assert await pool.analyse(events) == inline(events)


class UnstartablePool(TextAnalysisPool):
    def _command(self) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit('this worker cannot start')"]


async def test_workers_that_keep_dying_are_given_up(caplog: pytest.LogCaptureFixture) -> None:
    pool = UnstartablePool(processes=1)
    await pool.start()
    events = events_with_text(100)
    try:
        deadline = time.monotonic() + 30
        while not pool.given_up:
            assert time.monotonic() < deadline, "the pool kept respawning"
            assert await pool.analyse(events) == inline(events)  # never lost, never late
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert not pool._workers, "no more respawning"
        assert await pool.analyse(events) == inline(events)
    finally:
        await pool.stop()
    assert caplog.text.count("worker died") == MAX_REPLACEMENTS - 1
    assert "analysing inline from now on" in caplog.text


async def test_stop_ends_every_worker(pool: TextAnalysisPool) -> None:
    [worker] = pool.worker_pids
    await pool.stop()
    assert gone(worker)
    events = events_with_text(20)
    assert await pool.analyse(events) == inline(events)  # a stopped pool analyses inline


def test_workers_end_with_a_killed_service() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from app.workers.text_analysis import TextAnalysisPool
        from tests.test_text_analysis_pool import events_with_text, ready_workers

        async def main():
            pool = TextAnalysisPool(processes=2)
            await pool.start()
            pids = await ready_workers(pool, 2)
            await pool.analyse(events_with_text(100))
            print(json.dumps(pids), flush=True)
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
