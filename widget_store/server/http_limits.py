"""Limits on each connection, enforced in the HTTP protocol uvicorn runs for it, before
anything is buffered or handed to the app.

- The request head (request line and header fields): uvicorn's httptools protocol takes a head
  of any size and any number of fields. `LimitedHttpToolsProtocol` counts the head's bytes as
  they arrive and its fields as they are parsed, and past `max_header_bytes` or `max_headers`
  answers 431 and closes the connection, having handed the parser no more than the limit. The
  body has its limit in the app (web/body_limit.py).
- Slow clients: a head must arrive whole within `head_timeout_s` of its first byte (the first
  request's, of the connection's opening), however it trickles in, and a body within
  `body_timeout_s` of its head; else 408 and the connection closes. A connection that opened
  and sent nothing is closed silently at `head_timeout_s`. (uvicorn has neither: only an idle
  keep-alive connection, between requests, is closed, after `timeout_keep_alive`.)
- At most `max_connections_per_client` open connections from one address in this serving
  process: the next is answered 429 at once and closed. The proxies trusted with
  X-Forwarded-For (each of their connections carries many clients) and the store's own
  address (its built-in shoppers and sandbox provider call it) are not counted.

Every answer the protocol gives itself (400 for a request it cannot parse, 408, 429, 431) is
JSON with a `detail`, and carries the security headers every answer of the app carries
(web/security.py's SECURITY_HEADERS).

Those answers, and an answer given before the request's body was read to its end (the body
limit's 413), close the connection lingering: the server half-closes, then reads and drops what
the client is still sending for up to `LINGER_S` before it closes. Closing a socket with unread
data sends a reset, which can make the client lose the answer it was just sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import httptools
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ..config import Settings
from ..web.security import SECURITY_HEADERS

log = logging.getLogger(__name__)

LINGER_S = 2.0
# Connections refused past the per-client cap are logged at most this often (a flood of them
# would otherwise flood the log).
REFUSAL_LOG_INTERVAL_S = 10.0

_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may send and hold (the module's docstring says how each is kept)."""

    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    head_timeout_s: float = 20.0
    body_timeout_s: float = 20.0
    # 0: no cap.
    max_connections_per_client: int = 0
    # Settings.forwarded_allow_ips, read as uvicorn reads it for X-Forwarded-For.
    trusted_proxies: str = "127.0.0.1"

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            head_timeout_s=settings.head_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections_per_client=settings.max_connections_per_client,
            trusted_proxies=settings.forwarded_allow_ips,
        )


