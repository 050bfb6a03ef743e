"""Liveness and takeover: when a serving process dies for good, a survivor recovers its workflows.

DBOS recovers at launch only the workflows of its own executor id; a lost machine never
launches again. So each serving process on Postgres:

- holds, for its whole life, a session-level advisory lock named after its executor id, on a
  connection of its own. Postgres frees the lock when that connection dies (kill -9, a lost
  machine, a network cut), so "the lock is held by the backend it registered" means "the
  process is alive". It registers itself (and that backend) in the `executors` table, so every
  process knows every executor id there is;
- looks every `liveness_interval_s` at whose lock is held (pg_locks: nothing is acquired);
- takes over an executor whose lock has been free for `takeover_grace_s` (longer than a
  supervisor's restart, which re-takes the lock under the same id), or at once a worker of its
  own supervisor whose process is gone (a crash seen for certain, not a suspicion): it claims
  the takeover in the table (one survivor wins), then runs DBOS's own recovery for that executor id
  (dbos_internals.recover_pending_workflows), which re-enqueues its PENDING workflows on DBOS's
  internal queue, polled every 0.1 s by every live process.

Exactly once: DBOS re-enqueues only rows still PENDING under the dead id, so a second recovery
re-enqueues nothing. A live process wrongly judged dead (its lock connection cut, say) loses
nothing either: DBOS's ownership check stops its run at the next checkpoint ("no longer owned by
this execution") and the steps are idempotent (tests/test_takeover.py shows it). Any survivor
also re-runs the recovery of executors dead past the grace every `RECHECK_S`, in case the one
that claimed the takeover died before finishing it.

SQLite is one process: there, nothing of this runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from ..database.url import PostgresUrl
from . import dbos_internals

log = logging.getLogger(__name__)

# The advisory lock's first key: the store's namespace; the second is a hash of the executor id.
LOCK_NAMESPACE = 0x5717D6E7 & 0x7FFFFFFF
RECHECK_S = 30.0


def lock_key(executor_id: str) -> int:
    """A stable non-negative 31-bit hash of the executor id."""
    return zlib.crc32(executor_id.encode()) & 0x7FFFFFFF


def libpq_url(database_url: str) -> str:
    """The store's Postgres setting as psycopg's own connection string (database_url.py)."""
    return PostgresUrl.parse(database_url).libpq()


LIVE_EXECUTORS = """
SELECT e.executor_id, e.pid, e.host, e.alive_since, e.last_seen, e.taken_over_by,
       e.taken_over_at, e.workflows_taken_over,
       EXISTS (SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.classid = %(ns)s::int::oid AND l.objid = e.lock_key::oid
                  AND l.pid = e.lock_backend_pid) AS alive
  FROM executors e ORDER BY e.executor_id
