"""Every SQL statement the store runs. One function is one transaction body: it takes the
session (or, for a workflow step's body, the connection) as a keyword argument and never
commits (the caller owns begin, commit and retry)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import RESTOCK_LEVEL, WIDGET_ID, OrderStatus, orders, products

ORDER_COLUMNS = (
    orders.c.order_id,
    orders.c.order_status,
    orders.c.last_update_time,
    orders.c.progress_remaining,
    orders.c.created_at,
)


# The bodies a workflow step runs: sync, on a Connection (workflows.IDEMPOTENT_STEP says why).
# Their statements are built once, here: they run a dozen times per purchase, and building a
# statement each time cost about half as much again as running it.
_FIND_ORDER = select(orders.c.order_id, orders.c.payment_id, orders.c.reserved_epoch).where(
    orders.c.checkout_id == bindparam("checkout_id")
)
_RESERVE = (
    update(products)
    .where(products.c.product_id == WIDGET_ID, products.c.inventory > 0)
    .values(inventory=products.c.inventory - 1)
    .returning(products.c.restock_epoch)
)
_INSERT_ORDER = orders.insert().returning(orders.c.order_id)
_SET_STATUS = (
    update(orders)
    .where(
        orders.c.order_id == bindparam("id"),
        orders.c.order_status == bindparam("from_status"),
    )
    .values(order_status=bindparam("to_status"), last_update_time=func.now())
)
_ORDER_STATUS = select(orders.c.order_status).where(orders.c.order_id == bindparam("id"))
_RETURN_WIDGET = (
    update(products)
    .where(products.c.product_id == WIDGET_ID)
    .values(inventory=products.c.inventory + 1)
    .returning(products.c.restock_epoch)
)
_MARK_RETURNED = (
    update(orders)
    .where(orders.c.order_id == bindparam("id"))
    .values(returned_epoch=bindparam("epoch"))
)
_ADVANCE = (
    update(orders)
    .where(
        orders.c.order_id == bindparam("id"),
        orders.c.order_status == OrderStatus.PAID,
        orders.c.progress_remaining > bindparam("remaining"),
    )
    .values(
        progress_remaining=bindparam("remaining"),
        order_status=bindparam("to_status"),
        last_update_time=func.now(),
    )
)


def place_order(
    *, conn: Connection, checkout_id: str, client: str | None = None
) -> tuple[int, str | None]:
    """Create a checkout's order and reserve its widget, in one transaction.

    Returns the order id and a fresh payment id; with no widget left the order is created
    CANCELLED and there is no payment id. The stock check lives in the UPDATE's WHERE, so it
    holds under any concurrency. The payment id is random rather than derived from the
    shopper's key, so knowing a key is not enough to forge a payment reference.

    Idempotent: the order row is its own checkpoint (`checkout_id` is unique). Run again after
    a crash that came between its commit and the step's record, it finds the order and answers
    as the first run did, reserving nothing. Two runs at once cannot both insert: the second
    fails on the unique key, which rolls its reservation back, and its retry finds the order.
    """
    placed = conn.execute(_FIND_ORDER, {"checkout_id": checkout_id}).one_or_none()
    if placed is not None:
        return placed.order_id, placed.payment_id if placed.reserved_epoch is not None else None
    epoch = conn.execute(_RESERVE).scalar_one_or_none()
    payment_id = uuid.uuid4().hex
    order_id = conn.execute(
        _INSERT_ORDER,
        {
            "checkout_id": checkout_id,
            "payment_id": payment_id,
            "order_status": OrderStatus.PENDING if epoch is not None else OrderStatus.CANCELLED,
            "reserved_epoch": epoch,
            "client": client,
        },
    ).scalar_one()
    return order_id, payment_id if epoch is not None else None


def mark_paid(*, conn: Connection, order_id: int) -> float | None:
    """PENDING to PAID; returns when, which fixes the dispatch schedule once the step records it.

    Idempotent: run again (after a crash before the step's record), the order is already PAID
    and nothing changes; the new moment is the one recorded, and the dispatch, which starts only
    after this step, keeps to it. None when the order was CANCELLED instead: released while its
    checkout was stopped (reconciler.py), it stays released.

    One write: the read after it, when the write changed nothing, needs no transaction of its
    own, since an order that has left PENDING never goes back to it.
    """
    if not _set_status(conn, order_id, OrderStatus.PAID, OrderStatus.PENDING):
        status = conn.execute(_ORDER_STATUS, {"id": order_id}).scalar_one()
        if status == OrderStatus.CANCELLED:
            return None
    return time.time()


def release_order(*, conn: Connection, order_id: int) -> bool:
    """Cancel a PENDING order and put its widget back: the undo of the reservation.

    Both in one transaction and only from PENDING, so the widget comes back exactly once:
    idempotent, a second run finds the order CANCELLED and changes nothing.
    """
    cancelled = _set_status(conn, order_id, OrderStatus.CANCELLED, OrderStatus.PENDING)
    if cancelled:
        epoch = conn.execute(_RETURN_WIDGET).scalar_one()
        conn.execute(_MARK_RETURNED, {"id": order_id, "epoch": epoch})
    return cancelled


def advance_dispatch(*, conn: Connection, order_id: int, remaining: int) -> int:
    """Bring a PAID order's dispatch down to `remaining` steps left; DISPATCHED at zero.

    Idempotent, so a tick needs no checkpoint of its own in this database: run again after a
    crash, it finds the order already there and changes nothing. The guard on the current
    progress also keeps it from ever going up, or below zero. One statement.
    """
    status = OrderStatus.DISPATCHED if remaining == 0 else OrderStatus.PAID
    conn.execute(_ADVANCE, {"id": order_id, "remaining": remaining, "to_status": status})
    return remaining


def _set_status(
    conn: Connection, order_id: int, status: OrderStatus, from_status: OrderStatus
) -> bool:
    result = conn.execute(
        _SET_STATUS, {"id": order_id, "from_status": from_status, "to_status": status}
    )
    return bool(result.rowcount)


async def restock(*, session: AsyncSession) -> int:
    """Set the widget's inventory to the restock level."""
    await session.execute(
        update(products)
        .where(products.c.product_id == WIDGET_ID)
        .values(inventory=RESTOCK_LEVEL, restock_epoch=products.c.restock_epoch + 1)
    )
    return RESTOCK_LEVEL


async def first_row(session: AsyncSession, query: Executable) -> dict[str, Any] | None:
    """The query's first row as a dict, or None when it has none."""
    row = (await session.execute(query)).mappings().first()
    return dict(row) if row else None


async def get_product(*, session: AsyncSession) -> dict[str, Any] | None:
    return await first_row(session, select(products).where(products.c.product_id == WIDGET_ID))


async def get_inventory(*, session: AsyncSession) -> int:
    """How many widgets are left (0 with an empty catalogue, where none can be reserved)."""
    query = select(products.c.inventory).where(products.c.product_id == WIDGET_ID)
    return (await session.execute(query)).scalar_one_or_none() or 0


async def get_order(*, session: AsyncSession, order_id: int) -> dict[str, Any] | None:
    return await first_row(session, select(*ORDER_COLUMNS).where(orders.c.order_id == order_id))


async def list_orders(*, session: AsyncSession, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` orders, newest first."""
    query = select(*ORDER_COLUMNS).order_by(orders.c.order_id.desc()).limit(limit)
    return [dict(row) for row in (await session.execute(query)).mappings()]


async def get_checkout(*, session: AsyncSession, checkout_id: str) -> dict[str, Any] | None:
    """A checkout's order, with its payment id if the widget was reserved."""
    query = select(
        orders.c.order_id,
        orders.c.order_status,
        case((orders.c.reserved_epoch.is_(None), None), else_=orders.c.payment_id).label(
            "payment_id"
        ),
    ).where(orders.c.checkout_id == checkout_id)
    return await first_row(session, query)


async def find_checkout(*, session: AsyncSession, payment_id: str) -> str | None:
    """The checkout workflow that handed out this payment id, if any."""
    return (
        await session.execute(select(orders.c.checkout_id).where(orders.c.payment_id == payment_id))
    ).scalar_one_or_none()
