"""Chaos under load, short mode: shoppers buy for 30 s while the store is crashed, killed and (on
Postgres) has its database restarted; nothing may be lost and no invariant may break.

The work is done by bench/chaos.py (see its docstring for how each invariant is checked); this
test also checks the run was real, since a chaos run that injected nothing or sold nothing would
pass any store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.chaos import can_restart_postgres, chaos_env, run_chaos
from bench.chaos_audit import (
    CANCELLED,
    DISPATCHED,
    PAID,
    PENDING,
    Probe,
    Purchase,
    Report,
    check_ledger,
    check_purchase,
)

from .support import MakeServer

# Slow: runs with `pytest --full` (tests/conftest.py).
pytestmark = pytest.mark.slow

DURATION_S = 30.0
# Tighter than the script's default 3-8 s, so that even the slowest seeded gaps fit three
# faults (and their recoveries) into 30 s.
FAULT_GAP_S = (3.0, 6.0)
# Fewer checkouts per ledger period than the script's 140, so that even on SQLite (about five
# purchases a second under faults on two cores) a restock happens mid-run.
PERIOD_BUDGET = 80


@pytest.mark.crash
@pytest.mark.timeout(300)
def test_chaos_under_load_loses_nothing(make_server: MakeServer) -> None:
    server = make_server(**chaos_env(payment_timeout_s=5, dispatch_tick_s=0.2))
    report = run_chaos(
        server,
        duration_s=DURATION_S,
        shoppers=16,
        seed=7,
        fault_gap_s=FAULT_GAP_S,
        period_budget=PERIOD_BUDGET,
    )
    summary = f"{report.render()}\nserver log: {server.log_path}"
    assert report.orders_lost == 0, summary
    assert report.broken == [], summary
    assert sum(report.faults.values()) >= 3, summary
    assert report.counts["paid"] > 10, summary
    assert report.periods_checked >= 2, summary
    if can_restart_postgres(server):
        assert report.faults["postgres_restart"] >= 1, summary


# The audit must be able to fail: what it concludes from a shopper's answers and an order row.
PAID_ANSWER = (200, "7")


def audited(purchase: Purchase, order: tuple[int, str, int, int] | None) -> Report:
    report = Report("test", seed=0, duration_s=0, shoppers=1)
    check_purchase(report, purchase, order)
    return report


def paid_purchase() -> Purchase:
    return Purchase("k", period=0, plan="pay", payment_id="pay-1", webhook=PAID_ANSWER)


def test_audit_passes_a_paid_and_dispatched_order() -> None:
    report = audited(paid_purchase(), (7, "pay-1", DISPATCHED, 0))
    assert report.ok and report.counts["paid"] == 1


@pytest.mark.parametrize("order", [None, (7, "none", CANCELLED, 10)], ids=["no-order", "cancelled"])
def test_audit_passes_a_sold_out_answer(order: tuple[int, str, int, int] | None) -> None:
    """Sold out before its checkout began, no order; lost at the reservation, a CANCELLED one."""
    purchase = Purchase("k", period=0, plan="pay", out_of_stock=True)
    report = audited(purchase, order)
    assert report.ok and report.counts["out_of_stock"] == 1


@pytest.mark.parametrize(
    "order",
    [None, (7, "pay-1", PAID, 3), (7, "pay-2", DISPATCHED, 0), (8, "pay-1", DISPATCHED, 0)],
    ids=["no-order", "never-dispatched", "other-payment", "other-order"],
)
def test_audit_counts_a_lost_paid_order(order: tuple[int, str, int, int] | None) -> None:
    report = audited(paid_purchase(), order)
    assert report.orders_lost == 1 and not report.ok


@pytest.mark.parametrize("plan", ["abandon", "decline"])
def test_audit_breaks_on_an_unpaid_order_that_shipped(plan: str) -> None:
    webhook = None if plan == "abandon" else PAID_ANSWER
    purchase = Purchase("k", period=0, plan=plan, payment_id="pay-1", webhook=webhook)
    report = audited(purchase, (7, "pay-1", DISPATCHED, 0))
    assert report.orders_lost == 0 and len(report.broken) == 1


@pytest.mark.parametrize("outage", [False, True])
def test_audit_breaks_on_a_late_payment_accepted_while_the_store_was_up(outage: bool) -> None:
    purchase = Purchase("k", period=0, plan="late", payment_id="pay-1", webhook=PAID_ANSWER)
    purchase.settled_at = purchase.started_at + 7
    report = Report("test", seed=0, duration_s=0, shoppers=1)
    if outage:
        report.fault_log.append(("kill_9", purchase.started_at + 1, purchase.started_at + 3))
    check_purchase(report, purchase, (7, "pay-1", DISPATCHED, 0))
    assert report.ok == outage
    assert report.counts["late_accepted"] == 1


def ledger_probe(tmp_path: Path, inventory: int, statuses: dict[str, int]) -> Probe:
    """A stand-in for the store's tables: just the columns the ledger reads."""
    probe = Probe(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with probe.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE products (inventory INTEGER)"))
        conn.execute(sa.text("CREATE TABLE orders (checkout_id TEXT, order_status INTEGER)"))
        conn.execute(sa.text("INSERT INTO products VALUES (:n)"), {"n": inventory})
        for key, status in statuses.items():
            conn.execute(sa.text("INSERT INTO orders VALUES (:k, :s)"), {"k": key, "s": status})
    return probe


# Period 1: three widgets sold (one paid, one dispatched, one cancelled and returned) and a
# period-0 order that is not this period's business.
PERIOD_1 = {
    "checkout:chaos-p1-s0-1": PAID,
    "checkout:chaos-p1-s1-1": DISPATCHED,
    "checkout:chaos-p1-s2-1": CANCELLED,
    "checkout:chaos-p0-s0-1": DISPATCHED,
}


@pytest.mark.parametrize(
    ("inventory", "ok"),
    [(98, True), (99, False), (97, False)],
    ids=["balanced", "widget-back-twice", "widget-never-back"],
)
def test_ledger_check_catches_a_widget_miscounted(tmp_path: Path, inventory: int, ok: bool) -> None:
    probe = ledger_probe(tmp_path, inventory, PERIOD_1)
    report = Report("test", seed=0, duration_s=0, shoppers=1)
    try:
        asyncio.run(check_ledger(report, probe, period=1, quiet_within_s=1))
    finally:
        probe.close()
    assert report.ok == ok and report.periods_checked == 1, report.broken


def test_ledger_check_waits_for_a_quiet_moment(tmp_path: Path) -> None:
    probe = ledger_probe(tmp_path, 99, {"checkout:chaos-p1-s0-1": PENDING})
    report = Report("test", seed=0, duration_s=0, shoppers=1)
    try:
        asyncio.run(check_ledger(report, probe, period=1, quiet_within_s=0.5))
    finally:
        probe.close()
    assert report.periods_checked == 0 and "PENDING" in report.broken[0]
