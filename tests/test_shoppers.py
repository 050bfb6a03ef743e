"""The built-in shoppers: durable load through the real doors, surviving kill -9."""

from __future__ import annotations

import pytest

from widget_store.demo.shoppers import MAX_SHOPPERS
from widget_store.testing import StoreServer, wait_until

from .support import MakeServer

pytestmark = pytest.mark.crash


def stats(server: StoreServer) -> dict:
    with server.client() as client:
        return client.get("/stats").json()


def sim_orders(server: StoreServer) -> int:
    rows = server.database.execute(
        "SELECT count(*) FROM orders WHERE checkout_id LIKE 'checkout:sim-%'"
    )
    return int(rows[0][0])


def test_shoppers_survive_kill_9_and_the_invariants_hold(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="2")
    with server.client() as client:
        started = client.post(
            "/load", json={"shoppers": 8, "pay_weight": 6, "decline_weight": 2, "abandon_weight": 2}
        )
        assert started.status_code == 200 and started.json()["running"] is True
        wait_until(lambda: True if sim_orders(server) >= 15 else None, timeout=60, what="purchases")

        pid = server.kill_worker()
        server.wait_healthy(not_pid=pid)
        before = sim_orders(server)
        # The same shoppers go on after the restart, with no one pressing anything.
        wait_until(
            lambda: True if sim_orders(server) >= before + 15 else None,
            timeout=60,
            what="purchases after the restart",
        )
        assert client.post("/load/stop").json()["running"] is False

    def quiet() -> dict | None:
        figures = stats(server)
        busy = figures["orders"]["PENDING"] + figures["orders"]["PAID"]
        pending = server.database.execute(
            "SELECT count(*) FROM orders WHERE order_status IN (0, 2)"
        )[0][0]
        return figures if busy == 0 and pending == 0 else None

    figures = wait_until(quiet, timeout=90, interval=0.5, what="the store to go quiet")
    assert figures["ledger"]["unaccounted"] == 0 and figures["ledger"]["ok"]
    assert figures["oversold"] == 0
    assert figures["orders"]["DISPATCHED"] > 0 and figures["orders"]["CANCELLED"] > 0
    doubles = server.database.execute(
        "SELECT checkout_id FROM orders GROUP BY checkout_id HAVING count(*) > 1"
    )
    assert doubles == []
    restarts = [start["restart_count"] for start in figures["process_starts"]]
    assert restarts[0] == 1 and figures["process_starts"][0]["workflows_recovered"] > 0


def test_no_built_in_load_in_production(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="tok")
    with server.client() as client:
        assert client.post("/load", json={"shoppers": 2}).status_code == 404
        assert client.get("/stats").status_code == 401
        assert client.get("/stats", headers={"Authorization": "Bearer tok"}).status_code == 200


def test_the_most_shoppers_all_start_even_through_a_crash_at_once(make_server: MakeServer) -> None:
    """A change of the load answers once its shoppers' starter is recorded; the starter enqueues
    them durably, so a crash the moment the cockpit has its answer still starts every one."""
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="2")
    with server.client() as client:
        started = client.post("/load", json={"shoppers": MAX_SHOPPERS, "pay_weight": 1})
        assert started.status_code == 200, started.text
        generation = started.json()["generation"]
        pid = server.kill_worker()
        server.wait_healthy(not_pid=pid)

        def slots_buying() -> set[str] | None:
            rows = server.database.execute(
                "SELECT checkout_id FROM orders WHERE checkout_id LIKE :prefix",
                prefix=f"checkout:sim-{generation}-%",
            )
            slots = {row[0].split("-")[2] for row in rows}
            return slots if len(slots) == MAX_SHOPPERS else None

        wait_until(slots_buying, timeout=120, interval=1, what="every shopper buying")
        assert client.post("/load/stop").json()["running"] is False
