"""The store's database handle, built from Settings: DBOS's async datasource for the routes and
the operator's writes, a sync engine for the workflow steps' bodies, and how to run a
transaction body on each."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from dbos import AsyncSQLAlchemyDatasource
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..config import Settings
from .reconnect import Reconnect

T = TypeVar("T")

# No pool on Postgres pings a connection before handing it out: neither the store's two nor
# DBOS's own (dbos_config.py). A ping is a round trip each time a connection leaves a pool, and
# every workflow operation takes one: without them, the same load made 1.5 times the purchases
# a second (bench/load.py). After a Postgres restart, the first statement on a stale connection
# fails instead, SQLAlchemy discards that pool, and the statement is tried again on a new
# connection: DBOS's own once the database answers (dbos_internals: db_retry), the steps' and
# the routes' reads here (`transact`, `read`).
POOL_PRE_PING = False
# How long a step whose connection was lost keeps waiting for the database, trying again each
# time a probe finds it (at most a second apart): a restart is ridden out inside the attempt,
# and the step goes on within 0.1 s of Postgres's return. A longer outage goes to DBOS's step
# retry (workflows.IDEMPOTENT_STEP), which logs it and pauses half a second between attempts.
STEP_RECONNECT_WINDOW_S = 5.0
STEP_RECONNECT_WAIT_S = 1.0
# SQLAlchemy's name for no transaction at all: each statement commits by itself.
AUTOCOMMIT = "AUTOCOMMIT"


def lost_connection(error: BaseException) -> bool:
    """A statement that failed because the database was out of reach: its connection broke
    (stale after a restart, or cut), or no new one could be made (refused, shutting down,
    starting up), rather than because of what it asked."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error.orig, psycopg.OperationalError):
        return False
    # A client-side failure has no SQLSTATE; 08: connection exceptions; 57P: shutdown, crash,
    # "cannot connect now" (starting up).
    sqlstate = error.orig.sqlstate
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


