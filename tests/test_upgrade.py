"""Upgrading: a new release of the same workflows resumes every checkout and dispatch the old one
left in flight (docs/upgrading.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from widget_store.config import WORKFLOW_VERSION
from widget_store.testing import StoreServer, wait_until

from .support import DISPATCHED, PAID, MakeServer, new_key, wait_status

pytestmark = pytest.mark.slow


def bumped_release(root: Path, version: str) -> dict[str, str]:
    """An environment in which the installed widget-store reads as `version`: a dist-info found
    ahead of the real one, as installing that release over this one would leave."""
    site = root / "bumped-site"
    dist = site / f"widget_store-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: widget-store\nVersion: {version}\n"
    )
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath}


def installed_release(env: dict[str, str]) -> str:
    code = "import widget_store.config as c; print(c.release())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def ledger_exact(client: httpx.Client) -> dict:
    stats = client.get("/stats").json()
    assert stats["ledger"]["unaccounted"] == 0, stats["ledger"]
    assert stats["stranded"] == 0, stats
    return stats


def ticks(client: httpx.Client, order_id: int) -> list[int]:
    steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
    return [step["output"] for step in steps if step["name"] == "tick_dispatch"]


def test_a_release_of_the_same_workflows_resumes_the_work_in_flight(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: StoreServer = make_server(WIDGET_STORE_DISPATCH_TICK_S="1.0")
    with server.client(timeout=30) as client:
        assert server.health()["application_version"] == WORKFLOW_VERSION
        payments = [client.post(f"/checkout/{new_key('upgrade')}").text for _ in range(20)]
        dispatching = [int(server.pay(client, p, "paid").text) for p in payments[:10]]
        waiting = payments[10:]
        # Every dispatch has ticked at least once, and none is near its end.
        wait_until(
            lambda: (
                all(
                    client.get(f"/order/{o}").json()["progress_remaining"] < 10 for o in dispatching
                )
                or None
            ),
            timeout=10,
            what="every dispatch to tick",
        )
    assert server.stop() == 0

    bumped = bumped_release(tmp_path, "1.0.1")
    assert installed_release(bumped) == "1.0.1"
    server.env_overrides.update(bumped)
    before = {
        o: server.database.execute(
            "SELECT order_status, progress_remaining FROM orders WHERE order_id = :o", o=o
        )[0]
        for o in dispatching
    }
    assert all(status == PAID and 0 < left < 10 for status, left in before.values()), before

    server.start()
    with server.client(timeout=30) as client:
        health = server.health()
        assert health["application_version"] == WORKFLOW_VERSION
        # The ten checkouts waiting and the ten dispatches, resumed at launch.
        assert health["workflows_recovered"] == 20, health
        settled = []
        for payment_id in waiting:
            started = time.monotonic()
            answer = server.pay(client, payment_id, "paid")
            assert answer.status_code == 200, answer.text
            assert time.monotonic() - started < 5
            settled.append(int(answer.text))
        for order_id in dispatching + settled:
            wait_status(client, order_id, DISPATCHED, timeout=40)
            assert ticks(client, order_id) == list(range(9, -1, -1))
        ledger_exact(client)
    assert server.database.inventory() == 80
