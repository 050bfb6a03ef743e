"""Every SQL statement the store runs. One function is one transaction body: it takes the
session as a keyword argument and never commits (the datasource owns begin, commit and retry)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, Result, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .schema import RESTOCK_LEVEL, WIDGET_ID, OrderStatus, orders, products

ORDER_COLUMNS = (
    orders.c.order_id,
    orders.c.order_status,
    orders.c.last_update_time,
    orders.c.progress_remaining,
    orders.c.created_at,
)


async def create_order(*, session: AsyncSession, checkout_id: str) -> tuple[int, str]:
    """Insert a PENDING order for a checkout; return its id and a fresh payment id.

    The payment id is random rather than derived from the shopper's key, so knowing a key is not
    enough to forge a payment reference; the checkpoint makes it stable across crashes.
    """
    payment_id = uuid.uuid4().hex
    order_id = (
        await session.execute(
            orders.insert()
            .values(checkout_id=checkout_id, payment_id=payment_id)
            .returning(orders.c.order_id)
        )
    ).scalar_one()
    return order_id, payment_id


async def reserve_inventory(*, session: AsyncSession, order_id: int) -> bool:
    """Take one widget for the order; with none left, cancel the order instead.

    The stock check lives in the UPDATE's WHERE, so it holds under any concurrency.
    """
    result = await session.execute(
        update(products)
        .where(products.c.product_id == WIDGET_ID, products.c.inventory > 0)
        .values(inventory=products.c.inventory - 1)
    )
    taken = _rowcount(result)
    if not taken:
        await _set_status(session, order_id, OrderStatus.CANCELLED, OrderStatus.PENDING)
    return bool(taken)


async def mark_paid(*, session: AsyncSession, order_id: int) -> bool:
    """PENDING to PAID; False if the order had already left PENDING."""
    return await _set_status(session, order_id, OrderStatus.PAID, OrderStatus.PENDING)


async def release_order(*, session: AsyncSession, order_id: int) -> bool:
    """Cancel a PENDING order and put its widget back: the undo of `reserve_inventory`.

    Both in one transaction and only from PENDING, so the widget comes back exactly once.
    """
    cancelled = await _set_status(session, order_id, OrderStatus.CANCELLED, OrderStatus.PENDING)
    if cancelled:
        await session.execute(
            update(products)
            .where(products.c.product_id == WIDGET_ID)
            .values(inventory=products.c.inventory + 1)
        )
    return cancelled


async def tick_dispatch(*, session: AsyncSession, order_id: int) -> int:
    """Count one step of a PAID order's dispatch down; DISPATCHED when it reaches zero.

    Returns the progress left. The guard on `progress_remaining > 0` keeps a stray extra tick from
    ever taking it below zero.
    """
    remaining = (
        await session.execute(
            update(orders)
            .where(
                orders.c.order_id == order_id,
                orders.c.order_status == OrderStatus.PAID,
                orders.c.progress_remaining > 0,
            )
            .values(
                progress_remaining=orders.c.progress_remaining - 1,
                order_status=case(
                    (orders.c.progress_remaining == 1, OrderStatus.DISPATCHED.value),
                    else_=orders.c.order_status,
                ),
                last_update_time=func.now(),
            )
            .returning(orders.c.progress_remaining)
        )
    ).scalar_one_or_none()
    if remaining is None:
        # Already dispatched: report where it stands.
        remaining = (
            await session.execute(
                select(orders.c.progress_remaining).where(orders.c.order_id == order_id)
            )
        ).scalar_one()
    return int(remaining)


async def restock(*, session: AsyncSession) -> int:
    """Set the widget's inventory to the restock level."""
    await session.execute(
        update(products).where(products.c.product_id == WIDGET_ID).values(inventory=RESTOCK_LEVEL)
    )
    return RESTOCK_LEVEL


async def get_product(*, session: AsyncSession) -> dict[str, Any] | None:
    row = (
        (await session.execute(select(products).where(products.c.product_id == WIDGET_ID)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def get_order(*, session: AsyncSession, order_id: int) -> dict[str, Any] | None:
    row = (
        (await session.execute(select(*ORDER_COLUMNS).where(orders.c.order_id == order_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def list_orders(*, session: AsyncSession, limit: int | None = None) -> list[dict[str, Any]]:
    """Orders, newest first; all of them unless a limit is given."""
    query = select(*ORDER_COLUMNS).order_by(orders.c.order_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in (await session.execute(query)).mappings()]


async def count_orders_by_status(*, session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(orders.c.order_status, func.count()).group_by(orders.c.order_status)
    )
    return {int(status): int(count) for status, count in rows}


async def find_checkout(*, session: AsyncSession, payment_id: str) -> str | None:
    """The checkout workflow that handed out this payment id, if any."""
    return (
        await session.execute(select(orders.c.checkout_id).where(orders.c.payment_id == payment_id))
    ).scalar_one_or_none()


async def _set_status(
    session: AsyncSession, order_id: int, status: OrderStatus, from_status: OrderStatus
) -> bool:
    result = await session.execute(
        update(orders)
        .where(orders.c.order_id == order_id, orders.c.order_status == from_status)
        .values(order_status=status, last_update_time=func.now())
    )
    return bool(_rowcount(result))


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE changed (SQLAlchemy types execute() as a generic Result)."""
    return int(cast(CursorResult[Any], result).rowcount)
