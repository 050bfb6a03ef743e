"""A TCP relay in front of the tests' Postgres, which a test closes and opens again on the same
port: a database that goes away (nothing listens at its address any more, every connection to
it cut) and comes back, without touching the Postgres server other tests share."""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

import sqlalchemy as sa

from widget_store.testing import free_port

CHUNK = 65536


class Relay:
    """127.0.0.1:`port` relayed to the Postgres of `database_url`, from `open()` to `close()`."""

    def __init__(self, database_url: str) -> None:
        url = sa.make_url(database_url)
        self.upstream = (url.host or "127.0.0.1", url.port or 5432)
        self.port = free_port()
        self.url = url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def open(self) -> Relay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Nothing listens at the port from now on, and every relayed connection is cut."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Relay:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        self._accept(listener, selector, peers)
                    elif sock in peers:
                        self._pass(sock, selector, peers)
        finally:
            for sock in list(peers):
                sock.close()
            listener.close()
            selector.close()

    def _accept(
        self,
        listener: socket.socket,
        selector: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
    ) -> None:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        client.settimeout(5)
        peers[client], peers[server] = server, client
        selector.register(client, selectors.EVENT_READ)
        selector.register(server, selectors.EVENT_READ)

    def _pass(
        self,
        sock: socket.socket,
        selector: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
    ) -> None:
        other = peers[sock]
        try:
            data = sock.recv(CHUNK)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        for end in (sock, other):
            selector.unregister(end)
            del peers[end]
            end.close()
