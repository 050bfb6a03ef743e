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
- `pause_db_retries_until_reconnect`: DBOS retries a system-database call that lost its
  connection after 1, 2, 4, 8 ... s (jittered, up to 60 s), asleep on the calling thread, most
  often one of DBOS's executor threads, which every other call of the process then queues
  behind; its notification listener waits a second before it listens again, and until then
  every message and event written goes unnoticed. After a restart those pauses outlasted
  Postgres's absence by up to a second. Each now lasts at most a second and ends as soon as a
  probe finds the database taking writes again (reconnect.py): a stale connection is retried at
  once, and a call through an outage goes on within 0.1 s of Postgres's return.
- `quiet_rejoin_warnings`: a shopper retrying the key of a checkout that DBOS recovered (put
  back on its internal queue) rejoins it by starting it again with no queue, and DBOS logs
  "Workflow already exists in queue: _dbos_internal_queue, but the provided queue name is:
  None" as a WARNING each time, which reads like an error. That one message is dropped.
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
import sys
import time
from collections.abc import Iterable
from types import CodeType
from typing import Any, cast

import sqlalchemy as sa
from dbos import DBOS
from dbos import _sys_db as dbos_sys_db
from dbos import _sys_db_postgres as dbos_sys_db_postgres
from dbos._dbos import _get_dbos_instance
from dbos._sys_db_postgres import PostgresSystemDatabase
from dbos._utils import INTERNAL_QUEUE_NAME

from ..database.reconnect import Reconnect

__all__ = [
    "INTERNAL_QUEUE_NAME",
    "Wakeups",
    "pause_db_retries_until_reconnect",
    "quiet_rejoin_warnings",
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


# DBOS's warning when a workflow it re-enqueued for recovery is started again with no queue.
REJOIN_WARNING = (
    f"Workflow already exists in queue: {INTERNAL_QUEUE_NAME}, "
    "but the provided queue name is: None."
)


class _DropRejoinWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(REJOIN_WARNING)


def quiet_rejoin_warnings() -> None:
    """Drop DBOS's warning for a rejoin of a recovered workflow (see the module); once."""
    logger = logging.getLogger("dbos")
    if not any(isinstance(f, _DropRejoinWarnings) for f in logger.filters):
        logger.addFilter(_DropRejoinWarnings())


def internal_queue_polling() -> float:
    """The internal queue's polling interval now."""
    return float(_get_dbos_instance()._registry.get_internal_queue()._polling_interval_sec)


DB_RETRY_PAUSE_CAP_S = 1.0
# The shortest pause, even when the database answers at once: a call that keeps failing while
# the probe finds the database well (a cause the probe cannot see) retries 20 times a second at
# most, not in a tight loop that logs a warning each time.
DB_RETRY_MIN_PAUSE_S = 0.05


def _db_retry_code() -> CodeType:
    """The code of db_retry's wrapper, the frame its backoff sleeps from (one for every use)."""

    def noop() -> None:
        pass

    return dbos_sys_db.db_retry()(noop).__code__


class _RetryPauses:
    """A DBOS module's view of `time`: the same, except the pauses slept from `retry_code`'s
    frames (DBOS's retries after a lost connection), which last at most `cap_s` and end once
    `reconnect` finds the database. Every other sleep there (pollers' intervals, the notifier's
    10 ms batching, the migration lock's wait at launch) is left as it is."""

    def __init__(self, reconnect: Reconnect, cap_s: float, retry_code: frozenset[CodeType]):
        self.reconnect = reconnect
        self.cap_s = cap_s
        self._retry_code = retry_code

    def sleep(self, seconds: float) -> None:
        if seconds <= DB_RETRY_MIN_PAUSE_S or sys._getframe(1).f_code not in self._retry_code:
            time.sleep(seconds)
            return
        began = time.monotonic()
        self.reconnect.wait(min(seconds, self.cap_s))
        rest = began + DB_RETRY_MIN_PAUSE_S - time.monotonic()
        if rest > 0:
            time.sleep(rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def pause_db_retries_until_reconnect(
    cap_s: float = DB_RETRY_PAUSE_CAP_S, reconnect: Reconnect | None = None
) -> None:
    """Make DBOS's pauses after a lost connection (db_retry's backoff; the notification
    listener's and notifier's second) last until the system database answers, `cap_s` at most
    (process-wide; Postgres only). Call after `DBOS.launch()`. `reconnect`: what to wait for,
    by default probes through DBOS's own pool."""
    if cap_s <= 0:
        raise ValueError("the cap must be positive")
    if reconnect is None:
        reconnect = Reconnect(_get_dbos_instance()._sys_db.engine)
    cast(Any, dbos_sys_db).time = _RetryPauses(reconnect, cap_s, frozenset({_db_retry_code()}))
    postgres = PostgresSystemDatabase
    listener = frozenset({postgres._notification_listener.__code__, postgres.run_notifier.__code__})
    cast(Any, dbos_sys_db_postgres).time = _RetryPauses(reconnect, cap_s, listener)


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
