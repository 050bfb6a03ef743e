"""Bring the database to the current schema and seed the catalogue: `widget-store migrate`."""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from ..config import Settings
from ..database.url import PostgresUrl
from ..paths import ALEMBIC_INI, MIGRATIONS_DIR
from ..shop.tables import RESTOCK_LEVEL, WIDGET_ID, products

log = logging.getLogger(__name__)

# How long a start waits for a Postgres that does not answer yet (one starting beside it).
POSTGRES_WAIT_S = 15

# The store's tables, and DBOS's system tables (config.Settings's SQLite URLs).
SQLITE_FILES = ("store.sqlite", "dbos.sqlite")

CATALOGUE = {
    "product_id": WIDGET_ID,
    "product": "Premium Quality Widget",
    "description": "Enhance your productivity with our top-rated widgets!",
    "inventory": RESTOCK_LEVEL,
    "price": "99.99",
}


class DatabaseUnreachable(Exception):
    """Postgres did not answer within POSTGRES_WAIT_S; `reason` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def migrate(settings: Settings, *, wait_s: float = POSTGRES_WAIT_S) -> None:
    """Idempotent: safe on every start, and with several instances starting at once. `wait_s`:
    how long to wait for a Postgres that does not answer (DatabaseUnreachable after)."""
    if settings.uses_sqlite:
        _create_private_files(settings.data_dir)
        _use_wal(settings)
    else:
        assert settings.postgres is not None
        try:
            _create_postgres_database(settings.postgres, wait_s)
        except sa.exc.OperationalError as exc:
            raise DatabaseUnreachable(_first_line(exc.orig or exc)) from exc
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = settings.app_database_url
    command.upgrade(config, "head")
    _seed_catalogue(settings.app_database_url)


def _create_private_files(data_dir: Path) -> None:
    """The data folder 0700 and the database files 0600, made so before SQLite first opens
    them: SQLite gives a database's -wal and -shm files the database file's own mode. Files
    and a folder left more open by an older release are narrowed too."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _restrict(data_dir, 0o700)
    for name in SQLITE_FILES:
        path = data_dir / name
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        for file in (path, path.with_name(f"{name}-wal"), path.with_name(f"{name}-shm")):
            if file.exists():
                _restrict(file, 0o600)


def _restrict(path: Path, mode: int) -> None:
    """chmod, with a warning instead of a failed start where the path is someone else's."""
    try:
        path.chmod(mode)
    except PermissionError as exc:
        log.warning("could not set %s to mode %o: %s", path, mode, exc)


def _use_wal(settings: Settings) -> None:
    """WAL lets the page's reads go on while a checkout writes; the mode sticks to the file."""
    for name in SQLITE_FILES:
        with closing(sqlite3.connect(settings.data_dir / name)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def _first_line(exc: BaseException) -> str:
    """The cause in a few words: psycopg's connection errors run over several lines, the
    first ending with it ("...: Connection refused")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rsplit(": ", 1)[-1] if lines else type(exc).__name__


def database_answers(target: PostgresUrl) -> bool:
    """Whether the database takes a connection now (a primary, with a multi-host URL)."""
    try:
        with psycopg.connect(target.libpq(), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _create_postgres_database(target: PostgresUrl, wait_s: float) -> None:
    """Wait (bounded) for Postgres to answer, and create the store's database if it is missing."""
    for attempt in Retrying(
        retry=retry_if_exception_type(sa.exc.OperationalError),
        stop=stop_after_delay(wait_s),
        wait=wait_fixed(1),
        # Each retry at DEBUG: the start says once, in one line, if it gives up (cli.py).
        before_sleep=before_sleep_log(log, logging.DEBUG),
        reraise=True,
    ):
        with attempt:
            _create_database_once(target)


def _create_database_once(target: PostgresUrl) -> None:
    maintenance = target.with_database("postgres").sqlalchemy()
    engine = sa.create_engine(maintenance, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first()
            if not exists:
                log.info("creating database %s", target.database)
                quoted = conn.dialect.identifier_preparer.quote(str(target.database))
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()


def _seed_catalogue(url: str) -> None:
    engine = sa.create_engine(url)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(products.c.product_id)).first() is None:
                # Instances starting together on a new database all find it empty: one inserts.
                seeded = conn.execute(insert(products).values(**CATALOGUE).on_conflict_do_nothing())
                if seeded.rowcount:
                    log.info("seeding the catalogue: %s", CATALOGUE["product"])
    finally:
        engine.dispose()
