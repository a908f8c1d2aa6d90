"""The vendor adapters against fake vendor APIs on 127.0.0.1: exact requests, outcomes
(retryable vs permanent), Standard Webhooks signatures, the SSRF guard, and the
config/secrets models."""

from __future__ import annotations

import asyncio
import base64
import copy
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook

from app.integrations import signing
from app.integrations.base import (
    ALL_EVENT_TYPES,
    TICKET_EVENT_TYPES,
    DeliveryResult,
    IntegrationAdapter,
    OutgoingEvent,
    PermanentDeliveryError,
    RetryableDeliveryError,
    classify_response,
    parse_retry_after,
)
from app.integrations.registry import KIND_SPECS, IntegrationKind
from app.integrations.ssrf import UnsafeTargetError, ensure_public_target
from app.integrations.ticket_content import read_ticket_event
from app.integrations.transport import created_record_id
from tests.fixtures.server import free_port
from tests.fixtures.vendors import (
    FRESHDESK_API_KEY,
    HUBSPOT_ACCESS_TOKEN,
    SALESFORCE_ACCESS_TOKEN,
    ZENDESK_API_TOKEN,
    ZENDESK_EMAIL,
    FakeVendorServer,
    ScriptedResponse,
    vendor_server_fixture,  # noqa: F401 (fixture)
    vendor_server_session_fixture,  # noqa: F401 (fixture)
)

OCCURRED_AT = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
CUSTOMER = {
    "id": "C-1001",
    "email": "ana@example.com",
    "phone": "+4915112345678",
    "name": "Ana Roth",
    "locale": "de-DE",
}
TICKET: dict[str, Any] = {
    "id": "42",
    "status": "open",
    "priority": "high",
    "reason": "Strong detractors",
    "assignee": "lena@acme.example",
    "team": "Berlin stores",
    "location_id": "store-berlin-01",
    "channel": "in_store",
    "customer": CUSTOMER,
    "feedback_ids": ["7"],
    "sla_due_at": "2026-11-21T09:15:00Z",
    "created_at": "2026-11-20T09:15:01Z",
    "updated_at": "2026-11-20T09:15:01Z",
    "resolved_at": None,
    "external_refs": [],
    "timeline": [
        {"at": "2026-11-20T09:15:01Z", "kind": "created", "detail": "rule Strong detractors"}
    ],
}
FEEDBACK: dict[str, Any] = {
    "id": "7",
    "event_id": "pos-eu-7f3a9c21",
    "occurred_at": "2026-11-20T09:15:00Z",
    "received_at": "2026-11-20T09:15:01Z",
    "ingested_via": "rest",
    "channel": "in_store",
    "source": "pos-eu",
    "customer": CUSTOMER,
    "location_id": "store-berlin-01",
    "touchpoint": "checkout",
    "journey_stage": "purchase",
    "scores": [
        {"metric": "nps", "value": 3, "scale": None},
        {"metric": "csat", "value": 2, "scale": 5},
    ],
    "text": "Die Schlange war 20 Minuten lang und niemand hat geholfen.",
    "language": "de",
    "sentiment": None,
    "tags": ["queue"],
    "metadata": {"receipt": "R-88812"},
    "ticket_id": "42",
}
EXPECTED_SUBJECT = "Strong detractors - NPS 3/10, CSAT 2/5 - store-berlin-01 (in_store) - ticket 42"
EXPECTED_DESCRIPTION = """\
Follow-up ticket 42 from the feedback loop service.

Reason: Strong detractors
Priority: high
Status: open
Channel: in_store
Location: store-berlin-01
Customer: Ana Roth <ana@example.com>, +4915112345678
Customer id: C-1001
Assignee: lena@acme.example
Team: Berlin stores
SLA due: 2026-11-21T09:15:00Z

Feedback (1, newest last):

1. 2026-11-20 09:15 UTC, in_store, touchpoint checkout, location store-berlin-01, feedback 7
   Scores: NPS 3/10, CSAT 2/5
   "Die Schlange war 20 Minuten lang und niemand hat geholfen."
   Tags: queue"""

SIGNING_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def ticket_event(
    event_type: str = "ticket.created",
    *,
    external_id: str | None = None,
    delivery_id: str = "dlv-1",
    feedback: list[dict[str, Any]] | None = None,
    **ticket_changes: Any,
) -> OutgoingEvent:
    ticket = copy.deepcopy(TICKET) | ticket_changes
    return OutgoingEvent(
        delivery_id=delivery_id,
        event_type=event_type,
        occurred_at=OCCURRED_AT,
        data=ticket,
        feedback=[copy.deepcopy(FEEDBACK)] if feedback is None else feedback,
        external_id=external_id,
    )


@dataclass(frozen=True)
class Vendor:
    kind: IntegrationKind
    collection_path: str  # create: POST here; update: <method> {collection_path}/{id}
    update_method: str
    secret: str
    config: Callable[[FakeVendorServer], dict[str, Any]]
    secrets: dict[str, str]


SALESFORCE_CASES = "/salesforce/services/data/v62.0/sobjects/Case"
VENDORS = {
    "zendesk": Vendor(
        IntegrationKind.ZENDESK,
        "/zendesk/api/v2/tickets",
        "PUT",
        ZENDESK_API_TOKEN,
        lambda fake: {"base_url": fake.zendesk_url, "email": ZENDESK_EMAIL},
        {"api_token": ZENDESK_API_TOKEN},
    ),
    "salesforce": Vendor(
        IntegrationKind.SALESFORCE,
        SALESFORCE_CASES,
        "PATCH",
        SALESFORCE_ACCESS_TOKEN,
        lambda fake: {"instance_url": fake.salesforce_url, "api_version": "62.0"},
        {"access_token": SALESFORCE_ACCESS_TOKEN},
    ),
    "hubspot": Vendor(
        IntegrationKind.HUBSPOT,
        "/hubspot/crm/v3/objects/tickets",
        "PATCH",
        HUBSPOT_ACCESS_TOKEN,
        lambda fake: {"base_url": fake.hubspot_url, "portal_id": "2600"},
        {"access_token": HUBSPOT_ACCESS_TOKEN},
    ),
    "freshdesk": Vendor(
        IntegrationKind.FRESHDESK,
        "/freshdesk/api/v2/tickets",
        "PUT",
        FRESHDESK_API_KEY,
        lambda fake: {"base_url": fake.freshdesk_url},
        {"api_key": FRESHDESK_API_KEY},
    ),
}
vendor_names = pytest.mark.parametrize("vendor_name", sorted(VENDORS))


