"""The serving process the supervisor starts: the app on the socket it was handed."""

from __future__ import annotations

import socket
import sys

import uvicorn

from . import logs
from .app import create_app
from .cli import load_settings
from .process import loopback_url


def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    # fileno=: the family and type are read from the inherited socket itself.
    sock = socket.socket(fileno=int(sys.argv[1]))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(settings, base_url=loopback_url(host, port)),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than a load balancer keeps its idle connections to us (60 s on common ones):
        # closed by us first, a request it sends on one at that moment is lost. A stop does not
        # wait for idle connections, so this holds no restart up.
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
