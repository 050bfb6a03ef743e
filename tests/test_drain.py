"""An upgrade that changes the workflows beyond patching (docs/upgrading.md): the new release
runs under a new application version next to the old one, which drains: no new checkouts, its
own checkouts and dispatches finished, then it stops on its own. Nothing is stranded."""

from __future__ import annotations

import pytest

from widget_store.testing import StoreServer

from .support import DISPATCHED, MakeServer, new_key, wait_status

pytestmark = pytest.mark.slow

NEW_VERSION = "widget-store-workflows-test-next"


def test_the_old_release_drains_and_stops(make_server: MakeServer, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("two releases at once on one database: Postgres")
    old = make_server(WIDGET_STORE_DISPATCH_TICK_S="0.5")
    with old.client(timeout=30) as client:
        waiting = [client.post(f"/checkout/{new_key('drain')}").text for _ in range(3)]
        shipping = [
            int(old.pay(client, client.post(f"/checkout/{new_key('drain')}").text, "paid").text)
            for _ in range(3)
        ]
    assert old.stop() == 0

    new = StoreServer(
        old.database,
        env_overrides={
            **old.env_overrides,
            "WIDGET_STORE_APP_VERSION": NEW_VERSION,
            "WIDGET_STORE_EXECUTOR_ID": "next",
        },
    )
    new.start()
    old.env_overrides["WIDGET_STORE_DRAIN"] = "1"
    old.start()
    try:
        with old.client(timeout=30) as old_client, new.client(timeout=30) as new_client:
            refused = old_client.post(f"/checkout/{new_key('drain')}")
            assert refused.status_code == 503 and "draining" in refused.json()["detail"]
            fresh = new_client.post(f"/checkout/{new_key('drain')}")
            assert fresh.status_code == 200, fresh.text
            # The old checkouts' payments reach the new release; the old one settles them.
            paid = []
            for payment_id in [*waiting, fresh.text]:
                answer = new.pay(new_client, payment_id, "paid")
                assert answer.status_code == 200, answer.text
                paid.append(int(answer.text))
            for order_id in shipping + paid:
                wait_status(new_client, order_id, DISPATCHED)
            # Its work done, the old release stops on its own, exit code 0.
            assert old.proc is not None
            assert old.proc.wait(timeout=30) == 0
            stats = new_client.get("/stats").json()
            assert stats["ledger"]["unaccounted"] == 0 and stats["stranded"] == 0, stats
            assert new.health()["application_version"] == NEW_VERSION
        assert "drained" in old.log_text()
    finally:
        new.stop()
    assert old.database.inventory() == 93
