"""A reservation never outlives its workflow: orders reconciled against their workflows.

An order is *stranded* when it is PENDING or PAID and none of the workflows that can move it on
is running or queued: a PENDING order's checkout `checkout:<key>`, a PAID order's checkout or
its dispatch `dispatch:<order id>`. That happens when an operator cancels a workflow with DBOS's
CLI or Conductor, or when one ends in ERROR. Each serving process looks every
`reconcile_interval_s` and fixes what it finds, idempotently, so several may run at once:

- a PENDING order whose checkout ended: released by the checkout's own compensation
  (workflows.release_order, only from PENDING, so the widget comes back exactly once); the
  checkout, if an operator resumes it later, finds the order released and ends as "released"
  (workflows.checkout_workflow);
- a PAID order without a dispatch: its dispatch is started, on the schedule of when it was paid;
  a cancelled dispatch is resumed (a paid order always ships; its ticks are idempotent).

A dispatch that ended in ERROR cannot be resumed (DBOS resumes neither SUCCESS nor ERROR): it
stays stranded, counted in the `stranded` figure, for an operator to look at.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..database.handle import Database
from ..shop.tables import UNSETTLED, OrderStatus, as_utc, orders
from ..shop.workflows import (
    dispatch_workflow,
    dispatch_workflow_id,
    log_repair,
    release_order,
)

log = logging.getLogger(__name__)

# DBOS statuses of a workflow that still runs, or will.
LIVE = ("PENDING", "ENQUEUED", "DELAYED")
RESUMABLE = ("CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
# Unsettled orders looked at together (find_stranded).
CHUNK = 500


def _workflow_ids(order: dict[str, Any]) -> list[str]:
    """The workflows that can move this order on."""
    ids = [order["checkout_id"]]
    if order["order_status"] == OrderStatus.PAID:
        ids.append(dispatch_workflow_id(order["order_id"]))
    return ids


async def find_stranded(db: Database) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The stranded orders, each with the statuses of its workflows (by id; a missing one is
    absent).

    The unsettled orders are read CHUNK at a time, in order, and the statuses of each chunk's
    workflows in one read: what a pass holds at once, and what it asks DBOS, is bounded by
    the chunk, not by the orders waiting (10,000 waiting checkouts were 20,000 rows read into
    memory every pass, in every serving process). A candidate is then confirmed on its own
    (the order read again), so an order settled by its workflow between the two reads is not
    counted.
    """
    stranded: list[tuple[dict[str, Any], dict[str, str]]] = []
    after = 0
    while True:
        chunk = await db.read(unsettled_orders, after=after, limit=CHUNK)
        if not chunk:
            return stranded
        after = chunk[-1]["order_id"]
        ids_of = [(order, _workflow_ids(order)) for order in chunk]
        found = await DBOS.list_workflows_async(
            workflow_ids=[workflow_id for _, ids in ids_of for workflow_id in ids],
            load_input=False,
            load_output=False,
        )
        status_of = {workflow.workflow_id: str(workflow.status) for workflow in found}
        for order, ids in ids_of:
            statuses = {i: status_of[i] for i in ids if i in status_of}
            if any(status in LIVE for status in statuses.values()):
                continue
            if await db.read(order_status, order_id=order["order_id"]) != order["order_status"]:
                continue
            stranded.append((order, statuses))
        if len(chunk) < CHUNK:
            return stranded


async def count_stranded(db: Database) -> int:
    return len(await find_stranded(db))


async def reconcile(db: Database) -> int:
    """Fix every stranded order found; how many were fixed."""
    fixed = 0
    for order, statuses in await find_stranded(db):
        if await _fix(order, statuses):
            fixed += 1
    return fixed


async def _fix(order: dict[str, Any], statuses: dict[str, str]) -> bool:
    order_id = order["order_id"]
    checkout_status = statuses.get(order["checkout_id"], "missing")
    if order["order_status"] == OrderStatus.PENDING:
        why = f"its checkout {order['checkout_id']} ended without settling it ({checkout_status})"
        return await release_order(order_id, why=why)
    dispatch_id = dispatch_workflow_id(order_id)
    dispatch_status = statuses.get(dispatch_id)
    if dispatch_status is None:
        paid_at: datetime = as_utc(order["last_update_time"])
        with SetWorkflowID(dispatch_id):
            await DBOS.start_workflow_async(dispatch_workflow, order_id, paid_at.timestamp())
        log_repair(
            order_id,
            "dispatch_started",
            "order %s paid but never dispatched (checkout %s): dispatch started",
            order_id,
            checkout_status,
        )
        return True
    if dispatch_status in RESUMABLE:
        await DBOS.resume_workflow_async(dispatch_id)
        log_repair(
            order_id,
            "dispatch_resumed",
            "order %s: its dispatch was %s, resumed",
            order_id,
            dispatch_status,
        )
        return True
    log.error("order %s is PAID but its dispatch ended as %s", order_id, dispatch_status)
    return False


async def run(db: Database, interval_s: float) -> None:
    """Reconcile every `interval_s` until cancelled; a database that is away is waited out."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await reconcile(db)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database away, say: the next pass tries again
            log.warning("reconciling orders failed, retrying in %.1f s: %s", interval_s, exc)


async def unsettled_orders(
    *, session: AsyncSession, after: int = 0, limit: int = CHUNK
) -> list[dict[str, Any]]:
    """Up to `limit` PENDING or PAID orders (the ones a workflow still has to move on) after
    order `after`, in order, with the checkout that made each and when it last changed. Read
    through their own index (migration 0007), whose condition this repeats word for word."""
    rows = await session.execute(
        select(
            orders.c.order_id,
            orders.c.checkout_id,
            orders.c.order_status,
            orders.c.last_update_time,
        )
        .where(UNSETTLED, orders.c.order_id > after)
        .order_by(orders.c.order_id)
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]


async def order_status(*, session: AsyncSession, order_id: int) -> int | None:
    return (
        await session.execute(select(orders.c.order_status).where(orders.c.order_id == order_id))
    ).scalar_one_or_none()
