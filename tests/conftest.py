"""Fixtures: real store servers in subprocesses, on SQLite and (when given a URL) Postgres.

Set WIDGET_STORE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) to run
the Postgres leg; each server then gets a fresh database, dropped afterwards. Without it the
Postgres leg is reported as skipped, unless WIDGET_STORE_TEST_REQUIRE_POSTGRES=1 (CI) makes
that a failure. The browser tests' fixtures are in browser/conftest.py.

`pytest` alone runs the quick part: every test not marked `slow` (the browser and crash
markers count as slow, and so does every Postgres leg). `pytest --full` runs everything.
A run fails if it leaves a widget-store-* temporary folder behind (_own_temp_folder).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from widget_store.testing import POSTGRES_URL_ENV, Database, StoreServer

from .support import FAST_TICK, MakeServer

# The Postgres leg is slow: it runs with --full.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)]
SLOW_MARKERS = ("slow", "browser", "crash")
FULL_OPTION = "--full"
LEFTOVER_GLOB = "widget-store-*"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        FULL_OPTION,
        action="store_true",
        help="run everything: also the slow tests (browser, crash and recovery, chaos, fuzz, "
        "benchmarks) and the Postgres leg",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(FULL_OPTION):
        return
    slow = [item for item in items if any(item.get_closest_marker(m) for m in SLOW_MARKERS)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption(FULL_OPTION):
        return "widget-store: the full run (slow tests and the Postgres leg included)"
    return f"widget-store: the quick run; slow tests and the Postgres leg need {FULL_OPTION}"


@pytest.fixture(scope="session", autouse=True)
def _own_temp_folder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Every temporary folder the run makes (the tests', the servers', the benchmarks'
    subprocesses') goes into one folder of this run's; whatever is left in it at the end is
    named and fails the run, then removed. (pytest's own tmp_path folders stay where they are:
    only a failed test's is kept.)"""
    tmp_path_factory.getbasetemp()  # settled before the temporary folder moves
    own = Path(tempfile.mkdtemp(prefix="widget-store-test-run-"))
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(own)
    os.environ["TMPDIR"] = str(own)
    try:
        yield own
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        left = sorted(str(path) for path in own.glob(LEFTOVER_GLOB))
        shutil.rmtree(own, ignore_errors=True)
        request.config.stash[_LEFT] = left


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = session.config.stash.get(_LEFT, [])
    if left:
        writer = session.config.get_terminal_writer()
        writer.line(f"the run left temporary folders behind: {', '.join(left)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEFT = pytest.StashKey[list[str]]()


def _postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url and os.environ.get("WIDGET_STORE_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{POSTGRES_URL_ENV} is required here (WIDGET_STORE_TEST_REQUIRE_POSTGRES=1)")
    return url


def _skip_unless_available(backend: str) -> None:
    if backend == "postgres" and not _postgres_url():
        pytest.skip(f"Postgres leg: set {POSTGRES_URL_ENV} to run it")


def _make_servers(backend: str, root: Path) -> tuple[MakeServer, list[StoreServer]]:
    servers: list[StoreServer] = []

    def make(*, start: bool = True, **env: str) -> StoreServer:
        database = Database.create(backend, root / f"store{len(servers)}", _postgres_url())
        server = StoreServer(database, env_overrides={**FAST_TICK, **env})
        servers.append(server)
        return server.start() if start else server

    return make, servers


def _close(servers: list[StoreServer]) -> None:
    for server in servers:
        server.stop()
        server.database.drop()


@pytest.fixture
def postgres_admin_url() -> str:
    """The Postgres admin URL, for tests that make databases of their own (skipped without)."""
    url = _postgres_url()
    if not url:
        pytest.skip(f"set {POSTGRES_URL_ENV} to run it")
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    _skip_unless_available(request.param)
    return str(request.param)


@pytest.fixture
def make_server(backend: str, tmp_path: Path) -> Iterator[MakeServer]:
    """A factory of fresh servers, each on a database of its own, all stopped at the end."""
    make, servers = _make_servers(backend, tmp_path)
    yield make
    _close(servers)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreServer]:
    """One server per module and backend, for tests that only add orders of their own keys."""
    _skip_unless_available(request.param)
    make, servers = _make_servers(str(request.param), tmp_path_factory.mktemp("shared"))
    yield make()
    _close(servers)
