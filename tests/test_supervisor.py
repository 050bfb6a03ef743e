"""The supervisor: restarts after any death, backs off from a crash loop and from failed starts
(their 503s and logs: test_start_failure.py), stops cleanly."""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest

from widget_store.server.standby import wait_for_start
from widget_store.server.supervisor import Backoff
from widget_store.testing import StoreServer, children, is_standby, wait_until

from .support import MakeServer

pytestmark = pytest.mark.crash


def test_backoff_is_free_at_first_then_doubles_up_to_a_cap() -> None:
    backoff = Backoff(healthy_after_s=10, free_restarts=3, first_delay_s=0.5, max_delay_s=4)
    delays = [backoff.next_delay(uptime_s=1) for _ in range(8)]
    assert delays == [0, 0, 0, 0.5, 1, 2, 4, 4]
    # A run that lasted resets the count.
    assert backoff.next_delay(uptime_s=60) == 0


def test_failed_starts_back_off_at_once_whatever_they_took_until_one_serves() -> None:
    backoff = Backoff(healthy_after_s=2, first_delay_s=0.5, max_delay_s=30)
    delays = [backoff.after_failed_start() for _ in range(9)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    backoff.served()
    assert backoff.after_failed_start() == 0.5


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has stopped all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_crash_loop_backs_off(make_server: MakeServer) -> None:
    # A wide window, so every crash below counts however slowly the machine starts the server.
    server = make_server(WIDGET_STORE_CRASH_LOOP_WINDOW_S="60")
    pid = server.health()["pid"]
    for _ in range(5):
        assert httpx.post(f"{server.base_url}/crash_application").status_code == 202
        pid = server.wait_healthy(not_pid=pid)["pid"]
    delays = [float(d) for d in re.findall(r"restart \d+ in ([\d.]+) s", server.log_text())]
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0]


def standby_of(server: StoreServer) -> int:
    """The pid of the supervisor's standby, once it has one."""
    assert server.proc is not None
    proc = server.proc

    def found() -> int | None:
        waiting = [pid for pid in children(proc.pid) if is_standby(pid)]
        return waiting[0] if len(waiting) == 1 else None

    return wait_until(found, timeout=30, what="a standby")


def test_a_crashed_server_is_replaced_by_its_standby_and_a_new_standby_follows(
    make_server: MakeServer,
) -> None:
    server = make_server()
    pid = server.health()["pid"]
    standby = standby_of(server)
    assert standby != pid
    assert httpx.post(f"{server.base_url}/crash_application").status_code == 202
    health = server.wait_healthy(not_pid=pid)
    # The standby itself serves now, as restart 1 with this store's executor id.
    assert health["pid"] == standby
    assert health["restart_count"] == 1 and health["executor_id"] == "local"
    assert standby_of(server) not in (pid, standby)


def test_no_standby_when_turned_off(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_STANDBY="0")
    pid = server.health()["pid"]
    assert server.proc is not None
    assert children(server.proc.pid) == [pid]
    assert httpx.post(f"{server.base_url}/crash_application").status_code == 202
    pid = server.wait_healthy(not_pid=pid)["pid"]
    assert children(server.proc.pid) == [pid]


def test_a_standby_starts_with_what_it_is_told_or_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Set here, so that the test's change is undone afterwards.
    monkeypatch.setenv("WIDGET_STORE_RESTART_COUNT", "0")
    read, write = os.pipe()
    os.write(write, b'{"WIDGET_STORE_RESTART_COUNT": "3"}\n')
    assert wait_for_start(read)
    assert os.environ["WIDGET_STORE_RESTART_COUNT"] == "3"
    read, write = os.pipe()
    os.close(write)  # the supervisor stopped, or let it go
    assert not wait_for_start(read)


def wait_gone(*pids: int) -> None:
    wait_until(
        lambda: None if any(pid_alive(pid) for pid in pids) else True,
        timeout=10,
        what=f"processes {pids} to exit",
    )


def test_sigterm_stops_everything_with_no_restart(make_server: MakeServer) -> None:
    server = make_server()
    worker = server.health()["pid"]
    standby = standby_of(server)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
    wait_gone(worker, standby)
    assert "restart 1" not in server.log_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/health", timeout=2)


def test_killed_supervisor_leaves_no_orphan(make_server: MakeServer) -> None:
    server = make_server()
    worker = server.health()["pid"]
    standby = standby_of(server)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    wait_gone(worker, standby)
