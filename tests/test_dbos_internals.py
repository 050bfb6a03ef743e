"""Pins the behaviour of the DBOS internals the store relies on
(widget_store/durable/dbos_internals.py).

A DBOS upgrade that changes one of them fails here. DBOS is a process-wide singleton, so the
pinning that needs it launched runs in a fresh Python process of its own, on SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbos import _sys_db, _sys_db_postgres

from widget_store.database.reconnect import Reconnect
from widget_store.durable import dbos_internals
from widget_store.testing import POSTGRES_URL_ENV, Database

from .support import REPO_ROOT, run_pinned


def _pin(data_dir: str) -> None:
    """Run in a child process: prints one JSON line of observations."""
    import sqlalchemy as sa
    from dbos import DBOS

    from widget_store.durable import dbos_internals

    url = f"sqlite:///{data_dir}/dbos.sqlite"
    DBOS(config={"name": "pin", "system_database_url": url, "executor_id": "pin"})
    dbos_internals.set_internal_queue_polling(0.1)
    release = threading.Event()
    runs: list[float] = []

    @DBOS.step()
    def slow_step() -> str:
        runs.append(time.monotonic())
        release.wait(20)
        return "done"

    @DBOS.workflow()
    def flow() -> str:
        return slow_step()

    DBOS.launch()
    polling = dbos_internals.internal_queue_polling()
    handle = DBOS.start_workflow(flow)
    while not runs:
        time.sleep(0.01)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the workflow's executor "dies"
        conn.execute(
            sa.text("UPDATE workflow_status SET executor_id = 'ghost' WHERE workflow_uuid = :id"),
            {"id": handle.workflow_id},
        )
    engine.dispose()

    async def recover() -> list[str]:
        return await dbos_internals.recover_pending_workflows(["ghost"])

    import asyncio

    recovered_at = time.monotonic()
    first = asyncio.run(recover())
    second = asyncio.run(recover())
    while len(runs) < 2 and time.monotonic() - recovered_at < 10:
        time.sleep(0.01)
    rerun_after = runs[1] - recovered_at if len(runs) > 1 else None
    status = DBOS.get_workflow_status(handle.workflow_id)
    release.set()
    result = DBOS.retrieve_workflow(handle.workflow_id).get_result()
    steps = DBOS.list_workflow_steps(handle.workflow_id)
    sys.stdout.write(
        json.dumps(
            {
                "polling": polling,
                "first": first,
                "second": second,
                "workflow_id": handle.workflow_id,
                "rerun_after": rerun_after,
                "claimed_by": status.executor_id if status else None,
                "result": result,
                "step_rows": len(steps),
                "runs": len(runs),
            }
        )
        + "\n"
    )
    DBOS.destroy()


def test_recovery_of_another_executor_and_quick_internal_queue(tmp_path: Path) -> None:
    seen = run_pinned("test_dbos_internals", tmp_path, timeout=60)
    # The internal queue's polling interval is a private attribute that its worker reads.
    assert seen["polling"] == 0.1
    # Recovery of a named executor re-enqueues its PENDING workflow once, and only once.
    assert seen["first"] == [seen["workflow_id"]]
    assert seen["second"] == []
    # ... and this process's internal queue runs it again within a few polls.
    assert seen["rerun_after"] is not None and seen["rerun_after"] < 1.0, seen
    assert seen["claimed_by"] == "pin"
    # The stale run's checkpoint is refused (ownership check): one outcome, one step row.
    assert seen["result"] == "done"
    assert seen["step_rows"] == 1
    assert seen["runs"] == 2


# The modules whose `time` the store replaces (an attribute they do not export).
sys_db_module: Any = _sys_db
sys_db_postgres_module: Any = _sys_db_postgres


class AnsweringReconnect(Reconnect):
    """Answers every wait at once, without probing, and keeps each wait's bound."""

    def __init__(self) -> None:
        super().__init__(sa.create_engine("postgresql+psycopg://127.0.0.1/none"))
        self.timeouts: list[float] = []

    def wait(self, timeout_s: float) -> bool:
        self.timeouts.append(timeout_s)
        return True


def test_db_retry_pauses_until_the_database_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """db_retry needs no launched DBOS, so this runs here; the modules' `time` is put back."""
    monkeypatch.setattr(sys_db_module, "time", sys_db_module.time)
    monkeypatch.setattr(sys_db_postgres_module, "time", sys_db_postgres_module.time)
    # DBOS's _sys_db sleeps through the `time` module it imported ...
    assert sys_db_module.time is time
    reconnect = AnsweringReconnect()
    dbos_internals.pause_db_retries_until_reconnect(0.2, reconnect)
    lost = [
        sa.exc.OperationalError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
        for _ in range(3)
    ]

    @_sys_db.db_retry()
    def flaky() -> str:
        if lost:
            raise lost.pop()
        return "ok"

    # ... and db_retry retries a lost connection, pausing from its own wrapper: each of the
    # three pauses (DBOS's 1, 2 and 4 s, jittered x0.5-1.5) went to the wait, capped.
    assert flaky() == "ok"
    assert reconnect.timeouts == [0.2, 0.2, 0.2]
    # Its other sleeps, pollers' intervals, are left as they are.
    sys_db_module.time.sleep(0.01)
    assert len(reconnect.timeouts) == 3


def _pin_listener(url: str) -> None:
    """Run in a child process on Postgres: prints one JSON line of observations."""
    import sqlalchemy as sa
    from dbos import DBOS
    from dbos._dbos import _get_dbos_instance

    from widget_store.database.reconnect import Reconnect
    from widget_store.durable import dbos_internals

    waited_from: list[str] = []

    class Recording(Reconnect):
        def wait(self, timeout_s: float) -> bool:
            waited_from.append(threading.current_thread().name)
            return super().wait(timeout_s)

    DBOS(config={"name": "pin", "system_database_url": url, "executor_id": "pin"})
    DBOS.launch()
    reconnect = Recording(_get_dbos_instance()._sys_db.engine)
    dbos_internals.pause_db_retries_until_reconnect(reconnect=reconnect)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def listener() -> int | None:
        with engine.connect() as conn:
            pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND query LIKE 'LISTEN %' ORDER BY backend_start DESC LIMIT 1"
                )
            ).scalar()
        return None if pid is None else int(pid)

    def until(probe: Any) -> Any:
        deadline = time.monotonic() + 30
        while (value := probe()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return value

    first = until(listener)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

    def new_listener() -> int | None:
        pid = listener()
        return pid if pid != first else None

    again = until(new_listener)
    sys.stdout.write(
        json.dumps(
            {
                "first": first,
                "again": again,
                "listener_waited": any("notification_listener" in name for name in waited_from),
            }
        )
        + "\n"
    )
    engine.dispose()
    DBOS.destroy()


def test_the_notification_listener_pauses_until_the_database_answers(
    backend: str, tmp_path: Path
) -> None:
    """DBOS's listener, its LISTEN connection cut, pauses through the `time` of DBOS's
    _sys_db_postgres module from its own frame, and listens again after the pause."""
    if backend != "postgres":
        pytest.skip("DBOS listens only on Postgres")
    database = Database.create(backend, tmp_path, os.environ[POSTGRES_URL_ENV])
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from tests.test_dbos_internals import _pin_listener; "
                f"_pin_listener({database.url!r})",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        database.drop()
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["first"] is not None, seen
    assert seen["listener_waited"], seen
    assert seen["again"] not in (None, seen["first"]), seen
