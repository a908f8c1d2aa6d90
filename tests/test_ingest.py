"""SPEC section 4 over REST: idempotent single-event ingest, batches, body limits,
concurrency, location-restricted keys, the customers upsert and the ingest counter."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.dependencies import AppState
from app.models.enums import Scope
from tests.conftest import KeyFactory, auth, make_event

Json = dict[str, Any]
Mutation = Callable[[Json], Json]

PROBLEM = "application/problem+json"
MIB = 1024 * 1024
BATCH_LIMIT = 5 * MIB
SINGLE_LIMIT = 1 * MIB
BERLIN = "store-berlin-01"
HAMBURG = "store-hamburg-02"
MUNICH = "store-munich-03"


# ------------------------------------------------------------------------------ helpers


async def post_one(client: httpx.AsyncClient, key: str, event: Any) -> httpx.Response:
    return await client.post("/v1/feedback", json=event, headers=auth(key))


async def post_batch(client: httpx.AsyncClient, key: str, events: list[Any]) -> httpx.Response:
    return await client.post("/v1/feedback/batch", json={"events": events}, headers=auth(key))


async def scalar(state: AppState, sql: str, **params: Any) -> Any:
    """One value, read in a fresh session (so only committed data is visible)."""
    async with state.sessionmaker() as session:
        return await session.scalar(text(sql), params)


async def row_count(state: AppState) -> int:
    count: int = await scalar(state, "SELECT count(*) FROM feedback")
    return count


async def stored_id(state: AppState, event_id: str) -> str | None:
    value = await scalar(state, "SELECT id FROM feedback WHERE event_id = :e", e=event_id)
    return None if value is None else str(value)


def assert_problem(response: httpx.Response, status: int) -> Json:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: Json = response.json()
    assert body["status"] == status
    for field in ("type", "title", "detail"):
        assert isinstance(body[field], str)
        assert body[field]
    return body


def counts_add_up(body: Json, n_events: int) -> None:
    assert len(body["results"]) == n_events
    total = body["accepted"] + body["duplicates"] + body["conflicts"] + body["rejected"]
    assert total == n_events
    by_status = Counter(result["status"] for result in body["results"])
    assert by_status["accepted"] == body["accepted"]
    assert by_status["duplicate"] == body["duplicates"]
    assert by_status["conflict"] == body["conflicts"]
    assert by_status["rejected"] == body["rejected"]
    assert [result["index"] for result in body["results"]] == list(range(n_events))


def summary(body: Json) -> list[tuple[int, str | None, str]]:
    return [(r["index"], r["event_id"], r["status"]) for r in body["results"]]


async def chunked(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """An async body: httpx streams it with Transfer-Encoding: chunked, no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def padded(document: Any, size: int) -> bytes:
    """`document` as JSON followed by whitespace, exactly `size` bytes long."""
    encoded = json.dumps(document).encode()
    assert len(encoded) <= size
    return encoded + b" " * (size - len(encoded))


# A fixed instant in the past, written with different offsets in the variants below.
BASE_AT = "2026-06-01T10:15:00+02:00"


def base_event(event_id: str = "dup-1") -> Json:
    return make_event(
        event_id,
        occurred_at=BASE_AT,
        scores=[
            {"metric": "nps", "value": 3},
            {"metric": "csat", "value": 2},
            {"metric": "ces", "value": 5},
            {"metric": "rating", "value": 4},
        ],
    )


def _with(**changes: Any) -> Mutation:
    def mutate(event: Json) -> Json:
        return {k: v for k, v in {**event, **changes}.items() if v is not ...}

    return mutate


def _reordered(event: Json) -> Json:
    reordered = {key: event[key] for key in reversed(list(event))}
    reordered["customer"] = {k: event["customer"][k] for k in reversed(list(event["customer"]))}
    reordered["metadata"] = dict(event["metadata"])
    return reordered


def _scales_spelled_out(event: Json) -> Json:
    defaults = {"csat": 5, "ces": 7, "rating": 5}
    scores = [
        {**s, "scale": defaults[s["metric"]]} if s["metric"] in defaults else s
        for s in event["scores"]
    ]
    return {**event, "scores": scores}


def _scores_reversed(event: Json) -> Json:
    return {**event, "scores": list(reversed(event["scores"]))}


