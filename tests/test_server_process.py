"""The real ``feedback-service serve`` process over TCP, on the embedded PostgreSQL:
first-start admin key, restarts, crash recovery, stale pid files, and its logs."""

from __future__ import annotations

import json
import re
import secrets
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import auth, make_event
from tests.fixtures.server import (
    ServiceProcess,
    ServiceRunner,
    pid_alive,
    postgres_pids,
    scratch_dir,
    service_runner,
    unused_pid,
    write_postmaster_pid,
)

pytestmark = pytest.mark.slow

BANNER_HEADLINE = "No API key existed, so an admin key was created"
KEY_LINE = re.compile(r"^\s+(fbk_[A-Za-z0-9_-]+)\s*$")
EVENT_ID = "pos-eu-7f3a9c21"
PII = ("ana@example.com", "+4915112345678", "Ana Roth", "Die Schlange war 20 Minuten")


@pytest.fixture
def scratch(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Home of the data directories (see scratch_dir on why not tmp_path)."""
    with scratch_dir(request.node.name) as base:
        yield base


@pytest.fixture
def runner(tmp_path: Path, scratch: Path) -> Iterator[ServiceRunner]:
    """Logs go to tmp_path. At teardown (before scratch is removed) every service and
    any postgres left running for its data directory is stopped."""
    with service_runner(tmp_path / "service") as started:
        yield started


@pytest.fixture
def data_dir(scratch: Path) -> Path:
    return scratch / "data"


# -- helpers ---------------------------------------------------------------------------------


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def split_stdout(stdout: str) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """The JSON log records, and the blocks of consecutive non-JSON lines between them
    (blank lines inside a block belong to it; blank lines alone are no block)."""
    records: list[dict[str, Any]] = []
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in stdout.splitlines():
        record = _json_object(line)
        if record is None:
            current.append(line)
            continue
        records.append(record)
        if any(part.strip() for part in current):
            blocks.append(current)
        current = []
    if any(part.strip() for part in current):
        blocks.append(current)
    return records, blocks


def banner_keys(stdout: str) -> list[str]:
    """The keys announced by admin-key banners; asserts nothing but banners breaks the
    JSON lines."""
    _, blocks = split_stdout(stdout)
    keys: list[str] = []
    for block in blocks:
        text = "\n".join(block)
        assert BANNER_HEADLINE in text, f"non-JSON output that is no key banner:\n{text}"
        keys += [m.group(1) for line in block if (m := KEY_LINE.match(line))]
    assert stdout.count(BANNER_HEADLINE) == len(blocks) == len(keys)
    return keys


def only_banner_key(service: ServiceProcess) -> str:
    keys = banner_keys(service.stdout())
    assert len(keys) == 1, service.output()
    return keys[0]


def post_event(http: httpx.Client, key: str, event: dict[str, Any]) -> str:
    posted = http.post("/v1/feedback", json=event, headers=auth(key))
    assert posted.status_code == 202, posted.text
    body = posted.json()
    assert body["status"] == "accepted"
    assert body["event_id"] == event["event_id"]
    feedback_id: str = body["id"]
    return feedback_id


def assert_stored(http: httpx.Client, key: str, feedback_id: str, sent: dict[str, Any]) -> None:
    read = http.get(f"/v1/feedback/{feedback_id}", headers=auth(key))
    assert read.status_code == 200, read.text
    stored = read.json()
    assert stored["id"] == feedback_id
    assert stored["ingested_via"] == "rest"
    same = (
        "event_id",
        "channel",
        "source",
        "customer",
        "location_id",
        "touchpoint",
        "journey_stage",
        "text",
        "language",
        "tags",
        "metadata",
    )
    assert {k: stored[k] for k in same} == {k: sent[k] for k in same}
    assert datetime.fromisoformat(stored["occurred_at"]) == datetime.fromisoformat(
        sent["occurred_at"]
    )
    assert stored["scores"] == [
        {"metric": "nps", "value": 3, "scale": None},
        {"metric": "csat", "value": 2, "scale": 5},
    ]


def stop_cleanly(service: ServiceProcess) -> None:
    """SIGTERM: a graceful shutdown that stops the embedded server too. (uvicorn re-raises
    the signal once shut down, so the exit status is -SIGTERM, or 0.)"""
    assert service.stop() in (0, -signal.SIGTERM), service.output()
    assert '"msg":"service stopped"' in service.stdout()
    assert postgres_pids(service.data_dir) == [], "embedded postgres still running after stop"
    assert not (service.data_dir / "pgdata" / "postmaster.pid").exists()


# -- tests -----------------------------------------------------------------------------------


def test_first_start_prints_key_once_and_data_survives_restart(
    runner: ServiceRunner, data_dir: Path
) -> None:
    first = runner.start(data_dir)
    key = only_banner_key(first)
    assert len(postgres_pids(data_dir)) == 1
    event = make_event(EVENT_ID)
    with first.client() as http:
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert http.get("/openapi.json").status_code == 200
        feedback_id = post_event(http, key, event)
        assert_stored(http, key, feedback_id, event)
    stop_cleanly(first)
    assert banner_keys(first.stdout()) == [key], "the banner is printed once per first start"

    second = runner.start(data_dir)
    assert banner_keys(second.stdout()) == [], "no new key when one exists"
    with second.client() as http:
        assert_stored(http, key, feedback_id, event)
        duplicate = http.post("/v1/feedback", json=event, headers=auth(key))
        assert duplicate.status_code == 200, duplicate.text
        assert duplicate.json() == {**duplicate.json(), "id": feedback_id, "status": "duplicate"}
    stop_cleanly(second)


def test_restart_after_crash_recovers_orphaned_postgres(
    runner: ServiceRunner, data_dir: Path
) -> None:
    crashed = runner.start(data_dir)
    key = only_banner_key(crashed)
    event = make_event(EVENT_ID)
    with crashed.client() as http:
        feedback_id = post_event(http, key, event)
    crashed.kill()
    orphans = postgres_pids(data_dir)
    assert len(orphans) == 1, "the killed service's postgres keeps running as an orphan"

    recovered = runner.start(data_dir)
    assert not any(pid_alive(pid) for pid in orphans), "the orphan was not stopped"
    running = postgres_pids(data_dir)
    assert len(running) == 1
    assert running != orphans, "a fresh server is started, not the orphan adopted"
    assert "stopping orphaned embedded postgres" in recovered.stdout()
    assert banner_keys(recovered.stdout()) == []
    with recovered.client() as http:
        assert_stored(http, key, feedback_id, event)
    stop_cleanly(recovered)


def test_stale_postmaster_pid_does_not_block_start(runner: ServiceRunner, data_dir: Path) -> None:
    first = runner.start(data_dir)
    key = only_banner_key(first)
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    lines = pid_file.read_text().splitlines()  # what a running server writes
    event = make_event(EVENT_ID)
    with first.client() as http:
        feedback_id = post_event(http, key, event)
    stop_cleanly(first)

    # As after a power loss: the file is left behind, its pid belongs to no process.
    write_postmaster_pid(pid_file.parent, "\n".join([str(unused_pid()), *lines[1:]]) + "\n")
    second = runner.start(data_dir)
    assert "removing stale postmaster.pid" in second.stdout()
    with second.client() as http:
        assert_stored(http, key, feedback_id, event)
    stop_cleanly(second)


def test_logs_are_json_lines_with_request_ids_and_no_personal_data(
    runner: ServiceRunner, data_dir: Path
) -> None:
    service = runner.start(data_dir)
    key = only_banner_key(service)
    event = make_event(EVENT_ID)
    with service.client() as http:
        feedback_id = post_event(http, key, event)
        read = http.get(f"/v1/feedback/{feedback_id}", headers={**auth(key), "X-Request-ID": "r-1"})
        assert read.status_code == 200
        assert read.headers["x-request-id"] == "r-1"
        # Failures must not log what they reject: a conflict and a validation error.
        conflict = http.post(
            "/v1/feedback", json={**event, "text": "Ana Roth, anders"}, headers=auth(key)
        )
        assert conflict.status_code == 409
        invalid = make_event("evt-bad", customer={**event["customer"], "phone": "0151 Ana Roth"})
        assert http.post("/v1/feedback", json=invalid, headers=auth(key)).status_code == 422
        assert http.get("/v1/feedback/1", headers=auth("fbk_" + "x" * 30)).status_code == 401
    stop_cleanly(service)

    stdout = service.stdout()
    records, blocks = split_stdout(stdout)
    assert len(blocks) == 1, "only the admin-key banner is not a JSON line"
    assert len(records) >= 10
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= record.keys(), record
        datetime.fromisoformat(record["ts"])
    requests = [r for r in records if r["logger"] == "app.access" and r["msg"] == "request"]
    assert len(requests) >= 6  # readiness probes and the five requests above
    for record in requests:
        assert isinstance(record.get("request_id"), str), record
        assert record["request_id"]
    assert {r["request_id"] for r in requests if r["route"] == "/v1/feedback/{feedback_id}"} >= {
        "r-1"
    }
    assert [r["status"] for r in requests if r["route"] == "/v1/feedback"] == [202, 409, 422]
    json_lines = "\n".join(line for line in stdout.splitlines() if _json_object(line))
    for secret in (*PII, key):
        assert secret not in json_lines, f"{secret!r} was logged"
    for value in PII:
        assert value not in service.stderr()


def test_bootstrap_admin_key_is_usable_and_no_banner(runner: ServiceRunner, data_dir: Path) -> None:
    key = "fbk_" + secrets.token_urlsafe(24)
    service = runner.start(data_dir, env={"FEEDBACK_BOOTSTRAP_ADMIN_KEY": key})
    assert banner_keys(service.stdout()) == []
    event = make_event(EVENT_ID)
    with service.client() as http:
        feedback_id = post_event(http, key, event)
        assert_stored(http, key, feedback_id, event)
        keys = http.get("/v1/api-keys", headers=auth(key))
        assert keys.status_code == 200, keys.text
        assert [k["name"] for k in keys.json()["items"]] == ["bootstrap admin"]
        wrong = http.get(f"/v1/feedback/{feedback_id}", headers=auth(key + "x"))
        assert wrong.status_code == 401
    stop_cleanly(service)
    assert key not in service.stdout() + service.stderr(), "the bootstrap key was logged"
