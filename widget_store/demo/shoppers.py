"""Built-in simulated shoppers for the demo: durable load that goes through the same doors as
a real shopper (the checkout route, the sandbox provider, the signed webhook).

Each shopper is a DBOS workflow on the `shoppers` queue, so the crash button interrupts them
like everything else and they carry on after the restart. A shopper buys, then pays, declines
or walks away (its checkout then times out), thinks for a moment, and buys again, until the
operator stops the load or changes it (a new generation). After a few purchases it hands over
to a fresh workflow, which keeps each workflow's recorded history short.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from typing import Any, Literal

import httpx
from dbos import DBOS, SetWorkflowID
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..database.handle import Database
from ..shop.runtime import current
from ..shop.tables import load_settings

log = logging.getLogger(__name__)

QUEUE = "shoppers"
MAX_SHOPPERS = 64
PURCHASES_PER_WORKFLOW = 20
THINK_S = (0.2, 1.5)

# The built-in shoppers' requests in flight at once, per serving process. They demonstrate the
# store for real shoppers and must never crowd them out: unbounded, the most shoppers the store
# allows kept every connection and, on SQLite, the one write lock busy, and a real checkout
# waited seconds behind them (bench/load_control.py).
REQUESTS_AT_ONCE = 2
# Between two shoppers a new load enqueues: 64 of them start over about 2 s.
ENQUEUE_SPACING_S = 0.03

Action = Literal["pay", "decline", "abandon"]


# Shown by the built-in shoppers' requests: they all come from the server's own address, and
# are not held to the cap on unpaid checkouts per client (checkout.UnpaidCap).
PASS_HEADER = "Widget-Store-Shopper"


def shopper_pass(webhook_secret: str) -> str:
    """The built-in shoppers' pass: derived from the webhook secret, so every process of the
    store agrees on it and nobody without the secret can make it."""
    return hmac.new(webhook_secret.encode(), b"built-in shoppers", hashlib.sha256).hexdigest()


def is_shopper_pass(webhook_secret: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(
        shopper_pass(webhook_secret).encode(), given.encode()
    )


class StoreBusy(Exception):
    """The store did not answer usefully (restarting, 503): the step is retried."""


def shopper_workflow_id(generation: int, slot: int, round_: int) -> str:
    return f"shopper:{generation}:{slot}:{round_}"


# How often each serving process looks for shoppers to start: every poll is a transaction,
# whether or not any load runs, and a shopper that starts a second late changes nothing.
QUEUE_POLLING_S = 1.0


async def register_queue() -> None:
    await DBOS.register_queue_async(
        QUEUE, worker_concurrency=MAX_SHOPPERS, polling_interval_sec=QUEUE_POLLING_S
    )


async def start_load(db: Database, **mix: int) -> dict[str, Any]:
    """Record the new load (a new generation, so earlier shoppers stop) and start the workflow
    that enqueues its shoppers: two writes, so the cockpit's change answers at once however
    busy the database is, where enqueuing each shopper here took a write each."""
    settings = await db.run(set_load_settings, running=True, **mix)
    generation = settings["generation"]
    with SetWorkflowID(f"load:{generation}"):
        await DBOS.start_workflow_async(start_shoppers, generation, settings["shoppers"])
    return settings


@DBOS.workflow(name="start_shoppers")
async def start_shoppers(generation: int, count: int) -> None:
    """Enqueue a load's shoppers; durable, so a crash midway enqueues the rest at recovery.

    Spaced out (a plain pause, nothing recorded) rather than all at once: a burst of enqueues
    is a burst of writes, which on SQLite would queue a real shopper's checkout behind it."""
    for slot in range(count):
        if slot:
            await asyncio.sleep(ENQUEUE_SPACING_S)
        await _enqueue(generation, slot, 0)


async def stop_load(db: Database) -> dict[str, Any]:
    return await db.run(set_load_settings, running=False, shoppers=0)


async def _enqueue(generation: int, slot: int, round_: int) -> None:
    with SetWorkflowID(shopper_workflow_id(generation, slot, round_)):
        await DBOS.enqueue_workflow_async(QUEUE, shopper_workflow, generation, slot, round_)


@DBOS.step(name="plan_purchase")
async def plan_purchase(generation: int) -> Action | None:
    """What this shopper does next, or None if its load was stopped or replaced."""
    settings = await current().db.read(get_load_settings)
    if not settings["running"] or settings["generation"] != generation:
        return None
    actions: list[Action] = ["pay", "decline", "abandon"]
    weights = [settings["pay_weight"], settings["decline_weight"], settings["abandon_weight"]]
    return random.choices(actions, weights=weights)[0] if sum(weights) else "pay"


@DBOS.step(name="buy", retries_allowed=True, max_attempts=60, interval_seconds=0.5)
async def buy(key: str) -> str | None:
    """Buy Now, as the page does; None if sold out."""
    answer = await _post(f"/checkout/{key}")
    if answer.status_code == 404:
        return None
    return answer.text


@DBOS.step(name="settle", retries_allowed=True, max_attempts=60, interval_seconds=0.5)
async def settle(payment_id: str, status: Literal["paid", "failed"]) -> int:
    """Pay or decline on the sandbox provider's page; it signs and delivers the webhook."""
    return (await _post(f"/sandbox/payments/{payment_id}/{status}")).status_code


@DBOS.step(name="restock", retries_allowed=True, max_attempts=60, interval_seconds=0.5)
async def restock() -> None:
    await _post("/restock")


_in_flight: asyncio.Semaphore | None = None


async def _post(path: str) -> httpx.Response:
    global _in_flight
    if _in_flight is None:  # made on the serving loop, the one it is used on
        _in_flight = asyncio.Semaphore(REQUESTS_AT_ONCE)
    rt = current()
    try:
        async with _in_flight:
            answer = await rt.http.post(f"{rt.base_url}{path}")
    except httpx.HTTPError as exc:
        raise StoreBusy(f"{path}: {exc!r}") from None
    if answer.status_code >= 500:
        raise StoreBusy(f"{path}: {answer.status_code}")
    return answer


@DBOS.workflow(name="shopper")
async def shopper_workflow(generation: int, slot: int, round_: int) -> int:
    """One simulated shopper; returns how many purchases it made.

    Per purchase: plan_purchase, buy (sold out: restock), settle (pay or decline; an abandoned
    checkout is left to time out), then a durable think time. After PURCHASES_PER_WORKFLOW it
    enqueues its successor and ends.
    """
    for n in range(PURCHASES_PER_WORKFLOW):
        action = await plan_purchase(generation)
        if action is None:
            return n
        payment_id = await buy(f"sim-{generation}-{slot}-{round_}-{n}")
        if payment_id is None:
            await restock()
        elif action != "abandon":
            await settle(payment_id, "paid" if action == "pay" else "failed")
        await DBOS.sleep_async(random.uniform(*THINK_S))
    await _enqueue(generation, slot, round_ + 1)
    return PURCHASES_PER_WORKFLOW


async def get_load_settings(*, session: AsyncSession) -> dict[str, Any]:
    row = (await session.execute(select(load_settings).where(load_settings.c.id == 1))).mappings()
    return dict(row.one())


async def set_load_settings(*, session: AsyncSession, **values: Any) -> dict[str, Any]:
    """Change the built-in shoppers' settings; a new generation tells running ones to stop."""
    await session.execute(
        update(load_settings)
        .where(load_settings.c.id == 1)
        .values(generation=load_settings.c.generation + 1, **values)
    )
    return await get_load_settings(session=session)
