"""Logging for the entry points (never configured at import): text for people, or one JSON
object per line (WIDGET_STORE_LOG_FORMAT=json) for a log pipeline."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time", "process": "pid"},
            )
        )
        # DBOS gives its logger a console handler of its own only if it has none: hand it ours,
        # so its lines are JSON too.
        dbos = logging.getLogger("dbos")
        dbos.addHandler(handler)
        dbos.propagate = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
