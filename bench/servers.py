"""Fresh databases and store servers for a run, removed afterwards, and the store's orders read
from its table."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from widget_store.testing import Database, StoreServer, temp_dir

# Inventory set at the start of a run, so that no restock is needed during it.
PLENTY = 1_000_000


@contextmanager
def fresh_database(backend: str, postgres_url: str, prefix: str) -> Iterator[Database]:
    """A fresh SQLite folder or Postgres database, removed afterwards (the folder even when the
    database could not be made or dropped)."""
    data_dir = temp_dir(prefix)
    try:
        database = Database.create(backend, data_dir, postgres_url)
        try:
            yield database
        finally:
            database.drop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def store_server(args: argparse.Namespace, **env: str) -> Iterator[StoreServer]:
    """A store on a fresh database, with plenty of widgets, stopped and dropped afterwards."""
    with fresh_database(args.backend, args.postgres_url, "widget-store-bench-") as database:
        server = StoreServer(database, env_overrides=env)
        try:
            server.start()
            database.execute("UPDATE products SET inventory = :n", n=PLENTY)
            yield server
        finally:
            server.stop()


def order_counts(database: Database) -> dict[str, int]:
    """Orders by status name, straight from the store's table."""
    names = {-1: "CANCELLED", 0: "PENDING", 1: "DISPATCHED", 2: "PAID"}
    rows = database.execute("SELECT order_status, count(*) FROM orders GROUP BY order_status")
    return {names[int(status)]: int(count) for status, count in rows}
