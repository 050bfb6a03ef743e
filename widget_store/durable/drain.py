"""Drain mode (WIDGET_STORE_DRAIN=1), the path for a release whose workflows changed beyond
what patching covers (docs/upgrading.md): the old release runs on next to the new one, takes no
new checkouts (503, so that a load balancer retries elsewhere), still settles the checkouts and
ships the dispatches of its own application version, and stops on its own, exit code 0, once
none is left running or queued."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from dbos import DBOS

from ..shop.errors import Unavailable
from ..shop.stripe.checkout import STRIPE_REFUND
from ..shop.workflows import CHECKOUT, DISPATCH

log = logging.getLogger(__name__)

_draining = False
# Set by the supervisor in each serving process it starts (server/supervisor.py).
SUPERVISED_ENV = "WIDGET_STORE_RESTART_COUNT"


def set_draining(on: bool) -> None:
    global _draining
    _draining = on


def draining() -> bool:
    return _draining


async def refuse_new_checkout(workflow_id: str) -> None:
    """While draining, a checkout that does not exist yet is refused; one under way is not."""
    if _draining and await DBOS.get_workflow_status_async(workflow_id) is None:
        raise Unavailable("This instance is draining for an upgrade: retry, another one serves")


async def left(app_version: str) -> int:
    """Checkouts, dispatches and Stripe refunds of this version still running or queued."""
    return len(
        await DBOS.list_workflows_async(
            status=["PENDING", "ENQUEUED", "DELAYED"],
            name=[CHECKOUT, DISPATCH, STRIPE_REFUND],
            app_version=app_version,
            load_input=False,
            load_output=False,
        )
    )


async def stop_when_drained(app_version: str, interval_s: float = 1.0) -> None:
    """Stop the store once no workflow of `app_version` is left: its supervisor if it has one
    (which then restarts nothing and exits 0), else this process."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            remaining = await left(app_version)
        except Exception as exc:  # the database away: look again
            log.warning("drain: could not count the workflows left: %s", exc)
            continue
        if remaining == 0:
            break
    log.info("drained: no workflow of version %s is left; stopping", app_version)
    target = os.getppid() if SUPERVISED_ENV in os.environ else os.getpid()
    os.kill(target, signal.SIGTERM)