SAME_CONTENT: list[Any] = [
    pytest.param(lambda e: dict(e), id="identical"),
    pytest.param(_with(occurred_at="2026-06-01T08:15:00Z"), id="offset-Z"),
    pytest.param(_with(occurred_at="2026-06-01T08:15:00+00:00"), id="offset-+00:00"),
    pytest.param(_with(occurred_at="2026-06-01T13:45:00+05:30"), id="offset-+05:30"),
    pytest.param(_with(occurred_at="2026-06-01T01:15:00-07:00"), id="offset--07:00"),
    pytest.param(_with(occurred_at="2026-06-01T10:15:00.000+02:00"), id="zero-fraction"),
    pytest.param(_reordered, id="keys-reordered"),
    pytest.param(_scales_spelled_out, id="default-scales-spelled-out"),
    pytest.param(_scores_reversed, id="scores-reordered"),
    pytest.param(lambda e: _scores_reversed(_scales_spelled_out(_reordered(e))), id="all-at-once"),
]

DIFFERENT_CONTENT: list[Any] = [
    pytest.param(_with(text="Something else entirely."), id="text"),
    pytest.param(_with(text=...), id="text-removed"),
    pytest.param(_with(occurred_at="2026-06-01T10:15:01+02:00"), id="occurred_at-1s-later"),
    pytest.param(_with(occurred_at="2026-06-01T10:15:00-02:00"), id="same-wall-clock-other-zone"),
    pytest.param(_with(channel="web"), id="channel"),
    pytest.param(_with(source="pos-us"), id="source"),
    pytest.param(_with(location_id=HAMBURG), id="location_id"),
    pytest.param(_with(language=...), id="language-removed"),
    pytest.param(_with(tags=["queue", "staff"]), id="tags"),
    pytest.param(_with(metadata={"receipt": "R-00001"}), id="metadata"),
    pytest.param(
        lambda e: {**e, "customer": {**e["customer"], "email": "other@example.com"}},
        id="customer-email",
    ),
    pytest.param(
        lambda e: {**e, "scores": [{**e["scores"][0], "value": 4}, *e["scores"][1:]]},
        id="nps-value",
    ),
    pytest.param(
        lambda e: {
            **e,
            "scores": [*e["scores"][:1], {**e["scores"][1], "scale": 7}, *e["scores"][2:]],
        },
        id="csat-scale-7-same-value",
    ),
    pytest.param(lambda e: {**e, "scores": e["scores"][:3]}, id="score-removed"),
]


# ------------------------------------------------------------------- single event: REST


async def test_new_event_is_accepted_with_its_stored_id(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    response = await post_one(client, admin_key, make_event("new-1"))
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "id": await stored_id(state, "new-1"),
        "event_id": "new-1",
        "status": "accepted",
        # The example event's NPS 3 matches the default rule "Strong detractors".
        "ticket_id": "1",
    }
    assert isinstance(body["id"], str)
    assert await row_count(state) == 1


@pytest.mark.parametrize("mutate", SAME_CONTENT)
async def test_same_event_id_same_content_is_a_duplicate(
    client: httpx.AsyncClient, admin_key: str, state: AppState, mutate: Mutation
) -> None:
    first = await post_one(client, admin_key, base_event())
    assert first.status_code == 202, first.text
    again = await post_one(client, admin_key, mutate(base_event()))
    assert again.status_code == 200, again.text
    assert again.json() == {
        "id": first.json()["id"],
        "event_id": "dup-1",
        "status": "duplicate",
        "ticket_id": first.json()["ticket_id"],
    }
    assert await row_count(state) == 1


@pytest.mark.parametrize("mutate", DIFFERENT_CONTENT)
async def test_same_event_id_different_content_is_a_conflict(
    client: httpx.AsyncClient, admin_key: str, state: AppState, mutate: Mutation
) -> None:
    first = await post_one(client, admin_key, base_event())
    assert first.status_code == 202, first.text
    conflict = await post_one(client, admin_key, mutate(base_event()))
    assert_problem(conflict, 409)
    assert await row_count(state) == 1
    # The stored event is untouched, and the original content is still a duplicate.
    stored = await scalar(
        state,
        "SELECT concat_ws('|', channel, nps, csat_scale, text, location_id) FROM feedback",
    )
    assert stored == f"in_store|3|5|{base_event()['text']}|{BERLIN}"
    again = await post_one(client, admin_key, base_event())
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


