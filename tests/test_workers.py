"""`widget-store serve --workers N`: N serving processes on one socket, each with an executor id
of its own, restarted on its own; SIGTERM stops all; a killed supervisor leaves no orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from widget_store.config import Settings
from widget_store.testing import StoreServer, serving_workers, wait_until

from .support import DISPATCHED, MakeServer, new_key, wait_status
from .test_supervisor import pid_alive

pytestmark = pytest.mark.crash


def workers_of(server: StoreServer) -> dict[str, int]:
    """Executor id -> pid of each serving child of the server's supervisor."""
    assert server.proc is not None
    return serving_workers(server.proc.pid)


def two_workers(make_server: MakeServer, backend: str) -> StoreServer:
    if backend != "postgres":
        pytest.skip("several workers share a Postgres database; SQLite is one process")
    server = make_server(WIDGET_STORE_WORKERS="2", WIDGET_STORE_EXECUTOR_ID="shop")
    wait_until(lambda: len(workers_of(server)) == 2 or None, timeout=30, what="two workers")
    # Both serve: the kernel hands the one socket's connections to either.
    wait_until(
        lambda: {server.health()["executor_id"] for _ in range(20)} == {"shop-1", "shop-2"} or None,
        timeout=30,
        what="both workers to answer",
    )
    return server


def test_a_crashed_worker_restarts_alone_with_its_own_id(
    make_server: MakeServer, backend: str
) -> None:
    server = two_workers(make_server, backend)
    before = workers_of(server)
    with server.client() as client:
        key = new_key("workers")
        payment_id = client.post(f"/checkout/{key}").text
        os.kill(before["shop-1"], signal.SIGKILL)
        after = wait_until(
            lambda: (
                (w := workers_of(server)).get("shop-1") not in (None, before["shop-1"])
                and w
                or None
            ),
            timeout=30,
            what="shop-1 to restart",
        )
        assert after["shop-2"] == before["shop-2"]  # the other one never stopped
        # The restarted worker serves again, under its own id, with its restart counted.
        restarted = wait_until(
            lambda: next(
                (h for _ in range(20) if (h := server.health())["pid"] == after["shop-1"]), None
            ),
            timeout=30,
            what="the restarted worker to answer",
        )
        assert restarted["executor_id"] == "shop-1"
        assert restarted["restart_count"] == 1
        paid = server.pay(client, payment_id, "paid")
        assert paid.status_code == 200, paid.text
        wait_status(client, int(paid.text), DISPATCHED, timeout=30)
    assert "server shop-1 exited (killed by SIGKILL)" in server.log_text()
    assert "server shop-2 exited" not in server.log_text()


def test_sigterm_stops_all_workers(make_server: MakeServer, backend: str) -> None:
    server = two_workers(make_server, backend)
    pids = list(workers_of(server).values())
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    for pid in pids:
        wait_until(
            lambda p=pid: None if pid_alive(p) else True, timeout=10, what="a worker to exit"
        )
    assert "restart 1" not in server.log_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/health", timeout=2)


def test_a_killed_supervisor_leaves_no_worker(make_server: MakeServer, backend: str) -> None:
    server = two_workers(make_server, backend)
    pids = list(workers_of(server).values())
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    for pid in pids:
        wait_until(lambda p=pid: None if pid_alive(p) else True, timeout=10, what="an orphan")


def test_workers_default_to_the_cores_on_postgres_and_one_on_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().worker_count == 1
    monkeypatch.setenv("DBOS_DATABASE_URL", "postgresql://u@h:5432/db")
    assert Settings().worker_count == os.cpu_count()
    monkeypatch.setenv("WIDGET_STORE_WORKERS", "3")
    assert Settings().worker_count == 3


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDGET_STORE_", "DBOS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "widget_store", "serve", "--workers", "2", "--port", "0"],
        env={**env, "WIDGET_STORE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "needs Postgres" in done.stderr


def test_a_crashed_workers_dispatch_resumes_on_its_sibling_within_a_second(
    make_server: MakeServer, backend: str
) -> None:
    server = two_workers(make_server, backend)
    database = server.database
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key('sibling')}").text
        order_id = int(server.pay(client, payment_id, "paid").text)
        workflow = f"dispatch:{order_id}"

        def owner() -> str | None:
            rows = database.execute(
                "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = :id",
                id=workflow,
            )
            return str(rows[0][0]) if rows else None

        def steps_after(ms: float) -> float | None:
            return database.first_step_after([workflow], ms)

        wait_until(lambda: steps_after(0), timeout=20, what="a first tick")
        victim = wait_until(owner, timeout=10, what="the dispatch's owner")
        died = time.time()
        os.kill(workers_of(server)[victim], signal.SIGKILL)
        resumed = wait_until(lambda: steps_after(died * 1000), timeout=30, what="a resumed step")
        # The sibling saw the crash for certain (the pid gone): no grace period.
        assert resumed - died < 1.5, resumed - died
        wait_status(client, order_id, DISPATCHED, timeout=30)
        steps = client.get(f"/workflows/{workflow}/steps").json()
        assert [s["output"] for s in steps if s["name"] == "tick_dispatch"] == list(
            range(9, -1, -1)
        )
