"""Language and sentiment of large groups of events, in worker processes.

Text analysis (``services.enrichment``) costs about 0.1 ms of CPU per event with text,
in Python under the GIL. On the event loop, a 500-event batch would hold the loop for
about 50 ms while every other request, and the database, waited for it. Worker
processes analyse large groups on another core instead, while the loop goes on
validating, answering and talking to PostgreSQL.

Small groups (most single-event POSTs) are analysed inline: handing a few texts to
another process costs more than analysing them. A group is analysed before its
transaction opens, so a transaction run again after a deadlock does not analyse it
twice. If a worker process dies, that group is analysed inline and the pool is
replaced; nothing waits on a dead worker.

One pool per service process, started and stopped by the lifespan and handed to the
ingest paths (group commit, batch endpoint, Kafka consumer); ``INLINE``, or
``FEEDBACK_TEXT_ANALYSIS_PROCESSES=0``, analyses everything on the caller's loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.schemas.feedback import FeedbackEventIn
from app.services.enrichment import TextInsight, analyse_texts, warm_up

logger = logging.getLogger(__name__)

# Below this many texts a group is analysed inline: a round trip to a worker process
# (pickling, two pipe hops, a wake-up) costs about as much as ~10 texts' analysis. At
# 32, single events in the ingest benchmark were no faster with workers than without,
# while their CPU per event rose; batches gain at any size.
MIN_TEXTS_FOR_WORKERS = 64
# Pools replaced in a row, without a worker answering in between, before giving up.
MAX_REPLACEMENTS = 3


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group; the service stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A service killed outright (SIGKILL, the OOM killer) cannot stop its workers:
        # they end when it does rather than linger.
        threading.Thread(target=_exit_after, args=(parent,), daemon=True).start()
    warm_up()


def _exit_after(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)


def _ready() -> None:
    """Submitted at start so the workers spawn and load their models before traffic."""


class TextAnalysisPool:
    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._failures = 0  # pools replaced since a worker last answered

    def start(self) -> None:
        if self._processes == 0:
            return
        self._executor = self._new_executor()

    def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        # "spawn": a fork of this process would copy its threads' locks mid-use
        # (asyncio's executor, the database driver) into the child.
        executor = ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )
        for _ in range(self._processes):
            executor.submit(_ready)
        return executor

    async def analyse(self, events: Sequence[FeedbackEventIn]) -> list[TextInsight]:
        """One insight per event, in order."""
        items = [(event.text, event.language) for event in events]
        executor = self._executor
        texts = sum(1 for text, _ in items if text is not None)
        if executor is None or texts < MIN_TEXTS_FOR_WORKERS:
            return analyse_texts(items)
        try:
            insights = await asyncio.get_running_loop().run_in_executor(
                executor, analyse_texts, items
            )
        except BrokenProcessPool:
            self._replace(executor)
            return analyse_texts(items)
        self._failures = 0
        return insights

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is not broken:
            return  # another group saw the same failure and replaced it already
        broken.shutdown(wait=False, cancel_futures=True)
        self._failures += 1
        if self._failures < MAX_REPLACEMENTS:
            logger.warning("text analysis worker died; group analysed inline, pool replaced")
            self._executor = self._new_executor()
            return
        # Workers that die again and again (out of memory, or unable to start at all)
        # would only burn CPU being respawned.
        logger.error("text analysis workers keep dying; analysing inline from now on")
        self._executor = None


# For callers without a pool of their own (the seed command, tests): analyses inline.
INLINE = TextAnalysisPool(processes=0)
