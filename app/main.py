"""FastAPI application factory and process lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from app.config import ProcessRoles, Settings
from app.db import Database
from app.dependencies import SECURITY_SCHEME, AppState
from app.errors import PROBLEM_MEDIA_TYPE, install_error_handlers
from app.repositories.outbox import DELIVERIES_CHANNEL
from app.repositories.stream import STREAM_CHANNEL
from app.routers import (
    api_keys,
    customers,
    deliveries,
    feedback,
    inbound,
    integrations,
    locations,
    metrics,
    operations,
    rules,
    stream,
    tickets,
)
from app.routers.docs import problem
from app.schemas.feedback import BatchRequest, FeedbackEventIn
from app.schemas.problems import Problem
from app.schemas.tickets import InboundStatus
from app.services import enrichment
from app.services.api_keys import KEYS_CHANGED_CHANNEL, PrincipalCache, ensure_bootstrap_keys
from app.telemetry import RequestTelemetryMiddleware
from app.workers.dispatcher import DeliveryDispatcher, make_http_client
from app.workers.ingest_writer import GroupCommitWriter
from app.workers.kafka_consumer import KafkaIngestConsumer
from app.workers.live_stream import LiveStream
from app.workers.notifications import PostgresListener, Subscription
from app.workers.text_analysis import TextAnalysisPool

logger = logging.getLogger(__name__)

DESCRIPTION = """
Takes customer feedback events from every channel (web, app, email, SMS, voice/IVR,
chat, social, reviews, in-store POS), validates and de-duplicates them, detects the
language and sentiment of their text, and stores them durably in PostgreSQL. Poor
feedback opens a ticket for the owner of its location, delivered to CRM and helpdesk
integrations with status flowing back. NPS, CSAT, CES and ticket figures
(`/v1/metrics`), customer journeys and erasure (`/v1/customers`) and a live stream of
events (`/v1/stream`) are scoped by API key and location.

**Authentication.** Every `/v1` endpoint needs `Authorization: Bearer <api key>`.
Keys carry scopes (`feedback:write`, `feedback:read`, `tickets:read`, `tickets:write`,
`metrics:read`, `admin`, which implies all) and may be restricted to a list of
`location_ids`: such a key never sees, counts or changes anything elsewhere (reads are
filtered; writes and explicit requests for other locations are refused with 403).
Missing, unknown or revoked key: 401 with `WWW-Authenticate: Bearer`.

**Errors** are RFC 9457 problem details (`application/problem+json`):
`{type, title, status, detail, errors?}`; validation errors (422) list every bad field
as `{loc, msg, type}`. Bodies over the limit: 413.

**Lists** take `limit` (1-500, default 50) and an opaque `cursor`, and return
`{items, next_cursor}` in a stable order.

