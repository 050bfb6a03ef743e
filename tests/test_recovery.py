"""Crashes, kills and a Postgres restart against a real server: every workflow resumes, nothing is
lost, doubled or double-counted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from widget_store.testing import StoreServer, wait_until

from .support import DISPATCHED, MakeServer, new_key, orders_for_key

pytestmark = pytest.mark.crash


def press_crash(client: httpx.Client) -> None:
    """The crash button: it answers 202, then the process dies."""
    answer = client.post("/crash_application")
    assert answer.status_code == 202, answer.text


def progress(client: httpx.Client, order_id: int) -> dict:
    return client.get(f"/order/{order_id}").json()


def watch_until_dispatched(client: httpx.Client, order_id: int, seen: list[int]) -> None:
    def probe() -> bool | None:
        order = progress(client, order_id)
        seen.append(order["progress_remaining"])
        return True if order["order_status"] == DISPATCHED else None

    wait_until(probe, timeout=60, interval=0.1, what=f"order {order_id} to be dispatched")


def assert_ten_ticks(client: httpx.Client, order_id: int, seen: list[int]) -> None:
    """Exactly ten checkpointed ticks, counting 9 down to 0, and progress never went back up."""
    steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
    ticks = [step["output"] for step in steps if step["name"] == "tick_dispatch"]
    assert ticks == list(range(9, -1, -1))
    assert seen == sorted(seen, reverse=True) and seen[-1] == 0 and min(seen) >= 0


def assert_clean_log(server: StoreServer) -> None:
    log = server.log_text()
    assert "Traceback" not in log and not re.search(r"\bERROR\b", log), log[-4000:]


def test_checkout_waiting_for_payment_survives_the_crash_button(make_server: MakeServer) -> None:
    server = make_server()
    key = new_key("crash")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{key}").text
        pid = server.health()["pid"]
        press_crash(client)
        health = server.wait_healthy(not_pid=pid)
        assert health["restart_count"] == 1
        assert health["workflows_recovered"] >= 1
        # The shopper's retry rejoins the same checkout, with no warning said of it.
        assert client.post(f"/checkout/{key}").text == payment_id
        assert "already exists in queue" not in server.log_text()
        # Re-enqueued at the launch, it runs again (PENDING) at the next poll of DBOS's queue.
        checkout = wait_until(
            lambda: next(
                (
                    wf
                    for wf in client.get("/workflows", params={"status": "PENDING"}).json()
                    if wf["workflow_id"] == f"checkout:{key}"
                ),
                None,
            ),
            timeout=10,
            what="the recovered checkout to run",
        )
        assert checkout["recoveries"] == 1
        assert checkout["recovery_attempts"] == 2
        paid = server.pay(client, payment_id, "paid")
        assert paid.status_code == 200, paid.text
        seen: list[int] = []
        watch_until_dispatched(client, int(paid.text), seen)
    assert len(orders_for_key(server, key)) == 1
    assert server.database.inventory() == 99
    assert_clean_log(server)


def test_dispatch_survives_crash_button_and_kill_9(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DISPATCH_TICK_S="0.5")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key('crash')}").text
        order_id = int(server.pay(client, payment_id, "paid").text)
        seen: list[int] = []

        def reached(level: int) -> bool | None:
            order = progress(client, order_id)
            seen.append(order["progress_remaining"])
            return True if order["progress_remaining"] <= level else None

        wait_until(lambda: reached(8), timeout=30, what="dispatch to start")
        pid = server.health()["pid"]
        press_crash(client)
        pid = server.wait_healthy(not_pid=pid)["pid"]

        wait_until(lambda: reached(4), timeout=30, what="dispatch to go on after the crash")
        server.kill_worker(signal.SIGKILL)
        health = server.wait_healthy(not_pid=pid)
        assert health["restart_count"] == 2

        watch_until_dispatched(client, order_id, seen)
        assert_ten_ticks(client, order_id, seen)
    assert_clean_log(server)


@pytest.mark.parametrize("step", ["place_order", "publish_payment_id"])
def test_crash_between_the_first_checkout_steps(make_server: MakeServer, step: str) -> None:
    """The server dies right after `step` of the first checkout; the shopper retries the key."""
    server = make_server(WIDGET_STORE_FAULT_AFTER_STEP=step)
    key = new_key("crash")
    with server.client() as client:
        pid = server.health()["pid"]
        with pytest.raises(httpx.TransportError):
            client.post(f"/checkout/{key}")
        server.wait_healthy(not_pid=pid)
        retried = client.post(f"/checkout/{key}")
        assert retried.status_code == 200, retried.text
        assert server.pay(client, retried.text, "failed").status_code == 200
    assert len(orders_for_key(server, key)) == 1
    assert server.database.inventory() == 100  # reserved once, returned once


def test_crash_right_after_marking_paid(make_server: MakeServer) -> None:
    """The webhook's process dies after PAID is written but before dispatch starts."""
    server = make_server(WIDGET_STORE_FAULT_AFTER_STEP="mark_paid")
    key = new_key("crash")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{key}").text
        pid = server.health()["pid"]
        with pytest.raises(httpx.TransportError):
            server.pay(client, payment_id, "paid")
        server.wait_healthy(not_pid=pid)
        # The provider redelivers: the same answer, and the order ships once.
        again = server.pay(client, payment_id, "paid")
        assert again.status_code == 200, again.text
        seen: list[int] = []
        watch_until_dispatched(client, int(again.text), seen)
        assert_ten_ticks(client, int(again.text), seen)
    assert len(orders_for_key(server, key)) == 1
    assert server.database.inventory() == 99


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_postgres_restart_with_work_in_flight(make_server: MakeServer, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("restarts the Postgres server")
    if not Path("/etc/postgresql").is_dir() or os.geteuid() != 0:
        pytest.skip("needs a local Postgres cluster this user can restart")
    server = make_server(WIDGET_STORE_DISPATCH_TICK_S="0.5")
    with server.client(timeout=30) as client:
        payments = [client.post(f"/checkout/{new_key('crash')}").text for _ in range(4)]
        dispatching = [int(server.pay(client, p, "paid").text) for p in payments[:2]]
        waiting = payments[2:]

        _pg_cluster("stop")
        try:
            down = client.get("/product")
            assert down.status_code == 503, down.text
            assert "unavailable" in down.json()["detail"]
        finally:
            _pg_cluster("start")

        def settle(payment_id: str) -> int | None:
            answer = server.pay(client, payment_id, "paid")
            return int(answer.text) if answer.status_code == 200 else None

        settled = [wait_until(lambda p=p: settle(p), timeout=60, what="payment") for p in waiting]
        for order_id in dispatching + settled:
            seen: list[int] = []
            watch_until_dispatched(client, order_id, seen)
            assert_ten_ticks(client, order_id, seen)
    assert server.database.inventory() == 96