class _Refusal(NamedTuple):
    """An answer the protocol gives itself, then closes the connection."""

    status: int
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class _LimitHit(Exception):
    """Raised from a parser callback to stop the parser where it stands."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on the request head, on slow clients and on
    each client's open connections.

    Bytes are counted in `data_received`, before the parser sees them: while a head is awaited
    or incomplete, the parser is fed at most what is left of `max_header_bytes`, so no more than
    that is ever accumulated (httptools joins a header's pieces until the header ends). Fields
    are counted as the parser reports them, trailers of a chunked body included. Each request
    of a keep-alive or pipelined connection starts from zero.

    The head's clock starts at its first byte (the parser's on_message_begin) or, for a
    connection's first request, at the connection's opening, and stops when the head is whole;
    the body's runs from there to the message's end. Neither runs against the client while its
    bytes wait on the server: reading paused (a pipelined request waits its turn, or the app
    has not read what came), or a `100 Continue` not yet sent.

    `http_protocol()` makes a subclass with the configured limits, for uvicorn.Config(http=...),
    and the count of open connections by address its instances share (one event loop).
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    _trusted: ClassVar[_TrustedHosts] = _TrustedHosts(ConnectionLimits.trusted_proxies)
    _open_by_client: ClassVar[dict[str, int]] = {}
    _refused_connections: ClassVar[int] = 0
    _refusals_logged_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = self.limits.max_header_bytes
        self.max_headers = self.limits.max_headers
        # True from the end of one message (or the connection's start) to the end of the next
        # head: the bytes that arrive meanwhile are that head's.
        self._awaiting_head = True
        self._head_bytes = 0
        self._heads_completed = 0
        # What the parser has reported of the current message's head (URL and fields, a lower
        # bound of its size) and how many fields it has.
        self._head_seen = 0
        self._fields = 0
        self._limit_hit: str | None = None
        # Set once a request is refused: nothing more of the connection is parsed, and the
        # refusal is sent as soon as the requests before it are answered.
        self._refused: _Refusal | None = None
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None
        # The slow-client clocks (None: not running), and whether a head has begun.
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        # The address this connection is counted under (None: not counted).
        self._counted: str | None = None

    # Opening: the per-client cap, and the first head's clock

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        if host is not None and self._is_counted(host):
            cap = self.limits.max_connections_per_client
            held = self._open_by_client.get(host, 0)
            if held >= cap:
                self._refuse_connection(host, cap)
                return
            self._open_by_client[host] = held + 1
            self._counted = host
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _is_counted(self, host: str) -> bool:
        if not self.limits.max_connections_per_client or host in self._trusted:
            return False
        return self.server is None or host != self.server[0]

    def _refuse_connection(self, host: str, cap: int) -> None:
        cls = type(self)
        cls._refused_connections += 1
        if self.loop.time() - cls._refusals_logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "refused %d connection(s) past the cap of %d open connections per client "
                "(the latest from %s)",
                cls._refused_connections,
                cap,
                host,
            )
            cls._refused_connections = 0
            cls._refusals_logged_at = self.loop.time()
        self._refused = _Refusal(
            429,
            f"Too many open connections from your address (the limit is {cap}): "
            "close some and retry",
            ((b"retry-after", b"1"),),
        )
        self._send_refusal()

    # Counting

    def data_received(self, data: bytes) -> None:
        if self._refused is not None or self._lingering:
            return  # read and dropped
        self._unset_keepalive_if_required()
        rest = memoryview(data)
        while rest:
            awaiting = self._awaiting_head
            if awaiting:
                room = self.max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(
                        _too_large(f"the request head is over {self.max_header_bytes} bytes")
                    )
                    return
                piece, rest = rest[:room], rest[room:]
            else:
                piece, rest = rest, rest[len(rest) :]
            completed = self._heads_completed
            if not self._feed(piece):
                return
            if self._awaiting_head:
                if awaiting and completed == self._heads_completed:
                    self._head_bytes += len(piece)
                else:
                    # A message ended inside this piece and the next may have begun
                    # (pipelining): take the parser's count of that head, which can miss only
                    # the field it is in the middle of, itself no longer than the piece.
                    self._head_bytes = self._head_seen

    def _feed(self, piece: memoryview) -> bool:
        """Parse `piece` as uvicorn's own data_received does; False once parsing must stop."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self._limit_hit is not None:
                self._refuse(_too_large(self._limit_hit))
            else:
                self._refuse(_Refusal(400, "Invalid HTTP request received"))
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    def _stop(self, reason: str) -> None:
        self._limit_hit = reason
        raise _LimitHit(reason)

    def on_message_begin(self) -> None:
        self._head_seen = 0
        self._fields = 0
        self._in_head = True
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.head_timeout_s, self._head_timed_out
            )
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_seen += len(url)
        if self._head_seen > self.max_header_bytes:
            self._stop(f"the request head is over {self.max_header_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_seen += len(name) + len(value) + 3  # at least ":" and CRLF
        if self._fields > self.max_headers:
            self._stop(f"the request has more than {self.max_headers} header fields")
        if self._head_seen > self.max_header_bytes:
            self._stop(f"the request head is over {self.max_header_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._in_head = False
        self._heads_completed += 1
        self._cancel_timers()
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:
            self.cycle.transport = _CycleTransport(self, self.cycle)

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        self._head_seen = 0
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # Slow clients

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _waiting_on_us(self) -> bool:
        """Whether the client's next bytes wait on the server rather than on the client."""
        cycle = self.cycle
        return (
            self.flow.read_paused
            or bool(self.pipeline)
            or (cycle is not None and cycle.waiting_for_100_continue)
        )

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused is not None or self._lingering or self.transport.is_closing():
            return
        timeout = self.limits.head_timeout_s
        if self._waiting_on_us():
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)
        elif not self._in_head:
            self.transport.close()  # opened, and nothing sent: nobody to answer
        else:
            detail = f"the request head did not arrive whole within {timeout:g} s"
            self._refuse(_Refusal(408, f"Request timeout: {detail}"))

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._refused is not None or self._lingering or self.transport.is_closing():
            return
        timeout = self.limits.body_timeout_s
        if self._waiting_on_us():
            self._body_timer = self.loop.call_later(timeout, self._body_timed_out)
            return
        detail = f"the request body did not arrive whole within {timeout:g} s"
        self._refused = _Refusal(408, f"Request timeout: {detail}")
        log.warning("refused a request from %s: %s", self._client_name(), detail)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app is told the client went away; whatever it answers goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        if cycle is not None and not cycle.response_started:
            self._send_refusal()
        else:
            self.transport.close()  # an answer was begun or given: it can only be cut short

    # Refusing

    def _answers_pending(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _client_name(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client"

    def _refuse(self, refusal: _Refusal) -> None:
        self._refused = refusal
        self._cancel_timers()
        log.warning("refused a request from %s: %s", self._client_name(), refusal.detail)
        if not self._awaiting_head:
            # Trailers past the limits, in a body the app may be reading: drop the connection.
            if self.cycle is not None:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()
        elif not self._answers_pending():
            self._send_refusal()
        # Else the refusal follows the answers to the requests before it (on_response_complete).

    def send_400_response(self, msg: str) -> None:
        """uvicorn's own answer to a request it cannot parse, as the protocol's other answers."""
        self._refuse(_Refusal(400, msg.rstrip(".")))

    def _send_refusal(self) -> None:
        assert self._refused is not None
        status, detail, headers = self._refused
        body = json.dumps({"detail": detail}).encode()
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *_SECURITY_HEADERS, *headers]:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.close_lingering()

    def on_response_complete(self) -> None:
        if self._lingering:
            self.server_state.total_requests += 1
            return
        super().on_response_complete()
        if (
            self._refused is not None
            and not self.transport.is_closing()
            and not self._answers_pending()
        ):
            self._send_refusal()

    # Closing

    def close_lingering(self) -> None:
        """Half-close, drop what the client still sends, close on its EOF or after LINGER_S."""
        if self._lingering or self.transport.is_closing():
            return
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def shutdown(self) -> None:
        if self._lingering:
            self.transport.close()
        else:
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._cancel_timers()
        if self._counted is not None:
            held = self._open_by_client.pop(self._counted, 1) - 1
            if held > 0:
                self._open_by_client[self._counted] = held
            self._counted = None
        super().connection_lost(exc)


class _CycleTransport(asyncio.Transport):
    """The transport as one request's cycle sees it: closed before the request's body has been
    received to its end (an early answer, such as a 413), it closes lingering."""

    def __init__(self, protocol: LimitedHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._protocol = protocol
        self._cycle = cycle

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._protocol._lingering:
            self._protocol.transport.write(data)

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._protocol.transport.is_closing()

    def close(self) -> None:
        if self._cycle.more_body:
            self._protocol.close_lingering()
        else:
            self._protocol.transport.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._protocol.transport.get_extra_info(name, default)


def _too_large(reason: str) -> _Refusal:
    return _Refusal(431, f"Request header fields too large: {reason}")


def http_protocol(limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), which makes one per connection."""

    class Configured(LimitedHttpToolsProtocol):
        pass

    Configured.limits = limits
    Configured._trusted = _TrustedHosts(limits.trusted_proxies)
    Configured._open_by_client = {}
    return Configured
