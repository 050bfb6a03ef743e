"""The contract's routes, kept thin: validate, call a checkout or store function, answer."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import checkout, monitor, shoppers, stats, store
from .checkout import UnpaidCap
from .config import Settings
from .db import Database
from .errors import BadSignature, InvalidInput, NotFound, Unauthorized
from .metrics import Metrics
from .models import (
    CheckoutOut,
    HealthOut,
    LoadIn,
    LoadOut,
    OrderOut,
    ProductOut,
    StepOut,
    WorkflowOut,
)
from .payments import SIGNATURE_HEADER, PaymentStatus, SignatureError, verify
from .process import ProcessInfo
from .schema import OrderStatus
from .security import SameOrigin
from .workflows import checkout_workflow_id

log = logging.getLogger(__name__)

IdempotencyKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Chosen by the shopper's browser; the same key always means the same checkout",
    ),
]
PaymentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
# Order ids are the orders table's INTEGER keys: anything past 2**31 - 1 cannot be one, and
# Postgres would refuse to even compare against it.
OrderId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give: always a JSON `detail`.

    Spelled out as application/json, since FastAPI would file a bare model under the route's
    own media type (text/plain for the routes that answer an id).
    """
    return {
        code: {"content": {"application/json": {"schema": ERROR_SCHEMA}}, "description": "Error"}
        for code in codes
    }


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_operator(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Demo mode leaves operator actions open, as the public demo does; else a bearer token."""
    if settings.demo:
        return
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.operator_token or ""
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("Operator actions need Authorization: Bearer <operator token>")


def checkout_client(
    request: Request,
    shopper_pass: Annotated[str | None, Header(alias=shoppers.PASS_HEADER)] = None,
) -> str | None:
    """Who is checking out, for the cap on unpaid checkouts: the socket's address, or the
    X-Forwarded-For one from a trusted proxy (uvicorn rewrote it: forwarded_allow_ips). None
    for the built-in shoppers, which are exempt."""
    if shoppers.is_shopper_pass(request.app.state.webhook_secret, shopper_pass):
        return None
    return request.client.host if request.client else None


def get_unpaid_cap(settings: Annotated[Settings, Depends(get_settings)]) -> UnpaidCap:
    return UnpaidCap(settings.max_unpaid_per_client, settings.payment_timeout_s)


Db = Annotated[Database, Depends(get_db)]
Operator = Depends(require_operator)

router = APIRouter()


@router.get("/product", responses=errors(404))
async def read_product(db: Db) -> ProductOut:
    """The widget, its price and how many are left."""
    product = await db.read(store.get_product)
    if product is None:
        raise NotFound("The catalogue is empty: run `widget-store migrate`")
    return ProductOut.model_validate(product)


@router.post(
    "/checkout/{idempotency_key}",
    response_class=PlainTextResponse,
    responses={200: {"description": "The payment id, as plain text"}, **errors(404, 429, 503)},
)
async def create_checkout(
    idempotency_key: IdempotencyKey,
    db: Db,
    client: Annotated[str | None, Depends(checkout_client)],
    cap: Annotated[UnpaidCap, Depends(get_unpaid_cap)],
) -> str:
    """Start the checkout for this key (or rejoin it) and answer its payment id."""
    return await checkout.start_checkout(db, idempotency_key, client=client, cap=cap)


@router.get("/checkout/{idempotency_key}", responses=errors(404))
async def read_checkout(idempotency_key: IdempotencyKey, db: Db) -> CheckoutOut:
    """Where the checkout for this key stands: its order, payment id and status."""
    found = await db.read(store.get_checkout, checkout_id=checkout_workflow_id(idempotency_key))
    if found is None:
        raise NotFound(f"No checkout for key {idempotency_key!r}")
    return CheckoutOut(**found, status=OrderStatus(found["order_status"]).name)


@router.post(
    "/checkout/{idempotency_key}/cancel",
    response_class=PlainTextResponse,
    responses={200: {"description": "The cancelled order's id"}, **errors(404, 409, 503)},
)
async def cancel_checkout(idempotency_key: IdempotencyKey) -> str:
    """Cancel a checkout still waiting for payment: the order ends CANCELLED, the widget back."""
    return str(await checkout.cancel_checkout(idempotency_key))


@router.post("/checkout/", include_in_schema=False)
async def reject_empty_key() -> None:
    """An empty key would otherwise fall through to a bare 404."""
    raise InvalidInput("idempotency_key: must not be empty")


@router.post(
    "/payment_webhook/{payment_id}/{payment_status}",
    response_class=PlainTextResponse,
    responses={200: {"description": "The order id, as plain text"}, **errors(401, 404, 409, 503)},
)
async def receive_payment(
    payment_id: PaymentId,
    payment_status: PaymentStatus,
    request: Request,
    db: Db,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> str:
    """The payment provider's signed webhook: settle the checkout, answer the order id."""
    try:
        verify(request.app.state.webhook_secret, signature, payment_id, payment_status)
    except SignatureError as exc:
        raise BadSignature(str(exc)) from None
    return str(await checkout.deliver_payment(db, payment_id, payment_status))


@router.get("/order/{order_id}", responses=errors(404))
async def read_order(order_id: OrderId, db: Db) -> OrderOut:
    """One order's status and dispatch progress."""
    order = await db.read(store.get_order, order_id=order_id)
    if order is None:
        raise NotFound(f"No order {order_id}")
    return OrderOut.model_validate(order)


# Every shopper's orders: open in demo mode, the operator's in production (see require_operator).
@router.get("/orders", dependencies=[Operator], responses=errors(401))
async def read_orders(
    db: Db, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[OrderOut]:
    """The latest `limit` orders (100 unless given), newest first."""
    return [OrderOut.model_validate(row) for row in await db.read(store.list_orders, limit=limit)]


@router.post("/restock", dependencies=[SameOrigin, Operator], responses=errors(401, 403))
async def restock(db: Db) -> ProductOut:
    """Set the widget's inventory to 100."""
    await db.run(store.restock)
    return await read_product(db)


CRASH_DELAY_S = 0.05


def _exit_now() -> None:
    log.warning("crash button pressed: exiting now")
    logging.shutdown()
    os._exit(1)


# Registered only in demo mode (see app.py): in production these routes do not exist (404).
demo_router = APIRouter()


@demo_router.post(
    "/crash_application", status_code=202, dependencies=[SameOrigin], responses=errors(403)
)
async def crash_application() -> JSONResponse:
    """Kill the process at once, as a crash would; the supervisor brings it back.

    It answers first and dies 50 ms later: a client whose request is dropped unanswered may
    send it again (browsers re-send a POST whose reused connection closes), and that copy
    would crash the freshly restarted server a second time.
    """
    asyncio.get_running_loop().call_later(CRASH_DELAY_S, _exit_now)
    return JSONResponse(
        {"detail": "Crashing now: the store will be back within seconds"},
        status_code=202,
        headers={"Connection": "close"},
    )


@demo_router.get("/load")
async def read_load(db: Db) -> LoadOut:
    """The built-in shoppers' settings."""
    return LoadOut.model_validate(await db.read(store.get_load_settings))


@demo_router.post("/load", dependencies=[SameOrigin], responses=errors(400, 403))
async def start_load(load: LoadIn, db: Db) -> LoadOut:
    """Start (or change) the built-in shoppers: N durable shoppers with this mix."""
    return LoadOut.model_validate(await shoppers.start_load(db, **load.model_dump()))


@demo_router.post("/load/stop", dependencies=[SameOrigin], responses=errors(403))
async def stop_load(db: Db) -> LoadOut:
    """Stop the built-in shoppers after their current purchase."""
    return LoadOut.model_validate(await shoppers.stop_load(db))


@router.get("/health")
async def read_health(request: Request) -> HealthOut:
    """Is this process serving, since when, and what did it recover at start."""
    settings = get_settings(request)
    info: ProcessInfo = request.app.state.process
    return HealthOut(
        status="ok",
        pid=os.getpid(),
        started_at=info.started_at,
        restart_count=settings.restart_count,
        workflows_recovered=info.workflows_recovered,
        executor_id=settings.executor_id,
        application_version=settings.app_version,
        database="sqlite" if settings.uses_sqlite else "postgresql",
        demo=settings.demo,
        sandbox=settings.sandbox_enabled,
    )


@router.get(
    "/metrics",
    dependencies=[Operator],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(401)},
)
async def read_metrics(request: Request, db: Db) -> Response:
    """Prometheus text format: requests and latency per route, orders by status, restarts."""
    metrics: Metrics = request.app.state.metrics
    body = await metrics.render(db, request.app.state.process, get_settings(request).restart_count)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/stats", dependencies=[Operator], responses=errors(401))
async def read_stats(db: Db) -> dict[str, Any]:
    """The cockpit's live figures: throughput, orders by state, restarts, the stock ledger."""
    return await stats.collect(db)


@router.get("/workflows", dependencies=[Operator], responses=errors(401))
async def read_workflows(
    status: Literal["PENDING", "SUCCESS", "ERROR", "CANCELLED", "ENQUEUED"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[WorkflowOut]:
    """Workflows, newest first, with the step each running one has reached."""
    return await monitor.list_workflows(status=status, limit=limit)


@router.get("/workflows/{workflow_id}/steps", dependencies=[Operator], responses=errors(401, 404))
async def read_workflow_steps(
    workflow_id: Annotated[str, Path(max_length=200, pattern=r"^[\x20-\x7e]+$")],
) -> list[StepOut]:
    """One workflow's recorded steps, in order."""
    steps = await monitor.workflow_steps(workflow_id)
    if steps is None:
        raise NotFound(f"No workflow {workflow_id!r}")
    return steps