@dataclass(frozen=True)
class Database:
    """The datasource plus the isolation level its transactions run at, and a sync engine for
    the bodies of workflow steps.

    Postgres runs READ COMMITTED: every invariant lives in a conditional UPDATE
    (`... WHERE inventory > 0`), which is safe at that level and spares the hot product row a
    storm of SERIALIZABLE retries. SQLite knows no READ COMMITTED; its writers are serialized
    anyway (DBOS opens them IMMEDIATE), so SERIALIZABLE costs nothing there.
    """

    datasource: AsyncSQLAlchemyDatasource
    isolation_level: Any
    # The same database through a sync driver, for the workflow steps' bodies (`transact`).
    step_engine: sa.Engine
    # For a body of one statement and for reads (`transact`, `read`): on Postgres the step
    # engine and the datasource's engine on the same pools in autocommit; on SQLite the same two.
    one_statement_engine: sa.Engine
    read_engine: AsyncEngine
    # Postgres: what a step whose connection was lost waits for (reconnect.py), probing through
    # the step engine's own pool; None on SQLite.
    reconnect: Reconnect | None = None

    async def run(self, body: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """Run `body(session=..., **kwargs)` in one transaction.

        Inside a workflow this is a durable step: the result is checkpointed in the same commit,
        so after a crash the body is never run twice. Outside a workflow it is a plain
        transaction with DBOS's retries for transient database errors.
        """

        async def step() -> T:
            return await body(session=self.datasource.sql_session(), **kwargs)

        # The step is named after the store function, as the operator panel shows it.
        step.__qualname__ = step.__name__ = body.__name__
        return await self.datasource.run_tx_step_async(
            {"name": body.__name__, "isolation_level": self.isolation_level}, step
        )

    def transact(
        self, body: Callable[..., T], /, *, one_statement: bool = False, **kwargs: Any
    ) -> T:
        """Run `body(conn=..., **kwargs)` in one plain transaction on the calling thread, with
        no checkpoint: only for bodies idempotent by themselves, which a workflow step runs on
        DBOS's executor thread between the step's own checkpoint calls (workflows.py).

        `one_statement`: the body's writes are one statement, atomic by itself, and anything
        it reads besides can be read apart from it. On Postgres it then runs in autocommit:
        one round trip instead of three (BEGIN, the statement, COMMIT), and a dispatch makes
        ten such steps per purchase (docs/performance.md, CPU per purchase).

        A lost connection is tried again as soon as the database answers, for up to
        STEP_RECONNECT_WINDOW_S: after a restart the stale connection's pool is discarded, so
        the next try runs on a new connection, at once when Postgres is already back, instead
        of after DBOS's blind half-second pause on an executor thread that everything else
        queues for. Running the body again is safe for the reason a step retry is: it is
        idempotent.
        """
        engine = self.one_statement_engine if one_statement else self.step_engine
        deadline = time.monotonic() + STEP_RECONNECT_WINDOW_S
        while True:
            try:
                with engine.begin() as conn:
                    return body(conn=conn, **kwargs)
            except sa.exc.DBAPIError as exc:
                left = deadline - time.monotonic()
                if self.reconnect is None or not lost_connection(exc) or left <= 0:
                    raise
                self.reconnect.wait(min(left, STEP_RECONNECT_WAIT_S))

    async def read(self, body: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """Run a read-only body on a plain session: no checkpoint, and on SQLite no write lock
        (a datasource transaction there begins IMMEDIATE, which would queue reads behind writers).
        On Postgres in autocommit: at READ COMMITTED every statement sees its own snapshot
        anyway, and the read costs one round trip instead of three (BEGIN, it, ROLLBACK).

        A connection left stale by a Postgres restart is tried once more at once, on a new
        one: a database that is back answers, one that is still away fails again and the
        request answers 503 (web/app.py), rather than a 503 for a database that is there.
        """
        try:
            async with AsyncSession(self.read_engine) as session:
                return await body(session=session, **kwargs)
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        async with AsyncSession(self.read_engine) as session:
            return await body(session=session, **kwargs)

    async def close(self) -> None:
        await self.datasource.engine.dispose()
        self.step_engine.dispose()


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    """The async datasource's pool: it serves the routes' reads and the operator's writes; the
    workflows write through the step engine."""
    if settings.uses_sqlite:
        return {}
    # Sized from the settings, with no overflow, so that Settings.connections_per_process is a
    # bound (docs/architecture.md's connection budget). A request that finds none free within
    # the timeout answers 503 with Retry-After (web/app.py).
    return {
        "pool_size": settings.app_db_pool_size,
        "max_overflow": 0,
        "pool_pre_ping": POOL_PRE_PING,
        "pool_timeout": 10,
    }


def step_engine(settings: Settings) -> sa.Engine:
    """The sync engine the steps' bodies run on, one connection per DBOS executor thread at most.

    Postgres: READ COMMITTED (`Database` says why), set on the engine so that no checkout pays
    for setting it. SQLite: every transaction begins IMMEDIATE, which takes the write lock up
    front (as DBOS's datasource does), so that place_order's read and its writes see one state;
    the busy timeout rides out the other writers.
    """
    if not settings.uses_sqlite:
        threads = settings.dbos_executor_threads
        assert threads is not None  # always bounded on Postgres (Settings.dbos_executor_threads)
        return sa.create_engine(
            settings.app_database_url,
            isolation_level="READ COMMITTED",
            pool_size=threads,
            max_overflow=0,
            pool_pre_ping=POOL_PRE_PING,
            pool_timeout=10,
        )
    # As many connections as DBOS has threads (unbounded on SQLite): a step waits for the
    # file's write lock, never for a pooled connection.
    engine = sa.create_engine(
        settings.app_database_url, connect_args={"timeout": 30}, max_overflow=-1
    )

    # SQLAlchemy's recipe for pysqlite: let SQLAlchemy, not the driver, begin transactions.
    @sa.event.listens_for(engine, "connect")
    def no_driver_transactions(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def open_database(settings: Settings) -> Database:
    """Create the datasource (its checkpoint table included). Call before DBOS launches."""
    datasource = await AsyncSQLAlchemyDatasource.create(
        settings.async_app_database_url, engine_kwargs=engine_kwargs(settings)
    )
    steps = step_engine(settings)
    if settings.uses_sqlite:
        return Database(
            datasource=datasource,
            isolation_level="SERIALIZABLE",
            step_engine=steps,
            one_statement_engine=steps,
            read_engine=datasource.engine,
        )
    return Database(
        datasource=datasource,
        isolation_level="READ COMMITTED",
        step_engine=steps,
        one_statement_engine=steps.execution_options(isolation_level=AUTOCOMMIT),
        read_engine=datasource.engine.execution_options(isolation_level=AUTOCOMMIT),
        reconnect=Reconnect(steps),
    )