async def test_conflict_repeated_stays_a_conflict(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    assert (await post_one(client, admin_key, base_event())).status_code == 202
    changed = _with(text="changed")(base_event())
    for _ in range(3):
        assert_problem(await post_one(client, admin_key, changed), 409)
    assert await row_count(state) == 1


async def test_duplicate_across_single_and_batch(client: httpx.AsyncClient, admin_key: str) -> None:
    single = await post_one(client, admin_key, base_event("via-single"))
    assert single.status_code == 202
    batch = await post_batch(client, admin_key, [base_event("via-single")])
    assert batch.status_code == 200
    assert batch.json()["results"][0]["status"] == "duplicate"
    assert batch.json()["results"][0]["id"] == single.json()["id"]

    batch = await post_batch(client, admin_key, [base_event("via-batch")])
    assert batch.json()["results"][0]["status"] == "accepted"
    single = await post_one(client, admin_key, _reordered(base_event("via-batch")))
    assert single.status_code == 200
    assert single.json()["id"] == batch.json()["results"][0]["id"]


async def test_response_is_sent_after_commit(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """Every 202/200 answer, the moment it arrives, is backed by a committed row that a
    separate session can read."""

    async def post_and_check(n: int) -> None:
        event_id = f"committed-{n % 15}"  # some answered as duplicates
        event = make_event(event_id, occurred_at=BASE_AT, text=f"visit {n % 15}")
        response = await post_one(client, admin_key, event)
        assert response.status_code in (200, 202), response.text
        async with state.sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT id, text FROM feedback WHERE event_id = :e"), {"e": event_id}
                )
            ).one()
        assert (str(row.id), row.text) == (response.json()["id"], f"visit {n % 15}")

    await asyncio.gather(*(post_and_check(n) for n in range(30)))
    assert await row_count(state) == 15


# ------------------------------------------------------------------------------- batches


