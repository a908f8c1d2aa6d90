"""SPEC section 3 validation rules, through `POST /v1/feedback` and the batch endpoint.

Each invalid case runs twice: as a single event (422 problem, one `errors` entry per bad
field, `loc` relative to the body without a "body" prefix) and as the second item of a
batch whose first item is valid (the valid one is accepted, the bad one is `rejected`
with the same errors, `loc` relative to the event).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import text

from app.dependencies import AppState
from tests.conftest import auth, make_event

Json = dict[str, Any]
Loc = list[str | int]
Expected = list[tuple[Loc, str]]  # (loc, type) per error entry
Overrides = Json | Callable[[], Json]
Via = Literal["single", "batch"]

PROBLEM = "application/problem+json"
EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
VIAS: list[Via] = ["single", "batch"]
CHANNELS = [
    "web",
    "mobile_app",
    "email",
    "sms",
    "voice",
    "chat",
    "social",
    "in_store",
    "review",
    "other",
]
TEXT64_FIELDS = ["source", "location_id", "touchpoint", "journey_stage"]


def _at(delta: timedelta, offset_hours: float = 0) -> str:
    """An RFC 3339 instant `delta` from now, written with the given UTC offset."""
    zone = timezone(timedelta(hours=offset_hours))
    return (datetime.now(UTC) + delta).astimezone(zone).isoformat()


def _occurred(delta: timedelta, offset_hours: float = 0) -> Callable[[], Json]:
    """Overrides computed when the test runs (not at collection), for time-relative cases."""
    return lambda: {"occurred_at": _at(delta, offset_hours)}


def _build(overrides: Overrides, event_id: str = "evt-1") -> Json:
    values = overrides() if callable(overrides) else overrides
    return make_event(**{"event_id": event_id, **values})


def _meta_of_size(size: int, char: str = "x") -> Json:
    """A metadata object whose compact JSON serialisation is exactly `size` bytes."""
    overhead = len(b'{"k":""}')
    unit = len(char.encode())
    assert (size - overhead) % unit == 0
    meta = {"k": char * ((size - overhead) // unit)}
    assert len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()) == size
    return meta


def _customer(**fields: Any) -> Json:
    return {"customer": fields}


def _score(metric: str, value: Any, scale: Any = ...) -> Json:
    score: Json = {"metric": metric, "value": value}
    if scale is not ...:
        score["scale"] = scale
    return {"scores": [score], "text": ...}


# --------------------------------------------------------------------------- valid cases

VALID: list[Any] = [
    # event_id
    pytest.param({"event_id": "a"}, id="event_id-1-char"),
    pytest.param({"event_id": "7"}, id="event_id-digit"),
    pytest.param({"event_id": "E" * 128}, id="event_id-128-chars"),
    pytest.param({"event_id": "a.b_c:d-e"}, id="event_id-all-allowed-punctuation"),
    pytest.param({"event_id": "9-x.Y:z_0"}, id="event_id-mixed"),
    # occurred_at
    pytest.param({"occurred_at": "2024-02-29T12:00:00Z"}, id="occurred_at-Z"),
    pytest.param({"occurred_at": "2024-02-29T12:00:00.123456+01:00"}, id="occurred_at-fraction"),
    pytest.param({"occurred_at": "2024-02-29T12:00:00-08:00"}, id="occurred_at-negative-offset"),
    pytest.param(_occurred(timedelta(minutes=4)), id="occurred_at-4min-future"),
    pytest.param(_occurred(timedelta(minutes=4), 5.5), id="occurred_at-4min-future-+05:30"),
    pytest.param(_occurred(timedelta(minutes=4), -10), id="occurred_at-4min-future--10:00"),
    # channel: every value of the enum
    *[pytest.param({"channel": channel}, id=f"channel-{channel}") for channel in CHANNELS],
    # optional 1-64 char fields
    *[pytest.param({field: "x"}, id=f"{field}-1-char") for field in TEXT64_FIELDS],
    *[pytest.param({field: "x" * 64}, id=f"{field}-64-chars") for field in TEXT64_FIELDS],
    *[pytest.param({field: ...}, id=f"{field}-absent") for field in TEXT64_FIELDS],
    # customer
    pytest.param({"customer": ...}, id="anonymous-no-customer"),
    pytest.param({"customer": None}, id="anonymous-customer-null"),
    pytest.param(_customer(), id="anonymous-customer-empty"),
    pytest.param(_customer(id="c" * 128), id="customer-id-128"),
    pytest.param(_customer(name="n" * 200), id="customer-name-200"),
    pytest.param(_customer(email="first.last+tag@mail.example.co.uk"), id="customer-email"),
    pytest.param(_customer(phone="+15551234567"), id="customer-phone-e164"),
    pytest.param(_customer(phone="+123456789012345"), id="customer-phone-15-digits"),
    pytest.param(_customer(locale="pt-BR"), id="customer-locale-pt-BR"),
    pytest.param(_customer(locale="zh-Hant-TW"), id="customer-locale-zh-Hant-TW"),
    pytest.param(_customer(locale="gsw"), id="customer-locale-3-letter"),
    # scores
    pytest.param(_score("nps", 0), id="nps-0"),
    pytest.param(_score("nps", 10), id="nps-10"),
    pytest.param(_score("csat", 1), id="csat-1-default-scale"),
    pytest.param(_score("csat", 5), id="csat-5-default-scale"),
    pytest.param(_score("csat", 5, 5), id="csat-5-of-5"),
    pytest.param(_score("csat", 7, 7), id="csat-7-of-7"),
    pytest.param(_score("ces", 7), id="ces-7-default-scale"),
    pytest.param(_score("ces", 1, 7), id="ces-1-of-7"),
    pytest.param(_score("ces", 5, 5), id="ces-5-of-5"),
    pytest.param(_score("rating", 5), id="rating-5-default-scale"),
    pytest.param(_score("rating", 10, 10), id="rating-10-of-10"),
    pytest.param(_score("rating", 1, 5), id="rating-1-of-5"),
    pytest.param(
        {
            "scores": [
                {"metric": "rating", "value": 4},
                {"metric": "ces", "value": 6},
                {"metric": "csat", "value": 3, "scale": 7},
                {"metric": "nps", "value": 9},
            ]
        },
        id="all-four-metrics",
    ),
    # text (score-less events need text)
    pytest.param({"scores": ..., "text": "ok"}, id="text-only"),
    pytest.param({"scores": [], "text": "ok"}, id="text-only-empty-scores"),
    pytest.param({"scores": ..., "text": "t" * 10_000}, id="text-10000-chars"),
    pytest.param({"scores": ..., "text": "é" * 10_000}, id="text-10000-chars-not-bytes"),
    pytest.param({"text": "   \n\t "}, id="whitespace-text-with-score"),
    pytest.param({"text": ...}, id="scores-only"),
    # language
    pytest.param({"language": "de"}, id="language-de"),
    pytest.param({"language": "en-US"}, id="language-en-US"),
    pytest.param({"language": "sr-Latn-RS"}, id="language-sr-Latn-RS"),
    pytest.param({"language": ...}, id="language-absent"),
    # tags
    pytest.param({"tags": []}, id="tags-empty"),
    pytest.param({"tags": [f"{i:02d}" + "t" * 62 for i in range(20)]}, id="tags-20-of-64"),
    pytest.param({"tags": ["x"]}, id="tags-1-char"),
    # metadata
    pytest.param({"metadata": {}}, id="metadata-empty"),
    pytest.param({"metadata": None}, id="metadata-null"),
    pytest.param(
        {"metadata": {"a": [1, 2.5, True, None, {"b": {"c": "d"}}], "ü": "ñ"}},
        id="metadata-nested",
    ),
    pytest.param({"metadata": _meta_of_size(16 * 1024)}, id="metadata-16KiB"),
]


@pytest.mark.parametrize("overrides", VALID)
async def test_valid_event_is_accepted(
    client: httpx.AsyncClient, admin_key: str, overrides: Overrides
) -> None:
    event = _build(overrides)
    response = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["event_id"] == event["event_id"]


async def test_valid_events_are_accepted_in_one_batch(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    events = []
    for index, case in enumerate(VALID):
        (overrides,) = case.values
        event = _build(overrides, event_id=f"batch-valid-{index}")
        events.append(event)
    response = await client.post(
        "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rejected = [r for r in body["results"] if r["status"] != "accepted"]
    assert rejected == []
    assert body["accepted"] == len(events)
    async with state.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM feedback")) == len(events)


# ------------------------------------------------------------------------- invalid cases

PATTERN = "string_pattern_mismatch"


def _one(loc: Loc, kind: str) -> Expected:
    return [(loc, kind)]


INVALID: list[Any] = [
    # event_id: required, 1-128 chars of [A-Za-z0-9._:-], starting alphanumeric
    pytest.param({"event_id": ...}, _one(["event_id"], "missing"), id="event_id-missing"),
    pytest.param({"event_id": ""}, _one(["event_id"], PATTERN), id="event_id-empty"),
    pytest.param({"event_id": "e" * 129}, _one(["event_id"], PATTERN), id="event_id-129"),
    *[
        pytest.param({"event_id": value}, _one(["event_id"], PATTERN), id=f"event_id-{name}")
        for name, value in [
            ("starts-dash", "-abc"),
            ("starts-dot", ".abc"),
            ("starts-colon", ":abc"),
            ("starts-underscore", "_abc"),
            ("space", "ab c"),
            ("slash", "ab/c"),
            ("hash", "ab#c"),
            ("plus", "ab+c"),
            ("non-ascii", "café"),
            ("unicode-digit", "١٢٣"),
            ("trailing-newline", "abc\n"),
            ("nul", "ab\u0000c"),
        ]
    ],
    pytest.param({"event_id": 123}, _one(["event_id"], "string_type"), id="event_id-int"),
    pytest.param({"event_id": None}, _one(["event_id"], "string_type"), id="event_id-null"),
    # occurred_at: required, with offset, at most 5 minutes in the future
    pytest.param({"occurred_at": ...}, _one(["occurred_at"], "missing"), id="occurred_at-missing"),
    pytest.param(
        {"occurred_at": "2024-02-29T12:00:00"},
        _one(["occurred_at"], "timezone_aware"),
        id="occurred_at-naive",
    ),
    pytest.param(
        {"occurred_at": "2024-02-29T12:00:00.5"},
        _one(["occurred_at"], "timezone_aware"),
        id="occurred_at-naive-fraction",
    ),
    pytest.param(
        {"occurred_at": "2024-02-29"},
        _one(["occurred_at"], "datetime_format"),
        id="occurred_at-date-only",
    ),
    pytest.param(
        {"occurred_at": "yesterday"},
        _one(["occurred_at"], "datetime_format"),
        id="occurred_at-garbage",
    ),
    pytest.param(
        {"occurred_at": "2024-13-01T00:00:00Z"},
        _one(["occurred_at"], "datetime_from_date_parsing"),
        id="occurred_at-month-13",
    ),
    pytest.param(
        {"occurred_at": None}, _one(["occurred_at"], "datetime_format"), id="occurred_at-null"
    ),
    pytest.param(
        _occurred(timedelta(minutes=6)), _one(["occurred_at"], "value_error"), id="future-6min"
    ),
    pytest.param(
        _occurred(timedelta(minutes=6), 5.5),
        _one(["occurred_at"], "value_error"),
        id="future-6min-+05:30",
    ),
    pytest.param(
        _occurred(timedelta(minutes=6), -10),
        _one(["occurred_at"], "value_error"),
        id="future-6min--10:00",
    ),
    pytest.param(
        _occurred(timedelta(days=400)), _one(["occurred_at"], "value_error"), id="future-next-year"
    ),
    # channel
    pytest.param({"channel": ...}, _one(["channel"], "missing"), id="channel-missing"),
    *[
        pytest.param({"channel": value}, _one(["channel"], "enum"), id=f"channel-{name}")
        for name, value in [
            ("upper-case", "IN_STORE"),
            ("phone", "phone"),
            ("empty", ""),
            ("null", None),
            ("int", 1),
            ("nul", "web\u0000"),
        ]
    ],
    # source, location_id, touchpoint, journey_stage: 1-64 chars
    *[
        pytest.param({field: ""}, _one([field], "string_too_short"), id=f"{field}-empty")
        for field in TEXT64_FIELDS
    ],
    *[
        pytest.param({field: "x" * 65}, _one([field], "string_too_long"), id=f"{field}-65")
        for field in TEXT64_FIELDS
    ],
    *[
        pytest.param({field: 64}, _one([field], "string_type"), id=f"{field}-int")
        for field in TEXT64_FIELDS
    ],
    *[
        pytest.param({field: "a\u0000b"}, _one([field], "value_error"), id=f"{field}-nul")
        for field in TEXT64_FIELDS
    ],
    # customer
    pytest.param({"customer": "C-1001"}, _one(["customer"], "model_type"), id="customer-string"),
    pytest.param(
        _customer(id="c" * 129), _one(["customer", "id"], "string_too_long"), id="customer-id-129"
    ),
    pytest.param(
        _customer(id=""), _one(["customer", "id"], "string_too_short"), id="customer-id-empty"
    ),
    pytest.param(_customer(id=7), _one(["customer", "id"], "string_type"), id="customer-id-int"),
    pytest.param(
        _customer(id="C\u00001"), _one(["customer", "id"], "value_error"), id="customer-id-nul"
    ),
    pytest.param(
        _customer(name="n" * 201),
        _one(["customer", "name"], "string_too_long"),
        id="customer-name-201",
    ),
    pytest.param(
        _customer(name="Ana\u0000"),
        _one(["customer", "name"], "value_error"),
        id="customer-name-nul",
    ),
    *[
        pytest.param(
            _customer(email=value), _one(["customer", "email"], "value_error"), id=f"email-{name}"
        )
        for name, value in [
            ("no-at", "ana.example.com"),
            ("no-domain", "ana@"),
            ("no-local", "@example.com"),
            ("no-dot-in-domain", "ana@example"),
            ("two-ats", "ana@@example.com"),
            ("space", "ana roth@example.com"),
            ("nul", "ana\u0000@example.com"),
        ]
    ],
    *[
        pytest.param(
            _customer(phone=value), _one(["customer", "phone"], PATTERN), id=f"phone-{name}"
        )
        for name, value in [
            ("no-plus", "4915112345678"),
            ("leading-zero", "+015112345678"),
            ("16-digits", "+1234567890123456"),
            ("spaces", "+49 151 12345678"),
            ("dashes", "+49-151-12345678"),
            ("letters", "+49151CALLME"),
            ("empty", ""),
            ("nul", "+49151\u000012345"),
        ]
    ],
    *[
        pytest.param(
            _customer(locale=value), _one(["customer", "locale"], PATTERN), id=f"locale-{name}"
        )
        for name, value in [
            ("underscore", "de_DE"),
            ("word", "deutsch"),
            ("one-letter", "d"),
            ("empty", ""),
            ("trailing-dash", "de-"),
            ("nul", "de\u0000"),
        ]
    ],
    # scores
    pytest.param(
        {"scores": {"metric": "nps", "value": 3}, "text": ...},
        _one(["scores"], "list_type"),
        id="scores-not-a-list",
    ),
    pytest.param(
        {"scores": [{"metric": "nps", "value": 3}, {"metric": "nps", "value": 4}]},
        _one(["scores"], "value_error"),
        id="scores-metric-twice",
    ),
    pytest.param(
        {
            "scores": [
                {"metric": "csat", "value": 3},
                {"metric": "nps", "value": 3},
                {"metric": "csat", "value": 3, "scale": 5},
            ]
        },
        _one(["scores"], "value_error"),
        id="scores-metric-twice-apart",
    ),
    pytest.param(
        _score("csi", 3), _one(["scores", 0, "metric"], "enum"), id="score-unknown-metric"
    ),
    pytest.param(
        {"scores": [{"value": 3}], "text": ...},
        _one(["scores", 0, "metric"], "missing"),
        id="score-metric-missing",
    ),
    pytest.param(
        {"scores": [{"metric": "nps"}], "text": ...},
        _one(["scores", 0, "value"], "missing"),
        id="score-value-missing",
    ),
    pytest.param(
        _score("nps\u0000", 3), _one(["scores", 0, "metric"], "enum"), id="score-metric-nul"
    ),
    *[
        pytest.param(
            _score(metric, value, scale),
            _one(["scores", 0, "scale" if "scale-" in name else "value"], "value_error"),
            id=name,
        )
        for name, metric, value, scale in [
            ("nps--1", "nps", -1, ...),
            ("nps-11", "nps", 11, ...),
            ("nps-with-scale-10", "nps", 5, 10),
            ("csat-0", "csat", 0, ...),
            ("csat-6-default-scale", "csat", 6, ...),
            ("csat-6-of-5", "csat", 6, 5),
            ("csat-8-of-7", "csat", 8, 7),
            ("csat-scale-10", "csat", 3, 10),
            ("csat-scale-3", "csat", 3, 3),
            ("ces-0", "ces", 0, ...),
            ("ces-8-default-scale", "ces", 8, ...),
            ("ces-6-of-5", "ces", 6, 5),
            ("ces-scale-10", "ces", 3, 10),
            ("rating-0", "rating", 0, ...),
            ("rating-6-default-scale", "rating", 6, ...),
            ("rating-11-of-10", "rating", 11, 10),
            ("rating-scale-7", "rating", 3, 7),
        ]
    ],
    *[
        pytest.param(_score(metric, value), _one(["scores", 0, "value"], "int_type"), id=name)
        for name, metric, value in [
            ("nps-string", "nps", "3"),
            ("nps-fraction", "nps", 3.5),
            ("csat-fraction", "csat", 2.5),
            ("rating-bool", "rating", True),
            ("ces-null", "ces", None),
            ("nps-list", "nps", [3]),
        ]
    ],
    pytest.param(
        _score("csat", 3, "5"), _one(["scores", 0, "scale"], "int_type"), id="csat-scale-string"
    ),
    pytest.param(
        _score("rating", 3, 5.5),
        _one(["scores", 0, "scale"], "int_type"),
        id="rating-scale-fraction",
    ),
    # text
    pytest.param({"text": "t" * 10_001}, _one(["text"], "string_too_long"), id="text-10001-chars"),
    pytest.param({"text": 42}, _one(["text"], "string_type"), id="text-int"),
    pytest.param({"text": "bad\u0000text"}, _one(["text"], "value_error"), id="text-nul"),
    # at least one score or non-empty text
    pytest.param({"scores": ..., "text": ...}, _one([], "value_error"), id="no-score-no-text"),
    pytest.param({"scores": [], "text": ...}, _one([], "value_error"), id="empty-scores-no-text"),
    pytest.param(
        {"scores": [], "text": None}, _one([], "value_error"), id="empty-scores-null-text"
    ),
    pytest.param({"scores": ..., "text": ""}, _one([], "value_error"), id="no-score-empty-text"),
    pytest.param(
        {"scores": ..., "text": "  \n\t\u3000 "},
        _one([], "value_error"),
        id="no-score-whitespace-text",
    ),
    # language
    *[
        pytest.param({"language": value}, _one(["language"], PATTERN), id=f"language-{name}")
        for name, value in [
            ("word", "english"),
            ("underscore", "en_US"),
            ("one-letter", "e"),
            ("empty", ""),
            ("digits", "12"),
            ("long-subtag", "en-abcdefghi"),
            ("trailing-newline", "de\n"),
            ("nul", "d\u0000e"),
        ]
    ],
    # tags
    pytest.param({"tags": "queue"}, _one(["tags"], "list_type"), id="tags-string"),
    pytest.param(
        {"tags": [f"t{i}" for i in range(21)]}, _one(["tags"], "too_long"), id="tags-21-items"
    ),
    pytest.param(
        {"tags": ["ok", "x" * 65]}, _one(["tags", 1], "string_too_long"), id="tag-65-chars"
    ),
    pytest.param({"tags": [""]}, _one(["tags", 0], "string_too_short"), id="tag-empty"),
    pytest.param({"tags": ["ok", 5]}, _one(["tags", 1], "string_type"), id="tag-int"),
    pytest.param({"tags": ["qu\u0000eue"]}, _one(["tags", 0], "value_error"), id="tag-nul"),
    # metadata
    pytest.param({"metadata": [1, 2]}, _one(["metadata"], "dict_type"), id="metadata-list"),
    pytest.param({"metadata": "x"}, _one(["metadata"], "dict_type"), id="metadata-string"),
    pytest.param(
        {"metadata": _meta_of_size(16 * 1024 + 1)},
        _one(["metadata"], "value_error"),
        id="metadata-16KiB+1",
    ),
    pytest.param(
        {"metadata": _meta_of_size(16 * 1024 + 2, "é")},
        _one(["metadata"], "value_error"),
        id="metadata-over-16KiB-in-bytes-not-chars",
    ),
    pytest.param(
        {"metadata": {"a": "x\u0000"}}, _one(["metadata"], "value_error"), id="metadata-nul-value"
    ),
    pytest.param(
        {"metadata": {"a\u0000": 1}}, _one(["metadata"], "value_error"), id="metadata-nul-key"
    ),
    pytest.param(
        {"metadata": {"a": [{"b": "\u0000"}]}},
        _one(["metadata"], "value_error"),
        id="metadata-nul-nested",
    ),
    # unknown top-level fields
    *[
        pytest.param({name: value}, _one([name], "extra_forbidden"), id=f"unknown-{name}")
        for name, value in [
            ("foo", 1),
            ("id", "1"),
            ("received_at", "2024-02-29T12:00:00Z"),
            ("sentiment", None),
            ("ticket_id", None),
            ("Event_ID", "x"),
            ("a\u0000b", 1),
        ]
    ],
    # one entry per bad field
    pytest.param(
        {
            "event_id": "-bad",
            "channel": "fax",
            "source": "",
            "customer": {"email": "nope", "phone": "123"},
            "scores": [{"metric": "nps", "value": "9"}],
            "tags": ["ok", ""],
            "language": "xx_YY",
            "extra": True,
        },
        [
            (["event_id"], PATTERN),
            (["channel"], "enum"),
            (["source"], "string_too_short"),
            (["customer", "email"], "value_error"),
            (["customer", "phone"], PATTERN),
            (["scores", 0, "value"], "int_type"),
            (["language"], PATTERN),
            (["tags", 1], "string_too_short"),
            (["extra"], "extra_forbidden"),
        ],
        id="many-bad-fields",
    ),
]


def _problem_errors(response: httpx.Response) -> list[Json]:
    """Check a 422 validation problem and return its `errors`."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    errors: list[Json] = body["errors"]
    assert errors
    return errors


