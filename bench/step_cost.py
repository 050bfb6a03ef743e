"""What one durable step costs the engine, and what the store's own transaction adds to it: CPU
ms per step of a workflow that runs nothing but steps, on DBOS alone. Prints one line per
figure; asserts nothing.

    python -m bench.step_cost                                 # Postgres, 600 steps of each kind
    python -m bench.step_cost --backend sqlite --steps 300

The kinds, each run twice in turn (the first round warms the caches and the pools up, the
second is reported):

- empty: a step whose body does nothing. What DBOS spends on any step: the check for a
  recorded result, the ownership check and the record, each its own transaction in the system
  database, and the hop to an executor thread and back.
- transaction: the body is one UPDATE in its own transaction on a second engine, as a dispatch
  tick was (BEGIN, UPDATE, COMMIT).
- autocommit (Postgres): the same UPDATE in autocommit, as a dispatch tick is now
  (database/handle.py: Database.transact).
- bare transaction / bare autocommit: the same UPDATE with no step around it, from the event
  loop's thread.

A purchase runs fifteen steps or so (docs/performance.md counts them), so the empty step's
cost times fifteen is the part of the store's CPU per purchase that no store code can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from .cli import add_database_args
from .report import print_table, write_json
from .servers import fresh_database

STEP_OPTIONS: Any = {"name": "cost"}
_engines: dict[str, sa.Engine] = {}
_UPDATE = sa.text("UPDATE counter SET n = n + 1 WHERE id = 1")


def empty() -> None:
    pass


def transaction() -> None:
    with _engines["transaction"].begin() as conn:
        conn.execute(_UPDATE)


def autocommit() -> None:
    with _engines["autocommit"].begin() as conn:
        conn.execute(_UPDATE)


BODIES: dict[str, Callable[[], None]] = {
    "empty": empty,
    "transaction": transaction,
    "autocommit": autocommit,
}


@DBOS.workflow(name="step_cost")
async def steps_workflow(kind: str, count: int) -> None:
    body = BODIES[kind]
    for _ in range(count):
        await DBOS.run_step_async(STEP_OPTIONS, body)


async def measure(kinds: list[str], count: int) -> list[list[Any]]:
    """Launched inside the event loop, which DBOS then runs its async workflows on."""
    DBOS.launch()
    try:
        return await _measure(kinds, count)
    finally:
        DBOS.destroy()


async def _measure(kinds: list[str], count: int) -> list[list[Any]]:
    rows = []
    for round_ in range(2):
        for kind in kinds:
            cpu, wall = time.process_time(), time.perf_counter()
            await steps_workflow(kind, count)
            if round_:
                rows.append(row(f"step: {kind}", cpu, wall, count))
    for kind in kinds[1:]:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            BODIES[kind]()
        rows.append(row(f"bare {kind}", cpu, wall, count))
    return rows


def row(name: str, cpu: float, wall: float, count: int) -> list[Any]:
    return [
        name,
        (time.process_time() - cpu) * 1000 / count,
        (time.perf_counter() - wall) * 1000 / count,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_args(parser)
    parser.set_defaults(backend="postgres")
    parser.add_argument("--steps", type=int, default=600, help="steps of each kind")
    args = parser.parse_args()
    with fresh_database(args.backend, args.postgres_url, "widget-store-bench-") as database:
        url = database.url or f"sqlite:///{database.data_dir / 'cost.sqlite'}"
        system_url = database.url or f"sqlite:///{database.data_dir / 'cost-dbos.sqlite'}"
        engine = sa.create_engine(url)
        _engines["transaction"] = engine
        kinds = ["empty", "transaction"]
        if database.url is not None:
            _engines["autocommit"] = engine.execution_options(isolation_level="AUTOCOMMIT")
            kinds.append("autocommit")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
            conn.execute(sa.text("INSERT INTO counter VALUES (1, 0)"))
        config: Any = {"name": "step-cost", "system_database_url": system_url}
        if database.url is not None:
            # As the store runs DBOS (durable/dbos_config.py).
            config.update(max_executor_threads=4, db_engine_kwargs={"pool_pre_ping": False})
        DBOS(config=config)
        try:
            rows = asyncio.run(measure(kinds, args.steps))
        finally:
            engine.dispose()
    title = f"{args.backend}, {args.steps} steps of each kind, CPU and wall ms per step"
    print_table(title, ["kind", "CPU ms", "wall ms"], rows)
    write_json(
        args.json,
        {"backend": args.backend, "steps": args.steps, "rows": rows},
    )


if __name__ == "__main__":
    main()