async def test_batch_partial_acceptance_in_input_order(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events: list[Any] = [
        make_event("b-0"),
        make_event("b-1", scores=[{"metric": "nps", "value": 11}]),
        make_event("b-2", channel="web"),
        "not an event",
        make_event("b-4", text=..., scores=[]),
        make_event("b-5", customer=...),
    ]
    response = await post_batch(client, admin_key, events)
    assert response.status_code == 200, response.text
    body = response.json()
    counts_add_up(body, 6)
    assert (body["accepted"], body["duplicates"], body["conflicts"], body["rejected"]) == (
        3,
        0,
        0,
        3,
    )
    assert summary(body) == [
        (0, "b-0", "accepted"),
        (1, "b-1", "rejected"),
        (2, "b-2", "accepted"),
        (3, None, "rejected"),
        (4, "b-4", "rejected"),
        (5, "b-5", "accepted"),
    ]
    results = body["results"]
    # Committed before the answer: a fresh session sees exactly the accepted events.
    for result in results:
        if result["status"] == "accepted":
            assert result["id"] == await stored_id(state, result["event_id"])
            assert not result.get("errors")
        else:
            assert result.get("id") is None
    assert await row_count(state) == 3
    assert [(e["loc"], e["type"]) for e in results[1]["errors"]] == [
        (["scores", 0, "value"], "value_error")
    ]
    assert [(e["loc"], e["type"]) for e in results[3]["errors"]] == [([], "model_type")]
    assert [(e["loc"], e["type"]) for e in results[4]["errors"]] == [([], "value_error")]
    assert len({r["id"] for r in results if r["status"] == "accepted"}) == 3


async def test_batch_against_stored_events(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    stored = await post_one(client, admin_key, base_event("s-1"))
    assert stored.status_code == 202
    response = await post_batch(
        client,
        admin_key,
        [
            make_event("s-new"),
            _with(occurred_at="2026-06-01T08:15:00Z")(base_event("s-1")),
            _with(text="changed")(base_event("s-1")),
            make_event("s-bad", channel="fax"),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    counts_add_up(body, 4)
    assert (body["accepted"], body["duplicates"], body["conflicts"], body["rejected"]) == (
        1,
        1,
        1,
        1,
    )
    assert summary(body) == [
        (0, "s-new", "accepted"),
        (1, "s-1", "duplicate"),
        (2, "s-1", "conflict"),
        (3, "s-bad", "rejected"),
    ]
    assert body["results"][1]["id"] == stored.json()["id"]
    assert await row_count(state) == 2


async def test_repeated_event_id_inside_one_batch_first_wins(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    a = base_event("rep-a")
    events = [
        a,
        dict(a),
        _with(text="different")(a),
        base_event("rep-b"),
        _reordered(_with(occurred_at="2026-06-01T08:15:00Z")(a)),
        _with(channel="web")(base_event("rep-b")),
    ]
    response = await post_batch(client, admin_key, events)
    assert response.status_code == 200, response.text
    body = response.json()
    counts_add_up(body, 6)
    assert summary(body) == [
        (0, "rep-a", "accepted"),
        (1, "rep-a", "duplicate"),
        (2, "rep-a", "conflict"),
        (3, "rep-b", "accepted"),
        (4, "rep-a", "duplicate"),
        (5, "rep-b", "conflict"),
    ]
    ids = [r["id"] for r in body["results"]]
    assert ids[0] == ids[1] == ids[4] == await stored_id(state, "rep-a")
    assert ids[3] == await stored_id(state, "rep-b")
    assert await row_count(state) == 2
    # The first occurrence's content is the one stored.
    assert await scalar(state, "SELECT text FROM feedback WHERE event_id = 'rep-a'") == a["text"]
    assert await scalar(state, "SELECT channel FROM feedback WHERE event_id = 'rep-b'") == (
        "in_store"
    )


async def test_repeated_event_id_when_already_stored(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """Against a stored event every occurrence is judged by the stored content."""
    assert (await post_one(client, admin_key, base_event("st-1"))).status_code == 202
    changed = _with(text="changed")(base_event("st-1"))
    response = await post_batch(client, admin_key, [changed, base_event("st-1"), changed])
    body = response.json()
    counts_add_up(body, 3)
    assert [r["status"] for r in body["results"]] == ["conflict", "duplicate", "conflict"]
    assert await row_count(state) == 1


async def test_batch_of_1000_events(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = [make_event(f"k-{n:04d}", customer={"id": f"C-{n % 97}"}) for n in range(1000)]
    response = await post_batch(client, admin_key, events)
    assert response.status_code == 200, response.text
    body = response.json()
    counts_add_up(body, 1000)
    assert body["accepted"] == 1000
    assert [r["event_id"] for r in body["results"]] == [e["event_id"] for e in events]
    assert await row_count(state) == 1000
    assert await scalar(state, "SELECT sum(feedback_count) FROM customers") == 1000


@pytest.mark.parametrize("n_events", [0, 1001])
async def test_batch_size_out_of_range(
    client: httpx.AsyncClient, admin_key: str, state: AppState, n_events: int
) -> None:
    events = [make_event(f"n-{n}") for n in range(n_events)]
    body = assert_problem(await post_batch(client, admin_key, events), 422)
    assert [error["loc"] for error in body["errors"]] == [["events"]]
    assert await row_count(state) == 0


GOOD = json.dumps(make_event("env-1"))
MALFORMED_ENVELOPES: list[Any] = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"events": [' + GOOD.encode(), id="truncated"),
    pytest.param(b"[" + GOOD.encode() + b"]", id="bare-array"),
    pytest.param(b"null", id="null"),
    pytest.param(b'"events"', id="string"),
    pytest.param(b"{}", id="no-events"),
    pytest.param(b'{"Events": [' + GOOD.encode() + b"]}", id="wrong-case"),
    pytest.param(b'{"events": null}', id="events-null"),
    pytest.param(b'{"events": {}}', id="events-object"),
    pytest.param(b'{"events": "x"}', id="events-string"),
    pytest.param(b'{"events": [' + GOOD.encode() + b'], "extra": 1}', id="extra-key"),
    pytest.param(b'{"events": [' + GOOD.encode() + b'], "dry_run": true}', id="extra-key-2"),
    pytest.param(b'{"events": ["\\ud800"]}', id="lone-surrogate"),
    pytest.param(b'{"events": ["\xff"]}', id="invalid-utf8"),
]


@pytest.mark.parametrize("body", MALFORMED_ENVELOPES)
async def test_malformed_batch_envelope(
    client: httpx.AsyncClient, admin_key: str, state: AppState, body: bytes
) -> None:
    response = await client.post(
        "/v1/feedback/batch",
        content=body,
        headers={**auth(admin_key), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"]
    for error in problem["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    assert await row_count(state) == 0


# ---------------------------------------------------------------------------- body limits


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_batch_body_limit(
    client: httpx.AsyncClient, admin_key: str, state: AppState, streamed: bool
) -> None:
    events = [make_event(f"big-{n}") for n in range(3)]
    headers = {**auth(admin_key), "Content-Type": "application/json"}

    async def send(data: bytes) -> httpx.Response:
        content: bytes | AsyncIterator[bytes] = chunked(data) if streamed else data
        response = await client.post("/v1/feedback/batch", content=content, headers=headers)
        assert ("content-length" in response.request.headers) is not streamed
        return response

    at_limit = await send(padded({"events": events}, BATCH_LIMIT))
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["accepted"] == 3

    over = await send(padded({"events": [make_event("big-over")]}, BATCH_LIMIT + 1))
    assert_problem(over, 413)
    assert await row_count(state) == 3


async def test_realistic_oversized_batch_is_413(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = [make_event(f"fat-{n}", text="x" * 9_500) for n in range(560)]
    data = json.dumps({"events": events}).encode()
    assert len(data) > BATCH_LIMIT
    for content in (data, chunked(data)):
        response = await client.post(
            "/v1/feedback/batch",
            content=content,
            headers={**auth(admin_key), "Content-Type": "application/json"},
        )
        assert_problem(response, 413)
    assert await row_count(state) == 0


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_single_event_body_limit(
    client: httpx.AsyncClient, admin_key: str, state: AppState, streamed: bool
) -> None:
    headers = {**auth(admin_key), "Content-Type": "application/json"}

    async def send(data: bytes) -> httpx.Response:
        content: bytes | AsyncIterator[bytes] = chunked(data) if streamed else data
        response = await client.post("/v1/feedback", content=content, headers=headers)
        assert ("content-length" in response.request.headers) is not streamed
        return response

    at_limit = await send(padded(make_event("one-at-limit"), SINGLE_LIMIT))
    assert at_limit.status_code == 202, at_limit.text
    over = await send(padded(make_event("one-over"), SINGLE_LIMIT + 1))
    assert_problem(over, 413)
    assert await row_count(state) == 1
    assert await stored_id(state, "one-over") is None


# ---------------------------------------------------------------------------- concurrency


async def test_concurrent_identical_posts_store_one_row(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    event = make_event("race-1")
    responses = await asyncio.gather(*(post_one(client, admin_key, event) for _ in range(50)))
    assert Counter(r.status_code for r in responses) == {202: 1, 200: 49}
    assert Counter(r.json()["status"] for r in responses) == {"accepted": 1, "duplicate": 49}
    assert {r.json()["id"] for r in responses} == {await stored_id(state, "race-1")}
    assert await row_count(state) == 1


async def test_concurrent_distinct_posts_are_all_stored(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = [make_event(f"many-{n:03d}", customer={"id": f"C-{n % 7}"}) for n in range(200)]
    responses = await asyncio.gather(*(post_one(client, admin_key, e) for e in events))
    assert [r.status_code for r in responses] == [202] * 200
    assert [r.json()["event_id"] for r in responses] == [e["event_id"] for e in events]
    assert len({r.json()["id"] for r in responses}) == 200
    assert await row_count(state) == 200
    assert await scalar(state, "SELECT sum(feedback_count) FROM customers") == 200
    assert await scalar(state, "SELECT count(*) FROM customers") == 7


async def test_concurrent_conflicting_contents(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    variants = [make_event("contested", scores=[{"metric": "nps", "value": v}]) for v in (2, 9, 5)]
    sent = [variants[n % 3] for n in range(45)]
    responses = await asyncio.gather(*(post_one(client, admin_key, e) for e in sent))
    assert await row_count(state) == 1
    winner_nps = await scalar(state, "SELECT nps FROM feedback")
    winner_id = await stored_id(state, "contested")
    statuses: Counter[int] = Counter()
    for event, response in zip(sent, responses, strict=True):
        statuses[response.status_code] += 1
        if event["scores"][0]["value"] == winner_nps:
            assert response.status_code in (200, 202), response.text
            assert response.json()["id"] == winner_id
        else:
            assert_problem(response, 409)
    assert statuses == {202: 1, 200: 14, 409: 30}
    accepted = [e for e, r in zip(sent, responses, strict=True) if r.status_code == 202]
    assert accepted[0]["scores"][0]["value"] == winner_nps


async def test_concurrent_overlapping_batches(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    """Overlapping batches in opposite orders: no deadlock, each event stored once."""
    events = [make_event(f"ov-{n:03d}") for n in range(150)]
    first, second = events[:100], list(reversed(events[50:]))
    singles = [post_one(client, admin_key, e) for e in events[40:60]]
    responses = await asyncio.gather(
        post_batch(client, admin_key, first), post_batch(client, admin_key, second), *singles
    )
    batch_bodies = [r.json() for r in responses[:2]]
    single_statuses = [r.status_code for r in responses[2:]]
    accepted = sum(b["accepted"] for b in batch_bodies) + single_statuses.count(202)
    duplicates = sum(b["duplicates"] for b in batch_bodies) + single_statuses.count(200)
    assert (accepted, duplicates) == (150, 70)
    assert all(b["conflicts"] == 0 and b["rejected"] == 0 for b in batch_bodies)
    assert await row_count(state) == 150


# ------------------------------------------------------------------------- access control


async def test_location_restricted_key_single(
    client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str, state: AppState
) -> None:
    key = await make_key(Scope.FEEDBACK_WRITE, locations=[BERLIN, HAMBURG])
    assert (await post_one(client, key, make_event("loc-1", location_id=BERLIN))).status_code == 202
    assert (
        await post_one(client, key, make_event("loc-2", location_id=HAMBURG))
    ).status_code == 202
    assert_problem(await post_one(client, key, make_event("loc-3", location_id=MUNICH)), 403)
    assert_problem(await post_one(client, key, make_event("loc-4", location_id=...)), 403)
    assert_problem(await post_one(client, key, make_event("loc-5", location_id=None)), 403)
    # An event stored elsewhere is not revealed (no 200/409) to a key outside its location.
    assert (
        await post_one(client, admin_key, make_event("loc-6", location_id=MUNICH))
    ).status_code == 202
    assert_problem(await post_one(client, key, make_event("loc-6", location_id=MUNICH)), 403)
    rows = await scalar(state, "SELECT string_agg(event_id, ',' ORDER BY event_id) FROM feedback")
    assert rows == "loc-1,loc-2,loc-6"


async def test_location_restricted_key_batch(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState
) -> None:
    key = await make_key(Scope.FEEDBACK_WRITE, locations=[BERLIN])
    events = [
        make_event("lb-0", location_id=BERLIN),
        make_event("lb-1", location_id=MUNICH),
        make_event("lb-2", location_id=...),
        make_event("lb-3", location_id=BERLIN, channel="sms"),
    ]
    response = await post_batch(client, key, events)
    assert response.status_code == 200, response.text
    body = response.json()
    counts_add_up(body, 4)
    assert summary(body) == [
        (0, "lb-0", "accepted"),
        (1, "lb-1", "rejected"),
        (2, "lb-2", "rejected"),
        (3, "lb-3", "accepted"),
    ]
    for index in (1, 2):
        errors = body["results"][index]["errors"]
        assert [(e["loc"], e["type"]) for e in errors] == [(["location_id"], "location_forbidden")]
        assert errors[0]["msg"]
    assert await row_count(state) == 2


@pytest.mark.parametrize(
    "scopes",
    [
        [Scope.FEEDBACK_READ],
        [Scope.TICKETS_WRITE, Scope.TICKETS_READ, Scope.METRICS_READ],
    ],
    ids=["read-only", "tickets-and-metrics"],
)
async def test_key_without_write_scope_is_forbidden(
    client: httpx.AsyncClient, make_key: KeyFactory, state: AppState, scopes: list[Scope]
) -> None:
    key = await make_key(*scopes)
    assert_problem(await post_one(client, key, make_event("nw-1")), 403)
    assert_problem(await post_batch(client, key, [make_event("nw-2")]), 403)
    assert await row_count(state) == 0


async def test_write_scope_without_admin_is_enough(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key(Scope.FEEDBACK_WRITE)
    assert (await post_one(client, key, make_event("w-1", location_id=...))).status_code == 202
    batch = await post_batch(client, key, [make_event("w-2")])
    assert batch.json()["accepted"] == 1


@pytest.mark.parametrize("path", ["/v1/feedback", "/v1/feedback/batch"])
async def test_missing_or_unknown_key_is_401(
    client: httpx.AsyncClient, state: AppState, path: str
) -> None:
    body = {"events": [make_event()]} if path.endswith("batch") else make_event()
    for headers in ({}, auth("fbk_not-a-real-key")):
        response = await client.post(path, json=body, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await row_count(state) == 0


# ------------------------------------------------------------------------------ customers


CUSTOMER_BASE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _ago(minutes: int) -> str:
    """A fixed past instant `minutes` before CUSTOMER_BASE, with a +02:00 offset."""
    moment = CUSTOMER_BASE - timedelta(minutes=minutes)
    return moment.astimezone(timezone(timedelta(hours=2))).isoformat()


async def _customer_row(state: AppState, customer_id: str) -> Json | None:
    async with state.sessionmaker() as session:
        row = (
            (
                await session.execute(
                    text(
                        "SELECT email, phone, name, locale, feedback_count, first_seen_at, "
                        "last_seen_at FROM customers WHERE customer_id = :c"
                    ),
                    {"c": customer_id},
                )
            )
            .mappings()
            .one_or_none()
        )
    return None if row is None else dict(row)


async def test_customers_are_upserted_with_latest_contact_details(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    ana = {"id": "C-1", "email": "ana@example.com", "phone": "+4915100000001", "name": "Ana"}
    middle = make_event("cu-1", occurred_at=_ago(30), customer={**ana, "locale": "de-DE"})
    newest = make_event(
        "cu-2",
        occurred_at=_ago(0),
        customer={"id": "C-1", "email": "ana.r@example.com", "name": "Ana R."},
    )
    oldest = make_event(
        "cu-3",
        occurred_at=_ago(60),
        customer={
            "id": "C-1",
            "email": "old@example.com",
            "phone": "+4915100000000",
            "locale": "fr",
        },
    )
    for event in (middle, newest, oldest):
        assert (await post_one(client, admin_key, event)).status_code == 202
    # Not counted: anonymous events, customers without an id, duplicates, conflicts.
    assert (await post_one(client, admin_key, make_event("cu-4", customer=...))).status_code == 202
    no_id = make_event("cu-5", customer={"email": "anon@example.com"})
    assert (await post_one(client, admin_key, no_id)).status_code == 202
    assert (await post_one(client, admin_key, newest)).status_code == 200
    assert (await post_one(client, admin_key, _with(text="x")(newest))).status_code == 409
    batch = await post_batch(
        client, admin_key, [newest, make_event("cu-6", customer={"id": "C-2"})]
    )
    assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "accepted"]

    assert await scalar(state, "SELECT count(*) FROM customers") == 2
    assert await _customer_row(state, "C-1") == {
        "email": "ana.r@example.com",  # newest event's
        "phone": "+4915100000001",  # newest non-empty one (the newest event has none)
        "name": "Ana R.",
        "locale": "de-DE",  # the older event's "fr" does not overwrite it
        "feedback_count": 3,
        "first_seen_at": datetime.fromisoformat(_ago(60)),
        "last_seen_at": datetime.fromisoformat(_ago(0)),
    }
    c2 = await _customer_row(state, "C-2")
    assert c2 is not None
    assert c2["feedback_count"] == 1


async def test_customers_upserted_from_one_batch_out_of_order(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = [
        make_event("cb-1", occurred_at=_ago(10), customer={"id": "C-9", "name": "Middle"}),
        make_event("cb-2", occurred_at=_ago(0), customer={"id": "C-9", "name": "Newest"}),
        make_event("cb-3", occurred_at=_ago(20), customer={"id": "C-9", "name": "Oldest"}),
        make_event("cb-3", occurred_at=_ago(20), customer={"id": "C-9", "name": "Oldest"}),
        make_event("cb-4", occurred_at=_ago(5), customer={"id": "C-9", "name": "Bad"}, channel="x"),
    ]
    response = await post_batch(client, admin_key, events)
    assert [r["status"] for r in response.json()["results"]] == [
        "accepted",
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
    ]
    row = await _customer_row(state, "C-9")
    assert row is not None
    assert (row["name"], row["feedback_count"]) == ("Newest", 3)
    assert row["first_seen_at"] == datetime.fromisoformat(_ago(20))
    assert row["last_seen_at"] == datetime.fromisoformat(_ago(0))


@pytest.mark.parametrize(
    ("newest_id", "older_id"),
    [
        pytest.param("gap-2", "gap-1", id="newest-sorts-last"),
        pytest.param("gap-1", "gap-2", id="newest-sorts-first"),
    ],
)
async def test_customer_gaps_filled_from_older_event_in_same_batch(
    client: httpx.AsyncClient, admin_key: str, state: AppState, newest_id: str, older_id: str
) -> None:
    """The newest event has no phone, an older one in the same batch has: the customer
    keeps the older phone (as when the events arrive one by one), whatever the ids."""
    newest = make_event(newest_id, occurred_at=_ago(0), customer={"id": "C-5", "name": "New"})
    older = make_event(
        older_id, occurred_at=_ago(30), customer={"id": "C-5", "phone": "+4915100000005"}
    )
    response = await post_batch(client, admin_key, [newest, older])
    assert response.json()["accepted"] == 2
    row = await _customer_row(state, "C-5")
    assert row is not None
    assert (row["name"], row["phone"], row["feedback_count"]) == ("New", "+4915100000005", 2)


async def test_customer_gaps_filled_from_older_event_sent_later(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    newest = make_event("gap-1", occurred_at=_ago(0), customer={"id": "C-5", "name": "New"})
    older = make_event(
        "gap-2", occurred_at=_ago(30), customer={"id": "C-5", "phone": "+4915100000005"}
    )
    for event in (newest, older):
        assert (await post_one(client, admin_key, event)).status_code == 202
    row = await _customer_row(state, "C-5")
    assert row is not None
    assert (row["name"], row["phone"], row["feedback_count"]) == ("New", "+4915100000005", 2)


# -------------------------------------------------------------------------------- metrics


async def _ingest_counter(client: httpx.AsyncClient) -> Counter[tuple[str, str, str]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    values: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "feedback_ingested_events_total":
                labels = sample.labels
                values[(labels["channel"], labels["via"], labels["status"])] = int(sample.value)
    return values


def _delta(
    before: Counter[tuple[str, str, str]], after: Counter[tuple[str, str, str]]
) -> dict[tuple[str, str, str], int]:
    keys = set(before) | set(after)
    return {k: after[k] - before[k] for k in sorted(keys) if after[k] != before[k]}


def _by_status(delta: dict[tuple[str, str, str], int]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for (_, _, status), value in delta.items():
        totals[status] += value
    return dict(totals)


async def test_ingest_counter_single(client: httpx.AsyncClient, admin_key: str) -> None:
    before = await _ingest_counter(client)
    event = make_event("m-1", channel="voice")
    assert (await post_one(client, admin_key, event)).status_code == 202
    assert (await post_one(client, admin_key, event)).status_code == 200
    assert (await post_one(client, admin_key, event)).status_code == 200
    assert (await post_one(client, admin_key, _with(text="x")(event))).status_code == 409
    assert (await post_one(client, admin_key, make_event("m-2", scores=[{}]))).status_code == 422
    delta = _delta(before, await _ingest_counter(client))
    assert _by_status(delta) == {"accepted": 1, "duplicate": 2, "conflict": 1, "rejected": 1}
    assert delta[("voice", "rest", "accepted")] == 1
    assert delta[("voice", "rest", "duplicate")] == 2
    assert delta[("voice", "rest", "conflict")] == 1


async def test_ingest_counter_batch(client: httpx.AsyncClient, admin_key: str) -> None:
    assert (
        await post_one(client, admin_key, make_event("mb-1", channel="chat", occurred_at=BASE_AT))
    ).status_code == 202
    before = await _ingest_counter(client)
    events = [
        make_event("mb-1", channel="chat", occurred_at=BASE_AT),
        make_event("mb-1", channel="social", occurred_at=BASE_AT),
        make_event("mb-2", channel="review"),
        make_event("mb-3", channel="review", occurred_at=BASE_AT),
        make_event("mb-3", channel="review", occurred_at=BASE_AT),
        make_event("mb-4", channel="email", scores=[{"metric": "nps", "value": 99}]),
        make_event("mb-5", channel="sms", occurred_at="no"),
    ]
    body = (await post_batch(client, admin_key, events)).json()
    counts_add_up(body, 7)
    delta = _delta(before, await _ingest_counter(client))
    assert _by_status(delta) == {"accepted": 2, "duplicate": 2, "conflict": 1, "rejected": 2}
    # Stored outcomes are labelled with the event's channel (a rejected item's channel
    # label is not part of the contract: its fields are untrusted).
    assert {k: v for k, v in delta.items() if k[2] != "rejected"} == {
        ("chat", "rest", "duplicate"): 1,
        ("review", "rest", "accepted"): 2,
        ("review", "rest", "duplicate"): 1,
        ("social", "rest", "conflict"): 1,
    }
    assert {k[1] for k in delta} == {"rest"}
