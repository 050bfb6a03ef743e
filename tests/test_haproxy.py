"""deploy/haproxy.cfg, as it is, with Debian's haproxy in front of three real instances; and the
connection budget of three instances of two workers each on one default Postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from widget_store.config import Settings
from widget_store.testing import StoreServer

from .balancer import CONFIG, environment, haproxy, haproxy_binary
from .support import MakeServer, new_key

pytestmark = pytest.mark.slow


def test_the_configuration_is_valid() -> None:
    nodes = ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]
    done = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(CONFIG)],
        env=environment(nodes, 8000),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def three(make_server: MakeServer, backend: str, **env: str) -> list[StoreServer]:
    if backend != "postgres":
        pytest.skip("several instances share a Postgres database; SQLite is one process")
    first = make_server(WIDGET_STORE_EXECUTOR_ID="node-1", **env)
    servers = [first]
    for n in (2, 3):
        server = StoreServer(
            first.database,
            env_overrides={"WIDGET_STORE_EXECUTOR_ID": f"node-{n}", **env},
            secret=first.secret,
        )
        servers.append(server)
    return servers


def test_requests_spread_and_a_dead_instance_is_retried_elsewhere(
    make_server: MakeServer, backend: str, tmp_path: Path
) -> None:
    servers = three(make_server, backend)
    try:
        for server in servers[1:]:
            server.start()
        with haproxy([f"127.0.0.1:{s.port}" for s in servers], tmp_path) as url:
            with httpx.Client(base_url=url, timeout=30) as lb:
                seen = {lb.get("/health").json()["executor_id"] for _ in range(30)}
                assert seen == {"node-1", "node-2", "node-3"}
                victim = servers[1]
                assert victim.proc is not None
                os.killpg(victim.proc.pid, signal.SIGKILL)
                victim.proc.wait()
                # Before haproxy's checks mark it down, a request sent to it is sent again.
                for _ in range(30):
                    answer = lb.post(f"/checkout/{new_key('lb')}")
                    assert answer.status_code == 200, answer.text
                    assert lb.get("/health").json()["executor_id"] != "node-2"
    finally:
        for server in servers[1:]:
            server.stop()


def test_three_instances_of_two_workers_fit_a_default_postgres(
    make_server: MakeServer, backend: str
) -> None:
    budget = Settings.model_validate(
        {"DBOS_DATABASE_URL": "postgresql://u@h/db"}
    ).connections_per_process
    assert budget == 15
    assert 3 * 2 * budget <= 100 - 10  # docs/architecture.md: room for psql and migrations
    servers = three(make_server, backend, WIDGET_STORE_WORKERS="2")
    try:
        for server in servers[1:]:
            server.start()
        database = servers[0].database
        problems: list[str] = []
        peak = [0]
        stop = threading.Event()

        def shop(server: StoreServer) -> None:
            with server.client() as client:
                while not stop.is_set():
                    answer = client.post(f"/checkout/{new_key('budget')}")
                    if answer.status_code != 200:
                        problems.append(f"checkout {answer.status_code} {answer.text}")
                        continue
                    paid = server.pay(client, answer.text, "paid")
                    if paid.status_code != 200:
                        problems.append(f"webhook {paid.status_code} {paid.text}")

        others = [0]

        def count() -> None:
            while not stop.is_set():
                try:
                    rows = database.execute(
                        "SELECT count(*) FILTER (WHERE datname = current_database()), count(*)"
                        " FILTER (WHERE datname <> current_database()) FROM pg_stat_activity"
                    )
                except Exception:  # the server full: the figures below say by whom
                    others[0] = 100
                    time.sleep(0.2)
                    continue
                peak[0] = max(peak[0], int(rows[0][0]) - 1)
                others[0] = max(others[0], int(rows[0][1]))
                time.sleep(0.2)

        database.execute("UPDATE products SET inventory = 100000")
        threads = [threading.Thread(target=shop, args=(s,)) for s in servers for _ in range(8)]
        threads.append(threading.Thread(target=count))
        for thread in threads:
            thread.start()
        time.sleep(15)
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        # The six processes stay within their budget, whatever the load ...
        assert peak[0] <= 3 * 2 * budget, peak
        # ... so that, with no more than the budget's reserve used by anything else on the
        # server (other tests running at the same time may use more), none is refused.
        if others[0] <= 100 - 3 * 2 * budget:
            assert problems == [], (peak, others)
            for server in servers:
                assert "too many clients" not in server.log_text()
    finally:
        for server in servers[1:]:
            server.stop()
