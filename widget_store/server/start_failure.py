"""A serving process's start, watched: whatever stops it before it serves (the database, DBOS's
launch, the app's lifespan) is put in one line, told to the supervisor, and ends the process.

The supervisor logs that line and backs off (supervisor.py); the traceback is logged here, at
DEBUG only, because the same failure repeats at every attempt and a screenful of it each time
hides the one line that says what to fix.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import psycopg
import sqlalchemy as sa

from .logs import escape_controls
from .start_report import StartReporter

log = logging.getLogger("widget_store.server.worker")

# The exit code of a start that failed (uvicorn's own for a failed lifespan).
EXIT_START_FAILED = 3
MAX_REASON_CHARS = 300
# user:password@ in a URL an exception's message quotes: the reason is shown to anyone (the 503).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def watched(lifespan: Lifespan, reporter: StartReporter) -> Lifespan:
    """The app's lifespan, which tells `reporter` once the app has started, and gives up (below)
    if its start raises. What is raised after the start (at shutdown) propagates unchanged."""

    @asynccontextmanager
    async def watching(app: Any) -> AsyncIterator[Any]:
        started = False
        try:
            async with lifespan(app) as state:
                started = True
                reporter.serving()
                yield state
        except Exception as exc:
            if started:
                raise
            give_up(exc, reporter)

    return watching


def give_up(exc: BaseException, reporter: StartReporter) -> NoReturn:
    """Tell the supervisor why, and end the process at once: os._exit, because a start that got
    as far as DBOS's launch may have recovered workflows running on DBOS's executor threads,
    which a normal exit waits for; the kernel closes the connections and sockets anyway."""
    reason = describe(exc)
    log.debug("could not start: %s", reason, exc_info=exc)
    if not reporter.failed(reason):
        log.error("could not start: %s", reason)
    logging.shutdown()  # flushed: os._exit does not
    os._exit(EXIT_START_FAILED)


def describe(exc: BaseException) -> str:
    """Why the start failed, in one line: the database's own words where the database is the
    cause (a refused connection without the database's address), else the exception's; a
    password in a URL never shows."""
    error = _database_error(exc)
    if error is None:
        return _clip(f"{type(exc).__name__}: {_first_line(str(exc))}")
    message = _first_line(str(error))
    if message.startswith("connection failed:") or message.startswith("connection to server"):
        # psycopg: 'connection failed: connection to server at "h", port p failed: <why>'
        why = message.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
        return _clip(f"cannot connect to the database ({why})")
    if isinstance(error, psycopg.errors.UndefinedTable) or message.startswith("no such table"):
        return _clip(f"the store's tables are missing ({message}): run `widget-store migrate`")
    return _clip(f"database error: {message}")


def _database_error(exc: BaseException) -> BaseException | None:
    """The driver's exception behind `exc`, wherever DBOS or SQLAlchemy wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.orig is not None:
            return current.orig
        if isinstance(current, psycopg.Error | sqlite3.Error):
            return current
        current = current.__cause__ or current.__context__
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _clip(reason: str) -> str:
    reason = _URL_PASSWORD.sub(r"\1***@", escape_controls(reason))
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 3] + "..."
