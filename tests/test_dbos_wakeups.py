"""Pins the DBOS internals behind the wake-ups after a Postgres restart
(widget_store/durable/dbos_internals.py: `Wakeups`). A DBOS upgrade that changes them fails
here. DBOS is a process-wide singleton, so the pinning runs in a fresh Python process of its own, on
SQLite, where only polling delivers messages and events: with its poll set to 30 s, a waiter is
woken only by what the test does."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dbos

from widget_store.durable import dbos_internals

from .support import run_pinned


def _pin(data_dir: str) -> None:
    """Run in a child process: prints one JSON line of observations."""
    import threading

    from dbos import DBOS

    from widget_store.durable import dbos_internals

    url = f"sqlite:///{data_dir}/dbos.sqlite"
    DBOS(
        config={
            "name": "pin",
            "system_database_url": url,
            "executor_id": "pin",
            "notification_listener_polling_interval_sec": 30,
        }
    )

    @DBOS.workflow()
    def waiter() -> str:
        message = DBOS.recv("topic", timeout_seconds=20)
        DBOS.set_event("key", message)
        return str(message)

    DBOS.launch()
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    wakeups = dbos_internals.Wakeups()
    handle = DBOS.start_workflow(waiter)
    while not sys_db.notifications_map.snapshot():
        time.sleep(0.01)
    # Nothing written yet: a re-check wakes nobody (a blind wake would end recv with None).
    checked_empty = wakeups.recheck()
    time.sleep(0.3)
    still_waiting = DBOS.get_workflow_status(handle.workflow_id).status
    got: list[tuple[object, float]] = []

    def read_event() -> None:
        value = DBOS.get_event(handle.workflow_id, "key", timeout_seconds=20)
        got.append((value, time.monotonic()))

    reader = threading.Thread(target=read_event)
    reader.start()
    while not sys_db.workflow_events_map.snapshot():
        time.sleep(0.01)
    DBOS.send(handle.workflow_id, "hello", "topic")
    time.sleep(0.5)
    undelivered = DBOS.get_workflow_status(handle.workflow_id).status  # no poll: still waiting
    woken_at = time.monotonic()
    wakeups.recheck()
    result = handle.get_result()
    recv_after = time.monotonic() - woken_at
    time.sleep(0.2)
    event_woken_at = time.monotonic()
    wakeups.recheck()
    reader.join(10)
    event_after = got[0][1] - event_woken_at if got else None

    sys.stdout.write(
        json.dumps(
            {
                "checked_empty": checked_empty,
                "still_waiting": still_waiting,
                "undelivered": undelivered,
                "result": result,
                "recv_after": recv_after,
                "event": got[0][0] if got else None,
                "event_after": event_after,
            }
        )
        + "\n"
    )
    DBOS.destroy()


def test_wakeups_deliver_what_was_written_and_nothing_else(tmp_path: Path) -> None:
    seen = run_pinned("test_dbos_wakeups", tmp_path, timeout=90)
    # A re-check with nothing written leaves the waiter waiting.
    assert seen["checked_empty"] == 1 and seen["still_waiting"] == "PENDING", seen
    # A message written while nothing polls is not delivered ...
    assert seen["undelivered"] == "PENDING", seen
    # ... until a re-check, which delivers it at once; the same for an event.
    assert seen["result"] == "hello" and seen["recv_after"] < 1.0, seen
    assert seen["event"] == "hello" and seen["event_after"] < 1.0, seen


def test_the_trouble_dbos_logs_is_still_said_the_same_way() -> None:
    """Wakeups watches DBOS's log lines: each prefix it watches is still in DBOS's source."""
    source = "".join(
        (Path(dbos.__file__).parent / name).read_text()
        for name in ("_sys_db.py", "_sys_db_postgres.py", "_core.py")
    )
    for prefix in dbos_internals.TROUBLE_PREFIXES:
        if prefix == "database unavailable":  # the store's own (web/app.py)
            continue
        assert f'"{prefix}' in source, prefix
