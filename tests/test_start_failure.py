"""A serving process that cannot start: why, in one line (start_failure.describe); and, with
real processes, the supervisor saying it, backing off (0.5 s, 1 s, 2 s ...) instead of restarting
hot, answering 503 with the reason meanwhile, and serving again by itself once the cause is gone.

The cause comes after a good start, as in production (the database goes away, or comes back
empty, and then the serving process dies), or before it: a database away when `serve` starts,
whose migrations the supervisor then retries the same way.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from widget_store.server.logs import RoutineToDebug
from widget_store.server.start_failure import describe
from widget_store.testing import POSTGRES_URL_ENV, StoreServer, wait_until
from widget_store.web.security import SECURITY_HEADERS

from .relay import Relay
from .support import MakeServer, new_key
from .test_workers import workers_of

FAILED_START = re.compile(r"could not start: (.*); next attempt in ([\d.]+) s")


def starting(
    server: StoreServer, method: str = "GET", path: str = "/health", *, reason: str = ""
) -> httpx.Response:
    """The supervisor's answer while the serving process cannot start (an attempt waited out),
    once it gives `reason`."""

    def probe() -> httpx.Response | None:
        answer = httpx.request(method, f"{server.base_url}{path}", timeout=15)
        if answer.status_code != 503 or answer.json().get("status") != "starting":
            return None
        return answer if reason in answer.json()["detail"] else None

    return wait_until(probe, timeout=30, interval=0.2, what=f"{method} {path} to say {reason!r}")


def failed_starts(server: StoreServer) -> list[tuple[str, float]]:
    """(reason, delay) of each failed start the supervisor logged."""
    return [(why, float(delay)) for why, delay in FAILED_START.findall(server.log_text())]


def assert_a_starting_answer(answer: httpx.Response, reason: str) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert reason in body["detail"], body
    assert body["status"] == "starting"
    assert 0 <= body["next_attempt_in_s"] <= 30
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["Content-Type"] == "application/json"
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value, name
    return body


def refused(why: str) -> sa.exc.OperationalError:
    """What SQLAlchemy raises when psycopg cannot connect."""
    message = f'connection failed: connection to server at "127.0.0.1", port 5432 failed: {why}'
    return sa.exc.OperationalError(None, None, psycopg.OperationalError(f"{message}\n\tIs it up?"))


def test_why_a_database_refused_the_connection_without_its_address() -> None:
    assert describe(refused("Connection refused")) == (
        "cannot connect to the database (Connection refused)"
    )
    blocked = refused('FATAL:  database "shop" is not currently accepting connections')
    assert describe(blocked) == (
        'cannot connect to the database (database "shop" is not currently accepting connections)'
    )


def test_the_database_error_behind_whatever_wrapped_it() -> None:
    try:
        try:
            raise refused("Connection refused")
        except sa.exc.OperationalError as exc:
            raise RuntimeError("DBOS failed to launch") from exc
    except RuntimeError as wrapped:
        assert describe(wrapped) == "cannot connect to the database (Connection refused)"


def test_missing_tables_say_what_to_run() -> None:
    missing = psycopg.errors.UndefinedTable('relation "executors" does not exist\nLINE 2: ...')
    assert describe(sa.exc.ProgrammingError(None, None, missing)) == (
        'the store\'s tables are missing (relation "executors" does not exist): '
        "run `widget-store migrate`"
    )


def test_anything_else_in_one_line_of_bounded_length_and_no_password() -> None:
    assert describe(ValueError("bad\nvalue")) == "ValueError: bad"
    assert len(describe(ValueError("x" * 5000))) == 300
    quoting = sa.exc.ArgumentError("Could not parse 'postgresql://shop:s3cr:et@db/x'")
    assert describe(quoting) == "ArgumentError: Could not parse 'postgresql://shop:***@db/x'"


def test_dbos_own_report_of_a_failed_launch_is_a_debug_line() -> None:
    """DBOS logs its failed launch with the traceback, then raises: the one line is ours."""

    def report() -> logging.LogRecord:
        return logging.LogRecord(
            "dbos", logging.ERROR, __file__, 1, "DBOS failed to launch:", (), None
        )

    assert RoutineToDebug(logging.INFO).filter(report()) is False
    shown = report()
    assert RoutineToDebug(logging.DEBUG).filter(shown) is True
    assert shown.levelname == "DEBUG"


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it died by itself already
        pass


@pytest.mark.crash
def test_a_database_out_of_reach_is_said_with_503_and_a_backoff_until_it_is_back(
    make_server: MakeServer, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("a Postgres that goes away")
    server = make_server(start=False)
    assert server.database.url is not None
    with Relay(server.database.url) as relay:
        server.env_overrides["DBOS_DATABASE_URL"] = relay.url
        server.start()
        pid = server.health()["pid"]
        earlier = len(failed_starts(server))  # before the kill: a Postgres restart, say
        relay.close()  # nothing listens at the database's address any more
        kill(pid)

        refused = "cannot connect to the database (Connection refused)"
        assert_a_starting_answer(starting(server, reason=refused), refused)
        checkout = starting(server, "POST", f"/checkout/{new_key('away')}", reason=refused)
        assert_a_starting_answer(checkout, refused)

        # Backing off, not a hot loop: each wait twice the last.
        wait_until(
            lambda: len(failed_starts(server)) >= earlier + 3 or None, timeout=60, what="3 attempts"
        )
        delays = [delay for _, delay in failed_starts(server)[earlier:]]
        assert delays[:3] == [0.5, 1.0, 2.0]
        assert server.proc is not None and server.proc.poll() is None
        # One line an attempt: no traceback (DBOS's own report of the failed launch included).
        log = server.log_text()
        assert not any(line.startswith("Traceback") for line in log.splitlines()), log[-3000:]
        assert "DBOS failed to launch" not in log and "Application startup failed" not in log

        relay.open()  # the database is back: the store serves by itself, within the backoff
        body = server.wait_healthy(timeout=60, not_pid=pid)
    assert body["status"] == "ok"
    assert re.search(r"server local serves, after \d+ failed start\(s\)", server.log_text())


@pytest.mark.crash
def test_a_database_that_came_back_empty_is_said_until_migrated(
    make_server: MakeServer, backend: str
) -> None:
    server = make_server()
    pid = server.health()["pid"]
    empty_the_database(server)
    kill(pid)

    # Awaited until it says what is wrong now: an attempt made while Postgres dropped and
    # created the database may have found something else wrong.
    health = starting(server, reason="the store's tables are missing")
    body = assert_a_starting_answer(health, "the store's tables are missing")
    assert body["detail"].endswith("run `widget-store migrate`")

    migrate = subprocess.run(
        [sys.executable, "-m", "widget_store", "migrate"],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert server.wait_healthy(timeout=60, not_pid=pid)["status"] == "ok"


def empty_the_database(server: StoreServer) -> None:
    """The store's database as a restore gone wrong leaves it: there, and empty."""
    database = server.database
    if database.url is None:
        for path in database.data_dir.glob("store.sqlite*"):
            path.unlink()
        return
    name = sa.make_url(database.url).database
    admin_url = sa.make_url(os.environ[POSTGRES_URL_ENV]).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


