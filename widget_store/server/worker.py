"""The serving process the supervisor starts: the app on the socket it was handed."""

from __future__ import annotations

import socket
import sys

import uvicorn

from ..runtime import loopback_url
from ..web.app import create_app
from . import heap, logs
from .cli import load_settings
from .http_limits import http_protocol


def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    # fileno=: the family and type are read from the inherited socket itself.
    sock = socket.socket(fileno=int(sys.argv[1]))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(
            settings,
            base_url=loopback_url(host, port),
            on_started=heap.settle_after_startup,
        ),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than a load balancer keeps its idle connections to us (60 s on common ones):
        # closed by us first, a request it sends on one at that moment is lost. A stop does not
        # wait for idle connections, so this holds no restart up.
        timeout_keep_alive=75,
        # httptools with limits on the request head (431): uvicorn's own has none.
        http=http_protocol(settings.max_header_bytes, settings.max_headers),
        # X-Forwarded-For and -Proto are believed only from these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
