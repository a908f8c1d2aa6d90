"""GET /v1/stream (SPEC section 7): Server-Sent Events of feedback and ticket events,
scoped like reads, fed by LISTEN/NOTIFY so that every replica streams what any other
one committed. Streams are read from real service processes on the session database
(an in-process ASGI client buffers whole responses)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.models.enums import Scope
from tests.conftest import KeyFactory, auth, make_event
from tests.fixtures.server import ServiceProcess, ServiceRunner, scratch_dir, service_runner

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"
HEARTBEAT_S = 0.3


@pytest.fixture
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServiceRunner, Path]]:
    with (
        scratch_dir(request.node.name) as home,
        service_runner(tmp_path / "service") as started,
    ):
        yield started, home / "data"


async def start_service(
    runner: tuple[ServiceRunner, Path], database_url: str, **env: str
) -> ServiceProcess:
    service_runner_, data_dir = runner
    environment = {
        "FEEDBACK_DATABASE_URL": database_url,
        "FEEDBACK_STREAM_HEARTBEAT_S": str(HEARTBEAT_S),
        **env,
    }
    return await asyncio.to_thread(
        service_runner_.start, data_dir, env=environment, command=("serve", "--no-dispatcher")
    )


class EventStream:
    """An open SSE response, parsed into (event, data) pairs and comment lines."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.comments: list[str] = []
        self.first_comment = asyncio.Event()
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        event: str | None = None
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    self.first_comment.set()
                elif line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data.append(line.partition(":")[2].strip())
                elif line == "" and event is not None:
                    await self.events.put((event, orjson.loads("\n".join(data))))
                    event, data = None, []
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    async def next(self, wait_s: float = 10.0) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.events.get(), wait_s)

    async def expect_nothing(self, wait_s: float = 1.0) -> None:
        with contextlib.suppress(TimeoutError):
            got = await asyncio.wait_for(self.events.get(), wait_s)
            raise AssertionError(f"unexpected event {got}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@contextlib.asynccontextmanager
async def open_stream(
    service: ServiceProcess, key: str, **params: str | list[str]
) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient(base_url=service.base_url, timeout=httpx.Timeout(10, read=30)) as http,
        http.stream("GET", "/v1/stream", params=params, headers=auth(key)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        # The subscription is registered once the response has started: wait for the
        # first heartbeat so nothing posted afterwards can be missed.
        await asyncio.wait_for(stream.first_comment.wait(), 10)
        try:
            yield stream
        finally:
            await stream.close()


async def post(service: ServiceProcess, key: str, event: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
        response = await http.post("/v1/feedback", json=event, headers=auth(key))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def detractor(event_id: str, **overrides: Any) -> dict[str, Any]:
    """A detractor of a customer of its own (one open ticket per customer), unless given."""
    overrides.setdefault("customer", {"id": f"C-{event_id}"})
    return make_event(event_id, scores=[{"metric": "nps", "value": 2}], **overrides)


def promoter(event_id: str, **overrides: Any) -> dict[str, Any]:
    return make_event(
        event_id, scores=[{"metric": "nps", "value": 10}], text="Lovely staff.", **overrides
    )


async def test_each_replica_streams_what_the_other_committed(
    runner: tuple[ServiceRunner, Path], database_url: str, admin_key: str
) -> None:
    first = await start_service(runner, database_url)
    second = await start_service(runner, database_url)
    async with (
        open_stream(first, admin_key) as on_first,
        open_stream(second, admin_key) as on_second,
    ):
        accepted = await post(second, admin_key, detractor("from-second", customer={"id": "C-1"}))
        # The watcher on the other replica gets the feedback, then its ticket, as their
        # REST representations.
        kind, data = await on_first.next()
        assert kind == "feedback.received"
        assert data["id"] == accepted["id"]
        assert data["event_id"] == "from-second"
        assert data["ticket_id"] == accepted["ticket_id"]
        assert data["customer"]["id"] == "C-1"
        kind, data = await on_first.next()
        assert kind == "ticket.created"
        assert data["id"] == accepted["ticket_id"]
        assert data["feedback_ids"] == [accepted["id"]]
        # ... and so does a watcher on the replica that ingested it.
        assert (await on_second.next())[0] == "feedback.received"
        assert (await on_second.next())[0] == "ticket.created"

        accepted = await post(first, admin_key, promoter("from-first"))
        kind, data = await on_second.next()
        assert (kind, data["id"]) == ("feedback.received", accepted["id"])
        assert data["ticket_id"] is None
        assert (await on_first.next())[1]["event_id"] == "from-first"
        await on_first.expect_nothing(0.5)  # a promoter opens no ticket


async def test_ticket_changes_and_batches_are_streamed_in_commit_order(
    runner: tuple[ServiceRunner, Path], database_url: str, admin_key: str
) -> None:
    service = await start_service(runner, database_url)
    async with open_stream(service, admin_key) as stream:
        accepted = await post(service, admin_key, detractor("d-1", customer={"id": "C-9"}))
        assert (await stream.next())[0] == "feedback.received"
        assert (await stream.next())[0] == "ticket.created"
        # A second detractor of the same customer is attached to the open ticket.
        await post(service, admin_key, detractor("d-2", customer={"id": "C-9"}))
        assert (await stream.next())[0] == "feedback.received"
        kind, data = await stream.next()
        assert kind == "ticket.updated"
        assert len(data["feedback_ids"]) == 2
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
            response = await http.patch(
                f"/v1/tickets/{accepted['ticket_id']}",
                json={"status": "resolved", "note": "Called back"},
                headers=auth(admin_key),
            )
            assert response.status_code == 200, response.text
            kind, data = await stream.next()
            assert kind == "ticket.resolved"
            assert data["status"] == "resolved"
            assert data["resolved_at"] is not None

            events = [promoter(f"batch-{n}") for n in range(700)]  # several notifications
            response = await http.post(
                "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
            )
            assert response.status_code == 200
        received = [(await stream.next())[1] for _ in events]
        assert {data["event_id"] for data in received} == {e["event_id"] for e in events}
        ids = [int(data["id"]) for data in received]
        assert ids == sorted(ids)


async def test_types_and_locations_filter_the_stream(
    runner: tuple[ServiceRunner, Path], database_url: str, make_key: KeyFactory, admin_key: str
) -> None:
    service = await start_service(runner, database_url)
    restricted = await make_key(
        Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-1", "store-2"]
    )
    feedback_only = await make_key(Scope.FEEDBACK_READ)
    async with (
        open_stream(service, restricted) as scoped,
        open_stream(service, restricted, types="ticket.created", location_id="store-2") as narrow,
        open_stream(service, feedback_only) as no_tickets,
        open_stream(service, admin_key, types=["ticket.created", "ticket.resolved"]) as tickets,
    ):
        await post(service, admin_key, detractor("elsewhere", location_id="store-9"))
        await post(service, admin_key, detractor("unplaced", location_id=None))
        await post(service, admin_key, detractor("in-1", location_id="store-1"))
        await post(service, admin_key, detractor("in-2", location_id="store-2"))

        got = [await scoped.next() for _ in range(4)]
        assert [(kind, data.get("event_id", data.get("location_id"))) for kind, data in got] == [
            ("feedback.received", "in-1"),
            ("ticket.created", "store-1"),
            ("feedback.received", "in-2"),
            ("ticket.created", "store-2"),
        ]
        await scoped.expect_nothing(0.5)

        kind, data = await narrow.next()
        assert (kind, data["location_id"]) == ("ticket.created", "store-2")
        await narrow.expect_nothing(0.3)

        # Without tickets:read the default is feedback only.
        kinds = [(await no_tickets.next())[0] for _ in range(4)]
        assert kinds == ["feedback.received"] * 4
        await no_tickets.expect_nothing(0.3)

        kinds = [(await tickets.next())[0] for _ in range(4)]
        assert kinds == ["ticket.created"] * 4


async def test_refused_streams(
    runner: tuple[ServiceRunner, Path], database_url: str, make_key: KeyFactory
) -> None:
    service = await start_service(runner, database_url)
    restricted = await make_key(Scope.FEEDBACK_READ, Scope.TICKETS_READ, locations=["store-1"])
    feedback_only = await make_key(Scope.FEEDBACK_READ)
    writer = await make_key(Scope.FEEDBACK_WRITE)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
        cases: list[tuple[dict[str, str], dict[str, str], int]] = [
            ({}, {}, 401),
            (auth(writer), {}, 403),
            (auth(restricted), {"location_id": "store-2"}, 403),
            (auth(feedback_only), {"types": "ticket.updated"}, 403),
            (auth(restricted), {"types": "feedback.received,ticket.exploded"}, 422),
        ]
        for headers, params, status in cases:
            response = await http.get("/v1/stream", params=params, headers=headers)
            assert response.status_code == status, (params, response.text)
            assert response.headers["content-type"] == PROBLEM


async def test_heartbeats_disconnects_revocation_and_shutdown(
    runner: tuple[ServiceRunner, Path], database_url: str, admin_key: str
) -> None:
    service = await start_service(runner, database_url)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
        created = await http.post(
            "/v1/api-keys",
            json={"name": "watcher", "scopes": ["feedback:read"]},
            headers=auth(admin_key),
        )
        assert created.status_code == 201
        watcher = created.json()

        async def open_clients() -> float:
            metrics = (await http.get("/metrics")).text
            line = next(x for x in metrics.splitlines() if x.startswith("feedback_stream_clients"))
            return float(line.split()[-1])

        async with open_stream(service, admin_key) as stream:
            await asyncio.sleep(HEARTBEAT_S * 4)
            assert stream.comments.count("heartbeat") >= 3
            assert await open_clients() == 1
        # The client went away: the server lets go of it.
        deadline = time.monotonic() + 5
        while await open_clients() != 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert await open_clients() == 0

        async with open_stream(service, watcher["key"]) as revoked:
            response = await http.delete(f"/v1/api-keys/{watcher['id']}", headers=auth(admin_key))
            assert response.status_code == 204
            await asyncio.wait_for(revoked.ended.wait(), 5)

        async with open_stream(service, admin_key) as open_at_shutdown:
            started = time.monotonic()
            exit_code = await asyncio.to_thread(service.stop)
            # uvicorn re-raises SIGTERM once it has shut down cleanly.
            assert exit_code in (0, -signal.SIGTERM), service.output()
            # Shutdown does not wait out the grace period for the open stream.
            assert time.monotonic() - started < 10
            await asyncio.wait_for(open_at_shutdown.ended.wait(), 5)
