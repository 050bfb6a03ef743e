"""The cockpit's live figures: throughput, orders by state, restarts, the stock ledger, and the
orders no workflow will move on (stranded)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from ..database.handle import Database
from ..durable import reconciler
from ..shop import store
from ..shop.tables import OrderStatus, as_utc

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
    by_status = await db.read(store.count_orders_by_status)
    ledger = await db.read(store.stock_ledger)
    starts = await db.read(store.list_process_starts)
    load = await db.read(store.get_load_settings)
    return {
        "now": now.isoformat(),
        "orders": {status.name: by_status.get(status.value, 0) for status in OrderStatus},
        "waiting_for_payment": by_status.get(OrderStatus.PENDING.value, 0),
        "dispatching": by_status.get(OrderStatus.PAID.value, 0),
        "ledger": {**ledger, "ok": ledger["unaccounted"] == 0},
        "oversold": max(0, -ledger["inventory"]),
        # Orders reserved or paid that no running or queued workflow will move on (reconciler.py).
        "stranded": await reconciler.count_stranded(db),
        "throughput": throughput(await db.read(store.recent_purchase_times), now),
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
