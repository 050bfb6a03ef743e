"""Pins the behaviour of the DBOS internals the store relies on (widget_store/dbos_internals.py).

A DBOS upgrade that changes one of them fails here. DBOS is a process-wide singleton, so the
pinning runs in a fresh Python process of its own, on SQLite.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from .support import run_pinned


def _pin(data_dir: str) -> None:
    """Run in a child process: prints one JSON line of observations."""
    import sqlalchemy as sa
    from dbos import DBOS

    from widget_store import dbos_internals

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
