"""The cockpit's live figures: throughput, orders by state, restarts, the stock ledger, the
orders no workflow will move on (stranded), and the refunds due."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..database.handle import Database
from ..demo.shoppers import get_load_settings
from ..durable import reconciler
from ..durable.lifecycle import list_process_starts
from ..shop import refunds
from ..shop.tables import RESTOCK_LEVEL, WIDGET_ID, OrderStatus, as_utc, orders, products

WINDOW_S = 300
BUCKET_S = 5


def throughput(purchase_times: list[datetime], now: datetime) -> list[dict[str, Any]]:
    """Purchases per second in BUCKET_S buckets over the last WINDOW_S, oldest first."""
    start = now - timedelta(seconds=WINDOW_S)
    counts = Counter(
        int((as_utc(at) - start).total_seconds() // BUCKET_S)
        for at in purchase_times
        if as_utc(at) >= start
    )
    return [
        {
            "at": (start + timedelta(seconds=i * BUCKET_S)).isoformat(),
            "per_second": counts.get(i, 0) / BUCKET_S,
        }
        for i in range(WINDOW_S // BUCKET_S)
    ]


async def collect(db: Database) -> dict[str, Any]:
    now = datetime.now(UTC)
    by_status = await db.read(count_orders_by_status)
    ledger = await db.read(stock_ledger)
    starts = await db.read(list_process_starts)
    load = await db.read(get_load_settings)
    due = await db.read(refunds.refunds_due)
    return {
        "now": now.isoformat(),
        "orders": {status.name: by_status.get(status.value, 0) for status in OrderStatus},
        "waiting_for_payment": by_status.get(OrderStatus.PENDING.value, 0),
        "dispatching": by_status.get(OrderStatus.PAID.value, 0),
        "ledger": {**ledger, "ok": ledger["unaccounted"] == 0},
        "oversold": max(0, -ledger["inventory"]),
        # Orders reserved or paid that no running or queued workflow will move on (reconciler.py).
        "stranded": await reconciler.count_stranded(db),
        # Money received for checkouts that had already ended, not yet refunded (shop/refunds.py).
        "refunds_due": due["count"],
        "refunds_due_amount": float(due["amount"]),
        "throughput": throughput(await db.read(recent_purchase_times), now),
        "process_starts": [
            {
                "at": as_utc(row["started_at"]).isoformat(),
                "restart_count": row["restart_count"],
                "workflows_recovered": row["workflows_recovered"],
                "executor_id": row["executor_id"],
            }
            for row in starts
        ],
        "load": load,
    }


async def count_orders_by_status(*, session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(orders.c.order_status, func.count()).group_by(orders.c.order_status)
    )
    return {int(status): int(count) for status, count in rows}


LIVE = (OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.DISPATCHED)


async def stock_ledger(*, session: AsyncSession) -> dict[str, int]:
    """The stock equation since the last restock, exact even with checkouts in flight at it.

    restock level == inventory + live orders that reserved since the restock
                     - widgets returned since the restock that were reserved before it

    One statement, so it reads one snapshot: read in three, an order committing in between
    would make the equation look off by one for an instant.
    """
    epoch = products.c.restock_epoch
    live = (
        select(func.count())
        .where(orders.c.reserved_epoch == epoch, orders.c.order_status.in_(LIVE))
        .scalar_subquery()
    )
    returned_from_before = (
        select(func.count())
        .where(orders.c.returned_epoch == epoch, orders.c.reserved_epoch < epoch)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(products.c.inventory, live, returned_from_before).where(
                products.c.product_id == WIDGET_ID
            )
        )
    ).one()
    stock, live_orders, returned = (int(value) for value in row)
    return {
        "restock_level": RESTOCK_LEVEL,
        "inventory": stock,
        "live_orders": live_orders,
        "returned_from_before": returned,
        "unaccounted": RESTOCK_LEVEL - (stock + live_orders - returned),
    }


async def recent_purchase_times(*, session: AsyncSession, limit: int = 20_000) -> list[Any]:
    """When the latest paid orders were placed, for the throughput chart."""
    rows = await session.execute(
        select(orders.c.created_at)
        .where(orders.c.order_status.in_((OrderStatus.PAID, OrderStatus.DISPATCHED)))
        .order_by(orders.c.order_id.desc())
        .limit(limit)
    )
    return [row[0] for row in rows]
