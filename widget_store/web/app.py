"""The app factory: settings in, a FastAPI app out, with DBOS launched in its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from dbos import DBOS
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

from ..config import Settings
from ..database import primary
from ..database.handle import open_database
from ..demo import shoppers
from ..durable import dbos_internals, drain, reconciler
from ..durable.dbos_config import dbos_config
from ..durable.takeover import pending_of, start_liveness
from ..paths import HTML_DIR
from ..shop import runtime, store
from ..shop.errors import StoreError
from . import first_paint
from .body_limit import BodyLimit
from .deps import ProcessInfo, errors
from .metrics import Metrics, RequestMetrics
from .path_guard import PathGuard
from .routes import demo, operator, payments, sandbox, shop
from .schemas import ErrorOut
from .security import DOCS_CONTENT_SECURITY_POLICY, SecurityHeaders

log = logging.getLogger(__name__)


async def count_recovered(settings: Settings, launched_at: datetime) -> int:
    """How many workflows DBOS resumed at this launch.

    DBOS recovers a dead process's PENDING workflows by putting them back on its internal queue
    (ENQUEUED, then PENDING once running again), keeping the executor id: so right after launch,
    this executor's unfinished workflows created before it are exactly the recovered ones.
    """
    unfinished = await DBOS.list_workflows_async(
        status=["PENDING", "ENQUEUED"],
        executor_id=settings.executor_id,
        app_version=settings.app_version,
        end_time=launched_at.isoformat(),
        load_input=False,
        load_output=False,
    )
    return len(unfinished)


def create_app(
    settings: Settings, base_url: str, *, on_started: Callable[[], None] | None = None
) -> FastAPI:
    """`base_url` is where this server can call itself (the built-in shoppers do);
    `on_started` runs once the app has started, before it serves (the server's garbage-collector
    settings, server/heap.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A demoted primary's "read-only" is a lost connection (primary.py says why).
        primary.drop_sessions_on_read_only_servers()
        db = await open_database(settings)
        webhook_secret = settings.resolved_webhook_secret()
        # The built-in shoppers call the store through this client (shoppers.PASS_HEADER).
        http = httpx.AsyncClient(
            timeout=60, headers={shoppers.PASS_HEADER: shoppers.shopper_pass(webhook_secret)}
        )
        # Bound before launch (runtime.py says why).
        runtime.bind(
            runtime.Runtime(
                db=db,
                payment_timeout_s=settings.payment_timeout_s,
                dispatch_tick_s=settings.dispatch_tick_s,
                base_url=base_url,
                http=http,
                # The fault fires in the first incarnation only, or it would fire on every replay.
                fault_after_step=settings.fault_after_step if settings.restart_count == 0 else None,
            )
        )
        DBOS(config=dbos_config(settings))
        # Recovered workflows wait on DBOS's internal queue: poll it every 0.1 s, not 1 s.
        dbos_internals.set_internal_queue_polling()
        # Postgres: this executor id's lock, held while alive; a survivor takes over when it is
        # not (takeover.py). Counted before the launch: what DBOS re-enqueues for this id.
        liveness = await start_liveness(
            settings.database_url,
            settings.executor_id,
            grace_s=settings.takeover_grace_s,
            interval_s=settings.liveness_interval_s,
            siblings=settings.worker_siblings,
        )
        pending = None
        if liveness is not None:
            pending = await pending_of(
                liveness.database_url, settings.executor_id, settings.app_version
            )
        launched_at = datetime.now(UTC)
        # Launched inside the running loop, so recovered async workflows run on this loop.
        DBOS.launch()
        recovered = await count_recovered(settings, launched_at) if pending is None else pending
        await shoppers.register_queue()
        await db.run(
            store.record_process_start,
            executor_id=settings.executor_id,
            restart_count=settings.restart_count,
            recovered=recovered,
            at=launched_at,
        )
        app.state.settings = settings
        app.state.db = db
        app.state.http = http
        app.state.webhook_secret = webhook_secret
        app.state.process = ProcessInfo(
            started_at=launched_at, workflows_recovered=recovered, liveness=liveness
        )
        if liveness is not None:
            liveness.watch()
        # Orders whose workflow an operator cancelled, or that ended in ERROR (reconciler.py).
        reconciling = asyncio.create_task(reconciler.run(db, settings.reconcile_interval_s))
        # The old release during an upgrade: no new checkouts, stops once drained (drain.py).
        drain.set_draining(settings.drain)
        draining = (
            asyncio.create_task(drain.stop_when_drained(settings.app_version))
            if settings.drain
            else None
        )
        # Postgres restarts: waiters re-checked, DBOS's retries as soon as Postgres is back.
        wakeups = None if settings.uses_sqlite else dbos_internals.Wakeups()
        if wakeups is not None:
            dbos_internals.pause_db_retries_until_reconnect()
            waking = asyncio.create_task(wakeups.run())
        # Said once the start is done: one that fails before this is said by the supervisor.
        log.info(
            "serving (restart %d): recovered %d workflow(s) of executor %s",
            settings.restart_count,
            recovered,
            settings.executor_id,
        )
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            reconciling.cancel()
            if draining is not None:
                draining.cancel()
            if wakeups is not None:
                waking.cancel()
            if liveness is not None:
                await liveness.close()
            DBOS.destroy()
            runtime.bind(None)
            await http.aclose()
            await db.close()

    app = FastAPI(
        title="Widget Store",
        summary="An online store that sells a widget and survives any crash.",
        version="1.0.0",
        lifespan=lifespan,
        # /docs is served below, from the vendored Swagger UI (no CDN); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(PathGuard)
    app.include_router(shop.router)
    app.include_router(payments.router)
    app.include_router(operator.router)
    if settings.demo:
        app.include_router(demo.router)
    # Never in production (Settings.sandbox says why).
    if settings.sandbox_enabled:
        app.include_router(sandbox.router)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Outermost of the app's own middleware: even an answer they give gets the headers.
    app.add_middleware(SecurityHeaders)

    page_template = first_paint.page_template()

    @app.get("/", include_in_schema=False)
    async def read_page(request: Request) -> HTMLResponse:
        """The page with the product and its stock in it (web/first_paint.py)."""
        return HTMLResponse(await first_paint.page(request.app.state.db, page_template))

    @app.get("/docs", include_in_schema=False)
    async def read_docs() -> FileResponse:
        """Swagger UI on /openapi.json, every file served from html/ (see html/vendor/)."""
        return FileResponse(
            HTML_DIR / "docs.html",
            headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY},
        )

    app.mount("/static", StaticFiles(directory=HTML_DIR), name="static")
    _document_errors(app)
    return app


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
                if path in DATABASE_FREE_PATHS:
                    continue
                for operation in operations.values():
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
