"""Chaos under load: shoppers buy non-stop while the store is crashed, killed and has its
Postgres restarted under it; then every invariant of the contract is checked. Exits non-zero
if anything was lost or any invariant broke.

    python -m bench.chaos                              # SQLite, 60 s, 16 shoppers
    python -m bench.chaos --backend postgres --postgres-url postgresql://postgres@127.0.0.1/postgres
    python -m bench.chaos --duration 30 --shoppers 8 --seed 3 --tick 0.2

The store runs in a subprocess (widget_store.testing.StoreServer) on a fresh database, with a
short payment timeout (5 s: abandoned checkouts must time out many times within the run) and,
by default, the contract's 1 s dispatch tick; tests pass 0.2 s so a short run still sees every
paid order dispatched. Everything random (plans, fault times and kinds) comes from the seed;
the interleaving with the server does not, so two runs differ in detail, not in what they check.

Shoppers: each buys in a loop, most pay (a signed webhook), some decline, some abandon (the
payment timeout cancels them), some pay 2 s after the timeout (409). Now and then a request is
sent twice at once (a double click, a provider's parallel retry) or again later, and every copy
must get the same answer (same payment id, same order id); a settled payment is sometimes
contradicted by the other status (409). The server being away is normal: a transport error or
a 503 is retried with the same key or delivery until answered (bounded, 120 s).

Faults, one at a time, 3-8 s apart (seeded): the crash button, kill -9 of the serving process,
and on a local Postgres a restart of the cluster; after each the script waits until the store
serves again before counting the next gap.

The ledger (invariant 1), and why checking it this way is sound. The contract states it only
relative to a restock made while no checkout was in flight, at a quiet moment. So the run is
cut into ledger periods: each period opens with POST /restock (inventory 100) while nothing is
in flight, then admits a budget of checkouts (140, so the last ones may see 404 out of stock),
each under a key tagged with the period (`chaos-p<period>-...`). The orders "placed since the
restock" are exactly this period's keys: every earlier checkout had its answer, so its order
existed, before the restock. When the budget is used up and every admitted checkout has had its
answer, admissions stay shut until no order is PENDING: then no checkout is in flight and no
reserved widget can still come back, so it is a quiet moment, and
`100 == inventory + orders of this period that are PENDING, PAID or DISPATCHED` must hold
exactly. Orders of earlier periods cannot disturb it: they were all past PENDING when their
period closed, and PAID -> DISPATCHED moves no widget. Only then is the next restock made.
A cancelled order's widget coming back twice, or never, breaks the equation (invariant 5).

The final audit (bench/chaos_audit.py), once shoppers stop and every order is final, reads the
tables directly: one order per key (2); nothing PENDING or PAID left (3); every webhook answered
200 `paid` has a DISPATCHED order whose dispatch workflow recorded exactly ten ticks, 9 down to
0 (4); every payment id and order id a shopper was given belongs to that shopper's key (nothing
lost); every declined, abandoned, expired or out-of-stock checkout is CANCELLED; no order exists
that no shopper asked for; and inventory, sampled all along, never left 0..100 (1). The payment
timeout must hold both ways unless a fault fell inside that purchase: a payment sent at once is
accepted, one sent after the timeout is refused (a restart may legitimately deliver a late
payment to a checkout whose wait it was replaying, so those are counted, not failed).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from widget_store.testing import Database, StoreServer, signature, temp_dir, wait_until

from .chaos_audit import (
    RESTOCK_LEVEL,
    RETRY_PAUSE_S,
    SETTLE_WITHIN_S,
    Probe,
    Purchase,
    Report,
    audit,
    check_ledger,
    period_prefix,
)

# A period admits a few more checkouts than there are widgets, so out of stock is exercised.
PERIOD_BUDGET = 140
PLANS = {"pay": 64, "decline": 12, "abandon": 14, "late": 10}
# How often a shopper sends a request twice at once, repeats it later, or (the provider)
# contradicts a settled payment.
DOUBLE_SEND_P = 0.1
REPEAT_KEY_P = 0.15
REPEAT_WEBHOOK_P = 0.2
CONTRADICT_P = 0.1
# A late payer pays this long after the payment timeout, so the checkout has surely ended.
LATE_BY_S = 2.0
FAULT_GAP_S = (3.0, 8.0)
# Bounds on every wait: past them the store is not "serving again within seconds".
ANSWER_WITHIN_S = 120.0
RECOVER_WITHIN_S = 90.0
SAMPLE_EVERY_S = 0.2
AWAY = (502, 503, 504)


def chaos_env(payment_timeout_s: float = 5.0, dispatch_tick_s: float = 0.2) -> dict[str, str]:
    """The server settings a chaos run needs; pass them to StoreServer or `make_server`."""
    return {
        "WIDGET_STORE_PAYMENT_TIMEOUT_S": str(payment_timeout_s),
        "WIDGET_STORE_DISPATCH_TICK_S": str(dispatch_tick_s),
    }


class Ledger:
    """Admits checkouts into ledger periods (see the module docstring): a budget per period,
    and a count of checkouts still waiting for their answer."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.period = 0
        self.admitted = 0
        self.in_flight = 0
        self.finished = False
        self._changed = asyncio.Condition()

    async def admit(self) -> int | None:
        """The period to buy in, once there is room; None when the run is over."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.finished or self.admitted < self.budget)
            if self.finished:
                return None
            self.admitted += 1
            self.in_flight += 1
            return self.period

    async def answered(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    async def drained(self) -> None:
        """Until admissions are shut (budget used, or run over) and every checkout answered."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: (self.finished or self.admitted >= self.budget) and self.in_flight == 0
            )

    async def next_period(self) -> None:
        async with self._changed:
            self.period += 1
            self.admitted = 0
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.finished = True
            self._changed.notify_all()


