"""The supervisor's answer while a serving process cannot start (server/unavailable.py), on a
real socket: what a client reads, that no client holds it up for long, and that it stops
answering at its end, leaving new connections in the backlog for the next serving process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from widget_store.server.supervisor import listen
from widget_store.server.unavailable import Unavailable
from widget_store.web.security import SECURITY_HEADERS

REASON = "cannot connect to the database (Connection refused)"


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = listen("127.0.0.1", 0)
    yield sock
    sock.close()


def url(sock: socket.socket, path: str = "/health") -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}{path}"


def test_every_request_gets_503_with_why_and_when_the_next_attempt_is(
    listening: socket.socket,
) -> None:
    with Unavailable(listening, REASON, next_attempt_at=time.monotonic() + 4.2):
        health = httpx.get(url(listening), timeout=5)
        checkout = httpx.post(url(listening, "/checkout/k"), json={"pad": "x" * 20000}, timeout=5)
        page = httpx.get(url(listening, "/"), timeout=5)
    for answer in (health, checkout, page):
        assert answer.status_code == 503
        body = answer.json()
        assert body.keys() == {"detail", "status", "next_attempt_in_s"}
        assert body["detail"] == REASON and body["status"] == "starting"
        assert 3.0 <= body["next_attempt_in_s"] <= 4.2
        assert answer.headers["Retry-After"] in ("4", "5")  # the seconds left, rounded up
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Connection"] == "close"
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, name


def test_retry_after_is_at_least_a_second(listening: socket.socket) -> None:
    with Unavailable(listening, REASON, next_attempt_at=time.monotonic() - 1):
        answer = httpx.get(url(listening), timeout=5)
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["next_attempt_in_s"] == 0


def test_a_head_request_gets_the_head_only(listening: socket.socket) -> None:
    with Unavailable(listening, REASON, next_attempt_at=time.monotonic() + 1):
        answer = httpx.head(url(listening), timeout=5)
    assert answer.status_code == 503
    assert answer.content == b""
    assert int(answer.headers["Content-Length"]) > 0


def test_a_silent_or_endless_client_holds_the_others_up_about_a_second_at_most(
    listening: socket.socket,
) -> None:
    address = listening.getsockname()
    silent, endless = socket.create_connection(address), socket.create_connection(address)
    with silent, endless, Unavailable(listening, REASON, next_attempt_at=time.monotonic() + 5):
        endless.sendall(b"GET /" + b"a" * 20000)  # past the head's bound, and never ending
        started = time.monotonic()
        answer = httpx.get(url(listening), timeout=10)
        assert answer.status_code == 503
        assert time.monotonic() - started < 5
        for client in (silent, endless):
            client.settimeout(5)
            assert client.recv(64).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


def test_at_its_end_it_answers_no_more_and_leaves_the_socket_as_it_was(
    listening: socket.socket,
) -> None:
    started = time.monotonic()
    with Unavailable(listening, REASON, next_attempt_at=time.monotonic() + 5):
        pass
    assert time.monotonic() - started < 1  # the next attempt is not held up
    assert listening.gettimeout() is None
    # A request now waits in the kernel's backlog, for the next serving process to accept it.
    with socket.create_connection(listening.getsockname(), timeout=0.5) as client:
        client.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\n\r\n")
        with pytest.raises(TimeoutError):
            client.recv(1)
