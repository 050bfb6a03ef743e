"""Keep the store up: run the server in a child process and start a new one whenever it dies.

Why not uvicorn's or gunicorn's process manager: uvicorn supervises only with several workers
and gunicorn's arbiter restarts workers without backoff, and DBOS needs the opposite of a
worker pool here: exactly one live process per executor id, started again with the same id so
that DBOS recovers that process's pending workflows at launch. What is left is small:

- The listening socket is opened once, here, and inherited by each child, so connections that
  arrive while a child restarts wait in the kernel's backlog instead of being refused.
- A child that dies within 2 s of starting counts towards a crash loop, which backs off
  exponentially; a child that served for longer resets it.
- SIGTERM or SIGINT stops the child gracefully and nothing is restarted; if the supervisor
  itself is killed, the kernel ends the child too (PR_SET_PDEATHSIG), so no orphan is left.
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
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

RESTART_COUNT_ENV = "WIDGET_STORE_RESTART_COUNT"
PR_SET_PDEATHSIG = 1


@dataclass
class Backoff:
    """Delay before the next start: none at first, doubling while the child keeps dying young."""

    healthy_after_s: float = 2.0  # Settings.crash_loop_window_s
    free_restarts: int = 3
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    quick_deaths: int = field(default=0, init=False)

    def next_delay(self, uptime_s: float) -> float:
        if uptime_s >= self.healthy_after_s:
            self.quick_deaths = 0
        self.quick_deaths += 1
        if self.quick_deaths <= self.free_restarts:
            return 0.0
        exponent = self.quick_deaths - self.free_restarts - 1
        return float(min(self.first_delay_s * 2**exponent, self.max_delay_s))


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the supervisor dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, sock: socket.socket, backoff: Backoff, *, grace_s: float = 30.0) -> None:
        self.sock = sock
        self.grace_s = grace_s
        self.backoff = backoff
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def _start_child(self, restart_count: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, RESTART_COUNT_ENV: str(restart_count)}
        command = [sys.executable, "-m", "widget_store.server.worker", str(self.sock.fileno())]
        return subprocess.Popen(
            command, env=env, pass_fds=(self.sock.fileno(),), preexec_fn=_die_with_parent
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping the server", signal.Signals(signum).name)
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        restarts = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = self._start_child(restarts)
            code = self._wait_child()
            if self.stopping.is_set():
                break
            uptime = time.monotonic() - started
            delay = self.backoff.next_delay(uptime)
            restarts += 1
            log.warning(
                "server exited (%s) after %.1f s; restart %d in %.1f s",
                _describe(code),
                uptime,
                restarts,
                delay,
            )
            if self.stopping.wait(delay):
                break
        return self._stop_child()

    def _wait_child(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait()
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                continue

    def _stop_child(self) -> int:
        child = self.child
        if child is None or child.poll() is not None:
            return 0
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop within %.0f s; killing it", self.grace_s)
            child.kill()
            child.wait()
        return 0


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def supervise(host: str, port: int, *, crash_loop_window_s: float) -> int:
    sock = listen(host, port)
    log.info("Widget Store listening on http://%s:%d", host, port)
    try:
        return Supervisor(sock, Backoff(healthy_after_s=crash_loop_window_s)).run()
    finally:
        sock.close()
