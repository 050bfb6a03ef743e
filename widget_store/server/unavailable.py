"""While a serving process waits to try its start again, the supervisor answers on that process's
listening socket: 503, why, and when the next attempt is, instead of leaving every request to
hang in the kernel's backlog with no answer (and a load balancer's health check with it).

Deliberately tiny, in one thread: a request head read with a bounded size and time, one answer,
the connection closed. It answers only on the one slot's socket (each worker has its own), so it
never takes a connection meant for a sibling that serves, and it stops before the next attempt
starts, so that attempt finds the connections that arrive meanwhile waiting in the backlog.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from types import TracebackType

from ..web.security import SECURITY_HEADERS

ACCEPT_TIMEOUT_S = 0.2  # how long a stop may wait for the thread
READ_TIMEOUT_S = 1.0  # a client that sends no head within this gets its answer all the same
MAX_HEAD_BYTES = 8192
# Bytes read after the answer before closing: closing on unread data (a request's body) sends a
# reset, which can destroy the answer before the client has read it.
MAX_DRAIN_BYTES = 65536


class Unavailable:
    """Answers 503 on `sock` from a thread, from `with` until its end."""

    def __init__(self, sock: socket.socket, reason: str, next_attempt_at: float) -> None:
        """`next_attempt_at`: on time.monotonic()'s clock."""
        self.sock = sock
        self.reason = reason
        self.next_attempt_at = next_attempt_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="unavailable", daemon=True)
        self._timeout = sock.gettimeout()

    def __enter__(self) -> Unavailable:
        # A timeout, so the thread sees the stop between connections. The socket is shared with
        # the children, which set their own mode (asyncio's non-blocking) on it; it is put back
        # as found at the end all the same.
        self.sock.settimeout(ACCEPT_TIMEOUT_S)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.sock.settimeout(self._timeout)
        except OSError:  # closed: nothing to put back
            pass

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # out of descriptors, or the socket closed: pause, look again
                self._stop.wait(ACCEPT_TIMEOUT_S)
                continue
            with conn:
                try:
                    self._answer(conn)
                except OSError:  # the client went away: nothing to answer
                    pass

    def _answer(self, conn: socket.socket) -> None:
        head = _read_head(conn)
        conn.settimeout(READ_TIMEOUT_S)
        conn.sendall(self.response(head_only=head.startswith(b"HEAD ")))
        conn.shutdown(socket.SHUT_WR)
        _drain(conn)

    def response(self, *, head_only: bool = False) -> bytes:
        """The whole answer: status line, headers and, unless to a HEAD, the JSON body."""
        wait_s = max(0.0, self.next_attempt_at - time.monotonic())
        body = json.dumps(
            {"detail": self.reason, "status": "starting", "next_attempt_in_s": round(wait_s, 1)}
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Retry-After": str(max(1, math.ceil(wait_s))),
            "Cache-Control": "no-store",
            "Connection": "close",
            **SECURITY_HEADERS,
        }
        lines = ["HTTP/1.1 503 Service Unavailable", *(f"{k}: {v}" for k, v in headers.items())]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + body


def _read_head(conn: socket.socket) -> bytes:
    """The request head, or as much of it as came within the size and time bounds."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(MAX_HEAD_BYTES - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _drain(conn: socket.socket) -> None:
    """Read what the client still sends (a body), briefly and boundedly, so the close is clean."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    drained = 0
    while drained < MAX_DRAIN_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.settimeout(left)
        try:
            chunk = conn.recv(MAX_DRAIN_BYTES)
        except TimeoutError:
            return
        if not chunk:
            return
        drained += len(chunk)
