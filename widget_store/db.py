"""The store's database handle, built from Settings: DBOS's async datasource for the routes and
the operator's writes, a sync engine for the workflow steps' bodies, and how to run a
transaction body on each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from dbos import AsyncSQLAlchemyDatasource
from sqlalchemy.ext.asyncio import AsyncSession

from .config import Settings

T = TypeVar("T")

# No pool on Postgres pings a connection before handing it out: neither the store's two nor
# DBOS's own (dbos_config.py). A ping is a round trip each time a connection leaves a pool, and
# every workflow operation takes one: without them, the same load made 1.5 times the purchases
# a second (bench/load.py). After a Postgres restart, the first statement on a stale connection
# fails instead, SQLAlchemy discards that pool, and the statement is retried: DBOS retries its
# own on a fresh connection (db_retry), the workflows' steps retry (workflows.IDEMPOTENT_STEP),
# and a request answers 503 (web/app.py) for its client to retry.
POOL_PRE_PING = False


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

    def transact(self, body: Callable[..., T], /, **kwargs: Any) -> T:
        """Run `body(conn=..., **kwargs)` in one plain transaction on the calling thread, with
        no checkpoint: only for bodies idempotent by themselves, which a workflow step runs on
        DBOS's executor thread between the step's own checkpoint calls (workflows.py)."""
        with self.step_engine.begin() as conn:
            return body(conn=conn, **kwargs)

    async def read(self, body: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """Run a read-only body on a plain session: no checkpoint, and on SQLite no write lock
        (a datasource transaction there begins IMMEDIATE, which would queue reads behind writers).
        """
        async with AsyncSession(self.datasource.engine) as session:
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
    level = "SERIALIZABLE" if settings.uses_sqlite else "READ COMMITTED"
    return Database(datasource=datasource, isolation_level=level, step_engine=step_engine(settings))