"""


@dataclass
class Liveness:
    """This process's lock and its watch over the others' (Postgres only)."""

    database_url: str
    executor_id: str
    grace_s: float = 5.0
    interval_s: float = 0.5
    # The other serving processes under this one's supervisor: same machine, same pid
    # namespace, so a free lock and a pid that is gone mean dead for certain, no grace needed.
    siblings: frozenset[str] = frozenset()
    conn: psycopg.AsyncConnection[Any] | None = None
    holding: bool = False
    executors: list[dict[str, Any]] = field(default_factory=list)
    taken_over: list[dict[str, Any]] = field(default_factory=list)
    _dead_since: dict[str, float] = field(default_factory=dict)
    _recovered_at: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the lock and register, before DBOS launches; then watch in the background."""
        try:
            await self._ensure_lock()
        except (psycopg.Error, OSError) as exc:
            log.warning("liveness: no lock yet for %s: %s", self.executor_id, exc)

    def watch(self) -> None:
        self._task = asyncio.create_task(self._run(), name="liveness")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        self.holding = False

    async def _drop_connection(self) -> None:
        """After a failed round: the next one connects afresh, so it follows a failover to the
        new primary (a lock held on a server that is no longer the primary proves nothing)."""
        if self.conn is not None:
            try:
                await self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None
        self.holding = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                await self.conn.close()
            self.holding = False
            self.conn = await psycopg.AsyncConnection.connect(
                libpq_url(self.database_url),
                autocommit=True,
                application_name=f"widget-store-liveness {self.executor_id}",
                connect_timeout=5,
            )
        return self.conn

    async def _ensure_lock(self) -> None:
        conn = await self._connect()
        if not self.holding:
            row = await (
                await conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)",
                    (LOCK_NAMESPACE, lock_key(self.executor_id)),
                )
            ).fetchone()
            if not (row and row[0]):
                log.warning("liveness: the lock of %s is held elsewhere", self.executor_id)
                return
            self.holding = True
            await conn.execute(
                """
                INSERT INTO executors
                       (executor_id, lock_key, lock_backend_pid, pid, host, alive_since, last_seen)
                VALUES (%(id)s, %(key)s, pg_backend_pid(), %(pid)s, %(host)s, now(), now())
                ON CONFLICT (executor_id) DO UPDATE
                   SET lock_key = excluded.lock_key, lock_backend_pid = pg_backend_pid(),
                       pid = excluded.pid, host = excluded.host,
                       alive_since = now(), last_seen = now()
                """,
                {
                    "id": self.executor_id,
                    "key": lock_key(self.executor_id),
                    "pid": os.getpid(),
                    "host": socket.gethostname()[:255],
                },
            )
            log.info("liveness: holding the lock of executor %s", self.executor_id)
        else:
            await conn.execute(
                "UPDATE executors SET last_seen = now() WHERE executor_id = %s",
                (self.executor_id,),
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away, or failed over: keep trying
                log.warning("liveness check failed: %s", exc)
                await self._drop_connection()
            await asyncio.sleep(self.interval_s)

    async def check(self) -> None:
        """One round: keep the lock, see who is alive, take over who has been dead too long."""
        await self._ensure_lock()
        conn = await self._connect()
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        await cursor.execute(LIVE_EXECUTORS, {"ns": LOCK_NAMESPACE})
        rows = await cursor.fetchall()
        self.executors = rows
        now = time.monotonic()
        for row in rows:
            other = row["executor_id"]
            if other == self.executor_id or row["alive"]:
                self._dead_since.pop(other, None)
                self._recovered_at.pop(other, None)
                continue
            dead_since = self._dead_since.setdefault(other, now)
            if now - dead_since < self.grace_s and not self._sibling_gone(row):
                continue
            last = self._recovered_at.get(other)
            if last is None or now - last >= RECHECK_S:
                self._recovered_at[other] = now
                await self.take_over(other, claimed=last is None)

    def _sibling_gone(self, row: dict[str, Any]) -> bool:
        """A worker of this supervisor whose process has ended (a crash, not a suspicion)."""
        if row["executor_id"] not in self.siblings or row["host"] != socket.gethostname()[:255]:
            return False
        try:
            os.kill(int(row["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    async def take_over(self, dead: str, *, claimed: bool = True) -> list[str]:
        """Recover a dead executor's pending workflows; recorded if this process wins the claim."""
        conn = await self._connect()
        won = False
        if claimed:
            row = await (
                await conn.execute(
                    """
                    UPDATE executors SET taken_over_by = %(me)s, taken_over_at = now(),
                                         workflows_taken_over = 0
                     WHERE executor_id = %(dead)s
                       AND (taken_over_at IS NULL OR taken_over_at < alive_since)
                    RETURNING executor_id
                    """,
                    {"me": self.executor_id, "dead": dead},
                )
            ).fetchone()
            won = row is not None
        started = time.monotonic()
        recovered = await dbos_internals.recover_pending_workflows([dead])
        if recovered or won:
            await conn.execute(
                """
                UPDATE executors SET workflows_taken_over = workflows_taken_over + %(n)s
                 WHERE executor_id = %(dead)s
                """,
                {"n": len(recovered), "dead": dead},
            )
            self.taken_over.append(
                {"executor_id": dead, "workflows": len(recovered), "at": datetime.now().isoformat()}
            )
            log.warning(
                "took over executor %s: %d workflow(s) re-enqueued in %.3f s",
                dead,
                len(recovered),
                time.monotonic() - started,
            )
        return recovered

    def snapshot(self) -> list[dict[str, Any]]:
        """The executors known, for /health and the cockpit."""
        return [
            {
                "executor_id": row["executor_id"],
                "alive": bool(row["alive"]) or row["executor_id"] == self.executor_id,
                "pid": row["pid"],
                "host": row["host"],
                "alive_since": row["alive_since"],
                "last_seen": row["last_seen"],
                "taken_over_by": row["taken_over_by"],
                "taken_over_at": row["taken_over_at"],
                "workflows_taken_over": row["workflows_taken_over"],
            }
            for row in self.executors
        ]


async def pending_of(database_url: str, executor_id: str, app_version: str) -> int:
    """How many workflows DBOS will re-enqueue for this executor id at launch (its PENDING ones of
    this version): counted before the launch, as any live process may claim them right after."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True, connect_timeout=5
    ) as conn:
        try:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM dbos.workflow_status"
                    " WHERE status = 'PENDING' AND executor_id = %s AND application_version = %s",
                    (executor_id, app_version),
                )
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # the first launch creates DBOS's tables
            return 0
    return int(row[0]) if row else 0


async def run_after_recovery(executor_id: str, since: datetime) -> int:
    """Recovered workflows (re-enqueued on DBOS's internal queue, by a launch or a takeover) that
    this executor id claimed and ran since `since`."""
    from dbos import DBOS

    statuses = await DBOS.list_workflows_async(
        queue_name=dbos_internals.INTERNAL_QUEUE_NAME,
        executor_id=executor_id,
        dequeued_after=since.isoformat(),
        load_input=False,
        load_output=False,
    )
    return len(statuses)


async def start_liveness(
    database_url: str | None,
    executor_id: str,
    *,
    grace_s: float,
    interval_s: float,
    siblings: str = "",
) -> Liveness | None:
    """The process's liveness lock, taken before DBOS launches (None on SQLite). `siblings`:
    the comma-separated executor ids of the other workers under the same supervisor."""
    if database_url is None:
        return None
    liveness = Liveness(
        database_url,
        executor_id,
        grace_s=grace_s,
        interval_s=interval_s,
        siblings=frozenset(filter(None, siblings.split(","))),
    )
    await liveness.start()
    return liveness
