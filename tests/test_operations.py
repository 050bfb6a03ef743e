"""DBOS's own CLI, run as an operator would in the project folder with the store's one variable
(DBOS_DATABASE_URL), acts on the store's database; and an order whose workflow it cancels is
released (or shipped) within the reconciler's bound, never stranded (docs/upgrading.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from widget_store.testing import StoreServer, wait_until

from .support import CANCELLED, DISPATCHED, REPO_ROOT, MakeServer, new_key, orders_for_key

pytestmark = pytest.mark.slow

RECONCILE_S = 2.0
DBOS_CLI = str(Path(sys.executable).with_name("dbos"))


def cli_env(server: StoreServer) -> dict[str, str]:
    """The operator's shell: the store's variable only, DBOS's own unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOS_", "WIDGET_STORE_"))}
    url = server.database.url or f"sqlite:///{server.database.data_dir / 'dbos.sqlite'}"
    return with_venv_path({**env, "DBOS_DATABASE_URL": url})


def with_venv_path(env: dict[str, str]) -> dict[str, str]:
    """`widget-store` and `dbos` on the PATH, as in the operator's activated environment."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])}


def dbos(server: StoreServer, *args: str) -> Any:
    """`dbos <args>` in the project folder; its JSON output, if any."""
    done = subprocess.run(
        [DBOS_CLI, *args],
        cwd=REPO_ROOT,
        env=cli_env(server),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.strip()
    return json.loads(out) if out.startswith(("[", "{")) else out


def stranded(client: httpx.Client) -> int:
    return int(client.get("/stats").json()["stranded"])


def workflow_status(server: StoreServer, workflow_id: str) -> str:
    return str(dbos(server, "workflow", "get", workflow_id)["status"])


def test_dbos_cli_cancel_releases_the_order_and_a_late_payment_gets_409(
    make_server: MakeServer,
) -> None:
    server = make_server(WIDGET_STORE_RECONCILE_INTERVAL_S=str(RECONCILE_S))
    key = new_key("cli")
    checkout_id = f"checkout:{key}"
    with server.client(timeout=30) as client:
        payment_id = client.post(f"/checkout/{key}").text
        [(order_id, _)] = orders_for_key(server, key)
        assert server.database.inventory() == 99

        # The CLI sees the store's own workflows and steps, not an empty file of its own.
        listed = dbos(server, "workflow", "list", "-n", "checkout")
        assert checkout_id in [w["workflow_id"] for w in listed]
        steps = dbos(server, "workflow", "steps", checkout_id)
        assert "place_order" in [s["function_name"] for s in steps]
        assert not (REPO_ROOT / "widget_store.sqlite").exists()
        assert stranded(client) == 0

        cancelled_at = time.monotonic()
        dbos(server, "workflow", "cancel", checkout_id)
        assert workflow_status(server, checkout_id) == "CANCELLED"
        wait_until(
            lambda: client.get(f"/order/{order_id}").json()["order_status"] == CANCELLED or None,
            timeout=2 * RECONCILE_S + 3,
            what="the cancelled checkout's order to be released",
        )
        released_in = time.monotonic() - cancelled_at
        assert server.database.inventory() == 100
        assert stranded(client) == 0

        started = time.monotonic()
        late = server.pay(client, payment_id, "paid")
        assert late.status_code == 409, late.text
        assert "stopped" in late.json()["detail"]
        assert "refund due" in late.json()["detail"]
        assert time.monotonic() - started < 5
        shopper = client.post(f"/checkout/{key}/cancel")
        assert shopper.status_code == 409, shopper.text

        # Resumed, the checkout replays, receives the late payment, finds its order released
        # and ends without touching it.
        dbos(server, "workflow", "resume", checkout_id)
        wait_until(
            lambda: workflow_status(server, checkout_id) == "SUCCESS" or None,
            timeout=20,
            what="the resumed checkout to end",
        )
        assert orders_for_key(server, key) == [(order_id, CANCELLED)]
        assert server.database.inventory() == 100
        assert client.get(f"/workflows/dispatch:{order_id}/steps").status_code == 404
        again = server.pay(client, payment_id, "paid")
        assert again.status_code == 409, again.text
        # The money is kept as one refund due, however the checkout ended it.
        refunds = server.database.execute("SELECT payment_id, order_id, reason FROM refunds")
        assert refunds == [(payment_id, order_id, "stopped")]
        assert client.get("/stats").json()["refunds_due"] == 1

        # A fork from step 1 gets a new id: it ends at once and places no second order.
        fork_id = dbos(server, "workflow", "fork", checkout_id, "--step", "1")["workflow_id"]
        wait_until(
            lambda: workflow_status(server, fork_id) == "SUCCESS" or None,
            timeout=20,
            what="the fork to end",
        )
        count = server.database.execute("SELECT count(*) FROM orders")[0][0]
        assert count == 1
        assert server.database.inventory() == 100
        assert stranded(client) == 0
        ledger = client.get("/stats").json()["ledger"]
        assert ledger["unaccounted"] == 0
    assert released_in < 2 * RECONCILE_S + 3


def test_a_cancelled_dispatch_is_resumed(make_server: MakeServer) -> None:
    server = make_server(
        WIDGET_STORE_RECONCILE_INTERVAL_S=str(RECONCILE_S), WIDGET_STORE_DISPATCH_TICK_S="0.5"
    )
    with server.client(timeout=30) as client:
        payment_id = client.post(f"/checkout/{new_key('cli')}").text
        order_id = int(server.pay(client, payment_id, "paid").text)
        dbos(server, "workflow", "cancel", f"dispatch:{order_id}")
        wait_until(
            lambda: client.get(f"/order/{order_id}").json()["order_status"] == DISPATCHED or None,
            timeout=2 * RECONCILE_S + 15,
            what="the cancelled dispatch to be resumed and finish",
        )
        steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
        ticks = [s["output"] for s in steps if s["name"] == "tick_dispatch"]
        assert ticks == list(range(9, -1, -1))
        assert stranded(client) == 0
        assert client.get("/stats").json()["ledger"]["unaccounted"] == 0
        assert "widget_store_orders_stranded 0.0" in client.get("/metrics").text
