"""The delivery benchmark's webhook receiver: ``python -m bench.webhook_receiver PORT``.

Answers every ``POST /hook`` with 204 and notes, for a ``ticket.created`` message, when
it arrived (``time.monotonic``) and the ticket's id; ``GET /arrivals`` returns
``{ticket_id: arrival}``. A repeated message (a retry) keeps its first arrival.
"""

from __future__ import annotations

import sys
import time

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

arrivals: dict[str, float] = {}


async def hook(request: Request) -> Response:
    arrived = time.monotonic()
    message = orjson.loads(await request.body())
    if message.get("type") == "ticket.created":
        arrivals.setdefault(str(message["data"]["id"]), arrived)
    return Response(status_code=204)


async def report(_: Request) -> Response:
    return Response(orjson.dumps(arrivals), media_type="application/json")


def main() -> int:
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/arrivals", report)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
