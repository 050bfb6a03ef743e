"""The cockpit's figures: the stock ledger stays exact across a restock with checkouts in flight,
and the throughput series buckets purchases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from widget_store.testing import StoreServer
from widget_store.web.stats import BUCKET_S, WINDOW_S, throughput

from .support import new_key


def ledger(client) -> dict:  # type: ignore[no-untyped-def]
    return client.get("/stats").json()["ledger"]


def test_ledger_is_exact_across_a_restock_mid_checkout(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        before = new_key("l")
        client.post(f"/checkout/{before}")
        assert ledger(client)["unaccounted"] == 0
        client.post("/restock")  # with that checkout still in flight
        after = client.post(f"/checkout/{new_key('l')}").text
        shared_server.pay(client, after, "paid")
        client.post(f"/checkout/{before}/cancel")  # its widget comes back after the restock
        figures = ledger(client)
    assert figures["inventory"] == 100  # 100 - 1 paid + 1 returned from before the restock
    assert figures["live_orders"] == 1 and figures["returned_from_before"] == 1
    assert figures["unaccounted"] == 0 and figures["ok"] is True


def test_throughput_buckets_the_last_five_minutes() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    times = [now - timedelta(seconds=1)] * 10 + [now - timedelta(seconds=WINDOW_S + 5)]
    # SQLite gives naive UTC timestamps; they count the same.
    times.append((now - timedelta(seconds=2)).replace(tzinfo=None))
    series = throughput(times, now)
    assert len(series) == WINDOW_S // BUCKET_S
    assert series[-1]["per_second"] == 11 / BUCKET_S
    assert sum(bucket["per_second"] for bucket in series) == 11 / BUCKET_S
