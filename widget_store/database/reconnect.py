"""When a database that went away accepts connections again: what a retry waits for instead of a
fixed pause, so that work resumes within `every_s` of Postgres coming back.

A retry that sleeps a fixed pause (DBOS's db_retry, up to a second; the steps' half second)
holds its thread for that pause even when Postgres is back early in it, and DBOS's four
executor threads are what every step and every system-database call of the process runs on:
those pauses stall everything queued behind them. Retrying more often instead would log a
warning per attempt and, while Postgres is down, hit it with every caller's attempts. Here,
while anyone waits, one thread probes through the engine's own pool, at most every `every_s`,
and every waiter returns as soon as a probe begun after it started waiting finds the database.
The probe's connection is one of the pool's, which the retry then reuses: no connection beyond
the pools' budget (docs/architecture.md).
"""

from __future__ import annotations

import math
import threading
import time

import sqlalchemy as sa

PROBE_EVERY_S = 0.1


class Reconnect:
    """Waits for `engine`'s Postgres database to take writes again (see the module).

    A probe counts only a server that accepts writes: a standby (or a demoted primary) answers
    connections but fails every write as a lost connection would (primary.py), and a retry
    against it would fail at once, again and again.
    """

    def __init__(self, engine: sa.Engine, every_s: float = PROBE_EVERY_S) -> None:
        if every_s <= 0:
            raise ValueError("the probing interval must be positive")
        self.engine = engine
        self.every_s = every_s
        self.probes = 0
        self._changed = threading.Condition()
        self._waiting = 0
        self._probing = False
        # Monotonic: when the latest probe that found the database began.
        self._answered_at = -math.inf

    def wait(self, timeout_s: float) -> bool:
        """Block until a probe begun after this call finds the database (True), at most
        `timeout_s` (False). A database that never went away answers the first probe."""
        began = time.monotonic()
        with self._changed:
            self._waiting += 1
            if not self._probing:
                self._probing = True
                threading.Thread(target=self._probe_while_waited_for, daemon=True).start()
            try:
                return self._changed.wait_for(lambda: self._answered_at >= began, timeout_s)
            finally:
                self._waiting -= 1

    def _probe_while_waited_for(self) -> None:
        """The probing thread: on its own, so that a probe that hangs (a host dropping
        packets, a pool with no connection free) keeps no waiter past its own deadline."""
        while True:
            with self._changed:
                if not self._waiting:
                    self._probing = False
                    return
            started = time.monotonic()
            answered = self._accepts_writes()
            with self._changed:
                self.probes += 1
                if answered:
                    self._answered_at = started
                    self._changed.notify_all()
            time.sleep(max(0.0, started + self.every_s - time.monotonic()))

    def _accepts_writes(self) -> bool:
        try:
            with self.engine.connect() as conn:
                in_recovery = conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar()
        except (sa.exc.SQLAlchemyError, OSError):
            return False
        return in_recovery is False
