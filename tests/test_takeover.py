"""Lose a machine, lose nothing: survivors take over a dead instance's workflows (takeover.py).

Postgres only (several instances share its database); real processes, haproxy in front.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from widget_store.durable.takeover import LOCK_NAMESPACE, lock_key
from widget_store.testing import StoreServer, wait_until

from .balancer import haproxy
from .support import CANCELLED, DISPATCHED, PAID, PENDING, MakeServer, new_key, orders_for_key

pytestmark = [pytest.mark.slow, pytest.mark.crash]

GRACE_S = 3.0
TICK_S = 0.3
PAYMENT_TIMEOUT_S = 20.0


def instance_env(executor_id: str) -> dict[str, str]:
    return {
        "WIDGET_STORE_EXECUTOR_ID": executor_id,
        "WIDGET_STORE_TAKEOVER_GRACE_S": str(GRACE_S),
        "WIDGET_STORE_DISPATCH_TICK_S": str(TICK_S),
        "WIDGET_STORE_PAYMENT_TIMEOUT_S": str(PAYMENT_TIMEOUT_S),
    }


@contextmanager
def instances(make_server: MakeServer, backend: str, count: int) -> Iterator[list[StoreServer]]:
    """`count` instances node-1..N on one database, each its own executor id."""
    if backend != "postgres":
        pytest.skip("several instances share a Postgres database; SQLite is one process")
    first = make_server(**instance_env("node-1"))
    others: list[StoreServer] = []
    try:
        for n in range(2, count + 1):
            server = StoreServer(
                first.database, env_overrides=instance_env(f"node-{n}"), secret=first.secret
            )
            others.append(server)
            server.start()
        yield [first, *others]
    finally:
        for server in others:
            server.stop()


def ticks(client: httpx.Client, order_id: int) -> list[Any]:
    steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
    return [step["output"] for step in steps if step["name"] == "tick_dispatch"]


def status_of(server: StoreServer, order_id: int) -> int:
    rows = server.database.execute(
        "SELECT order_status FROM orders WHERE order_id = :id", id=order_id
    )
    return int(rows[0][0])


def wait_all(server: StoreServer, order_ids: list[int], status: int, timeout: float) -> None:
    wait_until(
        lambda: all(status_of(server, o) == status for o in order_ids) or None,
        timeout=timeout,
        interval=0.2,
        what=f"orders {order_ids} to reach {status}",
    )


def assert_books_balance(client: httpx.Client) -> None:
    stats = client.get("/stats").json()
    assert stats["ledger"]["ok"], stats["ledger"]
    assert stats["stranded"] == 0, stats
    assert stats["oversold"] == 0


def checkouts(server: StoreServer, client: httpx.Client, n: int, tag: str) -> list[str]:
    """n checkouts made on `server` (its workflows are its own): their payment ids."""
    return [client.post(f"/checkout/{new_key(tag)}").text for _ in range(n)]


class Shoppers:
    """Shoppers buying through the balancer in the background; every answer is kept."""

    def __init__(self, url: str, server: StoreServer, count: int = 4) -> None:
        self.url, self.server, self.count = url, server, count
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.orders: list[int] = []
        self.threads = [threading.Thread(target=self._shop, daemon=True) for _ in range(count)]

    def _shop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            # A dozen purchases each, a second apart: on through the kill, short of the stock.
            for _ in range(12):
                if self.stop.is_set():
                    return
                key = new_key("lb")
                answer = client.post(f"/checkout/{key}")
                if answer.status_code != 200:
                    self.problems.append(f"checkout {answer.status_code} {answer.text}")
                    continue
                paid = self.server.pay(client, answer.text, "paid")
                if paid.status_code != 200:
                    self.problems.append(f"webhook {paid.status_code} {paid.text}")
                    continue
                self.orders.append(int(paid.text))
                self.stop.wait(1.0)

    def __enter__(self) -> Shoppers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)


def test_kill_9_of_a_whole_instance_behind_haproxy(
    make_server: MakeServer, backend: str, tmp_path: Path
) -> None:
    with instances(make_server, backend, 3) as nodes:
        node1, node2, node3 = nodes
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        with haproxy(addresses, tmp_path) as lb_url, Shoppers(lb_url, node1) as shoppers:
            with node2.client() as direct, httpx.Client(base_url=lb_url, timeout=60) as lb:
                # node-2's own work: orders dispatching, checkouts waiting for their payment,
                # and checkouts that will never be paid.
                dispatching = [
                    int(node2.pay(direct, p, "paid").text)
                    for p in checkouts(node2, direct, 5, "disp")
                ]
                waiting = checkouts(node2, direct, 5, "wait")
                unpaid_keys = [new_key("unpaid") for _ in range(3)]
                for key in unpaid_keys:
                    assert direct.post(f"/checkout/{key}").status_code == 200
                placed = time.monotonic()
                unpaid = [orders_for_key(node2, key)[0][0] for key in unpaid_keys]
                wait_until(
                    lambda: any(ticks(direct, o) for o in dispatching) or None,
                    timeout=20,
                    what="a first tick",
                )

                assert node2.proc is not None
                os.killpg(node2.proc.pid, signal.SIGKILL)  # supervisor and server: a lost machine
                died = time.monotonic()
                node2.proc.wait()

                # Its checkouts are paid through haproxy, within 15 s of the death.
                answers = []
                for payment_id in waiting:
                    answer = node1.pay(lb, payment_id, "paid")
                    answers.append((answer.status_code, time.monotonic() - died))
                assert all(code == 200 for code, _ in answers), answers
                assert max(after for _, after in answers) < 15, answers
                paid_later = [int(node1.pay(lb, payment_id, "paid").text) for payment_id in waiting]

                # Its dispatches resume on the survivors, within 10 s of the grace period.
                def resumed() -> float | None:
                    rows = node1.database.execute(
                        "SELECT taken_over_by FROM executors WHERE executor_id = 'node-2'"
                    )
                    return time.monotonic() - died if rows and rows[0][0] else None

                taken_after = wait_until(resumed, timeout=GRACE_S + 10, what="the takeover")
                assert taken_after < GRACE_S + 10
                wait_all(node1, dispatching + paid_later, DISPATCHED, timeout=60)
                for order_id in dispatching + paid_later:
                    assert ticks(lb, order_id) == list(range(9, -1, -1)), order_id

                # Its unpaid checkouts expire on time and return their widgets.
                wait_all(node1, unpaid, CANCELLED, timeout=PAYMENT_TIMEOUT_S + 15)
                assert time.monotonic() - placed < PAYMENT_TIMEOUT_S + 10

                health = lb.get("/health").json()
                executors = {e["executor_id"]: e for e in health["executors"]}
                assert not executors["node-2"]["alive"]
                assert executors["node-2"]["taken_over_by"] in {"node-1", "node-3"}
                assert executors["node-2"]["workflows_taken_over"] >= 5 + 5 + 3
        assert shoppers.problems == []
        assert shoppers.orders
        with node1.client() as client:
            wait_all(node1, shoppers.orders, DISPATCHED, timeout=60)
            wait_until(
                lambda: (
                    not node1.database.execute(
                        "SELECT 1 FROM orders WHERE order_status IN (:p, :d)", p=PENDING, d=PAID
                    )
                    or None
                ),
                timeout=60,
                what="every order to settle",
            )
            assert_books_balance(client)
        ran = (
            node1.health()["workflows_run_after_recovery"]
            + (node3.health()["workflows_run_after_recovery"])
        )
        assert ran >= 5 + 5 + 3


def test_a_live_instance_wrongly_judged_dead_loses_nothing_and_runs_nothing_twice(
    make_server: MakeServer, backend: str
) -> None:
    with instances(make_server, backend, 2) as (node1, node2):
        with node2.client() as direct:
            dispatching = [
                int(node2.pay(direct, p, "paid").text) for p in checkouts(node2, direct, 5, "d")
            ]
            waiting = checkouts(node2, direct, 3, "w")
            wait_until(
                lambda: any(ticks(direct, o) for o in dispatching) or None,
                timeout=20,
                what="a first tick",
            )
            # Take node-2's lock away while it lives: end its lock's connection and hold the
            # lock here, so that it cannot take it back.
            engine = sa.create_engine(
                sa.make_url(node1.database.app_url).set(drivername="postgresql+psycopg"),
                poolclass=sa.pool.NullPool,
            )
            with engine.connect() as thief:
                thief.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'widget-store-liveness node-2'"
                    )
                )
                wait_until(
                    lambda: (
                        thief.execute(
                            sa.text("SELECT pg_try_advisory_lock(:ns, :key)"),
                            {"ns": LOCK_NAMESPACE, "key": lock_key("node-2")},
                        ).scalar()
                        or None
                    ),
                    timeout=10,
                    interval=0.01,
                    what="node-2's lock",
                )
                wait_until(
                    lambda: (
                        node1.database.execute(
                            "SELECT taken_over_by FROM executors WHERE executor_id = 'node-2'"
                        )[0][0]
                        or None
                    ),
                    timeout=GRACE_S + 10,
                    what="node-1 to take node-2 over",
                )
                # node-2 still serves: its checkouts are paid through it.
                paid_later = [int(node2.pay(direct, p, "paid").text) for p in waiting]
                wait_all(node1, dispatching + paid_later, DISPATCHED, timeout=60)
                for order_id in dispatching + paid_later:
                    assert ticks(direct, order_id) == list(range(9, -1, -1)), order_id
                thief.execute(
                    sa.text("SELECT pg_advisory_unlock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": lock_key("node-2")},
                )
            engine.dispose()
            # node-2 takes its lock back and is alive again.
            wait_until(
                lambda: (
                    {e["executor_id"]: e["alive"] for e in node1.health()["executors"]}.get(
                        "node-2"
                    )
                    or None
                ),
                timeout=10,
                what="node-2 to be alive again",
            )
            assert_books_balance(direct)
        assert "no longer owned by this execution" in node2.log_text()
