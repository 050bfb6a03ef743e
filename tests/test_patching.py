"""A release that changes a workflow keeps its application version and puts the change behind
DBOS's patching (docs/upgrading.md): a test-only variant of the checkout, with one step added
behind `DBOS.patch_async`, resumes the checkouts the unpatched code left waiting (they finish on
the old path) while new checkouts take the new one.

The variant is the shipped checkout itself with the step spliced in as the store's process
imports it (a `sitecustomize` on PYTHONPATH), so no test code sits in the shipped workflow."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from widget_store.config import WORKFLOW_VERSION
from widget_store.testing import StoreServer, wait_until

from .support import DISPATCHED, MakeServer, new_key

pytestmark = pytest.mark.slow

PATCH = "test-screen"
MARKER = f"DBOS.patch-{PATCH}"

# Before the order is placed: an execution recorded by the unpatched code has `place_order`
# where the patch looks, so it replays on the old path.
SITECUSTOMIZE = f"""
import importlib.abc
import importlib.machinery
import sys

TARGET = "widget_store.shop.workflows"
ANCHOR = "    order_id, payment_id = await place_order(checkout_id, client)\\n"
STEP = (
    "    if await DBOS.patch_async({PATCH!r}):\\n"
    "        await DBOS.run_step_async({{'name': 'test_screen'}}, str, 'screened')\\n"
)


class _Loader(importlib.abc.Loader):
    def __init__(self, origin):
        self.origin = origin

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        with open(self.origin) as file:
            source = file.read()
        assert source.count(ANCHOR) == 1, "the checkout changed: move the test's patch point"
        source = source.replace(ANCHOR, STEP + ANCHOR)
        exec(compile(source, self.origin, "exec"), module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        spec.loader = _Loader(spec.origin)
        return spec


sys.meta_path.insert(0, _Finder())
"""


def patched_env(root: Path) -> dict[str, str]:
    site = root / "patched-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    pythonpath = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath}


def step_names(client: httpx.Client, key: str) -> list[str]:
    return [s["name"] for s in client.get(f"/workflows/checkout:{key}/steps").json()]


def dispatched(client: httpx.Client, order_id: int) -> None:
    wait_until(
        lambda: client.get(f"/order/{order_id}").json()["order_status"] == DISPATCHED or None,
        timeout=30,
        what=f"order {order_id} to be dispatched",
    )


def test_a_patched_checkout_replays_old_executions_on_the_old_path(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server: StoreServer = make_server()
    old_keys = [new_key("patch-old") for _ in range(3)]
    with server.client(timeout=30) as client:
        old_payments = [client.post(f"/checkout/{key}").text for key in old_keys]
        assert MARKER not in step_names(client, old_keys[0])
    assert server.stop() == 0

    server.env_overrides.update(patched_env(tmp_path))
    server.start()
    with server.client(timeout=30) as client:
        health = server.health()
        assert health["application_version"] == WORKFLOW_VERSION
        assert health["workflows_recovered"] == 3
        # The old executions finish on the old path: no marker, no new step.
        for key, payment_id in zip(old_keys, old_payments, strict=True):
            paid = server.pay(client, payment_id, "paid")
            assert paid.status_code == 200, paid.text
            dispatched(client, int(paid.text))
            names = step_names(client, key)
            assert MARKER not in names and "test_screen" not in names, names
        # A new one takes the new path: the marker, then the new step, then the old steps.
        key = new_key("patch-new")
        payment_id = client.post(f"/checkout/{key}").text
        paid = server.pay(client, payment_id, "paid")
        assert paid.status_code == 200, paid.text
        dispatched(client, int(paid.text))
        names = step_names(client, key)
        assert names[:3] == [MARKER, "test_screen", "place_order"], names
        stats = client.get("/stats").json()
        assert stats["ledger"]["unaccounted"] == 0 and stats["stranded"] == 0, stats
    assert server.database.inventory() == 96
