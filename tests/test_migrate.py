"""server/migrate.py: instances that start together on a new database all migrate and seed it,
and the catalogue ends with one widget (each found it empty; one inserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from widget_store.testing import StoreServer

from .support import MakeServer


@pytest.mark.slow
def test_eight_migrations_at_once_on_a_new_database_all_succeed(
    make_server: MakeServer, backend: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("several instances share a Postgres database; SQLite is one process")
    server: StoreServer = make_server(start=False)
    migrations = [
        subprocess.Popen(
            [sys.executable, "-m", "widget_store", "migrate"],
            env=server.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for migration in migrations:
        _, err = migration.communicate(timeout=120)
        assert migration.returncode == 0, err
    assert server.database.execute("SELECT count(*) FROM products")[0][0] == 1