def _check_entries(errors: list[Json]) -> Expected:
    """Every entry is {loc, msg, type} without a "body"/"events" prefix; return (loc, type)."""
    pairs: Expected = []
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["msg"], str)
        assert error["msg"]
        assert isinstance(error["type"], str)
        loc = error["loc"]
        assert isinstance(loc, list)
        assert loc[:1] not in (["body"], ["events"])
        pairs.append((loc, error["type"]))
    return pairs


def _sorted(pairs: Expected) -> Expected:
    return sorted(pairs, key=repr)


async def _post_invalid(
    client: httpx.AsyncClient, key: str, via: Via, event: Any
) -> tuple[Expected, Json | None]:
    """Post `event` and return its error (loc, type) pairs and, for a batch, its result."""
    if via == "single":
        response = await client.post("/v1/feedback", content=json.dumps(event), headers=auth(key))
        return _check_entries(_problem_errors(response)), None
    good = make_event("batch-good")
    response = await client.post(
        "/v1/feedback/batch",
        content=json.dumps({"events": [good, event]}),
        headers=auth(key),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == 1
    assert body["duplicates"] == 0
    assert body["conflicts"] == 0
    first, second = body["results"]
    assert first["index"] == 0
    assert first["status"] == "accepted"
    assert first["event_id"] == "batch-good"
    assert second["index"] == 1
    assert second["status"] == "rejected"
    assert second.get("id") is None
    return _check_entries(second["errors"]), second


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize(("overrides", "expected"), INVALID)
async def test_invalid_event_is_rejected(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    via: Via,
    overrides: Overrides,
    expected: Expected,
) -> None:
    event = _build(overrides)
    errors, result = await _post_invalid(client, admin_key, via, event)
    assert _sorted(errors) == _sorted(expected)
    if result is not None:
        # A valid event_id is echoed; an invalid one may be echoed (if a string) or null.
        event_id = event.get("event_id")
        if isinstance(event_id, str) and re.fullmatch(EVENT_ID, event_id):
            assert result["event_id"] == event_id
        elif isinstance(event_id, str):
            assert result["event_id"] in (event_id, None)
        else:
            assert result["event_id"] is None
    async with state.sessionmaker() as session:
        stored = await session.scalar(text("SELECT count(*) FROM feedback"))
    assert stored == (1 if via == "batch" else 0)


# -------------------------------------------------------- bodies that are not an event


RAW_BODIES: list[Any] = [
    pytest.param(b"", "json_invalid", id="empty"),
    pytest.param(b"not json", "json_invalid", id="text"),
    pytest.param(b'{"event_id": "a",', "json_invalid", id="truncated"),
    pytest.param(b"{'event_id': 'a'}", "json_invalid", id="single-quotes"),
    pytest.param(b'{"event_id": "a\x00b"}', "json_invalid", id="raw-nul-byte"),
    pytest.param(b'{"event_id": "\xff\xfe"}', "json_invalid", id="invalid-utf8"),
    pytest.param(b'{"text": "\\ud800", "event_id": "a"}', "json_invalid", id="lone-surrogate"),
    pytest.param(b'{"metadata": {"\\udfff": 1}}', "json_invalid", id="lone-surrogate-key"),
    pytest.param(b"[]", "model_type", id="array"),
    pytest.param(b"null", "model_type", id="null"),
    pytest.param(b'"event"', "model_type", id="string"),
    pytest.param(b"42", "model_type", id="number"),
]


@pytest.mark.parametrize(("body", "kind"), RAW_BODIES)
async def test_single_body_that_is_not_an_event_object(
    client: httpx.AsyncClient, admin_key: str, body: bytes, kind: str
) -> None:
    response = await client.post(
        "/v1/feedback",
        content=body,
        headers={**auth(admin_key), "Content-Type": "application/json"},
    )
    assert _check_entries(_problem_errors(response)) == [([], kind)]


BATCH_ITEMS: list[Any] = [
    pytest.param(42, id="number"),
    pytest.param("evt-1", id="string"),
    pytest.param(None, id="null"),
    pytest.param([make_event("in-a-list")], id="list"),
]


@pytest.mark.parametrize("item", BATCH_ITEMS)
async def test_batch_item_that_is_not_an_object(
    client: httpx.AsyncClient, admin_key: str, item: Any
) -> None:
    errors, result = await _post_invalid(client, admin_key, "batch", item)
    assert errors == [([], "model_type")]
    assert result is not None
    assert result["event_id"] is None


async def test_whitespace_text_is_stored_as_absent_and_default_scales_filled(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    event = make_event(
        "ws-1",
        text=" \n\t ",
        scores=[
            {"metric": "csat", "value": 4},
            {"metric": "ces", "value": 6},
            {"metric": "rating", "value": 5},
        ],
    )
    posted = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert posted.status_code == 202, posted.text
    read = await client.get(f"/v1/feedback/{posted.json()['id']}", headers=auth(admin_key))
    assert read.status_code == 200
    stored = read.json()
    assert stored["text"] is None
    assert stored["scores"] == [
        {"metric": "csat", "value": 4, "scale": 5},
        {"metric": "ces", "value": 6, "scale": 7},
        {"metric": "rating", "value": 5, "scale": 5},
    ]


async def test_error_entries_carry_no_input_values(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """Problem details must not echo personal data back (they end up in client logs)."""
    event = make_event(customer={"email": "secret-person-at-nowhere", "phone": "12345"})
    response = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    errors = _problem_errors(response)
    assert len(errors) == 2
    assert "secret-person" not in response.text
    assert '"12345"' not in response.text


# ------------------------------------------------------------------ former app defects (fixed)


@pytest.mark.parametrize("via", VIAS)
async def test_year_one_timestamp_with_offset_is_not_a_server_error(
    client: httpx.AsyncClient, admin_key: str, via: Via
) -> None:
    event = make_event(occurred_at="0001-01-01T00:30:00+01:00")
    path = "/v1/feedback" if via == "single" else "/v1/feedback/batch"
    body = event if via == "single" else {"events": [event]}
    response = await client.post(path, json=body, headers=auth(admin_key))
    assert response.status_code == (422 if via == "single" else 200), response.text
    if via == "batch":
        assert response.json()["results"][0]["status"] == "rejected"
        assert response.json()["results"][0]["errors"][0]["loc"] == ["occurred_at"]


@pytest.mark.parametrize("via", VIAS)
async def test_numeric_timestamp_is_rejected(
    client: httpx.AsyncClient, admin_key: str, via: Via
) -> None:
    event = make_event(occurred_at=1_700_000_000)
    errors, _ = await _post_invalid(client, admin_key, via, event)
    assert [loc for loc, _ in errors] == [["occurred_at"]]


async def test_metadata_with_literal_backslash_u0000_is_accepted(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    event = make_event(metadata={"path": "C:\\u0000\\logs"})
    response = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert response.status_code == 202, response.text
