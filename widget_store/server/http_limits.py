"""Limits on the request head (request line and header fields), enforced before anything is
buffered, in the HTTP protocol uvicorn runs for each connection.

uvicorn's httptools protocol takes a head of any size and any number of fields.
`LimitedHttpToolsProtocol` counts the head's bytes as they arrive and its fields as they are
parsed, and past `max_header_bytes` or `max_headers` answers 431 and closes the connection,
having handed the parser no more than the limit. The body has its limit in the app
(web/body_limit.py).

The 431, and an answer given before the request's body was read to its end (the body limit's
413), close the connection lingering: the server half-closes, then reads and drops what the
client is still sending for up to `LINGER_S` before it closes. Closing a socket with unread data
sends a reset, which can make the client lose the answer it was just sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

log = logging.getLogger(__name__)

LINGER_S = 2.0


class _LimitHit(Exception):
    """Raised from a parser callback to stop the parser where it stands."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on the request head.

    Bytes are counted in `data_received`, before the parser sees them: while a head is awaited
    or incomplete, the parser is fed at most what is left of `max_header_bytes`, so no more than
    that is ever accumulated (httptools joins a header's pieces until the header ends). Fields
    are counted as the parser reports them, trailers of a chunked body included. Each request
    of a keep-alive or pipelined connection starts from zero.

    `http_protocol()` makes a subclass with the configured limits, for uvicorn.Config(http=...).
    """

    max_header_bytes = 16 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
        # Set once a head is refused: nothing more of the connection is parsed, and the 431 is
        # sent as soon as the requests before it are answered.
        self._refused: str | None = None
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None

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
                    self._refuse(f"the request head is over {self.max_header_bytes} bytes")
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
                self._refuse(self._limit_hit)
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
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
        self._heads_completed += 1
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:
            self.cycle.transport = _CycleTransport(self, self.cycle)

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        self._head_seen = 0
        super().on_message_complete()

    # Refusing

    def _answers_pending(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _refuse(self, reason: str) -> None:
        self._refused = reason
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client"
        log.warning("refused a request from %s: %s", client, reason)
        if not self._awaiting_head:
            # Trailers past the limits, in a body the app may be reading: drop the connection.
            if self.cycle is not None:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()
        elif not self._answers_pending():
            self._send_431(reason)
        # Else the 431 follows the answers to the requests before it (on_response_complete).

    def _send_431(self, reason: str) -> None:
        body = json.dumps({"detail": f"Request header fields too large: {reason}"}).encode()
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
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
            self._send_431(self._refused)

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


def http_protocol(max_header_bytes: int, max_headers: int) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), which makes one per connection."""

    class Configured(LimitedHttpToolsProtocol):
        pass

    Configured.max_header_bytes = max_header_bytes
    Configured.max_headers = max_headers
    return Configured
