"""The store's database handle: DBOS's async datasource, built from Settings, and how to run a
transaction body on it exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dbos import AsyncSQLAlchemyDatasource
from sqlalchemy.ext.asyncio import AsyncSession

from .config import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Database:
    """The datasource plus the isolation level its transactions run at.

    Postgres runs READ COMMITTED: every invariant lives in a conditional UPDATE
    (`... WHERE inventory > 0`), which is safe at that level and spares the hot product row a
    storm of SERIALIZABLE retries. SQLite knows no READ COMMITTED; its writers are serialized
    anyway (DBOS opens them IMMEDIATE), so SERIALIZABLE costs nothing there.
    """

    datasource: AsyncSQLAlchemyDatasource
    isolation_level: Any

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

    async def write(self, body: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """Run `body` in a plain transaction, with no checkpoint: only for bodies that are
        idempotent by themselves (a DBOS step around it records that it ran)."""
        async with AsyncSession(self.datasource.engine) as session, session.begin():
            await session.connection(execution_options={"isolation_level": self.isolation_level})
            return await body(session=session, **kwargs)

    async def read(self, body: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """Run a read-only body on a plain session: no checkpoint, and on SQLite no write lock
        (a datasource transaction there begins IMMEDIATE, which would queue reads behind writers).
        """
        async with AsyncSession(self.datasource.engine) as session:
            return await body(session=session, **kwargs)


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    if settings.uses_sqlite:
        return {}
    # No pre-ping: it costs a round trip on every checkout from the pool. After a Postgres
    # restart the first statement on a stale connection fails instead, SQLAlchemy then
    # discards the whole pool, and the failed attempt is retried (the workflows' steps retry;
    # a request answers 503 and its client retries).
    # Small: with DBOS's own pool of 20, a store holds at most 40 of Postgres's default 100
    # connections, so two instances and a psql session still fit.
    return {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": False, "pool_timeout": 10}


async def open_database(settings: Settings) -> Database:
    """Create the datasource (its checkpoint table included). Call before DBOS launches."""
    datasource = await AsyncSQLAlchemyDatasource.create(
        settings.async_app_database_url, engine_kwargs=engine_kwargs(settings)
    )
    level = "SERIALIZABLE" if settings.uses_sqlite else "READ COMMITTED"
    return Database(datasource=datasource, isolation_level=level)
