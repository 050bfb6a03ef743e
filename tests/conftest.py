"""Fixtures: real store servers in subprocesses, on SQLite and (when given a URL) Postgres.

Set WIDGET_STORE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) to run
the Postgres leg; each server then gets a fresh database, dropped afterwards. Without it the
Postgres leg is reported as skipped, unless WIDGET_STORE_TEST_REQUIRE_POSTGRES=1 (CI) makes
that a failure. The browser tests' fixtures are in browser/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from widget_store.testing import POSTGRES_URL_ENV, Database, StoreServer

from .support import FAST_TICK, MakeServer

BACKENDS = ["sqlite", "postgres"]


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
