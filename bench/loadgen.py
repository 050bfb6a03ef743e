"""The load the benchmarks make: the purchase mix, a shopper's purchase, the closed and open
loops that run purchases, and the recorder they fill (latencies, purchases and errors, cut into
a warm-up and a steady-state window)."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .stats import latency_summary

T = TypeVar("T")

# What a shopper does after checking out: pay, have the card declined, or walk away.
PAY, DECLINE, ABANDON = "paid", "failed", "abandon"
MIX = {PAY: 0.8, DECLINE: 0.1, ABANDON: 0.1}
CHECKOUT, WEBHOOK = "checkout", "webhook"
ENDPOINTS = (CHECKOUT, WEBHOOK)

# How long an abandoned checkout waits before it gives its widget back, in the load runs.
LOAD_PAYMENT_TIMEOUT_S = 10.0


@dataclass
class Recorder:
    """Latencies, purchases and errors of one run, each stamped with when it ended.

    The run is cut in two windows by when things ended: the first `warmup_s` (dispatch workflows
    are still ramping up: each paid order adds ten ticks over the next ten seconds) and the rest,
    the steady state. Errors count whenever they happen.
    """

    duration_s: float
    warmup_s: float
    started: float = field(default_factory=time.perf_counter)
    latencies: list[tuple[str, float, float]] = field(default_factory=list)
    purchases: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def restart_clock(self) -> None:
        self.started = time.perf_counter()

    async def timed(self, endpoint: str, call: Awaitable[T]) -> T | None:
        """Await `call` and record its latency; an exception is recorded as an error, None."""
        began = time.perf_counter()
        try:
            result = await call
        except Exception as exc:
            self.error(f"{endpoint}: {type(exc).__name__}")
            return None
        self.latencies.append((endpoint, self.now(), time.perf_counter() - began))
        return result

    def error(self, what: str) -> None:
        self.errors[what] += 1

    def purchased(self) -> None:
        self.purchases.append(self.now())

    def latency(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's latencies over the whole run, windows aside."""
        return latency_summary([s for name, _, s in self.latencies if name == endpoint])

    def windows(self) -> list[tuple[str, float, float]]:
        warmup = min(self.warmup_s, self.duration_s)
        spans = [(f"first {warmup:g} s", 0.0, warmup), ("steady state", warmup, self.duration_s)]
        return [span for span in spans if span[2] > span[1]]

    def window_summary(self, start: float, end: float) -> dict[str, Any]:
        purchases = sum(1 for t in self.purchases if start <= t < end)
        summary: dict[str, Any] = {
            "seconds": end - start,
            "purchases": purchases,
            "purchases_per_s": purchases / (end - start),
        }
        for endpoint in ENDPOINTS:
            summary[endpoint] = latency_summary(
                [s for name, t, s in self.latencies if name == endpoint and start <= t < end]
            )
        return summary

    def summary(self) -> dict[str, Any]:
        return {
            "windows": {name: self.window_summary(a, b) for name, a, b in self.windows()},
            "purchases_total": len(self.purchases),
            "outcomes": dict(self.outcomes),
            "errors": dict(self.errors),
            "errors_total": sum(self.errors.values()),
        }


Purchase = Callable[[str], Awaitable[None]]


async def shop(
    recorder: Recorder,
    outcome: str,
    checkout: Callable[[], Awaitable[str | None]],
    settle: Callable[[str, str], Awaitable[object | None]],
) -> None:
    """One shopper's purchase: check out, then pay, decline or walk away.

    `checkout` answers a payment id and `settle` something other than None on success; both
    record their own latency and errors. A purchase counts once the payment is answered `paid`.
    """
    payment_id = await checkout()
    if payment_id is None:
        return
    if outcome != ABANDON and await settle(payment_id, outcome) is None:
        return
    recorder.outcomes[outcome] += 1
    if outcome == PAY:
        recorder.purchased()


def choose_outcome(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


async def _guarded(purchase: Purchase, outcome: str, recorder: Recorder) -> None:
    """A purchase must never take its loop down: anything unexpected is an error."""
    try:
        await purchase(outcome)
    except Exception as exc:
        recorder.error(f"purchase: {type(exc).__name__}: {exc}"[:120])


async def closed_loop(
    purchase: Purchase, recorder: Recorder, shoppers: int, rng: random.Random
) -> None:
    """`shoppers` shoppers, each starting a new purchase as soon as the last one ended."""

    async def shopper() -> None:
        while recorder.now() < recorder.duration_s:
            await _guarded(purchase, choose_outcome(rng), recorder)

    recorder.restart_clock()
    await asyncio.gather(*(shopper() for _ in range(shoppers)))


async def open_loop(purchase: Purchase, recorder: Recorder, rate: float, rng: random.Random) -> int:
    """Purchases arriving at `rate` a second (Poisson), however slowly the earlier ones go.

    Returns the most purchases that were in flight at once.
    """
    tasks: set[asyncio.Task[None]] = set()
    most_in_flight = 0
    recorder.restart_clock()
    due = rng.expovariate(rate)
    while due < recorder.duration_s:
        await asyncio.sleep(max(0.0, due - recorder.now()))
        task = asyncio.create_task(_guarded(purchase, choose_outcome(rng), recorder))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        most_in_flight = max(most_in_flight, len(tasks))
        due += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return most_in_flight


async def drive(purchase: Purchase, recorder: Recorder, args: argparse.Namespace) -> dict[str, Any]:
    """Run the loop the arguments ask for; return what describes the load."""
    rng = random.Random(args.seed)
    if args.mode == "open":
        most = await open_loop(purchase, recorder, args.rate, rng)
        return {"mode": "open", "rate": args.rate, "most_in_flight": most}
    await closed_loop(purchase, recorder, args.shoppers, rng)
    return {"mode": "closed", "shoppers": args.shoppers}


async def bounded_gather(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls with at most `limit` at once, answers in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))
