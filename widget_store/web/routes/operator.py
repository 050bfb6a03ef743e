"""The operator's routes: every order, restocking, the process's health, metrics, the cockpit's
figures, refunds due, and DBOS's workflows and steps. Open in demo mode; in production, all but
/health need the operator's token (deps.require_operator)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ...durable import takeover
from ...shop import refunds, store
from ...shop.errors import NotFound
from ...shop.tables import RefundStatus
from .. import monitor, stats
from ..deps import Db, Operator, PaymentId, errors, get_process, get_settings
from ..metrics import Metrics
from ..schemas import (
    ExecutorOut,
    HealthOut,
    OrderOut,
    ProductOut,
    RefundIn,
    RefundOut,
    StepOut,
    StripePageOut,
    WorkflowOut,
)
from .shop import read_product

router = APIRouter()


@router.get("/orders", dependencies=[Operator], responses=errors(401))
async def read_orders(
    db: Db, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[OrderOut]:
    """The latest `limit` orders (100 unless given), newest first."""
    return [OrderOut.model_validate(row) for row in await db.read(store.list_orders, limit=limit)]


@router.post("/restock", dependencies=[Operator], responses=errors(401, 403))
async def restock(db: Db) -> ProductOut:
    """Set the widget's inventory to 100."""
    await db.run(store.restock)
    return await read_product(db)


@router.get("/refunds", dependencies=[Operator], responses=errors(401))
async def read_refunds(
    db: Db,
    status: RefundStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[RefundOut]:
    """Payments received for checkouts that had already ended, newest first: `due` until an
    operator (or the provider) refunds them, then `refunded`, kept either way."""
    rows = await db.read(refunds.list_refunds, status=status, limit=limit)
    return [RefundOut.model_validate(row) for row in rows]


@router.post(
    "/refunds/{payment_id}/refunded",
    dependencies=[Operator],
    responses=errors(401, 403, 404),
)
async def mark_refunded(payment_id: PaymentId, db: Db, body: RefundIn | None = None) -> RefundOut:
    """Mark a refund due as refunded, once the money is back with the shopper (refunded at the
    provider). Idempotent: a refund already marked is answered as it stands."""
    reference = body.reference if body else None
    row = await db.run(refunds.mark_refunded, payment_id=payment_id, reference=reference)
    if row is None:
        raise NotFound(f"No refund for payment id {payment_id!r}")
    return RefundOut.model_validate(row)


@router.get("/health")
async def read_health(request: Request) -> HealthOut:
    """Is this process serving, since when, and what did it recover at start."""
    settings = get_settings(request)
    info = get_process(request)
    try:
        ran = await asyncio.wait_for(
            takeover.run_after_recovery(settings.executor_id, info.started_at), timeout=1
        )
    except Exception:  # the database busy or away: the process still serves
        ran = None
    return HealthOut(
        status="ok",
        pid=os.getpid(),
        started_at=info.started_at,
        restart_count=settings.restart_count,
        workflows_recovered=info.workflows_recovered,
        workflows_run_after_recovery=ran,
        executor_id=settings.executor_id,
        executors=[ExecutorOut(**row) for row in info.liveness.snapshot()] if info.liveness else [],
        application_version=settings.app_version,
        database="sqlite" if settings.uses_sqlite else "postgresql",
        demo=settings.demo,
        sandbox=settings.sandbox_enabled,
        stripe=StripePageOut(
            publishable_key=settings.stripe_publishable_key, js_url=settings.stripe_js_url
        )
        if settings.stripe_mode and settings.stripe_publishable_key
        else None,
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
    body = await metrics.render(db, get_process(request), get_settings(request).restart_count)
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
