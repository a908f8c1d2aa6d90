"""Integrations over REST (SPEC section 6): create with secrets shown once, write-only
secrets (never in a response or a log line), validation per kind, the SSRF guard, PATCH
semantics, deletion, connection tests against fake vendors on 127.0.0.1, and who may
manage them.

The session app refuses private targets (``allow_private_targets`` False), so creating
integrations there uses a public literal address (never contacted: the guard resolves
nothing for a literal, and nothing here sends to it). Connection tests run against the
fake vendors on 127.0.0.1 through a second app on the same database that allows
private targets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.config import ProcessRoles, Settings
from app.dependencies import AppState
from app.integrations import signing
from app.main import create_app
from app.models.closed_loop import DeliveryRow, IntegrationRow
from app.models.enums import DeliveryStatus, Scope
from tests.conftest import KeyFactory, assert_problem, auth
from tests.fixtures.vendors import (  # noqa: F401 (fixtures)
    ZENDESK_API_TOKEN,
    ZENDESK_EMAIL,
    FakeVendorServer,
    vendor_server_fixture,
    vendor_server_session_fixture,
)

PUBLIC_HOST = "https://93.184.215.14"  # a public literal address: the guard accepts it
ZENDESK_TOKEN = "zd-secret-token-4f9a1c"
OUT_KEYS = {
    "id",
    "name",
    "kind",
    "enabled",
    "events",
    "config",
    "secrets_set",
    "created_at",
    "updated_at",
}
TICKET_EVENTS = ["ticket.created", "ticket.updated", "ticket.resolved"]
ALL_EVENTS = ["feedback.received", *TICKET_EVENTS]


def error_locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in assert_problem(response, 422)["errors"]]


def zendesk_body(name: str = "zendesk-eu", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "kind": "zendesk",
        "config": {"base_url": f"{PUBLIC_HOST}/", "email": "cx-bot@acme.example"},
        "secrets": {"api_token": ZENDESK_TOKEN},
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/integrations", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stored(state: AppState, name: str) -> IntegrationRow:
    async with state.sessionmaker() as session:
        row = (
            await session.execute(select(IntegrationRow).where(IntegrationRow.name == name))
        ).scalar()
    assert row is not None
    return row


@pytest.fixture
async def private_client(settings: Settings, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the session database that allows private targets (127.0.0.1),
    without dispatcher or consumer. ``admin_key`` first: its lifespan must find a key."""
    application = create_app(
        settings.model_copy(update={"allow_private_targets": True}),
        ProcessRoles(consumer=False, dispatcher=False),
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


# --- create -----------------------------------------------------------------------------


async def test_create_shows_the_inbound_secret_once(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    response = await client.post("/v1/integrations", json=zendesk_body(), headers=auth(admin_key))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == OUT_KEYS | {"inbound_secret", "signing_secret"}
    assert body["id"].isdigit()
    assert body["name"] == "zendesk-eu"
    assert body["kind"] == "zendesk"
    assert body["enabled"] is True
    assert body["events"] == TICKET_EVENTS  # default: every event the kind supports
    assert body["config"] == {"base_url": PUBLIC_HOST, "email": "cx-bot@acme.example"}
    assert body["secrets_set"] == ["api_token"]
    assert body["inbound_secret"].startswith("whsec_")
    signing.secret_key(body["inbound_secret"])  # usable as a Standard Webhooks secret
    assert body["signing_secret"] is None
    assert ZENDESK_TOKEN not in response.text

    row = await stored(state, "zendesk-eu")
    assert row.secrets == {"api_token": ZENDESK_TOKEN}
    assert row.inbound_secret == body["inbound_secret"]
    assert row.events == TICKET_EVENTS

    for path in ("/v1/integrations", "/v1/integrations/zendesk-eu"):
        again = await client.get(path, headers=auth(admin_key))
        assert again.status_code == 200
        assert body["inbound_secret"] not in again.text
        assert ZENDESK_TOKEN not in again.text
        assert "inbound_secret" not in again.text
    shown = (await client.get("/v1/integrations/zendesk-eu", headers=auth(admin_key))).json()
    assert set(shown) == OUT_KEYS
    assert shown == {k: v for k, v in body.items() if k in OUT_KEYS}


async def test_webhook_gets_a_generated_signing_secret(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    body = await create(
        client,
        admin_key,
        {"name": "hooks", "kind": "webhook", "config": {"url": f"{PUBLIC_HOST}/in?x=1"}},
    )
    assert body["events"] == ALL_EVENTS
    assert body["config"] == {"url": f"{PUBLIC_HOST}/in?x=1"}
    assert body["secrets_set"] == ["signing_secret"]
    assert body["signing_secret"].startswith("whsec_")
    assert body["inbound_secret"].startswith("whsec_")
    assert body["signing_secret"] != body["inbound_secret"]
    row = await stored(state, "hooks")
    assert row.secrets == {"signing_secret": body["signing_secret"]}
    shown = await client.get("/v1/integrations/hooks", headers=auth(admin_key))
    assert body["signing_secret"] not in shown.text
    assert "signing_secret" in shown.text  # only as a name in secrets_set
    assert shown.json()["secrets_set"] == ["signing_secret"]


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "config_out"),
    [
        (
            "salesforce",
            {"instance_url": PUBLIC_HOST},
            {"access_token": "sf-token-1"},
            {
                "instance_url": PUBLIC_HOST,
                "api_version": "62.0",
                "origin": "Web",
                "status_values": {
                    "open": "New",
                    "in_progress": "Working",
                    "waiting": "Working",
                    "resolved": "Closed",
                    "closed": "Closed",
                },
            },
        ),
        (
            "freshdesk",
            {"base_url": PUBLIC_HOST},
            {"api_key": "fd-key-1"},
            {"base_url": PUBLIC_HOST, "fallback_requester_email": None},
        ),
        (
            "hubspot",
            {"base_url": PUBLIC_HOST, "portal_id": "123"},
            {"access_token": "hs-token-1"},
            None,
        ),
    ],
)
async def test_every_kind_is_configured_with_its_defaults(
    client: httpx.AsyncClient,
    admin_key: str,
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    config_out: dict[str, Any] | None,
) -> None:
    body = await create(
        client, admin_key, {"name": f"{kind}-1", "kind": kind, "config": config, "secrets": secrets}
    )
    assert body["kind"] == kind
    assert body["events"] == TICKET_EVENTS
    assert body["secrets_set"] == sorted(secrets)
    if config_out is not None:
        assert body["config"] == config_out
    else:
        assert {k: body["config"][k] for k in config} == config
    for value in secrets.values():
        assert value not in str(body)


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin_key: str) -> None:
    await create(client, admin_key, zendesk_body())
    again = await client.post(
        "/v1/integrations",
        json={"name": "zendesk-eu", "kind": "webhook", "config": {"url": PUBLIC_HOST}},
        headers=auth(admin_key),
    )
    body = assert_problem(again, 409)
    assert body["type"] == "/problems/conflict"
    assert "zendesk-eu" in body["detail"]