def build(
    kind: IntegrationKind,
    config: dict[str, Any],
    secrets: dict[str, str],
    *,
    allow_private: bool = True,
) -> IntegrationAdapter:
    return KIND_SPECS[kind].build(config, secrets, allow_private=allow_private)


def build_vendor(
    fake: FakeVendorServer, name: str, *, allow_private: bool = True, **config: Any
) -> IntegrationAdapter:
    vendor = VENDORS[name]
    return build(
        vendor.kind, vendor.config(fake) | config, vendor.secrets, allow_private=allow_private
    )


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(3.0)) as client:
        yield client


# -- what an agent reads ---------------------------------------------------------------------


def test_subject_and_description_read_well_for_an_agent() -> None:
    content = read_ticket_event(ticket_event())
    assert content.subject() == EXPECTED_SUBJECT
    assert content.description() == EXPECTED_DESCRIPTION


def test_update_comment_names_the_change_and_the_newest_feedback() -> None:
    event = ticket_event(
        "ticket.updated",
        status="waiting",
        timeline=[*TICKET["timeline"], {"at": "x", "kind": "note", "detail": "Called Ana back"}],
    )
    comment = read_ticket_event(event).update_comment()
    assert comment.splitlines()[:8] == [
        "Ticket 42 was updated in the feedback loop service.",
        "",
        "Status: waiting",
        "Priority: high",
        "Assignee: lena@acme.example",
        "Team: Berlin stores",
        "Latest change: note: Called Ana back",
        "",
    ]
    assert comment.splitlines()[8:10] == [
        "Newest feedback:",
        "1. 2026-11-20 09:15 UTC, in_store, touchpoint checkout, location store-berlin-01, "
        "feedback 7",
    ]


def test_anonymous_ticket_without_feedback_still_has_subject_and_description() -> None:
    content = read_ticket_event(
        ticket_event(feedback=[], customer=None, location_id=None, reason="Poor scores")
    )
    assert content.subject() == "Poor scores - in_store - ticket 42"
    assert "Customer" not in content.description()
    assert "Feedback (" not in content.description()


def test_description_html_escapes_customer_text() -> None:
    feedback = copy.deepcopy(FEEDBACK) | {"text": "<script>alert(1)</script> & more"}
    html_text = read_ticket_event(ticket_event(feedback=[feedback])).description_html()
    assert "&quot;&lt;script&gt;alert(1)&lt;/script&gt; &amp; more&quot;" in html_text
    assert "<script>" not in html_text
    assert html_text.startswith("Follow-up ticket 42 from the feedback loop service.<br>\n<br>\n")


def test_a_vendor_refuses_feedback_events_and_malformed_ticket_data() -> None:
    feedback_event = OutgoingEvent("d", "feedback.received", OCCURRED_AT, FEEDBACK, (), None)
    with pytest.raises(PermanentDeliveryError, match=r"^feedback.received is not delivered"):
        read_ticket_event(feedback_event)
    with pytest.raises(PermanentDeliveryError) as caught:
        read_ticket_event(ticket_event(status="pondering"))
    assert str(caught.value) == "event data is not a ticket (bad: status)"


# -- Zendesk ---------------------------------------------------------------------------------


async def test_zendesk_create(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    adapter = build_vendor(vendor_server, "zendesk")

    result = await adapter.send(http, ticket_event(delivery_id="dlv-zd-1"))

    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("POST", "/zendesk/api/v2/tickets")
    assert request.headers["authorization"] == basic_auth(
        f"{ZENDESK_EMAIL}/token", ZENDESK_API_TOKEN
    )
    assert request.headers["idempotency-key"] == "dlv-zd-1"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "ticket": {
            "subject": EXPECTED_SUBJECT,
            "comment": {"body": EXPECTED_DESCRIPTION, "public": False},
            "priority": "high",
            "tags": ["feedback_loop", "channel_in_store", "queue"],
            "external_id": "42",
            "requester": {"name": "Ana Roth", "email": "ana@example.com"},
        }
    }
    [zendesk_id] = vendor_server.records("zendesk")
    assert result == DeliveryResult(
        status_code=201,
        external_id=zendesk_id,
        external_url=f"{vendor_server.zendesk_url}/agent/tickets/{zendesk_id}",
    )


