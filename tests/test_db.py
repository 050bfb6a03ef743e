"""The store's database handle when Postgres drops its connections, as a restart does to every
pooled one: a step's transaction and a route's read run again on a new connection, the step
once the database answers (widget_store/database/handle.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from widget_store.config import Settings
from widget_store.database.handle import lost_connection, open_database
from widget_store.database.reconnect import Reconnect
from widget_store.testing import POSTGRES_URL_ENV, Database


class CountingReconnect(Reconnect):
    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.waits = 0

    def wait(self, timeout_s: float) -> bool:
        self.waits += 1
        return super().wait(timeout_s)


def backend_pid(*, conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


async def read_backend_pid(*, session: AsyncSession) -> int:
    return int((await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


def test_a_step_and_a_read_outlive_their_connections_being_dropped(
    backend: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("Postgres: a SQLite file has no connections to drop")
    database = Database.create(backend, tmp_path, os.environ[POSTGRES_URL_ENV])
    url = database.url
    assert url is not None

    async def scenario() -> None:
        env: dict[str, Any] = {"DBOS_DATABASE_URL": url}
        db = await open_database(Settings(data_dir=tmp_path, **env))
        reconnect = CountingReconnect(db.step_engine)
        db = dataclasses.replace(db, reconnect=reconnect)
        try:
            # Sequential calls: each pool hands back its one connection used so far.
            step_pid = await asyncio.to_thread(db.transact, backend_pid)
            read_pid = await db.read(read_backend_pid)
            for pid in (step_pid, read_pid):
                database.execute("SELECT pg_terminate_backend(:pid)", pid=pid)
            assert await asyncio.to_thread(db.transact, backend_pid) != step_pid
            assert reconnect.waits == 1
            assert await db.read(read_backend_pid) != read_pid
        finally:
            await db.close()

    try:
        asyncio.run(scenario())
    finally:
        database.drop()


def test_what_counts_as_a_lost_connection() -> None:
    def error(orig: Exception, *, invalidated: bool = False) -> sa.exc.DBAPIError:
        return sa.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)

    class Refused(psycopg.OperationalError):
        sqlstate: Any = None

    assert lost_connection(error(Exception("closed"), invalidated=True))
    assert lost_connection(error(Refused("connection failed: Connection refused")))
    assert lost_connection(error(psycopg.errors.CannotConnectNow("starting up")))
    assert lost_connection(error(psycopg.errors.AdminShutdown("terminating connection")))
    assert not lost_connection(error(psycopg.errors.DeadlockDetected("deadlock")))
    assert not lost_connection(error(psycopg.errors.QueryCanceled("statement timeout")))
    # SQLite's "database is locked" is the file's lock, not a connection.
    assert not lost_connection(error(sqlite3.OperationalError("database is locked")))
    assert not lost_connection(ValueError("not a database error"))