@pytest.mark.crash
def test_only_the_worker_that_cannot_start_answers_503(
    make_server: MakeServer, backend: str
) -> None:
    """Each worker has a socket of its own on the port: the one that cannot start answers on its
    own, and its sibling, still serving, keeps every connection the kernel hands it."""
    if backend != "postgres":
        pytest.skip("several workers share a Postgres database; SQLite is one process")
    server = make_server(start=False, WIDGET_STORE_WORKERS="2", WIDGET_STORE_EXECUTOR_ID="shop")
    assert server.database.url is not None
    with Relay(server.database.url) as relay:
        server.env_overrides["DBOS_DATABASE_URL"] = relay.url
        server.start()
        wait_until(
            lambda: (
                {server.health()["executor_id"] for _ in range(20)} == {"shop-1", "shop-2"} or None
            ),
            timeout=60,
            what="both workers to serve",
        )
        sibling = workers_of(server)["shop-2"]
        relay.close()
        kill(workers_of(server)["shop-1"])
        starting(server, reason="Connection refused")

        answers = [httpx.get(f"{server.base_url}/health", timeout=15) for _ in range(30)]
    served = [a.json() for a in answers if a.status_code == 200]
    waiting = [a.json() for a in answers if a.status_code == 503]
    assert len(served) + len(waiting) == len(answers)
    assert served and waiting, "the kernel spreads new connections over both sockets"
    assert {body["pid"] for body in served} == {sibling}
    assert {(body["status"], body["detail"]) for body in waiting} == {
        ("starting", "cannot connect to the database (Connection refused)")
    }


@pytest.mark.crash
def test_a_database_away_at_the_start_is_waited_for_and_served_once_it_answers(
    make_server: MakeServer, backend: str
) -> None:
    """No hot loop and no hang: 503 with the reason from the start, the migrations retried with
    the backoff, and the attempt held back goes as soon as the database answers again."""
    if backend != "postgres":
        pytest.skip("a Postgres that is away")
    server = make_server(start=False)
    assert server.database.url is not None
    relay = Relay(server.database.url)  # not open: nothing listens at the database's address
    try:
        server.env_overrides["DBOS_DATABASE_URL"] = relay.url
        server.start(wait=False)
        away = "cannot reach the database at postgresql://"
        assert_a_starting_answer(starting(server, reason=away), away)
        wait_until(lambda: len(failed_starts(server)) >= 4 or None, timeout=60, what="4 attempts")
        assert [delay for _, delay in failed_starts(server)][:4] == [0.5, 1.0, 2.0, 4.0]
        assert server.proc is not None and server.proc.poll() is None
        relay.open()
        server.wait_healthy(timeout=30)
    finally:
        relay.close()
    log = server.log_text()
    assert "the database answers again: next attempt now" in log
    assert not any(line.startswith("Traceback") for line in log.splitlines()), log[-3000:]
