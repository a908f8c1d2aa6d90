"""Application errors and their rendering as RFC 9457 problem details.

Below the routers, code raises ``AppError`` subclasses (never ``HTTPException``); one set
of handlers turns them, FastAPI's validation errors and Starlette's routing errors into
``application/problem+json``. Unexpected exceptions become a bare 500 problem whose body
says nothing about the cause (the log has it, without personal data).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class AppError(Exception):
    status: ClassVar[int] = 500
    problem_type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


class InvalidInput(AppError):
    status = 422
    problem_type = "/problems/validation-error"
    title = "Request validation failed"


class Unauthenticated(AppError):
    status = 401
    problem_type = "/problems/unauthenticated"
    title = "Missing or invalid API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="feedback"'})


class Forbidden(AppError):
    status = 403
    problem_type = "/problems/forbidden"
    title = "Not allowed for this API key"


class NotFound(AppError):
    status = 404
    problem_type = "/problems/not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    problem_type = "/problems/conflict"
    title = "Conflict"


class PayloadTooLarge(AppError):
    status = 413
    problem_type = "/problems/payload-too-large"
    title = "Request body too large"


class ServiceUnavailable(AppError):
    status = 503
    problem_type = "/problems/service-unavailable"
    title = "Service temporarily unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


def problem_response(
    status: int,
    title: str,
    detail: str,
    problem_type: str = "about:blank",
    errors: Iterable[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def validation_errors(
    raw: Iterable[Mapping[str, Any]], *, drop_prefix: str | None = None
) -> list[dict[str, Any]]:
    """Pydantic errors as ``{loc, msg, type}`` without input values (they may hold PII)."""
    result = []
    for error in raw:
        loc = list(error.get("loc", ()))
        if drop_prefix is not None and loc[:1] == [drop_prefix]:
            loc = loc[1:]
        message = str(error.get("msg", "invalid"))
        result.append(
            {
                "loc": loc,
                "msg": message.removeprefix("Value error, "),
                "type": str(error.get("type", "value_error")),
            }
        )
    return result


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def invalid_input(errors: list[dict[str, Any]]) -> InvalidInput:
    return InvalidInput(_plural(len(errors), "invalid field"), errors=errors)


async def _app_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem_response(
        exc.status, exc.title, exc.detail, exc.problem_type, exc.errors, exc.headers
    )


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors(), drop_prefix="body")
    problem = invalid_input(errors)
    return await _app_error(_, problem)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, AppError):  # e.g. our 413, raised while FastAPI read the body
        return await _app_error(request, exc.__cause__)
    if exc.status_code == 400:  # FastAPI could not decode a JSON body (not UTF-8, say)
        problem = InvalidInput(
            "The body is not valid JSON.",
            errors=[{"loc": [], "msg": "invalid JSON body", "type": "json_invalid"}],
        )
        return await _app_error(request, problem)
    detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; RFC 9110 wants all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    problem_type = _ROUTING_PROBLEM_TYPES.get(exc.status_code, "about:blank")
    return problem_response(exc.status_code, detail, detail, problem_type, headers=headers)


# Routing answers use the same problem types as the application's own errors.
_ROUTING_PROBLEM_TYPES = {
    404: NotFound.problem_type,
    405: "/problems/method-not-allowed",
}


def _allowed_methods(request: Request) -> list[str]:
    routes: Sequence[BaseRoute] = request.app.state.routes_for_allow
    methods: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # Connection-level failures are the database's, not the client's: 503, retry later.
    logger.warning(
        "database unavailable",
        extra={"fields": {"error": type(exc).__name__, "path": request.url.path}},
    )
    return await _app_error(
        request, ServiceUnavailable("The database is unavailable; retry shortly.")
    )


async def _pool_exhausted(request: Request, exc: Exception) -> Response:
    logger.warning("database pool exhausted", extra={"fields": {"path": request.url.path}})
    return await _app_error(request, ServiceUnavailable("The service is busy; retry shortly."))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged by RequestTelemetryMiddleware, where the request id is still known.
    return problem_response(500, "Internal server error", "An unexpected error occurred.")


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)
    )


async def _dbapi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    if (
        exc.connection_invalidated
        or _is_connection_error(exc)
        or (exc.orig is not None and _is_connection_error(exc.orig))
    ):
        return await _database_unavailable(request, exc)
    # Handled here, inside the request middleware: log it now, the request id is known.
    logger.error("unhandled error", exc_info=exc, extra={"fields": {"path": request.url.path}})
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """``routes``: every route with its full path, to answer 405 with a complete Allow."""
    app.state.routes_for_allow = list(routes)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    # The ingest path talks to asyncpg directly: its connection failures are 503s too.
    for driver_error in (
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InternalClientError,
    ):
        app.add_exception_handler(driver_error, _database_unavailable)
    # Raised unwrapped when no connection can be opened at all (refused, unresolvable).
    app.add_exception_handler(ConnectionError, _database_unavailable)
    app.add_exception_handler(socket.gaierror, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
