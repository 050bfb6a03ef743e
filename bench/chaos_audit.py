"""The chaos run's records and its audit: what each shopper was told (Purchase), what was found
(Report), the store's tables read directly (Probe), and the checks that hold the tables against
the shoppers' answers once every order is final. Kept apart from bench/chaos.py, which makes the
load and the faults, so the checks can be read (and unit-tested) on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

CANCELLED, PENDING, DISPATCHED, PAID = -1, 0, 1, 2
RESTOCK_LEVEL = 100
TICKS = list(range(9, -1, -1))
RETRY_PAUSE_S = 0.25
# Past this, an order still PENDING or PAID after the run has not "ended" (invariant 3).
SETTLE_WITHIN_S = 120.0


@dataclass
class Purchase:
    """One checkout and what the shopper was told about it, for the audit."""

    key: str
    period: int
    plan: str
    payment_id: str | None = None
    out_of_stock: bool = False
    webhook: tuple[int, str] | None = None  # status and body of the delivery's answer
    # Monotonic times: the first checkout request, and the webhook's answer.
    started_at: float = field(default_factory=time.monotonic)
    settled_at: float | None = None

    @property
    def checkout_id(self) -> str:
        return f"checkout:{self.key}"


@dataclass
class Report:
    """What a chaos run found; `ok` is the verdict."""

    backend: str
    seed: int
    duration_s: float
    shoppers: int
    counts: Counter[str] = field(default_factory=Counter)
    # Each fault's kind, when it began and when the store served again (monotonic times).
    fault_log: list[tuple[str, float, float]] = field(default_factory=list)
    # Each request's first attempt and final answer (monotonic times), retries included.
    requests: list[tuple[float, float]] = field(default_factory=list)
    periods_checked: int = 0
    inventory_range: tuple[int, int] | None = None
    orders_lost: int = 0
    broken: list[str] = field(default_factory=list)

    @property
    def faults(self) -> Counter[str]:
        """Faults injected, by kind."""
        return Counter(kind for kind, _, _ in self.fault_log)

    @property
    def outages(self) -> list[tuple[float, float]]:
        """When each fault began and when the store served again."""
        return [(began, ended) for _, began, ended in self.fault_log]

    @property
    def ok(self) -> bool:
        return self.orders_lost == 0 and not self.broken

    def broke(self, problem: str) -> None:
        self.broken.append(problem)

    def lost(self, problem: str) -> None:
        """An order a shopper was told about is missing, or a 200 `paid` that never shipped."""
        self.orders_lost += 1
        self.broke(problem)

    def worst_wait_past(self) -> dict[str, float]:
        """By fault kind: the longest a request in flight during a fault of that kind (or sent
        before it was over) waited for its answer, counted from the fault or its own start."""
        worst: dict[str, float] = {}
        for kind, began, ended in self.fault_log:
            waits = [
                end - max(start, began)
                for start, end in self.requests
                if start <= ended and end >= began
            ]
            worst[kind] = max([worst.get(kind, 0.0), *waits])
        return worst

    def render(self) -> str:
        c = self.counts
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items())) or "none"
        slowest = max((end - start for start, end in self.outages), default=None)
        lines = [
            f"chaos: {self.backend}, {self.duration_s:g} s, {self.shoppers} shoppers, "
            f"seed {self.seed}",
            f"purchases attempted          {c['attempted']}",
            f"  completed (paid, 200)      {c['paid']}",
            f"  declined                   {c['declined']}",
            f"  abandoned (timed out)      {c['abandoned']}",
            f"  late webhook, 409          {c['late_rejected']}",
            f"  late webhook, accepted     {c['late_accepted']}  (checkout still open: store away)",
            f"  expired before payment     {c['expired_unpaid']}  (store away past the timeout)",
            f"  out of stock (404)         {c['out_of_stock']}",
            f"  unanswered                 {c['unanswered']}",
            f"repeated keys / webhooks     {c['repeated_keys']} / {c['repeated_webhooks']}",
            f"contradicting webhooks, 409  {c['contradicted']}",
            f"requests retried             {c['retries']}",
            f"faults injected              {sum(self.faults.values())}: {faults}",
            f"slowest recovery             {'-' if slowest is None else f'{slowest:.1f} s'}",
            *(
                f"  worst wait past {kind:<12} {wait:.1f} s"
                for kind, wait in sorted(self.worst_wait_past().items())
            ),
            f"ledger periods checked       {self.periods_checked}",
            f"inventory sampled (min, max) {self.inventory_range}",
            f"orders lost                  {self.orders_lost}",
            f"invariants broken            {len(self.broken)}",
        ]
        lines += [f"  - {problem}" for problem in self.broken]
        return "\n".join(lines)


class Probe:
    """Reads the store's tables directly, as an auditor would: it works while the server is
    down, and it sees the truth rather than what the API chooses to show."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        return await asyncio.to_thread(self._rows, sql, params)

    async def scalar(self, sql: str, **params: Any) -> Any:
        return (await self.rows(sql, **params))[0][0]

    async def poll(self, sql: str, done: Callable[[Any], bool], timeout: float) -> Any:
        """Read `sql`'s scalar until `done` says so; None if it never did (a database that is
        restarting counts as not yet)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = await self.scalar(sql)
            except sa.exc.SQLAlchemyError:
                value = None
            else:
                if done(value):
                    return value
            await asyncio.sleep(RETRY_PAUSE_S)
        return None

    def close(self) -> None:
        self.engine.dispose()


def period_prefix(period: int) -> str:
    """Checkout keys are tagged with their ledger period (see bench/chaos.py)."""
    return f"chaos-p{period}-"


async def check_ledger(report: Report, probe: Probe, period: int, quiet_within_s: float) -> None:
    """At the quiet moment that closes a ledger period (no order PENDING, nothing in flight),
    `100 == inventory + this period's orders that are PENDING, PAID or DISPATCHED` (1, 5)."""
    pending = await probe.poll(
        "SELECT count(*) FROM orders WHERE order_status = 0",
        lambda n: n == 0,
        timeout=quiet_within_s,
    )
    if pending is None:
        report.broke(f"period {period}: orders still PENDING long after the payment timeout")
        return
    inventory, live = (
        await probe.rows(
            "SELECT (SELECT inventory FROM products),"
            " (SELECT count(*) FROM orders WHERE checkout_id LIKE :pattern"
            "  AND order_status IN (0, 1, 2))",
            pattern=f"checkout:{period_prefix(period)}%",
        )
    )[0]
    report.periods_checked += 1
    if inventory + live != RESTOCK_LEVEL:
        report.broke(
            f"period {period}: ledger {RESTOCK_LEVEL} != inventory {inventory} + live orders {live}"
        )


async def audit(
    report: Report, probe: Probe, http: httpx.AsyncClient, purchases: list[Purchase]
) -> None:
    """Once every order is final: check each invariant against the tables."""
    unsettled = await probe.poll(
        "SELECT count(*) FROM orders WHERE order_status IN (0, 2)",
        lambda n: n == 0,
        timeout=SETTLE_WITHIN_S,
    )
    if unsettled is None:
        report.broke("orders still PENDING or PAID long after the run (invariant 3)")
    await check_keys(report, probe)
    await check_stranded(report, http)
    rows = await probe.rows(
        "SELECT checkout_id, order_id, payment_id, order_status, progress_remaining FROM orders"
    )
    orders = {row[0]: row[1:] for row in rows}
    known = {purchase.checkout_id for purchase in purchases}
    for checkout_id, (order_id, _, status, _) in orders.items():
        if status not in (CANCELLED, DISPATCHED):
            report.broke(f"order {order_id} ({checkout_id}) ended in status {status} (invariant 3)")
        if checkout_id not in known:
            report.broke(f"order {order_id} ({checkout_id}): no shopper asked for it")
    for purchase in purchases:
        check_purchase(report, purchase, orders.get(purchase.checkout_id))
    await check_ticks(report, http, orders)


async def check_stranded(report: Report, http: httpx.AsyncClient) -> None:
    """No order reserved or paid that no running or queued workflow will move on (/stats)."""
    answer = await http.get("/stats")
    if answer.status_code != 200:
        report.broke(f"/stats answered {answer.status_code} at the audit")
        return
    stranded = answer.json()["stranded"]
    if stranded:
        report.broke(f"{stranded} order(s) stranded: no workflow will move them on")


async def check_keys(report: Report, probe: Probe) -> None:
    doubled = await probe.rows(
        "SELECT checkout_id, count(*) FROM orders GROUP BY checkout_id HAVING count(*) > 1"
    )
    for checkout_id, count in doubled:
        report.broke(f"{checkout_id} has {count} orders (invariant 2)")


def expected_status(purchase: Purchase) -> int | None:
    """Where this checkout must have ended, from what the shopper was told; None: unknown."""
    if purchase.out_of_stock:
        return CANCELLED
    if purchase.payment_id is None:
        return None  # never answered: already reported
    if purchase.webhook is None:
        return CANCELLED if purchase.plan == "abandon" else None
    code, _ = purchase.webhook
    return DISPATCHED if code == 200 and purchase.plan in ("pay", "late") else CANCELLED


def check_purchase(report: Report, purchase: Purchase, order: tuple[Any, ...] | None) -> None:
    """The shopper's view against the tables: the order exists, is theirs and ended right.

    `order` is the row of the purchase's key: (order_id, payment_id, status, progress_remaining).
    """
    count_outcome(report.counts, purchase)
    check_timeout(report, purchase)
    if purchase.payment_id is None and not purchase.out_of_stock:
        return
    if purchase.out_of_stock and order is None:
        return  # sold out before its checkout began: nothing was written
    if order is None:
        report.lost(f"{purchase.checkout_id}: the shopper was answered, but there is no order")
        return
    order_id, payment_id, status, _ = order
    if purchase.payment_id is not None and payment_id != purchase.payment_id:
        report.lost(f"{purchase.checkout_id}: told payment {purchase.payment_id}, has {payment_id}")
    if purchase.webhook is not None and purchase.webhook[0] == 200:
        if purchase.webhook[1] != str(order_id):
            report.lost(f"{purchase.checkout_id}: webhook said order {purchase.webhook[1]}")
    want = expected_status(purchase)
    if want == DISPATCHED and status != DISPATCHED:
        report.lost(f"{purchase.checkout_id}: paid (200), but order {order_id} is {status}")
    elif want is not None and status != want:
        report.broke(f"{purchase.checkout_id} ({purchase.plan}): order {order_id} is {status}")


def check_timeout(report: Report, purchase: Purchase) -> None:
    """The payment timeout, honoured both ways while the store was up: a payment or decline
    sent at once is accepted, a payment sent 2 s after the timeout is refused. Only a fault
    between the checkout and the webhook's answer (a restart replays the wait; Postgres away
    stalls it) excuses either (invariant 3)."""
    if purchase.webhook is None or purchase.settled_at is None:
        return
    accepted = purchase.webhook[0] == 200
    if accepted == (purchase.plan != "late"):
        return  # as it should be
    window = (purchase.started_at, purchase.settled_at)
    if not any(start <= window[1] and end >= window[0] for start, end in report.outages):
        verdict = "accepted" if accepted else "refused"
        report.broke(
            f"{purchase.checkout_id}: a {purchase.plan} payment was {verdict} with the store up "
            f"all along (answered {purchase.webhook[0]} {purchase.webhook[1][:100]!r})"
        )


def count_outcome(counts: Counter[str], purchase: Purchase) -> None:
    if purchase.out_of_stock:
        counts["out_of_stock"] += 1
    elif purchase.payment_id is None or (purchase.webhook is None and purchase.plan != "abandon"):
        counts["unanswered"] += 1
    elif purchase.plan == "abandon":
        counts["abandoned"] += 1
    elif purchase.plan == "decline":
        counts["declined"] += 1
    else:
        assert purchase.webhook is not None
        accepted = purchase.webhook[0] == 200
        if purchase.plan == "late":
            counts["late_accepted" if accepted else "late_rejected"] += 1
        else:
            counts["paid" if accepted else "expired_unpaid"] += 1


async def check_ticks(
    report: Report, http: httpx.AsyncClient, orders: dict[str, tuple[Any, ...]]
) -> None:
    """Every dispatched order's workflow recorded ten ticks, 9 down to 0: none lost or doubled
    by a crash (invariant 4)."""
    for checkout_id, (order_id, _, status, remaining) in orders.items():
        if status != DISPATCHED:
            continue
        answer = await http.get(f"/workflows/dispatch:{order_id}/steps")
        steps = answer.json() if answer.status_code == 200 else []
        ticks = [step["output"] for step in steps if step["name"] == "tick_dispatch"]
        if ticks != TICKS or remaining != 0:
            report.broke(f"order {order_id} ({checkout_id}): ticks {ticks}, {remaining} remaining")
