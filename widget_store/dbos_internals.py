"""Every use of DBOS's internals, in one place: what the public API of the installed DBOS
(3.4) does not offer. tests/test_dbos_internals.py pins each one's behaviour, so that a DBOS
upgrade that changes or removes one fails there, loudly, not in production.

- `recover_pending_workflows`: DBOS's own startup recovery, for other executor ids than this
  process's (takeover.py). It re-enqueues the named executors' PENDING workflows of this
  process's application version on DBOS's internal queue, and only rows still PENDING under
  those ids, so a second call, or a call from another survivor, re-enqueues nothing more.
- `set_internal_queue_polling`: DBOS polls its internal queue, where recovered workflows wait,
  once a second and no setting changes that; 0.1 s puts a recovered workflow's first step
  within ~0.1 s of its re-enqueueing.
"""

from __future__ import annotations

import asyncio

from dbos import DBOS
from dbos._dbos import _get_dbos_instance
from dbos._utils import INTERNAL_QUEUE_NAME

__all__ = ["INTERNAL_QUEUE_NAME", "recover_pending_workflows", "set_internal_queue_polling"]

INTERNAL_QUEUE_POLLING_S = 0.1


async def recover_pending_workflows(executor_ids: list[str]) -> list[str]:
    """Re-enqueue the PENDING workflows of these (dead) executors; the ids re-enqueued.

    Only for executors known to be dead: naming a live one makes its running workflows run
    again elsewhere, and DBOS's ownership check then stops the old run at its next checkpoint.
    Blocking in DBOS (one transaction per workflow), so it runs on a thread.
    """
    handles = await asyncio.to_thread(DBOS._recover_pending_workflows, executor_ids)
    return [handle.get_workflow_id() for handle in handles]


def set_internal_queue_polling(seconds: float = INTERNAL_QUEUE_POLLING_S) -> None:
    """Poll DBOS's internal queue every `seconds`. Call after `DBOS(config=...)`, before
    `DBOS.launch()`: the queue's worker reads the interval at every poll."""
    if seconds <= 0:
        raise ValueError("the polling interval must be positive")
    queue = _get_dbos_instance()._registry.get_internal_queue()
    queue._polling_interval_sec = seconds


def internal_queue_polling() -> float:
    """The internal queue's polling interval now."""
    return float(_get_dbos_instance()._registry.get_internal_queue()._polling_interval_sec)
