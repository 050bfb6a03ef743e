"""Slow clients, on a real server over real sockets: a request head that never ends, or a body
that never comes, is cut off within its time limit (408), however slowly it trickles in; a
connection that sends nothing is closed; and one address holds at most its cap of open
connections, while other addresses are served. The limits are set short here; the protocol is
the same on both databases, so SQLite alone."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from widget_store.testing import Database, StoreServer
from widget_store.web.security import SECURITY_HEADERS

HEAD_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0
CAP = 3
# How much later than its limit a connection may close: the server's timer, a loaded machine.
SLACK_S = 3.0
# Addresses of this machine other than the server's own (Linux routes all of 127/8 to lo).
SHOPPER = "127.0.0.2"
OTHER_SHOPPER = "127.0.0.3"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    database = Database.create("sqlite", Path(tmp_path_factory.mktemp("slow")))
    store = StoreServer(
        database,
        env_overrides={
            "WIDGET_STORE_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
            "WIDGET_STORE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "WIDGET_STORE_MAX_CONNECTIONS_PER_CLIENT": str(CAP),
        },
    ).start()
    yield store
    store.stop()


def connect(server: StoreServer, source: str = SHOPPER) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=30, source_address=(source, 0)
    )


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic()


def health_on(sock: socket.socket) -> bytes:
    """GET /health on a kept-alive connection, and its whole answer: the head, then as many
    bytes of body as it announces (one recv may hold less than the whole)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\n\r\n")
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head ended: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the body ended"
        body += chunk
    return head + b"\r\n\r\n" + body


def parse(raw: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    """One answer's status, headers (lower-case names) and JSON body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_security_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, name


def served(server: StoreServer, source: str) -> bool:
    """A whole request from `source` on a fresh connection gets its 200."""
    with connect(server, source) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\nConnection: close\r\n\r\n")
        raw, _ = until_closed(sock)
    return raw.startswith(b"HTTP/1.1 200 ")


def test_a_head_that_never_ends_is_cut_off_in_time(server: StoreServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\nX-Slow: ")
        raw, closed = until_closed(sock)
    assert HEAD_TIMEOUT_S - 0.5 <= closed - started <= HEAD_TIMEOUT_S + SLACK_S
    status, headers, body = parse(raw)
    assert status == 408, raw
    assert headers["connection"] == "close"
    assert "request head did not arrive whole" in body["detail"]
    assert_security_headers(headers)


def test_a_head_trickled_in_is_cut_off_all_the_same(server: StoreServer) -> None:
    """A byte every quarter second keeps no connection open past the head's limit."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        raw = b""
        while time.monotonic() - started < HEAD_TIMEOUT_S + SLACK_S:
            try:
                sock.sendall(b"X")
            except OSError:  # closed by the server
                break
            sock.settimeout(0.25)
            try:
                raw = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(30)
        rest, closed = until_closed(sock)
    assert closed - started <= HEAD_TIMEOUT_S + SLACK_S
    assert parse(raw + rest)[0] == 408


def test_a_connection_that_sends_nothing_is_closed_in_time(server: StoreServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        raw, closed = until_closed(sock)
    assert raw == b""
    assert HEAD_TIMEOUT_S - 0.5 <= closed - started <= HEAD_TIMEOUT_S + SLACK_S


def test_a_body_that_never_comes_is_cut_off_in_time(server: StoreServer) -> None:
    """A Content-Length of 100 and one byte of it, on a route that reads its body."""
    with connect(server) as sock:
        sock.sendall(
            b"POST /load HTTP/1.1\r\nHost: store\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        raw, closed = until_closed(sock)
    assert BODY_TIMEOUT_S - 0.5 <= closed - started <= BODY_TIMEOUT_S + SLACK_S
    status, headers, body = parse(raw)
    assert status == 408, raw
    assert "request body did not arrive whole" in body["detail"]
    assert_security_headers(headers)
    assert served(server, SHOPPER)


def test_a_slow_but_steady_client_is_served(server: StoreServer) -> None:
    """A head and body each sent in pieces well within their limits: answered as usual."""
    body = b'{"shoppers": 1}'
    pieces = [
        b"POST /load/stop HTTP/1.1\r\nHost: store\r\n",
        b"Content-Type: application/json\r\n",
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body),
        body[:5],
        body[5:],
    ]
    with connect(server) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(HEAD_TIMEOUT_S / 5)
        raw, _ = until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]


def test_one_address_holds_at_most_its_cap_of_connections(server: StoreServer) -> None:
    with ExitStack() as stack:
        # CAP kept-alive connections, each having had a request answered: open, and counted.
        held = [stack.enter_context(connect(server)) for _ in range(CAP)]
        for sock in held:
            assert health_on(sock).startswith(b"HTTP/1.1 200 ")
        with connect(server) as refused:
            started = time.monotonic()
            raw, closed = until_closed(refused)
        assert closed - started < SLACK_S  # answered and closed at once, not left waiting
        status, headers, body = parse(raw)
        assert status == 429, raw
        assert headers["retry-after"] == "1"
        assert f"the limit is {CAP}" in body["detail"]
        assert_security_headers(headers)
        # Other addresses, and the server's own, are served meanwhile.
        assert served(server, OTHER_SHOPPER)
        assert served(server, "127.0.0.1")
        # The ones it holds still work.
        assert health_on(held[0]).startswith(b"HTTP/1.1 200 ")
        # One closed frees a place.
        held.pop().close()
        time.sleep(0.2)
        assert served(server, SHOPPER)
