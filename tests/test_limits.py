"""Request limits on a real server, both databases: 431 past the header limits (16 KiB of
request head, 100 fields), 413 past the body limit (64 KiB), each before anything more is
buffered, and the same server serving normal requests afterwards."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx

from widget_store.testing import StoreServer
from widget_store.web.security import SECURITY_HEADERS

HEADER_LIMIT = 16 * 1024
BODY_LIMIT = 64 * 1024
HEALTH = b"GET /health HTTP/1.1\r\nHost: store\r\n\r\n"


def assert_refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert words in answer.json()["detail"]


def assert_still_serving(server: StoreServer) -> None:
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def connect(server: StoreServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (it must, within 10 s)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def responses(raw: bytes) -> Iterator[tuple[int, dict[str, str], bytes]]:
    """Split a stream of HTTP/1.1 responses (each with a Content-Length) into its parts."""
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)
        }
        length = int(headers["content-length"])
        yield int(status_line.split()[1]), headers, rest[:length]
        raw = rest[length:]


def test_a_1_mb_header_is_431(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        answer = client.get("/health", headers={"X-Big": "a" * 1_000_000})
    assert_refused(answer, 431, f"over {HEADER_LIMIT} bytes")
    assert_still_serving(shared_server)


def test_the_servers_own_answers_carry_the_security_headers(shared_server: StoreServer) -> None:
    """The 431 (too large, too many fields) and the 400 (unparsable) are the server's, given
    before the app sees the request: they carry the same security headers as the app's."""
    with shared_server.client() as client:
        served = client.get("/health")
        too_large = client.get("/health", headers={"X-Big": "a" * 20_000})
        too_many = client.get("/health", headers={f"X-Field-{n}": "1" for n in range(200)})
    with connect(shared_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\nBad Name: x\r\n\r\n")
        [(status, unparsable, body)] = responses(read_until_closed(sock))
    assert status == 400 and json.loads(body)["detail"]
    assert served.status_code == 200
    assert too_large.status_code == too_many.status_code == 431
    for name, value in SECURITY_HEADERS.items():
        assert served.headers[name] == value, name
        assert too_large.headers[name] == too_many.headers[name] == value, name
        assert unparsable[name.lower()] == value, name


def test_200_small_headers_are_431(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        answer = client.get("/health", headers={f"X-Field-{n}": "1" for n in range(200)})
    assert_refused(answer, 431, "more than 100 header fields")
    assert_still_serving(shared_server)


def test_a_head_within_the_limits_is_served(shared_server: StoreServer) -> None:
    headers = {f"X-Field-{n}": "1" for n in range(90)}
    with shared_server.client() as client:
        assert client.get("/health", headers={"X-Big": "a" * 15_000}).status_code == 200
        assert client.get("/health", headers=headers).status_code == 200


def test_each_request_on_a_connection_has_the_whole_limit(shared_server: StoreServer) -> None:
    """Five 10 KB heads on one keep-alive connection: 50 KB in all, each under the limit."""
    head = b"GET /health HTTP/1.1\r\nHost: store\r\nX-Pad: " + b"a" * 10_000 + b"\r\n\r\n"
    with connect(shared_server) as sock:
        for _ in range(5):
            sock.sendall(head)
            received = b""
            while not received.endswith(b"}"):
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200 "), received[:200]


def test_pipelined_requests_are_answered_before_the_431(shared_server: StoreServer) -> None:
    """Three requests and a fourth with an oversized head, in one write: the three are
    answered in order, then the 431, then the connection closes."""
    oversized = b"GET /health HTTP/1.1\r\nHost: store\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    with connect(shared_server) as sock:
        sock.sendall(HEALTH * 3 + oversized)
        answers = list(responses(read_until_closed(sock)))
    assert [status for status, _, _ in answers] == [200, 200, 200, 431]
    assert answers[3][1]["connection"] == "close"
    assert "over 16384 bytes" in json.loads(answers[3][2])["detail"]


def test_a_head_sent_slowly_is_counted_whole(shared_server: StoreServer) -> None:
    """A head trickled in 1 KB fields is refused once it passes the limit, not buffered."""
    with connect(shared_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: store\r\n")
        for _ in range(20):
            try:
                sock.sendall(b"X-Field: " + b"b" * 1000 + b"\r\n")
            except OSError:  # the server has answered and stopped reading
                break
        [(status, headers, body)] = responses(read_until_closed(sock))
    assert status == 431 and headers["content-type"] == "application/json"
    assert_still_serving(shared_server)


def test_a_declared_20_mb_body_is_413_unread(shared_server: StoreServer) -> None:
    """Only the head is sent: the answer comes without the server waiting for the body, and
    the serving process holds no more memory than before."""
    pid = int(shared_server.health()["pid"])
    before = rss_kib(pid)
    head = (
        b"POST /load HTTP/1.1\r\nHost: store\r\nContent-Type: application/json\r\n"
        b"Content-Length: 20000000\r\n\r\n"
    )
    with connect(shared_server) as sock:
        sock.sendall(head)
        [(status, headers, body)] = responses(read_until_closed(sock))
    assert status == 413, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert f"the limit is {BODY_LIMIT} bytes" in json.loads(body)["detail"]
    assert rss_kib(pid) - before < 4096
    assert_still_serving(shared_server)


def test_a_20_mb_body_sent_anyway_gets_its_413(shared_server: StoreServer) -> None:
    """A client that sends the whole body before reading still gets the 413 (the server reads
    and drops the rest, rather than reset the connection), and nothing is kept of it."""
    pid = int(shared_server.health()["pid"])
    before = rss_kib(pid)
    with shared_server.client() as client:
        answer = client.post(
            "/load", content=b"x" * 20_000_000, headers={"Content-Type": "application/json"}
        )
    assert_refused(answer, 413, f"the limit is {BODY_LIMIT} bytes")
    assert rss_kib(pid) - before < 4096


def test_a_chunked_body_over_the_limit_is_413(shared_server: StoreServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 10_000

    with shared_server.client() as client:
        answer = client.post(
            "/load", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert_refused(answer, 413, f"the limit is {BODY_LIMIT} bytes")
    assert_still_serving(shared_server)


def test_a_body_under_the_limit_is_served(shared_server: StoreServer) -> None:
    """60 KB of JSON (mostly whitespace), with a Content-Length and chunked: read whole."""
    body = b'{"shoppers": 1' + b" " * 60_000 + b"}"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    json_type = {"Content-Type": "application/json"}
    with shared_server.client() as client:
        try:
            declared = client.post("/load", content=body, headers=json_type)
            chunked = client.post("/load", content=chunks(), headers=json_type)
        finally:
            client.post("/load/stop")
    assert declared.status_code == 200, declared.text
    assert chunked.status_code == 200, chunked.text
    assert declared.json()["shoppers"] == chunked.json()["shoppers"] == 1
