"""Two store processes, each with its own DBOS executor id, on one Postgres database."""

from __future__ import annotations

import pytest

from widget_store.testing import StoreServer

from .support import DISPATCHED, FAST_TICK, MakeServer, new_key, wait_status

# Slow: runs with `pytest --full` (tests/conftest.py).
pytestmark = pytest.mark.slow


def test_checkout_on_one_instance_paid_through_the_other(
    make_server: MakeServer, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("several instances share a Postgres database; SQLite is one process")
    first = make_server(WIDGET_STORE_EXECUTOR_ID="store-a")
    second = StoreServer(
        first.database,
        env_overrides={**FAST_TICK, "WIDGET_STORE_EXECUTOR_ID": "store-b"},
        secret=first.secret,
    ).start()
    try:
        with first.client() as a, second.client() as b:
            key = new_key("scale")
            payment_id = a.post(f"/checkout/{key}").text
            # The shopper's retry lands on the other instance: the same checkout.
            assert b.post(f"/checkout/{key}").text == payment_id
            paid = second.pay(b, payment_id, "paid")
            assert paid.status_code == 200, paid.text
            order_id = int(paid.text)
            wait_status(a, order_id, DISPATCHED, timeout=30)
            owners = {wf["executor_id"] for wf in a.get("/workflows").json()}
        assert first.health()["executor_id"] == "store-a"
        assert second.health()["executor_id"] == "store-b"
        assert "store-a" in owners
    finally:
        second.stop()