@dataclass
class Run:
    """Everything the shoppers, the fault injector and the auditor share."""

    server: StoreServer
    http: httpx.AsyncClient
    probe: Probe
    report: Report
    payment_timeout_s: float
    fault_kinds: list[str]
    deadline: float
    # What each fault kind does (FAULTS bound to the server, or a deployment's own).
    actions: dict[str, Callable[[], None]] = field(default_factory=dict)
    fault_gap_s: tuple[float, float] = FAULT_GAP_S
    ledger: Ledger = field(default_factory=lambda: Ledger(PERIOD_BUDGET))
    purchases: list[Purchase] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def broke(self, problem: str) -> None:
        self.report.broke(problem)


# --- talking to the store ------------------------------------------------------------------


async def send(
    run: Run,
    path: str,
    expect: tuple[int, ...],
    headers: Callable[[], dict[str, str]] | None = None,
) -> httpx.Response | None:
    """POST until answered: a transport error or a 503 means the store is away, and the same key
    or delivery is safe to repeat. None (and a broken invariant) if it never answers, or answers
    something the contract does not allow here."""
    started = time.monotonic()
    deadline = started + ANSWER_WITHIN_S
    while time.monotonic() < deadline:
        try:
            answer = await run.http.post(path, headers=headers() if headers else None)
        except httpx.TransportError:
            answer = None
        # 503: the store is away; 502 and 504: a balancer in front found no store to answer.
        if answer is not None and answer.status_code not in AWAY:
            run.report.requests.append((started, time.monotonic()))
            if answer.status_code in expect:
                return answer
            run.broke(f"POST {path} answered {answer.status_code}: {answer.text[:200]}")
            return None
        run.report.counts["retries"] += 1
        await asyncio.sleep(RETRY_PAUSE_S)
    run.broke(f"POST {path} went unanswered for {ANSWER_WITHIN_S:g} s")
    return None


