"""Whether a new checkout is let in, before the shop starts it: not while this instance drains
for an upgrade (durable/drain.py), not past the client's cap of unpaid checkouts, each of
which holds a widget until it is paid or times out, and not past the client's rate of new
checkouts, whatever their outcome (a sold-out answer included)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS
from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..database.handle import Database
from ..durable import drain
from ..shop import checkout
from ..shop.errors import StoreError, TooManyUnpaid
from ..shop.tables import OrderStatus, as_utc, orders
from ..shop.workflows import checkout_workflow_id


@dataclass(frozen=True)
class UnpaidCap:
    """At most `per_client` unpaid checkouts per client (0: no cap); each holds its widget for
    at most `payment_timeout_s`."""

    per_client: int
    payment_timeout_s: float


@dataclass(frozen=True)
class CheckoutRate:
    """At most `per_minute` new checkouts a minute per client (0: no cap), a minute's worth
    at once."""

    per_minute: int


def get_checkout_rate(request: Request) -> CheckoutRate:
    """For a route's Depends: the rate cap from the app's settings."""
    return CheckoutRate(request.app.state.settings.new_checkouts_per_minute)


class TooManyCheckouts(StoreError):
    """The client started its rate of new checkouts; retry once the next one is allowed."""

    status_code = 429

    def __init__(self, per_minute: int, retry_after_s: int) -> None:
        super().__init__(
            f"Too many new checkouts: at most {per_minute} a minute from one client; retry in "
            f"{retry_after_s} s"
        )
        self.headers = {"Retry-After": str(retry_after_s)}


async def start_checkout(
    db: Database,
    idempotency_key: str,
    *,
    client: str | None,
    cap: UnpaidCap,
    rate: CheckoutRate,
) -> str:
    """Start (or rejoin) the checkout for this key and return its payment id, if it is let in.

    `client` is the shopper's address (None: exempt from both caps). A new checkout from a
    client already holding its cap of unpaid ones, or past its rate of new ones, is refused
    before anything is written; a key the client already holds is never refused, nor counted
    against its rate.
    """
    workflow_id = checkout_workflow_id(idempotency_key)
    await drain.refuse_new_checkout(workflow_id)
    if client is None or not (cap.per_client or rate.per_minute):
        return await checkout.start_checkout(idempotency_key, client)
    # One new checkout per client at a time in this process, from the count to its order's
    # commit, so concurrent requests cannot all pass the same count.
    one_at_a_time: AbstractAsyncContextManager[None] = (
        _one_at_a_time(client) if cap.per_client else nullcontext()
    )
    async with one_at_a_time:
        held, mine, oldest = await db.read(unpaid_by_client, client=client, checkout_id=workflow_id)
        if not mine:
            refusal = _refusal(client, held, oldest, cap, rate)
            # Placed orders are counted above; a checkout of this key still starting is not.
            if refusal is not None and await DBOS.get_workflow_status_async(workflow_id) is None:
                raise refusal
        return await checkout.start_checkout(idempotency_key, client)


def _refusal(
    client: str, held: int, oldest: datetime | None, cap: UnpaidCap, rate: CheckoutRate
) -> StoreError | None:
    """Why a new checkout of this client is not let in, if it is not: the unpaid cap first
    (a refusal there takes nothing from its rate), then its rate."""
    if cap.per_client and held >= cap.per_client:
        return TooManyUnpaid(cap.per_client, _seconds_until_expiry(oldest, cap))
    if rate.per_minute:
        wait_s = _buckets.take(client, rate.per_minute)
        if wait_s is not None:
            return TooManyCheckouts(rate.per_minute, max(1, math.ceil(wait_s)))
    return None


class _TokenBuckets:
    """A token bucket per client: it holds up to `per_minute` tokens, refilled at
    `per_minute` a minute, and each new checkout takes one. A client idle for a minute has a
    full bucket, which is the same as none: such buckets are dropped once a minute, so the map
    holds only the clients of the last minute."""

    SWEEP_S = 60.0

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # client: (tokens, when)
        self._swept_at = time.monotonic()

    def take(self, client: str, per_minute: int, now: float | None = None) -> float | None:
        """Take a token: None if there was one, else the seconds until there is."""
        now = time.monotonic() if now is None else now
        if now - self._swept_at >= self.SWEEP_S:
            self._sweep(per_minute, now)
        per_s = per_minute / 60
        tokens, then = self._buckets.get(client, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - then) * per_s)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return None
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / per_s

    def _sweep(self, per_minute: int, now: float) -> None:
        per_s = per_minute / 60
        self._buckets = {
            client: (tokens, then)
            for client, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * per_s < per_minute
        }
        self._swept_at = now


_buckets = _TokenBuckets()


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
