"""The live stream behind ``GET /v1/stream``: committed events, from any replica.

Every ingest transaction and ticket change NOTIFYs ``feedback_stream`` with the ids it
stored (``repositories.stream``). Each API process listens; when it has stream
clients it loads the announced rows once, renders each as its REST JSON once, and
hands the SSE frame to every client whose filter (event types, locations) admits it.

Every queue is bounded. Notifications wait in one queue per process; frames in one
queue per client. A client that falls too far behind is disconnected rather than
letting memory grow; so are all clients when the notification connection drops
(they may have missed events): an EventSource reconnects by itself, and
``GET /v1/feedback`` / ``GET /v1/tickets`` fill any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson

from app.db import Database
from app.integrations.base import EventType
from app.repositories import feedback as feedback_repo
from app.repositories import tickets as tickets_repo
from app.schemas.feedback import feedback_out
from app.services.tickets import ticket_out
from app.telemetry import STREAM_CLIENTS, STREAM_EVENTS

logger = logging.getLogger(__name__)

PENDING_NOTIFICATIONS = 10_000


@dataclass(frozen=True, slots=True)
class StreamFilter:
    types: frozenset[EventType]
    location_ids: frozenset[str] | None  # None: every location, and events without one

    def admits(self, event_type: EventType, location_id: str | None) -> bool:
        if event_type not in self.types:
            return False
        return self.location_ids is None or location_id in self.location_ids


@dataclass(eq=False)
class StreamClient:
    """One open stream: frames to send, or None once the stream must end."""

    filter: StreamFilter
    frames: asyncio.Queue[bytes | None]
    ended: bool = field(default=False)

    def offer(self, frame: bytes) -> None:
        if self.ended:
            return
        if self.frames.qsize() >= self.frames.maxsize - 1:  # keep room for the end marker
            self.end()
            return
        self.frames.put_nowait(frame)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.frames.put_nowait(None)


def sse_frame(event_type: EventType, data: bytes) -> bytes:
    # JSON from orjson/pydantic has no raw newlines, so one data line carries it.
    return b"event: " + event_type.value.encode() + b"\ndata: " + data + b"\n\n"


class LiveStream:
    def __init__(self, database: Database, *, max_clients: int, client_buffer: int) -> None:
        self._database = database
        self._max_clients = max_clients
        self._client_buffer = client_buffer
        self._clients: set[StreamClient] = set()
        self._pending: asyncio.Queue[str] = asyncio.Queue(PENDING_NOTIFICATIONS)
        self._task: asyncio.Task[None] | None = None

    # --- listener callbacks (called on the event loop by the notification connection) ---

    def on_notify(self, payload: str) -> None:
        if not self._clients:
            return  # nobody is watching here: no rows to load
        try:
            self._pending.put_nowait(payload)
        except asyncio.QueueFull:
            logger.warning("live stream behind: notifications dropped; ending streams")
            self.end_all()

    def on_connection_change(self, connected: bool) -> None:
        if not connected:
            self.end_all()  # notifications may be missed from here on

    # --- clients -----------------------------------------------------------------------

    def is_full(self) -> bool:
        return len(self._clients) >= self._max_clients

    @contextlib.contextmanager
    def subscribe(self, stream_filter: StreamFilter) -> Iterator[StreamClient]:
        client = StreamClient(stream_filter, asyncio.Queue(self._client_buffer))
        self._clients.add(client)
        STREAM_CLIENTS.inc()
        try:
            yield client
        finally:
            self._clients.discard(client)
            STREAM_CLIENTS.dec()

    def end_all(self) -> None:
        for client in list(self._clients):
            client.end()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-stream")

    async def stop(self) -> None:
        self.end_all()  # open streams finish now, not at the shutdown timeout
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            payloads = [await self._pending.get()]
            while not self._pending.empty() and len(payloads) < 100:
                payloads.append(self._pending.get_nowait())
            try:
                await self._publish(payloads)
            except Exception:  # a failed load: those events are lost to the streams
                logger.exception("live stream could not load announced events; ending streams")
                self.end_all()

    async def _publish(self, payloads: Sequence[str]) -> None:
        if not self._clients:
            return
        feedback_ids: list[int] = []
        ticket_events: list[tuple[int, EventType]] = []
        for payload in payloads:
            message = orjson.loads(payload)
            feedback_ids.extend(message.get("f", ()))
            ticket_events.extend((int(t), EventType(kind)) for t, kind in message.get("t", ()))
        async with self._database.driver_connection() as connection:
            rows = await feedback_repo.rows_by_ids(connection, feedback_ids)
            documents = await tickets_repo.ticket_documents(
                connection, sorted({t for t, _ in ticket_events})
            )
        frames: list[tuple[EventType, str | None, bytes]] = []
        by_id = {row.id: row for row in rows}
        for feedback_id in feedback_ids:  # announced order: commit order
            row = by_id.get(feedback_id)
            if row is not None:
                data = feedback_out(row).model_dump_json().encode()
                frames.append((EventType.FEEDBACK_RECEIVED, row.location_id, data))
        for ticket_id, event_type in ticket_events:
            document = documents.get(ticket_id)
            if document is not None:
                ticket = ticket_out(document)
                frames.append((event_type, ticket.location_id, ticket.model_dump_json().encode()))
        for event_type, location_id, data in frames:
            frame = sse_frame(event_type, data)
            STREAM_EVENTS.labels(event_type.value).inc()
            for client in list(self._clients):
                if client.filter.admits(event_type, location_id):
                    client.offer(frame)
