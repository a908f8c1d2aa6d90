"""The HTTP baseline: FastAPI, the event model and uvicorn, no database.

``POST /v1/feedback`` validates the body with the service's ``FeedbackEventIn`` and
answers 202 with the service's response model, served exactly as ``feedback-service
serve`` serves the real app. Its throughput is the most the framework and validation
allow on this machine; the service's single-event endpoint can only approach it.

Run as ``python -m bench.nodb_app --port P``.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import ValidationError

from app.schemas.feedback import FeedbackEventIn, IngestResponse, IngestStatus


def create_app() -> FastAPI:
    app = FastAPI(title="no-database baseline")

    @app.post("/v1/feedback", status_code=202)
    async def ingest_one(request: Request) -> IngestResponse:
        try:
            event = FeedbackEventIn.model_validate_json(await request.body())
        except ValidationError:
            # The benchmark sends only valid events: a 422 here means a harness bug.
            raise HTTPException(status_code=422, detail="invalid event") from None
        return IngestResponse(
            id="1", event_id=event.event_id, status=IngestStatus.ACCEPTED, ticket_id=None
        )

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same uvicorn settings as app.cli.cmd_serve, so only the app differs.
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