@pytest.mark.parametrize(
    ("change", "locs"),
    [
        ({"name": "Zendesk"}, [["name"]]),
        ({"name": "-zd"}, [["name"]]),
        ({"name": "z" * 65}, [["name"]]),
        ({"name": ""}, [["name"]]),
        ({"kind": "jira"}, [["kind"]]),
        ({"enabled": "no"}, [["enabled"]]),
        ({"extra": True}, [["extra"]]),
        ({"events": []}, [["events"]]),
        ({"events": ["ticket.deleted"]}, [["events", 0]]),
        ({"events": ["ticket.created", "feedback.received"]}, [["events", 1]]),
        ({"config": {"email": "cx-bot@acme.example"}}, [["config", "base_url"]]),
        (
            {"config": {"base_url": "ftp://x.example", "email": "not-an-email"}},
            [["config", "base_url"], ["config", "email"]],
        ),
        (
            {"config": {"base_url": PUBLIC_HOST, "email": "a@b.example", "region": "eu"}},
            [["config", "region"]],
        ),
        ({"config": "https://x"}, [["config"]]),
        ({"secrets": {}}, [["secrets", "api_token"]]),
        ({"secrets": {"api_token": ZENDESK_TOKEN, "other": "x"}}, [["secrets", "other"]]),
        ({"secrets": {"api_token": ""}}, [["secrets", "api_token"]]),
    ],
)
async def test_invalid_bodies_are_422_with_locations(
    client: httpx.AsyncClient,
    admin_key: str,
    change: dict[str, Any],
    locs: list[list[str | int]],
) -> None:
    response = await client.post(
        "/v1/integrations", json=zendesk_body(**change), headers=auth(admin_key)
    )
    assert sorted(error_locs(response), key=str) == sorted(locs, key=str)


