"""Language and sentiment of ingest groups, in worker processes beside the event loop.

Text analysis (``services.enrichment``) costs about 20-25 µs of CPU per event with
text, mostly in Python under the GIL (it was 50 before the English scorer was
rewritten). On the event loop that is a tenth of a single event's time, and a 500-event
batch would hold the loop for about 12 ms while every other request, and the database,
waited. Worker processes analyse the groups on another core
instead, while the loop goes on validating, answering and talking to PostgreSQL.

Each worker is a child process (``python -m app.workers.text_analysis``) that reads
length-prefixed JSON frames on its stdin and answers each with one frame on its stdout,
in order. The event loop writes and reads those pipes itself: no executor threads
competing for the GIL and no pickling, so a hand-over costs the loop about 6 µs per
event in a group of 20, a quarter of analysing it; only for a lone event (a quiet
service, where it does not matter) does it cost about as much as analysing.
(``concurrent.futures``' process pool was used before: its management and feeder
threads cost the loop about as much as analysing ten texts, so only large groups
could gain.)

Nothing waits on a dead worker: the groups it held, and any group while no worker is
ready (the first seconds after start, while the models load), are analysed inline, and
the worker is replaced. Workers that die ``MAX_REPLACEMENTS`` times in a row are given
up, with an error log, and everything is analysed inline. A worker ends when its stdin
closes, so it never outlives the service, even one killed outright.

A group is analysed before its transaction opens, so a transaction run again after a
deadlock does not analyse it twice. One pool per service process, started and stopped
by the lifespan and handed to the ingest paths (group commit, batch endpoint, Kafka
consumer); ``INLINE``, or ``FEEDBACK_TEXT_ANALYSIS_PROCESSES=0``, analyses everything
on the caller's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import Sequence
from typing import BinaryIO

import orjson

from app.models.enums import SentimentLabel
from app.schemas.feedback import FeedbackEventIn
from app.services.enrichment import TextInsight, analyse_texts, warm_up

logger = logging.getLogger(__name__)

# Workers that die this many times in a row, without answering in between, are given up.
MAX_REPLACEMENTS = 3
# A small group is analysed inline rather than queued behind more texts than this
# (~25-40 ms of analysis, e.g. a batch request's): its wait would cost the sender more
# than the loop time the hand-over saves.
MAX_BACKLOG_FOR_SMALL_GROUPS = 256
SMALL_GROUP_TEXTS = 32
# A stopping service gives its workers this long to finish their groups and exit.
STOP_GRACE_SECONDS = 5.0
_FRAME_HEADER = struct.Struct("!I")  # body length, then an orjson body
_READY = b""  # the first frame a worker sends: its models are loaded


class _Worker:
    """One child process and the groups it has been sent, oldest first."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready = False
        # Each group sent and the number of its texts. None answers "analyse it
        # yourself": the worker died or stopped first.
        self.waiting: deque[tuple[asyncio.Future[list[TextInsight] | None], int]] = deque()
        self.backlog = 0  # texts sent and not answered yet

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.process.stdout is not None
        return self.process.stdout

    def send(
        self, items: list[tuple[str | None, str | None]], texts: int
    ) -> asyncio.Future[list[TextInsight] | None]:
        answer: asyncio.Future[list[TextInsight] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiting.append((answer, texts))  # before writing: the reader may answer at once
        self.backlog += texts
        self.stdin.write(_frame(orjson.dumps(items)))
        return answer

    def answer(self, insights: list[TextInsight] | None) -> None:
        waiting, texts = self.waiting.popleft()
        self.backlog -= texts
        # A caller cancelled while waiting gave up its answer; the order still holds.
        if not waiting.done():
            waiting.set_result(insights)

    def release_waiting(self) -> None:
        while self.waiting:
            self.answer(None)


class TextAnalysisPool:
    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._workers: list[_Worker] = []
        self._tasks: set[asyncio.Task[None]] = set()  # each worker's reader
        self._deaths = 0  # workers died in a row, without an answer in between
        self._stopping = False

    @property
    def worker_pids(self) -> list[int]:
        """The ready workers' process ids (for tests and operators)."""
        return [worker.process.pid for worker in self._workers if worker.ready]

    @property
    def given_up(self) -> bool:
        return self._processes > 0 and self._deaths >= MAX_REPLACEMENTS

    def _command(self) -> list[str]:
        return [sys.executable, "-m", __name__]

    async def start(self) -> None:
        """Spawn the workers; they load their models while the service starts."""
        self._stopping = False
        for _ in range(self._processes):
            await self._spawn()

    async def _spawn(self) -> None:
        # stderr is inherited: a worker's crash report lands in the service's log.
        process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = _Worker(process)
        if self._stopping:  # stopped while this replacement started
            worker.stdin.close()
            await process.wait()
            return
        self._workers.append(worker)
        task = asyncio.create_task(self._read_answers(worker), name="text-analysis-reader")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self._stopping = True
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stdin.close()  # a worker exits when its stdin closes
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            worker.release_waiting()
        # The readers end with their workers' stdout, and replace nobody while stopping.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def analyse(self, events: Sequence[FeedbackEventIn]) -> list[TextInsight]:
        """One insight per event, in order."""
        items = [(event.text, event.language) for event in events]
        texts = sum(1 for text, _ in items if text is not None)
        worker = self._least_busy()
        if (
            worker is None
            or texts == 0
            or (texts <= SMALL_GROUP_TEXTS and worker.backlog > MAX_BACKLOG_FOR_SMALL_GROUPS)
        ):
            return analyse_texts(items)
        answer = worker.send(items, texts)
        with contextlib.suppress(ConnectionError):  # a dead worker: its reader answers None
            await worker.stdin.drain()  # waits only while the pipe is full
        insights = await answer
        return analyse_texts(items) if insights is None else insights

    def _least_busy(self) -> _Worker | None:
        ready = [worker for worker in self._workers if worker.ready]
        return min(ready, key=lambda worker: worker.backlog) if ready else None

    async def _read_answers(self, worker: _Worker) -> None:
        try:
            while True:
                (size,) = _FRAME_HEADER.unpack(await worker.stdout.readexactly(_FRAME_HEADER.size))
                body = await worker.stdout.readexactly(size)
                if worker.ready:
                    worker.answer(_insights(body))
                    self._deaths = 0
                else:
                    worker.ready = True  # the _READY frame
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # stdout closed: the worker died, or was stopped
        except Exception:
            logger.exception("text analysis worker sent an unreadable answer")
        finally:
            worker.ready = False
            worker.release_waiting()
        if self._stopping:
            return
        self._workers.remove(worker)
        if worker.process.returncode is None:
            worker.process.kill()
        await worker.process.wait()
        self._deaths += 1
        if self._deaths >= MAX_REPLACEMENTS:
            # Workers that die again and again (out of memory, or unable to start at
            # all) would only burn CPU being respawned.
            logger.error("text analysis workers keep dying; analysing inline from now on")
            return
        logger.warning(
            "text analysis worker died; its groups analysed inline, worker replaced",
            extra={"fields": {"exit_code": worker.process.returncode}},
        )
        try:
            await self._spawn()
        except OSError:
            logger.exception("text analysis worker could not be started")


def _insights(body: bytes) -> list[TextInsight]:
    return [
        TextInsight(language, SentimentLabel(label) if label else None, score)
        for language, label, score in orjson.loads(body)
    ]


def _frame(body: bytes) -> bytes:
    return _FRAME_HEADER.pack(len(body)) + body


def _write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(_frame(body))
    stream.flush()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: one answer frame per request frame, until ``requests`` ends."""
    warm_up()
    _write_frame(answers, _READY)
    while len(header := requests.read(_FRAME_HEADER.size)) == _FRAME_HEADER.size:
        (size,) = _FRAME_HEADER.unpack(header)
        insights = analyse_texts(
            [(text, language) for text, language in orjson.loads(requests.read(size))]
        )
        _write_frame(
            answers,
            orjson.dumps(
                [
                    (insight.language, insight.sentiment_label, insight.sentiment_score)
                    for insight in insights
                ]
            ),
        )


def _main() -> None:
    # Ctrl-C reaches the whole process group; the service stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The answers get a private copy of stdout; anything a library prints goes to stderr
    # rather than into the frames.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(BrokenPipeError):  # the service is gone: nobody to answer
        serve(sys.stdin.buffer, answers)


# For callers without a pool of their own (the seed command, tests): analyses inline.
INLINE = TextAnalysisPool(processes=0)

if __name__ == "__main__":
    _main()