async def deliver(run: Run, payment_id: str, status: str) -> httpx.Response | None:
    """The payment provider's webhook, signed afresh on every attempt (timestamps age)."""
    secret = run.server.secret
    return await send(
        run,
        f"/payment_webhook/{payment_id}/{status}",
        expect=(200, 409),
        headers=lambda: {"Widget-Signature": signature(secret, payment_id, status)},
    )


async def restock(run: Run) -> None:
    answer = await send(run, "/restock", expect=(200,))
    if answer is not None and answer.json()["inventory"] != RESTOCK_LEVEL:
        run.broke(f"POST /restock answered {answer.text}")


# --- shoppers --------------------------------------------------------------------------------


async def shopper(run: Run, index: int, seed: int) -> None:
    """Buy until the run is over; each purchase follows a plan drawn from the seeded RNG."""
    rng = random.Random(f"{seed}-{index}")
    number = 0
    while True:
        number += 1
        plan = rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
        purchase = await check_out(run, rng, f"s{index}-{number}", plan)
        if purchase is None:
            return
        if purchase.payment_id is not None:
            await settle(run, rng, purchase)


async def check_out(run: Run, rng: random.Random, name: str, plan: str) -> Purchase | None:
    """Start a checkout in the current ledger period and wait for its answer; None when the run
    is over. Sometimes the shopper double-clicks (two requests at once) or comes back with the
    same key later: every answer must be the same payment id, and there must be one order."""
    period = await run.ledger.admit()
    if period is None:
        return None
    try:
        purchase = Purchase(key=f"{period_prefix(period)}{name}", period=period, plan=plan)
        run.purchases.append(purchase)
        run.report.counts["attempted"] += 1
        path = f"/checkout/{purchase.key}"
        copies = 2 if rng.random() < DOUBLE_SEND_P else 1
        answer = await agree(run, path, [send(run, path, (200, 404)) for _ in range(copies)])
        if answer is not None and answer.status_code == 404:
            purchase.out_of_stock = True
        elif answer is not None:
            purchase.payment_id = answer.text
            if rng.random() < REPEAT_KEY_P:
                run.report.counts["repeated_keys"] += 1
                await agree(run, path, [send(run, path, (200,))], first=answer)
        return purchase
    finally:
        await run.ledger.answered()


async def agree(
    run: Run,
    what: str,
    sends: Sequence[Awaitable[httpx.Response | None]],
    first: httpx.Response | None = None,
) -> httpx.Response | None:
    """Send the same request (concurrently when several); every answer, and `first` if given,
    must be the same. None if one went unanswered (already reported)."""
    answers = await asyncio.gather(*sends)
    if any(answer is None for answer in answers):
        return None
    seen = [first, *answers] if first is not None else answers
    distinct = {(a.status_code, a.text) for a in seen if a is not None}
    if len(distinct) > 1:
        run.broke(f"POST {what}: the same request answered {sorted(distinct)}")
    return seen[0]


async def settle(run: Run, rng: random.Random, purchase: Purchase) -> None:
    """Pay, decline, pay too late, or walk away, as planned. Sometimes the provider delivers
    twice at once or again later (same answer), or a settled payment is contradicted (409)."""
    if purchase.plan == "abandon":
        return
    assert purchase.payment_id is not None
    status = "failed" if purchase.plan == "decline" else "paid"
    if purchase.plan == "late":
        await asyncio.sleep(run.payment_timeout_s + LATE_BY_S)
    path = f"/payment_webhook/{purchase.payment_id}/{status}"
    copies = 2 if rng.random() < DOUBLE_SEND_P else 1
    sends = [deliver(run, purchase.payment_id, status) for _ in range(copies)]
    answer = await agree(run, path, sends)
    if answer is None:
        return
    purchase.webhook = (answer.status_code, answer.text)
    purchase.settled_at = time.monotonic()
    if rng.random() < REPEAT_WEBHOOK_P:
        run.report.counts["repeated_webhooks"] += 1
        await agree(run, path, [deliver(run, purchase.payment_id, status)], first=answer)
    if answer.status_code == 200 and rng.random() < CONTRADICT_P:
        await contradict(run, purchase, status)


