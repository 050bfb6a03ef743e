"""What the tests share: the server factory's type, the contract's order status codes, fresh
checkout keys, and the orders a key made, read from the store's table or waited for over HTTP.
The fixtures are in conftest.py; the browser tests' helpers in browser/helpers.py."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from widget_store.testing import StoreServer, wait_until

MakeServer = Callable[..., StoreServer]

# Most tests tick dispatch five times a second; the contract's 1 s tick is covered once.
FAST_TICK = {"WIDGET_STORE_DISPATCH_TICK_S": "0.2"}

REPO_ROOT = Path(__file__).resolve().parent.parent
HTML_DIR = REPO_ROOT / "html"

# The contract's order status codes, written out rather than taken from the store's code.
PENDING, PAID, DISPATCHED, CANCELLED = 0, 2, 1, -1


def new_key(prefix: str = "test") -> str:
    """A checkout key no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def orders_for_key(server: StoreServer, key: str) -> list[tuple[int, int]]:
    """(order_id, status) of every order a checkout key made: the contract allows at most one."""
    rows = server.database.execute(
        "SELECT order_id, order_status FROM orders WHERE checkout_id = :id", id=f"checkout:{key}"
    )
    return [(row[0], row[1]) for row in rows]


def wait_status(
    client: httpx.Client, order_id: int, status: int, timeout: float = 30
) -> dict[str, Any]:
    """Poll GET /order/<id> until the order has `status`; its last answer."""
    return wait_until(
        lambda: (
            (o := client.get(f"/order/{order_id}").json())["order_status"] == status and o or None
        ),
        timeout=timeout,
        what=f"order {order_id} to reach status {status}",
    )


def run_pinned(module: str, directory: Path, *, timeout: float) -> dict[str, Any]:
    """Run `tests.<module>._pin(directory)` in a fresh interpreter (DBOS once, and alone) and
    answer the JSON object it prints last: what the test asserts DBOS's internals still do."""
    done = subprocess.run(
        [sys.executable, "-c", f"from tests.{module} import _pin; _pin({str(directory)!r})"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen
