"""Error answers: every domain error, validation failure and database outage answered with a
one-line JSON `detail` and the status it deserves, and /openapi.json saying so."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

from ..shop.errors import StoreError
from .deps import errors
from .schemas import ErrorOut
from .security import SECURITY_HEADERS

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    """The handlers, and the schema that documents what they send."""
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    _document_errors(app)


# Routes that answer without the database, so never with its 503.
DATABASE_FREE_PATHS = {"/health"}


def _document_errors(app: FastAPI) -> None:
    """Make /openapi.json show the error bodies really sent: `ErrorOut` (referenced by every
    route's error answers), and the 422 body `_validation_error` sends."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorOut"] = ErrorOut.model_json_schema()
            # Every route that touches the database answers 503 while it is away or every
            # pooled connection is busy (_database_error, _database_busy): say so, or a client
            # built from the schema takes a retryable answer for a broken server.
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    # A body that is not JSON at all is FastAPI's 400, before any validation.
                    if "requestBody" in operation:
                        operation["responses"].setdefault("400", errors(400)[400])
                    if path not in DATABASE_FREE_PATHS:
                        operation["responses"].setdefault("503", errors(503)[503])
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "required": ["detail"],
                    "properties": {
                        "detail": {"type": "string", "title": "Detail"},
                        "errors": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ValidationError"},
                        },
                    },
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with a one-line `detail` like every other error, and the itemised list beside it."""
    assert isinstance(exc, RequestValidationError)
    items = exc.errors()
    detail = "; ".join(
        f"{'.'.join(str(part) for part in item['loc'][1:]) or 'request'}: {item['msg']}"
        for item in items
    )
    # Where, what and why only: the offending input is not echoed back (it may be huge, or a
    # NaN that JSON cannot carry).
    listed = [{key: item[key] for key in ("loc", "msg", "type")} for item in items]
    return JSONResponse({"detail": detail, "errors": listed}, status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: 500 with a JSON `detail` like every other error, and the security headers, which
    the middleware cannot add: Starlette answers an unhandled exception from its outermost
    layer, outside every middleware of the app's own."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "Internal error"}, status_code=500, headers=dict(SECURITY_HEADERS)
    )


async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
    """Every pooled connection busy for the pool's whole timeout: overloaded, not broken."""
    log.warning("no database connection free for %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "The store is busy right now; nothing was lost, retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is away (restart, dropped connection) is a 503, not a 500: retry."""
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse(
            {"detail": "The database is unavailable right now; nothing was lost, retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal database error"}, status_code=500)