async def contradict(run: Run, purchase: Purchase, status: str) -> None:
    """A delivery of the other status for a settled payment: 409, and nothing changes."""
    assert purchase.payment_id is not None
    run.report.counts["contradicted"] += 1
    other = "failed" if status == "paid" else "paid"
    answer = await deliver(run, purchase.payment_id, other)
    if answer is not None and answer.status_code != 409:
        run.broke(f"{other} after {status} for {purchase.key}: {answer.status_code} {answer.text}")


# --- the ledger ------------------------------------------------------------------------------


async def keep_ledger(run: Run) -> None:
    """Close each period at a quiet moment, check its equation, restock, open the next."""
    while True:
        await run.ledger.drained()
        await check_ledger(
            run.report, run.probe, run.ledger.period, run.payment_timeout_s + SETTLE_WITHIN_S
        )
        if run.ledger.finished:
            return
        await restock(run)
        await run.ledger.next_period()


async def sample_inventory(run: Run) -> None:
    """Watch the stock all along: it must never be seen below 0 (nor above a restock)."""
    low, high = None, None
    while not run.stopped.is_set():
        try:
            inventory = int(await run.probe.scalar("SELECT inventory FROM products"))
        except sa.exc.SQLAlchemyError:
            inventory = None  # Postgres is restarting
        if inventory is not None:
            low = inventory if low is None else min(low, inventory)
            high = inventory if high is None else max(high, inventory)
            run.report.inventory_range = (low, high)
        await asyncio.sleep(SAMPLE_EVERY_S)
    if low is not None and high is not None and not 0 <= low <= high <= RESTOCK_LEVEL:
        run.broke(f"inventory seen at {low}..{high}, outside 0..{RESTOCK_LEVEL}")


# --- faults ----------------------------------------------------------------------------------


def press_crash_button(server: StoreServer) -> None:
    pid = server.health()["pid"]
    try:
        httpx.post(f"{server.base_url}/crash_application", timeout=10)
    except httpx.TransportError:
        pass  # it dies before answering
    server.wait_healthy(not_pid=pid, timeout=RECOVER_WITHIN_S)


def kill_9(server: StoreServer) -> None:
    pid = server.kill_worker()
    server.wait_healthy(not_pid=pid, timeout=RECOVER_WITHIN_S)


def postgres_version() -> str:
    """The newest cluster version installed, compared as numbers (10 after 9.6)."""
    versions = os.listdir("/etc/postgresql")
    return max(versions, key=lambda v: [int(part) for part in v.split(".") if part.isdigit()])


def restart_postgres(server: StoreServer) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )

    def serving() -> bool | None:
        return httpx.get(f"{server.base_url}/product", timeout=5).status_code == 200 or None

    wait_until(serving, timeout=RECOVER_WITHIN_S, interval=0.2, what="the store to reach Postgres")


FAULTS: dict[str, Callable[[StoreServer], None]] = {
    "crash_button": press_crash_button,
    "kill_9": kill_9,
    "postgres_restart": restart_postgres,
}


def can_restart_postgres(server: StoreServer) -> bool:
    """Only a cluster on this machine that this user may restart (root, as in the CI image)."""
    if server.database.url is None or not Path("/etc/postgresql").is_dir():
        return False
    host = sa.make_url(server.database.url).host
    return os.geteuid() == 0 and host in ("127.0.0.1", "localhost", None)


def fault_kinds(rng: random.Random, kinds: list[str]) -> Iterator[str]:
    """Every kind once per round, in a seeded order: a short run still sees each kind."""
    while True:
        yield from rng.sample(kinds, len(kinds))