async def test_zendesk_create_retried_with_the_same_delivery_id_makes_one_ticket(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = build_vendor(vendor_server, "zendesk")
    first = await adapter.send(http, ticket_event(delivery_id="dlv-same"))
    second = await adapter.send(http, ticket_event(delivery_id="dlv-same"))
    assert first.external_id == second.external_id
    assert len(vendor_server.records("zendesk")) == 1


async def test_zendesk_requester_left_out_without_customer_email(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = build_vendor(vendor_server, "zendesk")
    await adapter.send(http, ticket_event(customer={"id": "C-9", "phone": "+4930123456"}))
    ticket = vendor_server.requests()[0].json["ticket"]
    assert "requester" not in ticket
    assert "status" not in ticket  # a fresh ticket stays Zendesk's "new"


@pytest.mark.parametrize(
    ("status", "zendesk_status"),
    [
        ("open", "open"),
        ("in_progress", "open"),
        ("waiting", "pending"),
        ("resolved", "solved"),
        ("closed", "closed"),
    ],
)
async def test_zendesk_update(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, status: str, zendesk_status: str
) -> None:
    adapter = build_vendor(vendor_server, "zendesk")
    created = await adapter.send(http, ticket_event())
    assert created.external_id is not None

    result = await adapter.send(
        http,
        ticket_event(
            "ticket.updated", external_id=created.external_id, status=status, priority="urgent"
        ),
    )

    request = vendor_server.requests()[-1]
    assert (request.method, request.path) == (
        "PUT",
        f"/zendesk/api/v2/tickets/{created.external_id}",
    )
    assert request.headers["authorization"] == basic_auth(
        f"{ZENDESK_EMAIL}/token", ZENDESK_API_TOKEN
    )
    ticket = request.json["ticket"]
    assert set(ticket) == {"status", "priority", "comment"}
    assert (ticket["status"], ticket["priority"]) == (zendesk_status, "urgent")
    assert ticket["comment"]["public"] is False
    assert ticket["comment"]["body"].startswith(
        "Ticket 42 was updated in the feedback loop service."
    )
    assert f"Status: {status}" in ticket["comment"]["body"]
    assert vendor_server.records("zendesk")[created.external_id]["status"] == zendesk_status
    assert result == DeliveryResult(200, created.external_id, created.external_url)


async def test_zendesk_check(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    result = await build_vendor(vendor_server, "zendesk").check(http)
    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("GET", "/zendesk/api/v2/users/me")
    assert request.headers["authorization"] == basic_auth(
        f"{ZENDESK_EMAIL}/token", ZENDESK_API_TOKEN
    )
    assert result == DeliveryResult(200, None, None)


# -- Salesforce ------------------------------------------------------------------------------


async def test_salesforce_create(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    adapter = build_vendor(vendor_server, "salesforce")

    result = await adapter.send(http, ticket_event(priority="urgent"))

    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("POST", SALESFORCE_CASES)
    assert request.headers["authorization"] == f"Bearer {SALESFORCE_ACCESS_TOKEN}"
    assert request.json == {
        "Subject": EXPECTED_SUBJECT,
        "Description": EXPECTED_DESCRIPTION.replace("Priority: high", "Priority: urgent"),
        "Priority": "High",
        "Status": "New",
        "Origin": "Web",
        "SuppliedEmail": "ana@example.com",
        "SuppliedName": "Ana Roth",
    }
    [case_id] = vendor_server.records("salesforce")
    assert result == DeliveryResult(
        201, case_id, f"{vendor_server.salesforce_url}/lightning/r/Case/{case_id}/view"
    )


@pytest.mark.parametrize(
    ("status", "priority", "case_status", "case_priority"),
    [
        ("in_progress", "low", "Working", "Low"),
        ("waiting", "normal", "Working", "Medium"),
        ("resolved", "high", "Closed", "High"),
        ("closed", "urgent", "Closed", "High"),
    ],
)
async def test_salesforce_update(
    vendor_server: FakeVendorServer,
    http: httpx.AsyncClient,
    status: str,
    priority: str,
    case_status: str,
    case_priority: str,
) -> None:
    adapter = build_vendor(vendor_server, "salesforce")
    created = await adapter.send(http, ticket_event())
    assert created.external_id is not None

    result = await adapter.send(
        http,
        ticket_event(
            "ticket.resolved", external_id=created.external_id, status=status, priority=priority
        ),
    )

    request = vendor_server.requests()[-1]
    assert (request.method, request.path) == ("PATCH", f"{SALESFORCE_CASES}/{created.external_id}")
    assert request.headers["authorization"] == f"Bearer {SALESFORCE_ACCESS_TOKEN}"
    assert set(request.json) == {"Subject", "Description", "Priority", "Status"}
    assert (request.json["Status"], request.json["Priority"]) == (case_status, case_priority)
    assert result == DeliveryResult(204, created.external_id, created.external_url)


async def test_salesforce_uses_configured_picklist_values(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = build_vendor(
        vendor_server,
        "salesforce",
        origin="Feedback",
        status_values={"open": "Neu", "waiting": "On Hold"},
    )
    await adapter.send(http, ticket_event())
    await adapter.send(http, ticket_event(status="waiting"))
    first, second = (request.json for request in vendor_server.requests())
    assert (first["Status"], first["Origin"]) == ("Neu", "Feedback")
    assert second["Status"] == "On Hold"


async def test_salesforce_check(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    result = await build_vendor(vendor_server, "salesforce").check(http)
    [request] = vendor_server.requests()
    assert (request.method, request.path, request.body) == ("GET", SALESFORCE_CASES, b"")
    assert request.headers["authorization"] == f"Bearer {SALESFORCE_ACCESS_TOKEN}"
    assert result == DeliveryResult(200, None, None)


# -- HubSpot ---------------------------------------------------------------------------------


async def test_hubspot_create(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    adapter = build_vendor(vendor_server, "hubspot")

    result = await adapter.send(http, ticket_event(priority="normal"))

    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("POST", "/hubspot/crm/v3/objects/tickets")
    assert request.headers["authorization"] == f"Bearer {HUBSPOT_ACCESS_TOKEN}"
    assert request.json == {
        "properties": {
            "subject": EXPECTED_SUBJECT,
            "content": EXPECTED_DESCRIPTION.replace("Priority: high", "Priority: normal"),
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "hs_ticket_priority": "MEDIUM",
        }
    }
    [hubspot_id] = vendor_server.records("hubspot")
    assert result == DeliveryResult(
        201, hubspot_id, f"https://app.hubspot.com/contacts/2600/record/0-5/{hubspot_id}"
    )


@pytest.mark.parametrize(
    ("status", "stage"),
    [("open", "1"), ("in_progress", "3"), ("waiting", "2"), ("resolved", "4"), ("closed", "4")],
)
async def test_hubspot_update(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, status: str, stage: str
) -> None:
    adapter = build_vendor(vendor_server, "hubspot")
    created = await adapter.send(http, ticket_event())
    assert created.external_id is not None

    await adapter.send(
        http,
        ticket_event(
            "ticket.updated", external_id=created.external_id, status=status, priority="urgent"
        ),
    )

    request = vendor_server.requests()[-1]
    path = f"/hubspot/crm/v3/objects/tickets/{created.external_id}"
    assert (request.method, request.path) == ("PATCH", path)
    properties = request.json["properties"]
    assert (properties["hs_pipeline_stage"], properties["hs_ticket_priority"]) == (stage, "HIGH")
    assert properties["hs_pipeline"] == "0"


async def test_hubspot_configured_pipeline_and_no_link_without_portal(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = build(
        IntegrationKind.HUBSPOT,
        {"base_url": vendor_server.hubspot_url, "pipeline_id": "77", "stage_ids": {"open": "701"}},
        {"access_token": HUBSPOT_ACCESS_TOKEN},
    )
    result = await adapter.send(http, ticket_event())
    properties = vendor_server.requests()[0].json["properties"]
    assert (properties["hs_pipeline"], properties["hs_pipeline_stage"]) == ("77", "701")
    assert result.external_url is None


async def test_hubspot_check(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    result = await build_vendor(vendor_server, "hubspot").check(http)
    [request] = vendor_server.requests()
    assert (request.method, request.path, request.query) == (
        "GET",
        "/hubspot/crm/v3/objects/tickets",
        {"limit": "1"},
    )
    assert request.headers["authorization"] == f"Bearer {HUBSPOT_ACCESS_TOKEN}"
    assert result == DeliveryResult(200, None, None)


# -- Freshdesk -------------------------------------------------------------------------------


async def test_freshdesk_create(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    adapter = build_vendor(vendor_server, "freshdesk")

    result = await adapter.send(http, ticket_event(priority="low"))

    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("POST", "/freshdesk/api/v2/tickets")
    assert request.headers["authorization"] == basic_auth(FRESHDESK_API_KEY, "X")
    description = EXPECTED_DESCRIPTION.replace("Priority: high", "Priority: low")
    assert request.json == {
        "subject": EXPECTED_SUBJECT,
        "description": "<br>\n".join(
            line.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            for line in description.split("\n")
        ),
        "priority": 1,
        "status": 2,
        "email": "ana@example.com",
    }
    [freshdesk_id] = vendor_server.records("freshdesk")
    assert result == DeliveryResult(
        201, freshdesk_id, f"{vendor_server.freshdesk_url}/a/tickets/{freshdesk_id}"
    )


@pytest.mark.parametrize(
    ("status", "priority", "status_code", "priority_code"),
    [
        ("in_progress", "normal", 2, 2),
        ("waiting", "high", 3, 3),
        ("resolved", "urgent", 4, 4),
        ("closed", "low", 5, 1),
    ],
)
async def test_freshdesk_update(
    vendor_server: FakeVendorServer,
    http: httpx.AsyncClient,
    status: str,
    priority: str,
    status_code: int,
    priority_code: int,
) -> None:
    adapter = build_vendor(vendor_server, "freshdesk")
    created = await adapter.send(http, ticket_event())
    assert created.external_id is not None

    result = await adapter.send(
        http,
        ticket_event(
            "ticket.updated", external_id=created.external_id, status=status, priority=priority
        ),
    )

    request = vendor_server.requests()[-1]
    assert (request.method, request.path) == (
        "PUT",
        f"/freshdesk/api/v2/tickets/{created.external_id}",
    )
    assert request.headers["authorization"] == basic_auth(FRESHDESK_API_KEY, "X")
    assert set(request.json) == {"subject", "description", "priority", "status"}
    assert (request.json["status"], request.json["priority"]) == (status_code, priority_code)
    assert result == DeliveryResult(200, created.external_id, created.external_url)


@pytest.mark.parametrize(
    ("customer", "fallback", "requester"),
    [
        ({"phone": "+4930123456", "name": "Ben"}, None, {"phone": "+4930123456", "name": "Ben"}),
        ({"phone": "+4930123456"}, None, {"phone": "+4930123456", "name": "+4930123456"}),
        ({"id": "C-7"}, "cx@acme.example", {"email": "cx@acme.example"}),
        (None, "cx@acme.example", {"email": "cx@acme.example"}),
    ],
)
async def test_freshdesk_requester_without_customer_email(
    vendor_server: FakeVendorServer,
    http: httpx.AsyncClient,
    customer: dict[str, str] | None,
    fallback: str | None,
    requester: dict[str, str],
) -> None:
    config: dict[str, Any] = {"fallback_requester_email": fallback} if fallback else {}
    adapter = build_vendor(vendor_server, "freshdesk", **config)
    await adapter.send(http, ticket_event(customer=customer))
    body = vendor_server.requests()[0].json
    assert {key: body[key] for key in ("email", "phone", "name") if key in body} == requester


async def test_freshdesk_without_any_requester_fails_permanently_without_sending(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = build_vendor(vendor_server, "freshdesk")
    with pytest.raises(PermanentDeliveryError) as caught:
        await adapter.send(http, ticket_event(customer={"id": "C-7"}))
    assert str(caught.value) == (
        "the customer has no email or phone and no fallback_requester_email is configured; "
        "Freshdesk needs a requester"
    )
    assert vendor_server.requests() == []


async def test_freshdesk_check(vendor_server: FakeVendorServer, http: httpx.AsyncClient) -> None:
    result = await build_vendor(vendor_server, "freshdesk").check(http)
    [request] = vendor_server.requests()
    assert (request.method, request.path, request.query) == (
        "GET",
        "/freshdesk/api/v2/tickets",
        {"per_page": "1"},
    )
    assert request.headers["authorization"] == basic_auth(FRESHDESK_API_KEY, "X")
    assert result == DeliveryResult(200, None, None)


# -- every vendor ----------------------------------------------------------------------------


@vendor_names
@pytest.mark.parametrize("event_type", ["ticket.updated", "ticket.resolved"])
async def test_update_without_external_id_creates(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str, event_type: str
) -> None:
    adapter = build_vendor(vendor_server, vendor_name)
    result = await adapter.send(http, ticket_event(event_type, status="resolved"))
    [request] = vendor_server.requests()
    assert (request.method, request.path) == ("POST", VENDORS[vendor_name].collection_path)
    assert result.status_code == 201
    assert list(vendor_server.records(vendor_name)) == [result.external_id]


@vendor_names
async def test_update_of_unknown_record_is_permanent(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    adapter = build_vendor(vendor_server, vendor_name)
    with pytest.raises(PermanentDeliveryError) as caught:
        await adapter.send(http, ticket_event("ticket.updated", external_id="999999"))
    assert (caught.value.status_code, str(caught.value)) == (404, "HTTP 404 Not Found")
    assert vendor_server.requests()[0].method == VENDORS[vendor_name].update_method


@vendor_names
async def test_wrong_credentials_are_permanent(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    vendor = VENDORS[vendor_name]
    wrong = {name: "wrong-token" for name in vendor.secrets}
    adapter = build(vendor.kind, vendor.config(vendor_server), wrong)
    for attempt in (partial(adapter.send, http, ticket_event()), partial(adapter.check, http)):
        with pytest.raises(PermanentDeliveryError) as caught:
            await attempt()
        assert (caught.value.status_code, str(caught.value)) == (401, "HTTP 401 Unauthorized")


@vendor_names
async def test_a_vendors_validation_error_is_permanent(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    adapter = build_vendor(vendor_server, vendor_name)
    path = VENDORS[vendor_name].collection_path
    vendor_server.script("POST", path, ScriptedResponse(400), ScriptedResponse(422))
    for status, reason in ((400, "Bad Request"), (422, "Unprocessable Entity")):
        with pytest.raises(PermanentDeliveryError) as caught:
            await adapter.send(http, ticket_event())
        assert not isinstance(caught.value, RetryableDeliveryError)
        assert (caught.value.status_code, str(caught.value)) == (status, f"HTTP {status} {reason}")
    assert vendor_server.records(vendor_name) == {}


@vendor_names
@pytest.mark.parametrize(
    ("status", "headers", "retry_after_s"),
    [
        (408, {}, None),
        (425, {}, None),
        (429, {"Retry-After": "7"}, 7.0),
        (500, {}, None),
        (503, {"Retry-After": "120"}, 120.0),
        (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: now
    ],
)
async def test_retryable_statuses_then_success(
    vendor_server: FakeVendorServer,
    http: httpx.AsyncClient,
    vendor_name: str,
    status: int,
    headers: dict[str, str],
    retry_after_s: float | None,
) -> None:
    adapter = build_vendor(vendor_server, vendor_name)
    path = VENDORS[vendor_name].collection_path
    vendor_server.script("POST", path, ScriptedResponse(status, headers=headers))

    with pytest.raises(RetryableDeliveryError) as caught:
        await adapter.send(http, ticket_event())
    assert caught.value.status_code == status
    assert caught.value.retry_after_s == retry_after_s

    result = await adapter.send(http, ticket_event())  # the script is used up: success
    assert result.status_code == 201
    assert len(vendor_server.records(vendor_name)) == 1


async def test_retry_after_as_a_future_http_date(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    vendor_server.script(
        "POST", "/zendesk/api/v2/tickets", ScriptedResponse(429, headers={"Retry-After": later})
    )
    with pytest.raises(RetryableDeliveryError) as caught:
        await build_vendor(vendor_server, "zendesk").send(http, ticket_event())
    assert caught.value.retry_after_s is not None
    assert 85 <= caught.value.retry_after_s <= 90


@vendor_names
async def test_slow_answer_times_out_retryably(
    vendor_server: FakeVendorServer, vendor_name: str
) -> None:
    adapter = build_vendor(vendor_server, vendor_name)
    path = VENDORS[vendor_name].collection_path
    vendor_server.script("POST", path, ScriptedResponse(delay_s=1.0))
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as impatient:
        with pytest.raises(RetryableDeliveryError) as caught:
            await adapter.send(impatient, ticket_event())
    assert str(caught.value) == "timed out (ReadTimeout)"
    assert caught.value.status_code is None


@vendor_names
async def test_connection_refused_is_retryable(http: httpx.AsyncClient, vendor_name: str) -> None:
    vendor = VENDORS[vendor_name]
    closed = FakeVendorServer()
    closed.base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    adapter = build(vendor.kind, vendor.config(closed), vendor.secrets)
    with pytest.raises(RetryableDeliveryError) as caught:
        await adapter.send(http, ticket_event())
    assert str(caught.value) == "network error (ConnectError)"


@vendor_names
async def test_vendors_refuse_feedback_events(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    event = OutgoingEvent("d", "feedback.received", OCCURRED_AT, FEEDBACK, (), None)
    with pytest.raises(PermanentDeliveryError):
        await build_vendor(vendor_server, vendor_name).send(http, event)
    assert vendor_server.requests() == []


@vendor_names
async def test_success_without_a_readable_id_is_permanent(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    path = VENDORS[vendor_name].collection_path
    vendor_server.script("POST", path, ScriptedResponse(201, json={"unexpected": True}))
    with pytest.raises(PermanentDeliveryError) as caught:
        await build_vendor(vendor_server, vendor_name).send(http, ticket_event())
    assert caught.value.status_code == 201
    assert "the record may exist in the vendor system" in str(caught.value)


@vendor_names
async def test_secrets_and_customer_data_never_appear_in_errors(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    vendor = VENDORS[vendor_name]
    adapter = build_vendor(vendor_server, vendor_name)
    echo = {"error": f"bad token {vendor.secret} for ana@example.com", "body": "Ana Roth"}
    vendor_server.script(
        "POST",
        vendor.collection_path,
        ScriptedResponse(500, json=echo),
        ScriptedResponse(400, json=echo),
    )
    closed = FakeVendorServer()
    closed.base_url = f"http://127.0.0.1:{free_port()}"
    unreachable = build(vendor.kind, vendor.config(closed), vendor.secrets)
    messages = []
    for attempt_adapter in (adapter, adapter, unreachable):
        with pytest.raises(Exception) as caught:  # noqa: PT011 (inspecting every failure)
            await attempt_adapter.send(http, ticket_event())
        messages.append(str(caught.value) + repr(caught.value))
    assert vendor.secret not in repr(adapter)  # the adapter's repr may show its URL, not its token
    with pytest.raises(PermanentDeliveryError) as invalid:
        build(
            vendor.kind,
            vendor.config(vendor_server),
            {name: f"{vendor.secret} x" for name in vendor.secrets},
        )
    messages.append(str(invalid.value))
    for message in messages:
        for forbidden in (vendor.secret, "ana@example.com", "Ana Roth", vendor_server.base_url):
            assert forbidden not in message


# -- webhooks --------------------------------------------------------------------------------


def webhook_adapter(fake: FakeVendorServer, *, allow_private: bool = True) -> IntegrationAdapter:
    return build(
        IntegrationKind.WEBHOOK,
        {"url": fake.webhook_url("crm") + "?route=eu"},
        {"signing_secret": SIGNING_SECRET},
        allow_private=allow_private,
    )


async def test_webhook_delivery_is_signed_per_standard_webhooks(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    event = ticket_event(delivery_id="dlv-77")

    result = await webhook_adapter(vendor_server).send(http, event)

    [request] = vendor_server.requests()
    assert (request.method, request.path, request.query) == (
        "POST",
        "/webhooks/crm",
        {"route": "eu"},
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "dlv-77"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.json == {
        "type": "ticket.created",
        "timestamp": "2026-11-20T09:15:00Z",
        "data": TICKET,
    }
    assert request.headers["webhook-signature"] == signing.sign(
        SIGNING_SECRET, "dlv-77", int(request.headers["webhook-timestamp"]), request.body
    )
    signing.verify(SIGNING_SECRET, request.headers, request.body)
    # The reference implementation accepts it too.
    assert Webhook(SIGNING_SECRET).verify(request.body, request.headers) == request.json
    assert result == DeliveryResult(204, None, None)


async def test_webhook_retries_keep_the_webhook_id(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    vendor_server.script("POST", "/webhooks/crm", ScriptedResponse(503))
    adapter = webhook_adapter(vendor_server)
    event = OutgoingEvent("dlv-9", "feedback.received", OCCURRED_AT, FEEDBACK, (), None)
    with pytest.raises(RetryableDeliveryError):
        await adapter.send(http, event)
    await adapter.send(http, event)
    first, second = vendor_server.requests()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "dlv-9"
    assert first.body == second.body
    assert second.json["data"] == FEEDBACK


async def test_webhook_check_sends_a_signed_test_message(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    result = await webhook_adapter(vendor_server).check(http)
    [request] = vendor_server.requests()
    assert request.json["type"] == "integration.test"
    assert request.json["data"] == {}
    assert request.json["timestamp"].endswith("Z")
    assert request.headers["webhook-id"].startswith("msg_test_")
    signing.verify(SIGNING_SECRET, request.headers, request.body)
    assert result.status_code == 204


async def test_webhook_to_a_private_address_is_refused_without_sending(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient
) -> None:
    adapter = webhook_adapter(vendor_server, allow_private=False)
    with pytest.raises(UnsafeTargetError) as caught:
        await adapter.send(http, ticket_event())
    assert str(caught.value) == (
        "target address is loopback; private targets need FEEDBACK_ALLOW_PRIVATE_TARGETS=true"
    )
    assert vendor_server.requests() == []


@vendor_names
async def test_vendor_at_a_private_address_is_refused_without_sending(
    vendor_server: FakeVendorServer, http: httpx.AsyncClient, vendor_name: str
) -> None:
    adapter = build_vendor(vendor_server, vendor_name, allow_private=False)
    for attempt in (partial(adapter.send, http, ticket_event()), partial(adapter.check, http)):
        with pytest.raises(UnsafeTargetError):
            await attempt()
    assert vendor_server.requests() == []


# -- signing ---------------------------------------------------------------------------------


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks reference libraries.
    assert (
        signing.sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_accepts_the_reference_implementations_signature() -> None:
    secret = signing.generate_secret()
    now = datetime.now(UTC).replace(microsecond=0)
    body = b'{"external_id": "1001", "status": "solved"}'
    signature = Webhook(secret).sign("msg_1", now, body.decode())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": f"v1,invalidsignature== {signature}",  # the second one matches
    }
    signing.verify(secret, headers, body)


def signed_headers(
    body: bytes, *, timestamp: int = 1_800_000_000, msg_id: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(SIGNING_SECRET, msg_id, timestamp, body),
    }


BODY = b'{"ticket_id": "42", "status": "resolved"}'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"webhook-signature": None},
            "missing webhook-id, webhook-timestamp or webhook-signature header",
        ),
        ({"webhook-id": None}, "missing webhook-id, webhook-timestamp or webhook-signature header"),
        (
            {"webhook-timestamp": None},
            "missing webhook-id, webhook-timestamp or webhook-signature header",
        ),
        ({"webhook-timestamp": "soon"}, "webhook-timestamp is not a Unix timestamp"),
        ({"webhook-timestamp": "1800000000.5"}, "webhook-timestamp is not a Unix timestamp"),
        ({"webhook-signature": "v1,AAAA"}, "no matching signature"),
        ({"webhook-signature": "v1"}, "no matching signature"),
        ({"webhook-signature": "v1,***not-base64***"}, "no matching signature"),
        ({"webhook-id": "msg_2"}, "no matching signature"),  # signed for another id
    ],
)
def test_verify_refuses(change: dict[str, str | None], message: str) -> None:
    headers = signed_headers(BODY)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(signing.InvalidSignatureError) as caught:
        signing.verify(SIGNING_SECRET, headers, BODY, now=1_800_000_000)
    assert str(caught.value) == message


def test_verify_refuses_other_bodies_versions_and_secrets() -> None:
    headers = signed_headers(BODY)
    with pytest.raises(signing.InvalidSignatureError, match=r"^no matching signature$"):
        signing.verify(SIGNING_SECRET, headers, BODY + b" ", now=1_800_000_000)
    with pytest.raises(signing.InvalidSignatureError, match=r"^no matching signature$"):
        signing.verify(signing.generate_secret(), headers, BODY, now=1_800_000_000)
    v2_only = headers | {"webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}
    with pytest.raises(signing.InvalidSignatureError, match=r"^no matching signature$"):
        signing.verify(SIGNING_SECRET, v2_only, BODY, now=1_800_000_000)


def test_verify_tolerance_window() -> None:
    headers = signed_headers(BODY, timestamp=1_800_000_000)
    signing.verify(SIGNING_SECRET, headers, BODY, now=1_800_000_300)  # exactly 5 minutes
    signing.verify(SIGNING_SECRET, headers, BODY, now=1_799_999_700)
    with pytest.raises(signing.InvalidSignatureError, match=r"^webhook-timestamp is too old$"):
        signing.verify(SIGNING_SECRET, headers, BODY, now=1_800_000_301)
    with pytest.raises(
        signing.InvalidSignatureError, match=r"^webhook-timestamp is too far in the future$"
    ):
        signing.verify(SIGNING_SECRET, headers, BODY, now=1_799_999_699)
    with pytest.raises(signing.InvalidSignatureError, match="too old"):
        signing.verify(SIGNING_SECRET, headers, BODY, now=1_800_000_031, tolerance_s=30)


# -- SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("https://127.9.9.9:8443/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.64.0.1/", "in the shared (carrier-grade NAT) range"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback (embedded in an IPv6 address)"),
        ("http://[::ffff:10.0.0.1]/", "private (embedded in an IPv6 address)"),
        ("http://[2002:7f00:1::]/", "loopback (embedded in an IPv6 address)"),
        ("http://[64:ff9b::a00:1]/", "private (embedded in an IPv6 address)"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://localhost:8080/", "loopback"),
    ],
)
async def test_ssrf_guard_refuses_non_public_targets(url: str, reason: str) -> None:
    with pytest.raises(UnsafeTargetError) as caught:
        await ensure_public_target(url, allow_private=False)
    assert str(caught.value) == (
        f"target address is {reason}; private targets need FEEDBACK_ALLOW_PRIVATE_TARGETS=true"
    )
    assert isinstance(caught.value, PermanentDeliveryError)
    await ensure_public_target(url, allow_private=True)  # allowed when configured


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/feedback", "target URL must use http or https"),
        ("file:///etc/passwd", "target URL must use http or https"),
        ("gopher://127.0.0.1:6379/", "target URL must use http or https"),
        ("http:///path-only", "target URL has no host"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_ssrf_guard_refuses_other_schemes_even_when_private_is_allowed(
    url: str, message: str, allow_private: bool
) -> None:
    with pytest.raises(UnsafeTargetError) as caught:
        await ensure_public_target(url, allow_private=allow_private)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://[2606:4700:4700::1111]:8080/"]
)
async def test_ssrf_guard_accepts_public_addresses(url: str) -> None:
    await ensure_public_target(url, allow_private=False)


def fake_resolver(
    monkeypatch: pytest.MonkeyPatch, answer: list[str] | Exception
) -> list[tuple[str, int]]:
    """Make the running loop's getaddrinfo answer ``answer`` (no DNS traffic in tests)."""
    asked: list[tuple[str, int]] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        asked.append((host, port))
        if isinstance(answer, Exception):
            raise answer
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in answer
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return asked


async def test_ssrf_guard_checks_every_resolved_address(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_resolver(monkeypatch, ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(UnsafeTargetError, match=r"^target address is private;"):
        await ensure_public_target("https://hooks.example.com/x", allow_private=False)
    assert asked == [("hooks.example.com", 443)]


async def test_ssrf_guard_accepts_a_name_with_only_public_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = fake_resolver(monkeypatch, ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    await ensure_public_target("http://hooks.example.com:8080/x", allow_private=False)
    assert asked == [("hooks.example.com", 8080)]


async def test_ssrf_guard_resolution_failure_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(RetryableDeliveryError) as caught:
        await ensure_public_target("https://nowhere.example/", allow_private=False)
    assert str(caught.value) == "could not resolve the target host (gaierror)"
    assert not isinstance(caught.value, PermanentDeliveryError)


# -- responses -------------------------------------------------------------------------------


def response(
    status: int, headers: dict[str, str] | None = None, content: bytes = b""
) -> httpx.Response:
    return httpx.Response(status, headers=headers, content=content)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_classify_response_accepts_2xx(status: int) -> None:
    classify_response(response(status))


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 409, 410, 422])
def test_classify_response_other_statuses_are_permanent(status: int) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        classify_response(response(status, {"Retry-After": "5"}))
    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_classify_response_retryable_statuses(status: int) -> None:
    with pytest.raises(RetryableDeliveryError) as caught:
        classify_response(response(status, {"Retry-After": "30"}))
    assert (caught.value.status_code, caught.value.retry_after_s) == (status, 30.0)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Fri, 20 Nov 2026 10:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_created_record_id_needs_a_readable_id() -> None:
    assert (
        created_record_id(response(201, content=b'{"ticket": {"id": 35436}}'), "ticket", "id")
        == "35436"
    )
    for content in (
        b"",
        b"not json",
        b'{"ticket": {}}',
        b'{"ticket": {"id": true}}',
        b'{"id": ""}',
    ):
        with pytest.raises(PermanentDeliveryError):
            created_record_id(response(201, content=content), "ticket", "id")


# -- registry and models ---------------------------------------------------------------------


def test_registry_lists_every_kind_with_its_events() -> None:
    assert set(KIND_SPECS) == set(IntegrationKind)
    assert KIND_SPECS[IntegrationKind.WEBHOOK].supported_events == ALL_EVENT_TYPES
    assert KIND_SPECS[IntegrationKind.WEBHOOK].generated_secrets == {"signing_secret"}
    for kind in (
        IntegrationKind.ZENDESK,
        IntegrationKind.SALESFORCE,
        IntegrationKind.HUBSPOT,
        IntegrationKind.FRESHDESK,
    ):
        assert KIND_SPECS[kind].supported_events == TICKET_EVENT_TYPES
        assert KIND_SPECS[kind].generated_secrets == frozenset()
    assert {str(event) for event in ALL_EVENT_TYPES} == {
        "feedback.received",
        "ticket.created",
        "ticket.updated",
        "ticket.resolved",
    }


VALID_SETTINGS: dict[IntegrationKind, tuple[dict[str, Any], dict[str, str]]] = {
    IntegrationKind.WEBHOOK: ({"url": "https://hooks.example.com/feedback"}, {}),
    IntegrationKind.ZENDESK: (
        {"base_url": "https://acme.zendesk.com", "email": "bot@acme.example"},
        {"api_token": "t0ken"},
    ),
    IntegrationKind.SALESFORCE: (
        {"instance_url": "https://acme.my.salesforce.com"},
        {"access_token": "t0ken"},
    ),
    IntegrationKind.HUBSPOT: ({}, {"access_token": "t0ken"}),
    IntegrationKind.FRESHDESK: ({"base_url": "https://acme.freshdesk.com"}, {"api_key": "t0ken"}),
}


@pytest.mark.parametrize("kind", list(IntegrationKind))
def test_models_accept_valid_settings_and_reject_extra_fields(kind: IntegrationKind) -> None:
    spec = KIND_SPECS[kind]
    config, secrets = VALID_SETTINGS[kind]
    spec.config_model.model_validate(config)
    spec.secrets_model.model_validate(secrets)
    with pytest.raises(ValidationError) as caught:
        spec.config_model.model_validate(config | {"surprise": 1})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError) as caught:
        spec.secrets_model.model_validate(secrets | {"signing_secret": "whsec_AAAA"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"
    examples = spec.config_model.model_json_schema().get("examples")
    assert examples, "config models document an example for OpenAPI"
    spec.config_model.model_validate(examples[0])


URL_FIELDS = [
    (IntegrationKind.WEBHOOK, "url"),
    (IntegrationKind.ZENDESK, "base_url"),
    (IntegrationKind.SALESFORCE, "instance_url"),
    (IntegrationKind.HUBSPOT, "base_url"),
    (IntegrationKind.FRESHDESK, "base_url"),
]


@pytest.mark.parametrize(("kind", "field"), URL_FIELDS)
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://acme.example/x", "must be an absolute http or https URL"),
        ("javascript:alert(1)", "must be an absolute http or https URL"),
        ("acme.example/hook", "must be an absolute http or https URL"),
        ("https://", "must be an absolute http or https URL"),
        ("https://user:pw@acme.example/", "must not contain a user name or password"),
        ("https://acme.example/#top", "must not contain a #fragment"),
        ("https://acme.example/" + "a" * 2100, "String should have at most"),
    ],
)
def test_url_fields_refuse_bad_urls(
    kind: IntegrationKind, field: str, url: str, message: str
) -> None:
    config = VALID_SETTINGS[kind][0] | {field: url}
    with pytest.raises(ValidationError) as caught:
        KIND_SPECS[kind].config_model.model_validate(config)
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


@pytest.mark.parametrize(("kind", "field"), URL_FIELDS[1:])
def test_base_urls_lose_the_trailing_slash_and_refuse_queries(
    kind: IntegrationKind, field: str
) -> None:
    model = KIND_SPECS[kind].config_model
    parsed = model.model_validate(VALID_SETTINGS[kind][0] | {field: "https://acme.example/api/"})
    assert getattr(parsed, field) == "https://acme.example/api"
    with pytest.raises(ValidationError, match="must not contain a \\?query"):
        model.model_validate(VALID_SETTINGS[kind][0] | {field: "https://acme.example/?a=1"})


@pytest.mark.parametrize("kind", list(IntegrationKind)[1:])
@pytest.mark.parametrize("token", ["", "has space", "line\nbreak", "x" * 4097])
def test_secrets_refuse_unusable_tokens_without_quoting_them(
    kind: IntegrationKind, token: str
) -> None:
    model: type[BaseModel] = KIND_SPECS[kind].secrets_model
    [name] = VALID_SETTINGS[kind][1]
    with pytest.raises(ValidationError) as caught:
        model.model_validate({name: token})
    if token:
        assert token not in str(caught.value)


def test_other_config_fields_are_bounded() -> None:
    salesforce = KIND_SPECS[IntegrationKind.SALESFORCE].config_model
    base = VALID_SETTINGS[IntegrationKind.SALESFORCE][0]
    for bad in (
        {"api_version": "v62"},
        {"api_version": "62"},
        {"origin": "x" * 65},
        {"status_values": {"open": ""}},
    ):
        with pytest.raises(ValidationError):
            salesforce.model_validate(base | bad)
    hubspot = KIND_SPECS[IntegrationKind.HUBSPOT].config_model
    for bad in ({"portal_id": "12ab"}, {"stage_ids": {"done": "4"}}, {"pipeline_id": "p" * 65}):
        with pytest.raises(ValidationError):
            hubspot.model_validate(bad)
    zendesk = KIND_SPECS[IntegrationKind.ZENDESK].config_model
    with pytest.raises(ValidationError):
        zendesk.model_validate({"base_url": "https://acme.zendesk.com", "email": "not-an-email"})


def test_build_refuses_invalid_stored_settings_permanently_naming_fields_only() -> None:
    build_webhook = KIND_SPECS[IntegrationKind.WEBHOOK].build
    with pytest.raises(PermanentDeliveryError) as caught:
        build_webhook({"url": "ftp://x.example/"}, {"signing_secret": SIGNING_SECRET})
    assert (
        str(caught.value)
        == "invalid integration config: url: Value error, must be an absolute http or https URL"
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        build_webhook({"url": "https://x.example/"}, {"signing_secret": "whsec_not base64!"})
    assert str(caught.value) == (
        "invalid integration secrets: signing_secret: "
        "Value error, webhook secret must be 'whsec_' followed by base64"
    )
    with pytest.raises(
        PermanentDeliveryError,
        match=r"^invalid integration secrets: signing_secret: Field required$",
    ):
        build_webhook({"url": "https://x.example/"}, {})


def test_build_ignores_other_stored_secrets() -> None:
    adapter = KIND_SPECS[IntegrationKind.WEBHOOK].build(
        {"url": "https://x.example/"},
        {"signing_secret": SIGNING_SECRET, "inbound_secret": signing.generate_secret()},
    )
    assert SIGNING_SECRET not in repr(adapter)


def test_event_json_is_serialised_from_read_only_mappings() -> None:
    from types import MappingProxyType

    from app.integrations.transport import encode_json

    assert orjson.loads(
        encode_json({"data": MappingProxyType({"a": MappingProxyType({"b": 1})})})
    ) == {"data": {"a": {"b": 1}}}


def test_error_messages_use_the_standard_reason_phrase_not_the_vendors() -> None:
    wire = httpx.Response(
        400, extensions={"reason_phrase": b"Bad token zd-123 for ana@example.com"}
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        classify_response(wire)
    assert str(caught.value) == "HTTP 400 Bad Request"


def test_ticket_data_with_datetimes_reads_like_rest_json() -> None:
    event = ticket_event(
        sla_due_at=datetime(2026, 11, 21, 9, 15, tzinfo=UTC),
        timeline=[{"at": OCCURRED_AT, "kind": "created", "detail": None}],
    )
    content = read_ticket_event(event)
    assert "SLA due: 2026-11-21T09:15:00Z" in content.description()
    assert content.ticket.timeline[0].at == "2026-11-20T09:15:00Z"
