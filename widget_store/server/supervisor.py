"""Keep the store up: run the server in child processes (`--workers`, one a core by default on
Postgres) and start a new one whenever one dies.

Why not uvicorn's or gunicorn's process manager: uvicorn supervises only with several workers
and gunicorn's arbiter restarts workers without backoff, and DBOS needs the opposite of a
worker pool here: exactly one live process per executor id, started again with the same id so
that DBOS recovers that process's pending workflows at launch. What is left is small:

- The listening socket is opened once, here, and inherited by each child, so connections that
  arrive while a child restarts wait in the kernel's backlog instead of being refused.
- Once a child serves, a standby for it is started (standby.py; WIDGET_STORE_STANDBY=0 keeps
  none): a process that has imported everything and waits. When the child dies, the standby
  starts in its place at once, and a crash costs the start of the app and DBOS's launch, not
  Python's imports.
- A child that dies within 2 s of starting counts towards a crash loop, which backs off
  exponentially; a child that served for longer resets it.
- A child that fails before it serves (the database away, the store's tables missing) says
  why on a pipe (start_report.py); the next attempt waits 0.5 s, doubling up to 30 s while
  starts keep failing, however long each took, until a child serves again. Meanwhile the
  supervisor answers on that child's socket, 503 with the reason (unavailable.py), so requests
  fail with a why instead of hanging; a database that was away and answers again cuts the wait
  short. The migrations, when the database was away at the start, are retried the same way
  before any child starts.
- Each child has an executor id of its own, stable across its restarts (`<executor id>-<n>`,
  the plain id when there is one child), and is restarted on its own, with its own backoff.
  With several, each accepts on a socket of its own on the one port (SO_REUSEPORT), which
  the supervisor keeps open across that child's restarts.
- SIGTERM or SIGINT stops the children gracefully and nothing is restarted; if the supervisor
  itself is killed, the kernel ends the children too (PR_SET_PDEATHSIG), so no orphan is left.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import FrameType

from .standby import Standby
from .start_report import Report, read_report
from .unavailable import Unavailable

log = logging.getLogger(__name__)

RESTART_COUNT_ENV = "WIDGET_STORE_RESTART_COUNT"
EXECUTOR_ID_ENV = "WIDGET_STORE_EXECUTOR_ID"
SIBLINGS_ENV = "WIDGET_STORE_WORKER_SIBLINGS"
PR_SET_PDEATHSIG = 1
# While a start waits for its next attempt, how often the database is asked whether it is back.
PROBE_EVERY_S = 0.25


@dataclass
class Backoff:
    """Delay before the next start: after a crash, none at first, then doubling while the child
    keeps dying young; after a failed start, doubling until a child serves."""

    healthy_after_s: float = 2.0  # Settings.crash_loop_window_s
    free_restarts: int = 3
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    quick_deaths: int = field(default=0, init=False)
    failed_starts: int = field(default=0, init=False)

    def next_delay(self, uptime_s: float) -> float:
        """After the death of a child that served."""
        if uptime_s >= self.healthy_after_s:
            self.quick_deaths = 0
        self.quick_deaths += 1
        if self.quick_deaths <= self.free_restarts:
            return 0.0
        exponent = self.quick_deaths - self.free_restarts - 1
        return float(min(self.first_delay_s * 2**exponent, self.max_delay_s))

    def after_failed_start(self) -> float:
        """After a child that never served: no free attempt, and no reset by uptime, since a
        start that fails on a database can take longer than `healthy_after_s`."""
        self.failed_starts += 1
        return float(min(self.first_delay_s * 2 ** (self.failed_starts - 1), self.max_delay_s))

    def served(self) -> None:
        self.failed_starts = 0


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the supervisor dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Slot:
    """One serving process's place under the supervisor: its executor id, its own restarts."""

    number: int
    executor_id: str
    backoff: Backoff
    sock: socket.socket
    child: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    # The process that takes over when the child dies, started once the child serves.
    standby: Standby | None = None


