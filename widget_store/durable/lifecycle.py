"""A serving process's life on DBOS: what must be done before it serves (the database, the
runtime the workflows read, this executor's liveness lock, DBOS launched with its recovery),
and what runs beside it until it stops (the reconciler, drain mode, the wake-ups after a
Postgres restart)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from dbos import DBOS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..config import Settings
from ..database import primary
from ..database.handle import Database, open_database
from ..shop import runtime
from ..shop.stripe import api as stripe_payments
from ..shop.tables import process_starts
from . import dbos_internals, drain, reconciler
from .dbos_config import dbos_config
from .takeover import Liveness, pending_of, start_liveness

log = logging.getLogger(__name__)


@dataclass
class ProcessInfo:
    """Facts about the serving process that /health and /metrics report."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # This executor id's workflows DBOS re-enqueued at this start; any live process may run them.
    workflows_recovered: int = 0
    # Postgres: this process's lock and its view of every executor (takeover.py).
    liveness: Liveness | None = None


@asynccontextmanager
async def serving(
    settings: Settings, *, base_url: str, http: httpx.AsyncClient
) -> AsyncIterator[tuple[Database, ProcessInfo]]:
    """Launch DBOS for this process and keep what runs beside it going until the block ends.

    `base_url` and `http` are where and how the process calls itself (shop/runtime.py).
    """
    # A demoted primary's "read-only" is a lost connection (primary.py says why).
    primary.drop_sessions_on_read_only_servers()
    db = await open_database(settings)
    stripe = None
    if settings.stripe_mode:
        assert settings.stripe_secret_key is not None  # Settings.stripe_mode says so
        stripe = stripe_payments.connect(
            settings.stripe_secret_key,
            api_base=settings.stripe_api_base,
            currency=settings.stripe_currency,
        )
    # Bound before launch: DBOS may resume a workflow the moment it launches (runtime.py).
    runtime.bind(
        runtime.Runtime(
            db=db,
            payment_timeout_s=settings.payment_timeout_s,
            dispatch_tick_s=settings.dispatch_tick_s,
            base_url=base_url,
            http=http,
            # The fault fires in the first incarnation only, or it would fire on every replay.
            fault_after_step=settings.fault_after_step if settings.restart_count == 0 else None,
            stripe=stripe,
        )
    )
    DBOS(config=dbos_config(settings))
    # Recovered workflows wait on DBOS's internal queue: poll it every 0.1 s, not 1 s.
    dbos_internals.set_internal_queue_polling()
    # A shopper's retry of a recovered checkout is a rejoin, not a warning (dbos_internals.py).
    dbos_internals.quiet_rejoin_warnings()
    # Postgres: this executor id's lock, held while alive; a survivor takes over when it is
    # not (takeover.py). Counted before the launch: what DBOS re-enqueues for this id.
    liveness = await start_liveness(
        settings.database_url,
        settings.executor_id,
        grace_s=settings.takeover_grace_s,
        interval_s=settings.liveness_interval_s,
        siblings=settings.worker_siblings,
    )
    pending = None
    if liveness is not None:
        pending = await pending_of(
            liveness.database_url, settings.executor_id, settings.app_version
        )
    launched_at = datetime.now(UTC)
    # Launched inside the running loop, so recovered async workflows run on this loop.
    DBOS.launch()
    recovered = await count_recovered(settings, launched_at) if pending is None else pending
    await db.run(
        record_process_start,
        executor_id=settings.executor_id,
        restart_count=settings.restart_count,
        recovered=recovered,
        at=launched_at,
    )
    if liveness is not None:
        liveness.watch()
    beside = [
        # Orders whose workflow an operator cancelled, or that ended in ERROR (reconciler.py).
        asyncio.create_task(reconciler.run(db, settings.reconcile_interval_s)),
    ]
    # The old release during an upgrade: no new checkouts, stops once drained (drain.py).
    drain.set_draining(settings.drain)
    if settings.drain:
        beside.append(asyncio.create_task(drain.stop_when_drained(settings.app_version)))
    # Postgres restarts: waiters re-checked, DBOS's retries as soon as Postgres is back.
    if not settings.uses_sqlite:
        dbos_internals.pause_db_retries_until_reconnect()
        beside.append(asyncio.create_task(dbos_internals.Wakeups().run()))
    try:
        yield (
            db,
            ProcessInfo(started_at=launched_at, workflows_recovered=recovered, liveness=liveness),
        )
    finally:
        for task in beside:
            task.cancel()
        if liveness is not None:
            await liveness.close()
        DBOS.destroy()
        runtime.bind(None)
        if stripe is not None:
            await stripe.close()
        await db.close()


async def count_recovered(settings: Settings, launched_at: datetime) -> int:
    """How many workflows DBOS resumed at this launch.

    DBOS recovers a dead process's PENDING workflows by putting them back on its internal queue
    (ENQUEUED, then PENDING once running again), keeping the executor id: so right after launch,
    this executor's unfinished workflows created before it are exactly the recovered ones.
    """
    unfinished = await DBOS.list_workflows_async(
        status=["PENDING", "ENQUEUED"],
        executor_id=settings.executor_id,
        app_version=settings.app_version,
        end_time=launched_at.isoformat(),
        load_input=False,
        load_output=False,
    )
    return len(unfinished)


# Each start, for the cockpit's list of restarts (web/stats.py).
async def record_process_start(
    *, session: AsyncSession, executor_id: str, restart_count: int, recovered: int, at: Any
) -> None:
    await session.execute(
        process_starts.insert().values(
            executor_id=executor_id,
            restart_count=restart_count,
            workflows_recovered=recovered,
            started_at=at,
        )
    )


async def list_process_starts(*, session: AsyncSession, limit: int = 50) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(process_starts).order_by(process_starts.c.id.desc()).limit(limit)
    )
    return [dict(row) for row in rows.mappings()]
