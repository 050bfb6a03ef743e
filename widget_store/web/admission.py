"""Whether a new checkout is let in, before the shop starts it: not while this instance drains
for an upgrade (durable/drain.py), and not past the client's cap of unpaid checkouts, each of
which holds a widget until it is paid or times out."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..database.handle import Database
from ..durable import drain
from ..shop import checkout
from ..shop.errors import TooManyUnpaid
from ..shop.tables import OrderStatus, as_utc, orders
from ..shop.workflows import checkout_workflow_id


@dataclass(frozen=True)
class UnpaidCap:
    """At most `per_client` unpaid checkouts per client (0: no cap); each holds its widget for
    at most `payment_timeout_s`."""

    per_client: int
    payment_timeout_s: float


async def start_checkout(
    db: Database, idempotency_key: str, *, client: str | None, cap: UnpaidCap
) -> str:
    """Start (or rejoin) the checkout for this key and return its payment id, if it is let in.

    `client` is the shopper's address (None: exempt from the cap). A new checkout from a
    client already holding its cap of unpaid ones is refused before anything is reserved; a
    key the client already holds is never refused.
    """
    workflow_id = checkout_workflow_id(idempotency_key)
    await drain.refuse_new_checkout(workflow_id)
    if client is None or not cap.per_client:
        return await checkout.start_checkout(idempotency_key, client)
    # One new checkout per client at a time in this process, from the count to its order's
    # commit, so concurrent requests cannot all pass the same count.
    async with _one_at_a_time(client):
        held, mine, oldest = await db.read(unpaid_by_client, client=client, checkout_id=workflow_id)
        if held >= cap.per_client and not mine:
            # Placed orders are counted above; a checkout of this key still starting is not.
            if await DBOS.get_workflow_status_async(workflow_id) is None:
                raise TooManyUnpaid(cap.per_client, _seconds_until_expiry(oldest, cap))
        return await checkout.start_checkout(idempotency_key, client)


def _seconds_until_expiry(placed_at: datetime | None, cap: UnpaidCap) -> int:
    """Until the client's oldest unpaid checkout times out and frees a place (at least 1 s)."""
    if placed_at is None:
        return 1
    left = cap.payment_timeout_s - (datetime.now(UTC) - as_utc(placed_at)).total_seconds()
    return max(1, math.ceil(left))


_client_locks: dict[str, tuple[asyncio.Lock, int]] = {}


@asynccontextmanager
async def _one_at_a_time(client: str) -> AsyncIterator[None]:
    """A lock per client, dropped once nobody holds or waits for it (the map stays small)."""
    lock, users = _client_locks.get(client, (asyncio.Lock(), 0))
    _client_locks[client] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _client_locks[client]
        if users == 1:
            del _client_locks[client]
        else:
            _client_locks[client] = (lock, users - 1)


async def unpaid_by_client(
    *, session: AsyncSession, client: str, checkout_id: str
) -> tuple[int, bool, Any]:
    """How many PENDING orders this client holds, whether one of them is this checkout's, and
    when the oldest was placed (None when it holds none)."""
    pending = (orders.c.client == client) & (orders.c.order_status == OrderStatus.PENDING)
    held = select(func.count(), func.min(orders.c.created_at)).where(pending).subquery()
    mine = select(orders.c.order_id).where(orders.c.checkout_id == checkout_id).exists()
    count, oldest, placed = (await session.execute(select(held, mine))).one()
    return int(count), bool(placed), oldest