class Supervisor:
    """Runs `workers` serving processes on the one socket, each restarted on its own."""

    def __init__(
        self,
        sock: socket.socket,
        backoff: Backoff,
        *,
        grace_s: float = 30.0,
        workers: int = 1,
        executor_id: str | None = None,
        sockets: list[socket.socket] | None = None,
        prepare: Callable[[], str | None] | None = None,
        database_answers: Callable[[], bool] | None = None,
        standby: bool = True,
    ) -> None:
        """`prepare`: what must succeed before any child starts (the migrations, when the
        database was away at the start): None once done, else why not, tried again with the
        backoff. `database_answers`: whether the database takes a connection now, which cuts a
        wait short once a database that was away is back. `standby`: keep a standby ready for
        each child (standby.py)."""
        self.sock = sock
        self.standby = standby
        self.grace_s = grace_s
        self.prepare = prepare
        self.database_answers = database_answers
        self.sockets = sockets or [sock]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        base = executor_id or os.environ.get(EXECUTOR_ID_ENV) or "local"
        # One worker keeps the plain id, so a single process recovers what it left at launch.
        self.slots = [
            Slot(
                number=n,
                executor_id=base if workers == 1 else f"{base}-{n}",
                backoff=Backoff(
                    healthy_after_s=backoff.healthy_after_s,
                    free_restarts=backoff.free_restarts,
                    first_delay_s=backoff.first_delay_s,
                    max_delay_s=backoff.max_delay_s,
                ),
                sock=sockets[n - 1] if sockets else sock,
            )
            for n in range(1, workers + 1)
        ]

    @property
    def child(self) -> subprocess.Popen[bytes] | None:
        """The first worker's process (the only one with one worker)."""
        return self.slots[0].child

    def _start_child(self, slot: Slot) -> tuple[subprocess.Popen[bytes], int]:
        """The child, and the read end of the pipe on which it says whether it started: the
        slot's standby if it has one still waiting, else a new process."""
        standby, slot.standby = slot.standby, None
        if standby is not None:
            if standby.start({RESTART_COUNT_ENV: str(slot.restarts)}):
                return standby.process, standby.report_fd
            standby.discard()
        child, report_fd, _ = self._spawn(slot)
        return child, report_fd

    def _start_standby(self, slot: Slot) -> None:
        """Have a standby ready for the slot's next start (standby.py), unless stopping."""
        with self.lock:
            if not self.standby or self.stopping.is_set() or slot.standby is not None:
                return
            child, report_fd, start_fd = self._spawn(slot, standby=True)
            assert start_fd is not None
            slot.standby = Standby(child, report_fd, start_fd)

    def _spawn(
        self, slot: Slot, *, standby: bool = False
    ) -> tuple[subprocess.Popen[bytes], int, int | None]:
        """A serving process for the slot, the read end of its start report pipe and, for a
        standby, the write end of the pipe it waits on before it starts."""
        env = {
            **os.environ,
            RESTART_COUNT_ENV: str(slot.restarts),
            EXECUTOR_ID_ENV: slot.executor_id,
            SIBLINGS_ENV: ",".join(other.executor_id for other in self.slots if other is not slot),
        }
        fd = slot.sock.fileno()
        report_read, report_write = os.pipe()
        start_read, start_write = os.pipe() if standby else (-1, None)
        command = [sys.executable, "-m", "widget_store.server.worker", str(fd), str(report_write)]
        kept = [fd, report_write]
        if start_write is not None:
            command.append(str(start_read))
            kept.append(start_read)
        try:
            child = subprocess.Popen(command, env=env, pass_fds=kept, preexec_fn=_die_with_parent)
        except BaseException:
            os.close(report_read)
            if start_write is not None:
                os.close(start_write)
            raise
        finally:
            # Only the child holds these ends: its death ends the report pipe.
            os.close(report_write)
            if start_write is not None:
                os.close(start_read)
        return child, report_read, start_write

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping the server", signal.Signals(signum).name)
        self.stopping.set()
        for slot in self.slots:
            if slot.child is not None and slot.child.poll() is None:
                slot.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self.prepare is not None and not self._prepared(self.prepare):
            return 0
        threads = [
            threading.Thread(target=self._keep, args=(slot,), name=f"worker-{slot.number}")
            for slot in self.slots
        ]
        for thread in threads:
            thread.start()
        # The main thread only waits, so that it can take the signals.
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.2)
        return 0

    def _keep(self, slot: Slot) -> None:
        """Start one worker, and again whenever it dies, until the supervisor stops."""
        while True:
            started = time.monotonic()
            with self.lock:
                if self.stopping.is_set():
                    break
                slot.child, report_fd = self._start_child(slot)
            if self.stopping.is_set():  # a signal between the check and the start
                slot.child.send_signal(signal.SIGTERM)
            report = read_report(report_fd)
            if report.serving:
                self._served(slot)
                self._start_standby(slot)
            code = slot.child.wait()
            if self.stopping.is_set():
                break
            slot.restarts += 1
            if not report.serving:
                if self._wait_after_failed_start(slot, report, code):
                    break
                continue
            uptime = time.monotonic() - started
            delay = slot.backoff.next_delay(uptime)
            log.warning(
                "server %s exited (%s) after %.1f s; restart %d in %.1f s",
                slot.executor_id,
                _describe(code),
                uptime,
                slot.restarts,
                delay,
            )
            if self.stopping.wait(delay):
                break
        self._stop_child(slot)

    def _prepared(self, prepare: Callable[[], str | None]) -> bool:
        """Try `prepare` until it succeeds, with the failed-start backoff and a 503 with the
        reason on every socket meanwhile; False if the supervisor stopped first."""
        backoff = self.slots[0].backoff
        while (reason := prepare()) is not None:
            delay = backoff.after_failed_start()
            log.warning("could not start: %s; next attempt in %.1f s", reason, delay)
            with ExitStack() as answering:
                for sock in self.sockets:
                    answering.enter_context(
                        Unavailable(sock, reason, next_attempt_at=time.monotonic() + delay)
                    )
                if self._pause(delay):
                    return False
        backoff.served()
        return not self.stopping.is_set()

    def _pause(self, delay: float) -> bool:
        """Wait `delay` before the next attempt, True if the supervisor stopped meanwhile. Less
        once a database that did not answer when the wait began answers again: the attempt it
        held back goes at once, rather than up to 30 s after a failover or a restart ended."""
        if self.database_answers is None:
            return self.stopping.wait(delay)
        deadline = time.monotonic() + delay
        was_away = not self.database_answers()
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping.wait(min(PROBE_EVERY_S, left)):
                return True
            if was_away and self.database_answers():
                log.info("the database answers again: next attempt now")
                return False
        return self.stopping.is_set()

    def _served(self, slot: Slot) -> None:
        if slot.backoff.failed_starts:
            log.info(
                "server %s serves, after %d failed start(s)",
                slot.executor_id,
                slot.backoff.failed_starts,
            )
        slot.backoff.served()

    def _wait_after_failed_start(self, slot: Slot, report: Report, code: int) -> bool:
        """Back off, answering 503 with the reason on the slot's socket meanwhile; True if the
        supervisor stopped while waiting."""
        delay = slot.backoff.after_failed_start()
        reason = report.reason or f"it exited ({_describe(code)}) before serving"
        log.warning(
            "server %s could not start: %s; next attempt in %.1f s",
            slot.executor_id,
            reason,
            delay,
        )
        with Unavailable(slot.sock, reason, next_attempt_at=time.monotonic() + delay):
            return self._pause(delay)

    def _stop_child(self, slot: Slot) -> None:
        if slot.standby is not None:
            slot.standby.discard()
            slot.standby = None
        child = slot.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop within %.0f s; killing it", self.grace_s)
            child.kill()
            child.wait()


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def supervise(
    host: str,
    port: int,
    *,
    crash_loop_window_s: float,
    sock: socket.socket | None = None,
    workers: int = 1,
    executor_id: str | None = None,
    prepare: Callable[[], str | None] | None = None,
    database_answers: Callable[[], bool] | None = None,
    standby: bool = True,
) -> int:
    """`sock`: the socket already listening on host:port (the CLI opens it before migrating);
    `prepare`, `database_answers` and `standby`: as Supervisor takes them."""
    sock = sock or listen(host, port)
    sockets: list[socket.socket] = []
    if workers > 1:
        # One socket a worker, all on the port (SO_REUSEPORT): the kernel spreads the new
        # connections evenly over them, where one shared socket hands nearly all of a burst to
        # whichever worker is awake (bench.load: one worker did 93 % of the work). Each stays
        # open here, so connections sent to a worker that is restarting wait in its backlog.
        # Rebound before anything is served: the CLI's socket only proved the port free.
        port = int(sock.getsockname()[1])  # the port given, or the one --port 0 was given
        sock.close()
        sockets = [listen(host, port, reuse_port=True) for _ in range(workers)]
        sock = sockets[0]
    processes = "1 serving process" if workers == 1 else f"{workers} serving processes"
    log.info("Widget Store listening on http://%s:%d (%s)", host, port, processes)
    try:
        supervisor = Supervisor(
            sock,
            Backoff(healthy_after_s=crash_loop_window_s),
            workers=workers,
            executor_id=executor_id,
            sockets=sockets,
            prepare=prepare,
            database_answers=database_answers,
            standby=standby,
        )
        return supervisor.run()
    finally:
        for each in sockets or [sock]:
            each.close()