async def inject_faults(run: Run, seed: int) -> None:
    """One fault at a time until the deadline, each after a seeded gap of serving."""
    rng = random.Random(f"{seed}-faults")
    kinds = fault_kinds(rng, run.fault_kinds)
    while True:
        gap = rng.uniform(*run.fault_gap_s)
        await asyncio.sleep(min(gap, max(0.0, run.deadline - time.monotonic())))
        if time.monotonic() >= run.deadline:
            return
        kind = next(kinds)
        started = time.monotonic()
        try:
            await asyncio.to_thread(run.actions[kind])
        except Exception as exc:  # the store did not come back: nothing more to inject
            run.broke(f"{kind}: the store did not come back: {exc}"[:2000])
            return
        run.report.fault_log.append((kind, started, time.monotonic()))


# --- running it ------------------------------------------------------------------------------


async def main_loop(run: Run, shoppers: int, seed: int) -> None:
    """Restock, buy under faults until the deadline, let it settle, then audit."""
    await restock(run)
    sampler = asyncio.create_task(sample_inventory(run))
    faults = asyncio.create_task(inject_faults(run, seed))
    ledger = asyncio.create_task(keep_ledger(run))
    buyers = [asyncio.create_task(shopper(run, i, seed)) for i in range(shoppers)]
    await asyncio.sleep(max(0.0, run.deadline - time.monotonic()))
    await run.ledger.finish()
    await asyncio.gather(*buyers, faults)
    await ledger
    await audit(run.report, run.probe, run.http, run.purchases)
    run.stopped.set()
    await sampler


def payment_timeout_of(server: StoreServer) -> float:
    timeout = server.env().get("WIDGET_STORE_PAYMENT_TIMEOUT_S")
    if timeout is None:
        raise ValueError("start the server with chaos_env(): the default 300 s timeout is too long")
    return float(timeout)


def run_chaos(
    server: StoreServer,
    *,
    duration_s: float = 30.0,
    shoppers: int = 16,
    seed: int = 0,
    fault_gap_s: tuple[float, float] = FAULT_GAP_S,
    period_budget: int = PERIOD_BUDGET,
    faults: list[str] | None = None,
    actions: dict[str, Callable[[], None]] | None = None,
    base_url: str | None = None,
) -> Report:
    """Run chaos against a started server (see chaos_env) and return what was found.

    `faults`: the kinds to inject (keys of FAULTS); by default all, Postgres restarts only when
    can_restart_postgres says so. `actions` and `base_url`: a deployment's own faults and the
    address shoppers use (a balancer's, bench/soak.py), `server` being one of its instances.
    """
    report = Report(server.database.kind, seed, duration_s, shoppers)
    probe = Probe(server.database.app_url)
    if actions is None:
        if faults is None:
            faults = [k for k in FAULTS if k != "postgres_restart" or can_restart_postgres(server)]
        actions = {kind: functools.partial(FAULTS[kind], server) for kind in faults}
    faults = list(actions)

    async def go() -> None:
        async with httpx.AsyncClient(base_url=base_url or server.base_url, timeout=60) as http:
            run = Run(
                server=server,
                http=http,
                probe=probe,
                report=report,
                payment_timeout_s=payment_timeout_of(server),
                fault_kinds=faults,
                deadline=time.monotonic() + duration_s,
                fault_gap_s=fault_gap_s,
                ledger=Ledger(period_budget),
                actions=actions,
            )
            await main_loop(run, shoppers, seed)

    try:
        asyncio.run(go())
    finally:
        probe.close()
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n\n")[0].replace("\n", " ")
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "WIDGET_STORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of buying")
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--payment-timeout", type=float, default=5.0)
    parser.add_argument("--tick", type=float, default=1.0, help="dispatch tick, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database = Database.create(args.backend, temp_dir("widget-store-chaos-"), args.postgres_url)
    server = StoreServer(database, env_overrides=chaos_env(args.payment_timeout, args.tick))
    try:
        server.start()
        report = run_chaos(server, duration_s=args.duration, shoppers=args.shoppers, seed=args.seed)
    finally:
        server.stop()
        database.drop()
    print(report.render())
    if report.ok:
        shutil.rmtree(database.data_dir, ignore_errors=True)
    else:  # kept for a look
        print(f"server log: {server.log_path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
