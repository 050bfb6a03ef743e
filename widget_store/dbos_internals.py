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
- `cap_db_retry_sleep`: DBOS retries a system-database call that lost its connection after
  1, 2, 4, 8 ... s (jittered, up to 60 s), which alone can keep a request waiting many seconds
  after Postgres is back; capped, every such call retries at least once a second.
- `Wakeups`: after Postgres restarts, DBOS's LISTEN connection reconnects without waking its
  waiters, its notifier drops a batch that fails, and waiters re-check the database only every
  60 s: a `recv`/`get_event` whose message or event was written meanwhile sleeps that long.
  While DBOS (or the store) reports database trouble, and for a while after, every registered
  waiter is re-checked twice a second, with DBOS's own checks, which wake a waiter only if its
  row exists (a blind wake-up would make `recv` return None, a false timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from dbos import DBOS
from dbos import _sys_db as dbos_sys_db
from dbos._dbos import _get_dbos_instance
from dbos._utils import INTERNAL_QUEUE_NAME

__all__ = [
    "INTERNAL_QUEUE_NAME",
    "Wakeups",
    "cap_db_retry_sleep",
    "recover_pending_workflows",
    "set_internal_queue_polling",
]

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


DB_RETRY_SLEEP_CAP_S = 1.0


class _CappedSleep:
    """DBOS's `_sys_db` module's view of `time`: the same, but no sleep longer than `cap_s`.
    The only sleeps there are db_retry's backoff and pollers' intervals of 1 s or less."""

    def __init__(self, cap_s: float) -> None:
        self.cap_s = cap_s

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap_s))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def cap_db_retry_sleep(cap_s: float = DB_RETRY_SLEEP_CAP_S) -> None:
    """Make DBOS's db_retry wait at most `cap_s` between attempts (process-wide)."""
    if cap_s <= 0:
        raise ValueError("the cap must be positive")
    cast(Any, dbos_sys_db).time = _CappedSleep(cap_s)


# DBOS's log lines (and the store's) that say the database was away.
TROUBLE_PREFIXES = (
    "Notification listener error",
    "Notifier error",
    "Notifier flush error",
    "Database connection failed",
    "Fallback notification poll failed",
    "Fallback workflow event poll failed",
    "Step being automatically retried",
    "database unavailable",
)
TROUBLE_LOGGERS = ("dbos", "widget_store")


class Wakeups(logging.Handler):
    """Re-checks DBOS's waiters while the database has been in trouble (see the module's doc).

    `recheck_s`: how often; `window_s`: for how long after the last trouble reported.
    """

    def __init__(
        self,
        recheck_s: float = 0.5,
        window_s: float = 10.0,
        loggers: Iterable[str] = TROUBLE_LOGGERS,
    ) -> None:
        super().__init__(level=logging.WARNING)
        self.recheck_s = recheck_s
        self.window_s = window_s
        self.last_trouble = -float("inf")
        self.passes = 0
        self.checked = 0
        self._loggers = [logging.getLogger(name) for name in loggers]

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(TROUBLE_PREFIXES):
            self.last_trouble = time.monotonic()

    def trouble(self) -> None:
        """Say the database was away (for callers that do not log it)."""
        self.last_trouble = time.monotonic()

    def in_window(self) -> bool:
        return time.monotonic() - self.last_trouble < self.window_s

    async def run(self) -> None:
        """Until cancelled: a re-check pass every `recheck_s` while in the window."""
        for logger in self._loggers:
            logger.addHandler(self)
        try:
            while True:
                await asyncio.sleep(self.recheck_s)
                if self.in_window():
                    self.checked += await asyncio.to_thread(self.recheck)
        finally:
            for logger in self._loggers:
                logger.removeHandler(self)

    def recheck(self) -> int:
        """One pass over every registered waiter; how many were checked. A database still
        away is left for the next pass (one probe, not a failed read and a warning per waiter).
        """
        sys_db = _get_dbos_instance()._sys_db
        try:
            with sys_db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:
            self.trouble()
            return 0
        self.passes += 1
        checked = 0
        for _, (workflow_id, topic, _shard), signal in sys_db.notifications_map.snapshot():
            sys_db.recv_check(workflow_id, topic, cast(Any, signal))
            checked += 1
        for _, (workflow_id, key, _shard), signal in sys_db.workflow_events_map.snapshot():
            sys_db.get_event_check(workflow_id, key, cast(Any, signal))
            checked += 1
        return checked