async def test_unsupported_events_are_named(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.post(
        "/v1/integrations",
        json=zendesk_body(events=["ticket.created", "feedback.received"]),
        headers=auth(admin_key),
    )
    [error] = assert_problem(response, 422)["errors"]
    assert error["type"] == "unsupported_event"
    assert "feedback.received" in error["msg"]
    assert "ticket.created" in error["msg"]  # the supported ones are listed


async def test_events_are_stored_once_in_canonical_order(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = await create(
        client,
        admin_key,
        {
            "name": "hooks",
            "kind": "webhook",
            "events": ["ticket.resolved", "feedback.received", "ticket.resolved"],
            "config": {"url": PUBLIC_HOST},
        },
    )
    assert body["events"] == ["feedback.received", "ticket.resolved"]


async def test_validation_errors_never_echo_secret_values(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    secret = "token with spaces-9f8e7d"
    response = await client.post(
        "/v1/integrations",
        json=zendesk_body(secrets={"api_token": secret}),
        headers=auth(admin_key),
    )
    assert error_locs(response) == [["secrets", "api_token"]]
    assert "9f8e7d" not in response.text
    webhook = await client.post(
        "/v1/integrations",
        json={
            "name": "hooks",
            "kind": "webhook",
            "config": {"url": PUBLIC_HOST},
            "secrets": {"signing_secret": "whsec_bXlvd25zZWNyZXQ="},
        },
        headers=auth(admin_key),
    )
    assert error_locs(webhook) == [["secrets", "signing_secret"]]  # generated, not given
    assert "bXlvd25zZWNyZXQ" not in webhook.text


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("webhook", {"url": "http://127.0.0.1:8080/hook"}, "url"),
        ("webhook", {"url": "http://[::1]/hook"}, "url"),
        ("webhook", {"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ("zendesk", {"base_url": "https://10.1.2.3", "email": "a@b.example"}, "base_url"),
        ("salesforce", {"instance_url": "http://192.168.0.10"}, "instance_url"),
        ("hubspot", {"base_url": "http://100.64.0.1"}, "base_url"),
        ("freshdesk", {"base_url": "http://localhost"}, "base_url"),
    ],
)
async def test_private_targets_are_refused(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    kind: str,
    config: dict[str, Any],
    field: str,
) -> None:
    secrets = {
        "webhook": {},
        "zendesk": {"api_token": "t"},
        "salesforce": {"access_token": "t"},
        "hubspot": {"access_token": "t"},
        "freshdesk": {"api_key": "t"},
    }[kind]
    response = await client.post(
        "/v1/integrations",
        json={"name": "target", "kind": kind, "config": config, "secrets": secrets},
        headers=auth(admin_key),
    )
    [error] = assert_problem(response, 422)["errors"]
    assert error["loc"] == ["config", field]
    assert error["type"] == "unsafe_target"
    assert "FEEDBACK_ALLOW_PRIVATE_TARGETS" in error["msg"]
    async with state.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(IntegrationRow))
    assert count == 0


# --- read, list -------------------------------------------------------------------------


async def test_list_is_by_name_and_paginated(client: httpx.AsyncClient, admin_key: str) -> None:
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    for name in names:
        await create(client, admin_key, zendesk_body(name))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/integrations", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert all(set(item) == OUT_KEYS for item in page["items"])
        seen.extend(item["name"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)
    assert ZENDESK_TOKEN not in str(seen)


async def test_unknown_and_malformed_names(client: httpx.AsyncClient, admin_key: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body: dict[str, Any] | None = {} if method == "PATCH" else None
        missing = await client.request(
            method, "/v1/integrations/nothing", json=body, headers=auth(admin_key)
        )
        assert assert_problem(missing, 404)["type"] == "/problems/not-found"
    assert_problem(await client.post("/v1/integrations/nothing/test", headers=auth(admin_key)), 404)
    malformed = await client.get("/v1/integrations/Not_Valid", headers=auth(admin_key))
    assert error_locs(malformed) == [["path", "name"]]


# --- patch ------------------------------------------------------------------------------


async def test_patch_changes_only_what_is_given(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    created = await create(
        client,
        admin_key,
        {
            "name": "sf",
            "kind": "salesforce",
            "config": {"instance_url": PUBLIC_HOST, "origin": "Phone"},
            "secrets": {"access_token": "sf-old-token"},
        },
    )
    path = "/v1/integrations/sf"
    unchanged = await client.patch(path, json={}, headers=auth(admin_key))
    assert unchanged.status_code == 200, unchanged.text
    assert {k: v for k, v in unchanged.json().items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k in OUT_KEYS - {"updated_at"}
    }

    response = await client.patch(
        path,
        json={"enabled": False, "events": ["ticket.created"]},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == OUT_KEYS
    assert body["enabled"] is False
    assert body["events"] == ["ticket.created"]
    assert body["config"]["origin"] == "Phone"

    # config is replaced whole: the origin falls back to its default
    response = await client.patch(
        path,
        json={"config": {"instance_url": f"{PUBLIC_HOST}/", "api_version": "61.0"}},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert (config["instance_url"], config["api_version"], config["origin"]) == (
        PUBLIC_HOST,
        "61.0",
        "Web",
    )
    assert response.json()["enabled"] is False

    response = await client.patch(
        path, json={"secrets": {"access_token": "sf-new-token"}}, headers=auth(admin_key)
    )
    assert response.status_code == 200
    assert "sf-new-token" not in response.text
    assert response.json()["secrets_set"] == ["access_token"]
    row = await stored(state, "sf")
    assert row.secrets == {"access_token": "sf-new-token"}
    assert row.inbound_secret == created["inbound_secret"]  # never changed by a patch


async def test_patch_keeps_generated_secrets(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    created = await create(
        client, admin_key, {"name": "hooks", "kind": "webhook", "config": {"url": PUBLIC_HOST}}
    )
    response = await client.patch(
        "/v1/integrations/hooks",
        json={"secrets": {}, "config": {"url": f"{PUBLIC_HOST}/v2"}},
        headers=auth(admin_key),
    )
    assert response.status_code == 200, response.text
    assert response.json()["config"] == {"url": f"{PUBLIC_HOST}/v2"}
    row = await stored(state, "hooks")
    assert row.secrets == {"signing_secret": created["signing_secret"]}

    refused = await client.patch(
        "/v1/integrations/hooks",
        json={"secrets": {"signing_secret": "whsec_bXlvd25zZWNyZXQ="}},
        headers=auth(admin_key),
    )
    assert error_locs(refused) == [["secrets", "signing_secret"]]
    assert (await stored(state, "hooks")).secrets == {"signing_secret": created["signing_secret"]}


@pytest.mark.parametrize(
    ("patch", "locs"),
    [
        ({"name": "other"}, [["name"]]),
        ({"kind": "webhook"}, [["kind"]]),
        ({"enabled": 1}, [["enabled"]]),
        ({"events": ["feedback.received"]}, [["events", 0]]),
        ({"config": {"base_url": PUBLIC_HOST}}, [["config", "email"]]),
        ({"secrets": {"api_token": "a b"}}, [["secrets", "api_token"]]),
        (
            {"config": {"base_url": "http://127.0.0.1:9", "email": "a@b.example"}},
            [["config", "base_url"]],
        ),
    ],
)
async def test_invalid_patches_change_nothing(
    client: httpx.AsyncClient,
    admin_key: str,
    state: AppState,
    patch: dict[str, Any],
    locs: list[list[str | int]],
) -> None:
    await create(client, admin_key, zendesk_body())
    before = await stored(state, "zendesk-eu")
    response = await client.patch(
        "/v1/integrations/zendesk-eu", json=patch, headers=auth(admin_key)
    )
    assert error_locs(response) == locs
    after = await stored(state, "zendesk-eu")
    assert (after.config, after.secrets, after.events, after.enabled) == (
        before.config,
        before.secrets,
        before.events,
        before.enabled,
    )


# --- delete -----------------------------------------------------------------------------


async def test_delete_removes_its_deliveries(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    created = await create(client, admin_key, zendesk_body())
    async with state.sessionmaker() as session, session.begin():
        session.add(
            DeliveryRow(
                integration_id=int(created["id"]),
                event_type="ticket.created",
                payload={"data": {}},
                occurred_at=func.now(),
                status=DeliveryStatus.PENDING,
                next_attempt_at=func.now() + func.make_interval(0, 0, 0, 1),
            )
        )
    response = await client.delete("/v1/integrations/zendesk-eu", headers=auth(admin_key))
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get("/v1/integrations/zendesk-eu", headers=auth(admin_key)), 404)
    async with state.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(DeliveryRow))
    assert count == 0
    # the name is free again
    await create(client, admin_key, zendesk_body())


async def test_delete_is_refused_while_a_rule_targets_it(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    await create(client, admin_key, zendesk_body())
    rule = await client.post(
        "/v1/rules",
        json={"name": "To Zendesk", "position": 5, "action": {"targets": ["zendesk-eu"]}},
        headers=auth(admin_key),
    )
    assert rule.status_code == 201, rule.text
    refused = await client.delete("/v1/integrations/zendesk-eu", headers=auth(admin_key))
    body = assert_problem(refused, 409)
    assert "To Zendesk" in body["detail"]
    rule_id = rule.json()["id"]
    assert (await client.delete(f"/v1/rules/{rule_id}", headers=auth(admin_key))).status_code == 204
    deleted = await client.delete("/v1/integrations/zendesk-eu", headers=auth(admin_key))
    assert deleted.status_code == 204


# --- connection test --------------------------------------------------------------------


async def test_connection_test_ok_and_failure(
    private_client: httpx.AsyncClient, admin_key: str, vendor_server: FakeVendorServer
) -> None:
    good = zendesk_body(
        "zendesk-good",
        config={"base_url": vendor_server.zendesk_url, "email": ZENDESK_EMAIL},
        secrets={"api_token": ZENDESK_API_TOKEN},
        enabled=False,  # a disabled integration can be tested too
    )
    await create(private_client, admin_key, good)
    response = await private_client.post(
        "/v1/integrations/zendesk-good/test", headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "status_code": 200,
        "detail": "HTTP 200 OK",
        "error": None,
    }
    [request] = vendor_server.requests("GET", "/zendesk/api/v2/users/me")
    assert request.headers["authorization"].startswith("Basic ")

    bad = zendesk_body(
        "zendesk-bad",
        config={"base_url": vendor_server.zendesk_url, "email": ZENDESK_EMAIL},
        secrets={"api_token": "wrong-token-123"},
    )
    await create(private_client, admin_key, bad)
    response = await private_client.post(
        "/v1/integrations/zendesk-bad/test", headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": False,
        "status_code": 401,
        "detail": None,
        "error": "HTTP 401 Unauthorized",
    }
    assert "wrong-token-123" not in response.text
    assert "authenticate" not in response.text  # the vendor's body is never shown


async def test_webhook_test_message_is_signed(
    private_client: httpx.AsyncClient, admin_key: str, vendor_server: FakeVendorServer
) -> None:
    created = await create(
        private_client,
        admin_key,
        {"name": "hooks", "kind": "webhook", "config": {"url": vendor_server.webhook_url("a")}},
    )
    response = await private_client.post("/v1/integrations/hooks/test", headers=auth(admin_key))
    assert response.json()["ok"] is True, response.text
    assert response.json()["status_code"] == 204
    [request] = vendor_server.requests("POST", "/webhooks/a")
    signing.verify(created["signing_secret"], request.headers, request.body, now=time.time())
    assert request.json["type"] == "integration.test"


async def test_connection_test_reports_refused_targets(
    client: httpx.AsyncClient, admin_key: str, state: AppState
) -> None:
    # Stored while private targets were allowed; this app no longer allows them.
    async with state.sessionmaker() as session, session.begin():
        session.add(
            IntegrationRow(
                name="internal",
                kind="zendesk",
                enabled=True,
                events=TICKET_EVENTS,
                config={"base_url": "http://127.0.0.1:9", "email": "a@b.example"},
                secrets={"api_token": ZENDESK_TOKEN},
                inbound_secret=signing.generate_secret(),
            )
        )
    response = await client.post("/v1/integrations/internal/test", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["status_code"] is None
    assert "loopback" in body["error"]
    assert ZENDESK_TOKEN not in response.text


async def test_secrets_never_reach_responses_or_logs(
    client: httpx.AsyncClient,
    private_client: httpx.AsyncClient,
    admin_key: str,
    vendor_server: FakeVendorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    responses: list[httpx.Response] = []
    created = await private_client.post(
        "/v1/integrations",
        json=zendesk_body(
            config={"base_url": vendor_server.zendesk_url, "email": ZENDESK_EMAIL},
            secrets={"api_token": ZENDESK_API_TOKEN},
        ),
        headers=auth(admin_key),
    )
    assert created.status_code == 201
    hooks = await private_client.post(
        "/v1/integrations",
        json={"name": "hooks", "kind": "webhook", "config": {"url": vendor_server.webhook_url()}},
        headers=auth(admin_key),
    )
    assert hooks.status_code == 201
    shown_once = [
        created.json()["inbound_secret"],
        hooks.json()["inbound_secret"],
        hooks.json()["signing_secret"],
    ]
    responses.append(
        await private_client.post("/v1/integrations/zendesk-eu/test", headers=auth(admin_key))
    )
    responses.append(
        await private_client.post("/v1/integrations/hooks/test", headers=auth(admin_key))
    )
    responses.append(
        await private_client.patch(
            "/v1/integrations/zendesk-eu",
            json={"secrets": {"api_token": "zd-rotated-token-77"}},
            headers=auth(admin_key),
        )
    )
    responses.append(
        await client.patch(
            "/v1/integrations/zendesk-eu",
            json={"secrets": {"api_token": "bad token-88"}},
            headers=auth(admin_key),
        )
    )
    responses.append(
        await private_client.post("/v1/integrations/zendesk-eu/test", headers=auth(admin_key))
    )
    responses.append(await client.get("/v1/integrations", headers=auth(admin_key)))
    responses.append(await client.get("/v1/integrations/hooks", headers=auth(admin_key)))
    responses.append(await client.get("/v1/integrations/zendesk-eu", headers=auth(admin_key)))
    assert [r.status_code for r in responses] == [200, 200, 200, 422, 200, 200, 200, 200]
    assert responses[0].json()["ok"] is True
    assert responses[4].json()["ok"] is False  # the rotated token is not the vendor's

    secrets = [ZENDESK_API_TOKEN, "zd-rotated-token-77", "bad token-88", *shown_once]
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "integration created" in logged  # the capture does see the service's logs
    for secret in secrets:
        assert secret not in logged
        for response in responses:
            assert secret not in response.text
    assert created.json()["secrets_set"] == ["api_token"]


# --- who may -----------------------------------------------------------------------------


async def test_auth(client: httpx.AsyncClient, make_key: KeyFactory, admin_key: str) -> None:
    await create(client, admin_key, zendesk_body())
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/integrations", None),
        ("POST", "/v1/integrations", zendesk_body("other")),
        ("GET", "/v1/integrations/zendesk-eu", None),
        ("PATCH", "/v1/integrations/zendesk-eu", {"enabled": False}),
        ("DELETE", "/v1/integrations/zendesk-eu", None),
        ("POST", "/v1/integrations/zendesk-eu/test", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    everything_but_admin = await make_key(*(scope for scope in Scope if scope is not Scope.ADMIN))
    restricted_admin = await make_key(Scope.ADMIN, locations=["store-berlin-01"])
    for key in (everything_but_admin, restricted_admin):
        for method, path, body in requests:
            response = await client.request(method, path, json=body, headers=auth(key))
            assert assert_problem(response, 403)["type"] == "/problems/forbidden", (method, path)
    listed = (await client.get("/v1/integrations", headers=auth(admin_key))).json()["items"]
    assert [(item["name"], item["enabled"]) for item in listed] == [("zendesk-eu", True)]
