"""Logs that request data cannot forge, JSON times in UTC without terminal colours, and the
SQLite files kept private."""

from __future__ import annotations

import json
import logging
import re
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from widget_store.server.logs import JsonLineFormatter, TextFormatter
from widget_store.testing import StoreServer

from .support import MakeServer

# Paths with a line break in them: an LF (refused before routing, so never logged), and a
# NEL and a Unicode line separator (which reach the request log), each followed by a forgery.
FORGING_PATHS = [
    "/x%0AFORGED%20LINE",
    "/x%C2%85FORGED%20LINE",
    "/x%E2%80%A8FORGED%20LINE",
    "/x%1B%5B31mFORGED%20LINE",
]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("widget_store.test", logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def failing_record(message: str) -> logging.LogRecord:
    try:
        raise ValueError(message)
    except ValueError:
        made = record("request failed")
        made.exc_info = sys.exc_info()
    return made


def forge(server: StoreServer) -> None:
    with server.client() as client:
        for path in FORGING_PATHS:
            assert client.get(path).status_code in (404, 422)


def all_lines(text: str) -> list[str]:
    """Lines as a strict reader (newline) and a lenient one (str.splitlines) would see them."""
    return text.split("\n") + text.splitlines()


# The formatters on their own


def test_text_format_escapes_control_characters_in_the_line() -> None:
    formatter = TextFormatter("%(levelname)s %(name)s: %(message)s")
    line = formatter.format(record("GET %s", "/x\nFORGED\r\x1b[31m\x85\u2028\t"))
    assert line == "INFO widget_store.test: GET /x\\nFORGED\\r\\x1b[31m\\x85\\u2028\\t"


def test_text_format_keeps_a_traceback_multi_line_with_its_message_escaped() -> None:
    text = TextFormatter("%(message)s").format(failing_record("bad key x\nFORGED LINE"))
    lines = text.split("\n")
    assert lines[0] == "request failed"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad key x\\nFORGED LINE"
    assert not any(line.startswith("FORGED") for line in all_lines(text))


def test_json_format_time_in_utc_no_colour_and_escaped_strings() -> None:
    formatter = JsonLineFormatter()
    made = record("Started server process [%d]", 7, color_message="\x1b[36m7\x1b[0m", path="/\n")
    made.created = 1_795_200_000.07  # 2026-11-20T18:40:00.070Z
    data = json.loads(formatter.format(made))
    assert data["time"] == "2026-11-20T18:40:00.070Z"
    assert "color_message" not in data
    assert data["message"] == "Started server process [7]"
    assert data["path"] == "/\\n"
    failed = json.loads(formatter.format(failing_record("x\x1b[31m\nFORGED")))
    assert failed["exc_info"].startswith("Traceback (most recent call last):\n")
    assert failed["exc_info"].endswith("ValueError: x\\x1b[31m\\nFORGED")


# A real server's logs


@pytest.mark.parametrize("backend", ["sqlite"])
def test_request_data_cannot_forge_a_text_log_line(make_server: MakeServer) -> None:
    server = make_server()
    forge(server)
    server.stop()
    text = server.log_text()
    assert not [line for line in all_lines(text) if line.startswith("FORGED")], text[-3000:]
    # The separators that got past routing are in the request log, written as escapes.
    assert "GET /x\\x85FORGED LINE 404" in text
    assert "GET /x\\u2028FORGED LINE 404" in text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_json_logs_have_utc_times_and_no_terminal_colours(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_LOG_FORMAT="json", WIDGET_STORE_LOG_LEVEL="DEBUG")
    forge(server)
    server.stop()
    text = server.log_text()
    lines = [line for line in text.split("\n") if line]
    assert lines and all(line.startswith("{") for line in lines), text[-3000:]
    assert "\x1b" not in text and "\\u001b" not in text
    records = [json.loads(line) for line in lines]
    for data in records:
        assert ISO_UTC.match(data["time"]), data
        assert "color_message" not in data
    # uvicorn gives these a coloured copy (color_message); it is dropped. (A routine line:
    # shown at DEBUG only, logs.ROUTINE_LOGGERS.)
    assert any(data["message"].startswith("Started server process") for data in records)
    requests = [data for data in records if data.get("route") == "unmatched"]
    assert {data["path"] for data in requests} >= {"/x\\x85FORGED LINE", "/x\\u2028FORGED LINE"}
    assert not [line for line in all_lines(text) if line.startswith("FORGED")]


def test_json_time_parses_as_utc() -> None:
    made = record("m")
    data = json.loads(JsonLineFormatter().format(made))
    moment = datetime.fromisoformat(data["time"])
    assert moment.utcoffset() == timedelta(0)
    assert abs(moment.timestamp() - made.created) < 0.001


# The SQLite files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_sqlite_files_are_private(make_server: MakeServer) -> None:
    server = make_server(start=False)
    data_dir = server.database.data_dir
    data_dir.mkdir(mode=0o755, parents=True)
    data_dir.chmod(0o755)  # as an older release, or a umask of 022, would have left it
    server.start()
    with server.client() as client:
        assert client.post("/checkout/perm-check").status_code == 200
    files = sorted(data_dir.glob("*.sqlite*"))
    names = {path.name for path in files}
    assert {"store.sqlite", "dbos.sqlite", "store.sqlite-wal", "dbos.sqlite-wal"} <= names
    assert mode(data_dir) == 0o700
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    assert httpx.get(f"{server.base_url}/health").status_code == 200