Timestamps are RFC 3339 with an offset (naive ones are rejected); ids are strings.
"""

TAGS = [
    {"name": "feedback", "description": "Ingest and read feedback events."},
    {"name": "api keys", "description": "Manage API keys (admin)."},
    {"name": "rules", "description": "Which feedback opens a ticket, and how (admin)."},
    {"name": "locations", "description": "Locations and their owners, for ticket routing."},
    {
        "name": "integrations",
        "description": "CRM, helpdesk and webhook targets; secrets are write-only (admin).",
    },
    {"name": "deliveries", "description": "The delivery outbox: inspect and re-queue (admin)."},
    {
        "name": "tickets",
        "description": "Follow-up tickets opened by rules; status flows back from integrations.",
    },
    {
        "name": "metrics",
        "description": "NPS, CSAT, CES, ratings, sentiment and ticket figures, scoped by key.",
    },
    {"name": "customers", "description": "Journeys across channels, and erasure."},
    {"name": "stream", "description": "Live Server-Sent Events of feedback and tickets."},
    {"name": "operations", "description": "Probes and metrics for operators."},
]


def _first_admin_key_banner(key: str) -> str:
    return (
        "\n"
        "  No API key existed, so an admin key was created. It is shown only now:\n\n"
        f"      {key}\n\n"
        "  Use it as 'Authorization: Bearer <key>'. Create narrower keys with\n"
        "  POST /v1/api-keys or 'feedback-service keys create'.\n"
    )


def create_app(settings: Settings, roles: ProcessRoles | None = None) -> FastAPI:
    roles = roles or ProcessRoles()
    run_consumer = roles.consumer and settings.kafka_bootstrap_servers is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await Database.open(settings)
        principals = PrincipalCache()
        listener = PostgresListener(
            database.engine.url,
            [
                Subscription(
                    KEYS_CHANGED_CHANNEL,
                    on_notify=lambda _payload: principals.clear(),
                    on_connection_change=principals.set_trusted,
                )
            ],
        )
        ingests = roles.api or run_consumer
        text_analysis = TextAnalysisPool(settings.text_analysis_processes if ingests else 0)
        writer = GroupCommitWriter(
            database,
            max_group=settings.ingest_group_max_events,
            writers=settings.ingest_group_writers,
            queue_size=settings.ingest_queue_size,
            text_analysis=text_analysis,
        )
        consumer = KafkaIngestConsumer(settings, database, text_analysis) if run_consumer else None
        http = make_http_client(settings)
        dispatcher = DeliveryDispatcher(settings, database, http) if roles.dispatcher else None
        if dispatcher is not None:
            listener.subscribe(Subscription(DELIVERIES_CHANNEL, on_notify=dispatcher.wake))
        live_stream = (
            LiveStream(
                database,
                max_clients=settings.stream_max_clients,
                client_buffer=settings.stream_client_buffer,
            )
            if roles.api
            else None
        )
        if live_stream is not None:
            listener.subscribe(
                Subscription(
                    STREAM_CHANNEL,
                    on_notify=live_stream.on_notify,
                    on_connection_change=live_stream.on_connection_change,
                )
            )
        try:
            # Text models load in a thread while the migrations run (about 2 s): the
            # first event with text must not pay for it. A dispatch-only process never
            # analyses text and loads nothing.
            models_loaded = asyncio.create_task(
                asyncio.to_thread(enrichment.warm_up) if ingests else asyncio.sleep(0)
            )
            await text_analysis.start()  # its workers load theirs meanwhile too
            await database.migrate()
            await models_loaded
            if roles.api:
                async with database.sessionmaker() as session, session.begin():
                    bootstrap = settings.bootstrap_admin_key
                    new_key = await ensure_bootstrap_keys(
                        session, bootstrap.get_secret_value() if bootstrap else None
                    )
                if new_key is not None:
                    # Printed once, not logged (no logger level or handler repeats it). In
                    # containers stdout is the log stream too: deployments set
                    # FEEDBACK_BOOTSTRAP_ADMIN_KEY.
                    print(_first_admin_key_banner(new_key), file=sys.stdout, flush=True)
            if roles.api or dispatcher is not None:
                await listener.start()
            await writer.start()
            if live_stream is not None:
                await live_stream.start()
            if dispatcher is not None:
                await dispatcher.start()
            if consumer is not None:
                await consumer.start()
            app.state.services = AppState(
                settings=settings,
                database=database,
                ingest_writer=writer,
                principals=principals,
                kafka_consumer=consumer,
                live_stream=live_stream,
                text_analysis=text_analysis,
            )
            logger.info(
                "service ready",
                extra={
                    "fields": {
                        "embedded_db": database.embedded is not None,
                        "api": roles.api,
                        "kafka_consumer": consumer is not None,
                        "dispatcher": dispatcher is not None,
                    }
                },
            )
            # What start-up built (modules, text models, caches: ~180,000 objects)
            # lives as long as the service. Frozen, the garbage collector no longer
            # walks it on each full collection, which held the event loop for 60-80 ms
            # and set the ingest tail latency (bench: single-event p99 ~120 -> ~45 ms).
            gc.collect()
            gc.freeze()
            yield
        finally:
            gc.unfreeze()  # tests run many services in one interpreter
            # The consumer first: it drains its batch through the database.
            if consumer is not None:
                await consumer.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            await http.aclose()
            if live_stream is not None:
                await live_stream.stop()
            await writer.stop()
            await text_analysis.stop()  # after everything that ingests
            await listener.stop()
            await database.close()
            logger.info("service stopped")

    app = FastAPI(
        title="Feedback loop service",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        telemetry=None
        if settings.otel_enabled
        else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.add_middleware(
        RequestTelemetryMiddleware,
        max_body_bytes=settings.max_request_bytes,
        large_body_paths={"/v1/feedback/batch": settings.max_batch_request_bytes},
    )
    routers = (
        (
            feedback.router,
            api_keys.router,
            rules.router,
            locations.router,
            integrations.router,
            deliveries.router,
            tickets.router,
            customers.router,
            metrics.router,
            stream.router,
            inbound.router,
            operations.router,
        )
        if roles.api
        else (operations.router,)
    )
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, [*app.router.routes, *(r for x in routers for r in x.routes)])
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus: models of endpoints that read their body themselves,
    problem details for every error response, and no FastAPI-default 422 shapes."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schema.setdefault("components", {})["securitySchemes"] = {"ApiKey": SECURITY_SCHEME}
    components = schema["components"].setdefault("schemas", {})
    _, extra = models_json_schema(
        [
            (FeedbackEventIn, "validation"),
            (BatchRequest, "validation"),
            (Problem, "validation"),
            (InboundStatus, "validation"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    components.update(extra.get("$defs", {}))
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            if path.startswith("/v1/") and not path.startswith("/v1/inbound/"):
                operation["security"] = [{"ApiKey": []}]
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation or operation.get("parameters"):
                responses["422"] = problem("Validation failed: `errors` lists every bad field.")
            if operation.get("security"):
                responses.setdefault("401", problem("Missing, unknown or revoked API key."))
                responses.setdefault("403", problem("The API key lacks the scope or location."))
            responses.setdefault("default", problem("Any other error, as problem details."))
            for response in responses.values():
                content = response.get("content", {})
                if "application/json" in content and PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json")
    app.openapi_schema = schema
    return schema
