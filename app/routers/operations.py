"""Liveness, readiness and Prometheus metrics (no API key: meant for probes and scrapers;
expose them to your orchestrator and monitoring network only)."""

import asyncio
import logging

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.dependencies import StateDep
from app.telemetry import metrics_exposition

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

READINESS_TIMEOUT_S = 3.0


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(description="ready or unavailable")
    checks: dict[str, str] = Field(
        description="Each check: 'ok' or why it failed. `kafka` is present when this "
        "process runs the Kafka consumer.",
        examples=[{"database": "ok", "migrations": "ok", "kafka": "ok"}],
    )


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: database reachable and migrated (and the Kafka consumer connected)",
    responses={503: {"model": Readiness, "description": "A check failed (named in checks)."}},
)
async def readyz(state: StateDep, response: Response) -> Readiness:
    checks = {"database": "ok", "migrations": "ok"}
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await state.database.ping()
            if not await state.database.is_migrated():
                checks["migrations"] = "schema is not at the newest migration"
    except Exception as exc:  # any failure to reach the database means not ready
        logger.warning("readiness check failed", extra={"fields": {"error": type(exc).__name__}})
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    if state.kafka_consumer is not None:
        checks["kafka"] = await state.kafka_consumer.readiness()
    ready = all(value == "ok" for value in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "unavailable", checks=checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    body, content_type = metrics_exposition()
    return Response(body, media_type=content_type)
