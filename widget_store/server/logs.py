"""Logging for the entry points (never configured at import): text for people, or one JSON
object per line (WIDGET_STORE_LOG_FORMAT=json) for a log pipeline.

Logged data never forges a line or colours a terminal: control characters in it are written
as escapes (a newline as \\n, ESC as \\x1b), in both formats. A traceback stays multi-line,
with its exception's message escaped.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# Libraries whose INFO lines are routine (DBOS's "Applying migration N", Alembic's plugins and
# upgrades, uvicorn's startup and shutdown steps): written at DEBUG, so that a start says only
# what a person needs. Their warnings and errors keep their level.
ROUTINE_LOGGERS = ("dbos", "alembic", "uvicorn.error", "httpx")

# Set once the serving process has begun to stop (stopping()).
_stopping = threading.Event()

# DBOS's own report of a failed launch, with its traceback, before it raises: the serving
# process then says why in one line (server/start_failure.py), so this copy is DEBUG.
DBOS_LAUNCH_FAILED = "DBOS failed to launch"


def stopping() -> None:
    """The serving process is stopping: DBOS's complaints about the workflows it interrupts
    (their steps find DBOS shut down) go to DEBUG from now on. Those workflows are not lost:
    still PENDING in the database, they resume at the next start."""
    _stopping.set()


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: everything a
# terminal or a line-splitting reader may act on.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with its control characters written as escapes."""
    pattern = _CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(_escape_one, text)


def format_exception(ei: ExcInfo) -> str:
    """The traceback as logging writes it, but each exception's message on one line: the
    frames come from the code, the message may carry a request's data."""
    if ei[1] is None:
        return "NoneType: None"
    formatted = traceback.TracebackException(ei[0], ei[1], ei[2])
    messages: set[str] = set()
    pending = [formatted]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        messages.update(current.format_exception_only())
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    text = "".join(
        escape_controls(chunk[:-1]) + "\n"
        if chunk in messages and chunk.endswith("\n")
        else escape_controls(chunk, keep_newlines=True)
        for chunk in formatted.format()
    )
    return text.removesuffix("\n")


class TextFormatter(logging.Formatter):
    """logging.Formatter with the record's line escaped; the traceback after it stays
    multi-line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        return format_exception(ei)


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: `time` in ISO 8601 UTC, strings with their control characters
    escaped (a traceback keeps its newlines), and no `color_message` (uvicorn's copy of a
    message with terminal colours)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "process": "pid"},
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def formatException(self, ei: ExcInfo) -> str:
        return format_exception(ei)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = escape_controls(
                    value, keep_newlines=key in ("exc_info", "stack_info")
                )
        return log_data


class RoutineToDebug(logging.Filter):
    """A handler's filter: the routine INFO lines of ROUTINE_LOGGERS, DBOS's warnings and
    errors once the process is stopping, and its report of a failed launch, become DEBUG lines,
    shown only when the configured level lets DEBUG through."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            (_stopping.is_set() or str(record.msg).startswith(DBOS_LAUNCH_FAILED))
            and record.name.startswith("dbos")
            and record.levelno > logging.INFO
        ):
            if self.level > logging.DEBUG:
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        elif record.levelno == logging.INFO and record.name.startswith(ROUTINE_LOGGERS):
            if self.level > logging.DEBUG:
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """One handler, one format, for everything: the root logger's and DBOS's."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RoutineToDebug(logging.getLevelNamesMapping().get(level.upper(), 20)))
    # DBOS gives its logger a console handler of its own, in its own format, only if it has
    # none: hand it ours, so its lines read (and are escaped) like every other.
    dbos = logging.getLogger("dbos")
    dbos.handlers[:] = [handler]
    dbos.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
