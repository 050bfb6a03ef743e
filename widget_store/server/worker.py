"""The serving process the supervisor starts: the app on the socket it was handed, telling the
supervisor through the pipe it was handed whether it started (start_report.py)."""

from __future__ import annotations

import logging
import socket
import sys
from types import FrameType

import uvicorn

from ..config import Settings
from ..web.app import create_app
from ..web.deps import loopback_url
from . import heap, logs
from .cli import describe_database, load_settings
from .http_limits import ConnectionLimits, http_protocol
from .standby import wait_for_start
from .start_failure import give_up, watched
from .start_report import StartReporter

log = logging.getLogger("widget_store.server.worker")


def announce(settings: Settings, address: str) -> None:
    """The last lines of a start: the database in use, then the address to open."""
    if settings.restart_count == 0:
        log.info("database: %s", describe_database(settings))
        log.info("Widget Store is ready: open %s (Ctrl-C stops it)", address)


def main() -> None:
    """argv: the listening socket's fd, the write end of the supervisor's pipe, and for a
    standby the read end of the pipe it waits on (standby.py). Everything above is imported
    by then: a standby has done the slow part of a start before it is needed."""
    if len(sys.argv) > 3 and not wait_for_start(int(sys.argv[3])):
        return
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    reporter = StartReporter(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    # fileno=: the family and type are read from the inherited socket itself.
    sock = socket.socket(fileno=int(sys.argv[1]))
    host, port = sock.getsockname()[:2]
    address = loopback_url(host, port)

    def on_started() -> None:
        heap.settle_after_startup()
        announce(settings, address)

    try:
        app = create_app(settings, base_url=address, on_started=on_started)
    except Exception as exc:
        give_up(exc, reporter)
    # The database, DBOS's launch and the rest of the start happen in the lifespan.
    app.router.lifespan_context = watched(app.router.lifespan_context, reporter)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than a load balancer keeps its idle connections to us (60 s on common ones):
        # closed by us first, a request it sends on one at that moment is lost. A stop does not
        # wait for idle connections, so this holds no restart up.
        timeout_keep_alive=75,
        # httptools with limits on the request head (431), on slow clients (408) and on each
        # client's open connections (429): uvicorn's own has none of them.
        http=http_protocol(ConnectionLimits.from_settings(settings)),
        # X-Forwarded-For and -Proto are believed only from these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = QuietStop(config)
    # The crash button's first move (web/routes/demo.py).
    app.state.stop_accepting = server.stop_accepting
    server.run(sockets=[sock])


class QuietStop(uvicorn.Server):
    """uvicorn's server, which can stop accepting connections at once (the crash button), and
    says once that it stops, keeping from then on DBOS's complaints about the workflows the stop
    interrupts out of the log (logs.stopping)."""

    def stop_accepting(self) -> None:
        """Accept no more connections. The listening socket stays open in the supervisor, so
        the kernel holds new connections in its backlog for the next serving process."""
        for listener in self.servers:
            listener.close()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            log.info("stopping: workflows in flight resume at the next start")
            logs.stopping()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
