"""primary.py, for real: a database whose sessions are read-only answers writes with SQLSTATE
25006, as a demoted primary does; the store's engines, DBOS's included, must take that for a
lost connection (and so retry), not for a failed statement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbos._utils import retriable_postgres_exception

from widget_store.database import primary
from widget_store.database.url import PostgresUrl
from widget_store.testing import Database

pytestmark = pytest.mark.slow


@pytest.fixture
def read_only_database(postgres_admin_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database.create("postgres", tmp_path, postgres_admin_url)
    database.execute("CREATE TABLE t (n int)")
    name = PostgresUrl.parse(str(database.url)).database
    database.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    yield database
    database.drop()


def test_a_read_only_server_is_a_lost_connection_that_dbos_retries(
    read_only_database: Database,
) -> None:
    primary.drop_sessions_on_read_only_servers()
    primary.drop_sessions_on_read_only_servers()  # idempotent: one listener
    engine = sa.create_engine(PostgresUrl.parse(str(read_only_database.url)).sqlalchemy())
    try:

        def backend() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

        before = backend()
        assert backend() == before  # pooled
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert primary.is_read_only(caught.value.orig)
        # Invalidated: the pool reconnects (to the new primary); DBOS's db_retry retries.
        assert caught.value.connection_invalidated
        assert retriable_postgres_exception(caught.value)
        assert backend() != before
    finally:
        engine.dispose()


def test_other_errors_stay_what_they_are(read_only_database: Database) -> None:
    primary.drop_sessions_on_read_only_servers()
    engine = sa.create_engine(PostgresUrl.parse(str(read_only_database.url)).sqlalchemy())
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))
        assert not caught.value.connection_invalidated
        assert not retriable_postgres_exception(caught.value)
    finally:
        engine.dispose()
