"""The engine's ceiling: the store's purchase, step for step, on DBOS alone (no HTTP, no
store tables), so that load.py's figures can be read against what DBOS itself can do on this
machine and database. Prints a table; asserts nothing.

    python -m bench.engine                                # SQLite, 32 callers, 60 s
    python -m bench.engine --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.engine --dispatch none                # the checkout workflow alone
    python -m bench.engine --dispatch sleep               # a DBOS.sleep step before each tick
    python -m bench.engine --mode open --rate 20
    python -m bench.engine --mode ticks --counts 50,100,200,400   # bare dispatch workflows at once
    python -m bench.compare ...                           # this and load.py in one run, with ratios

DBOS runs in this process (launched inside asyncio.run's loop, as the store's server does) with the
store's own DBOS configuration (widget_store.durable.dbos_config.dbos_config: application version,
executor id, 8 executor threads on Postgres, 0.01 s SQLite notification polling, no pool pre-ping on
Postgres) on a fresh SQLite file (in WAL mode, as the store's migration leaves its files) or a fresh
Postgres database, and the store's garbage-collector settings (widget_store.server.heap), applied
after launch as the store's server does.

The purchase workflow mirrors the store's checkout (widget_store/shop/workflows.py): a place-order
step (the store's order + reservation transaction), set_event(payment_id), recv(payment_status)
with the same 10 s timeout as load.py, then a mark-paid step (returning paid_at) and a dispatch
child workflow, or a release step; then set_event(outcome). The dispatch child makes ten ticks
(a step each), tick i due i seconds after paid_at, awaited with asyncio.sleep as the store does
(--dispatch schedule); --dispatch sleep puts a DBOS.sleep_async(1 s) before each tick instead,
as the store first did; --dispatch none leaves it out. Steps are empty DBOS steps: only their
checkpoints cost. Each caller does what the store's routes do: checkout = start_workflow_async +
get_event_async(payment_id); webhook = send_async(status) + get_event_async(outcome).
--dispatch naive is the seed's structure, the ceiling the store is held against (compare.py's
default): create-order and reserve steps, and a DBOS.sleep before each tick.
The mix, the closed and open loops and the steady-state window are
load.py's (bench/loadgen.py).

--mode ticks: start --counts bare dispatch workflows at once and report how late their ticks
ran against the 1 s schedule (capacity.py compares the store's dispatch with it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from dbos import DBOS, SetWorkflowID

from widget_store.config import Settings
from widget_store.durable.dbos_config import dbos_config
from widget_store.server import heap
from widget_store.shop.tables import DISPATCH_STEPS
from widget_store.testing import Database

from .cli import add_load_args, int_list
from .lateness import (
    DISPATCH_TICK_NAME,
    LATENESS_HEADERS,
    Step,
    epoch,
    lateness_cells,
    lateness_summary,
    tick_lateness,
)
from .loadgen import CHECKOUT, LOAD_PAYMENT_TIMEOUT_S, WEBHOOK, Recorder, shop
from .report import print_load_report, print_table, write_json
from .resources import CpuMeter, run_metered
from .servers import fresh_database

PAYMENT_ID, OUTCOME, PAYMENT_STATUS = "payment_id", "outcome", "payment_status"
WAIT_S = 30.0  # as the store's routes wait

DISPATCH_STYLES = {
    "schedule": "ticks on a checkpointed schedule",
    "sleep": "DBOS.sleep before each tick",
    "naive": "the seed's structure: create + reserve steps, DBOS.sleep before each tick",
    "none": "none",
}

_order_ids = itertools.count(1)


class Outcome(TypedDict):
    order_id: int
    result: str


@DBOS.step(name="place_order")
async def place_order() -> tuple[int, str]:
    return next(_order_ids), uuid.uuid4().hex


@DBOS.step(name="create_order")
async def create_order() -> tuple[int, str]:
    return next(_order_ids), uuid.uuid4().hex


@DBOS.step(name="reserve_inventory")
async def reserve_inventory(order_id: int) -> bool:
    return True


@DBOS.step(name="mark_paid")
async def mark_paid(order_id: int) -> float:
    return time.time()


@DBOS.step(name="release_order")
async def release_order(order_id: int) -> bool:
    return True


@DBOS.step(name=DISPATCH_TICK_NAME)
async def tick_dispatch(order_id: int, remaining: int) -> int:
    return remaining - 1


@DBOS.workflow(name="engine_dispatch")
async def dispatch_workflow(order_id: int, paid_at: float, tick_s: float, durable: bool) -> None:
    """Ten ticks. As the store's: tick i is due i ticks after `paid_at` (a checkpointed step
    output), awaited with asyncio.sleep. `durable`: a DBOS.sleep_async of one tick before each
    tick instead (the store's first design, one more checkpoint per tick)."""
    for tick in range(1, DISPATCH_STEPS + 1):
        if durable:
            await DBOS.sleep_async(tick_s)
        else:
            await asyncio.sleep(max(0.0, paid_at + tick * tick_s - time.time()))
        await tick_dispatch(order_id, DISPATCH_STEPS - tick + 1)


@DBOS.workflow(name="engine_checkout")
async def checkout_workflow(payment_timeout_s: float, tick_s: float | None, durable: bool) -> str:
    """The store's checkout without its SQL; no dispatch child when `tick_s` is None. With
    `durable` it is the seed's naive structure: separate create and reserve steps (and a
    DBOS.sleep before each tick)."""
    if durable:
        order_id, payment_id = await create_order()
        await reserve_inventory(order_id)
    else:
        order_id, payment_id = await place_order()
    await DBOS.set_event_async(PAYMENT_ID, {"order_id": order_id, "payment_id": payment_id})
    status = await DBOS.recv_async(PAYMENT_STATUS, timeout_seconds=payment_timeout_s)
    if status == "paid":
        paid_at = await mark_paid(order_id)
        if tick_s is not None:
            with SetWorkflowID(f"dispatch:{DBOS.workflow_id}"):
                await DBOS.start_workflow_async(
                    dispatch_workflow, order_id, paid_at, tick_s, durable
                )
        result = "paid"
    else:
        await release_order(order_id)
        result = "failed" if status == "failed" else "expired"
    await DBOS.set_event_async(OUTCOME, Outcome(order_id=order_id, result=result))
    return result


@dataclass
class EngineShopper:
    """The store's two routes as bare DBOS calls; records into `recorder`."""

    recorder: Recorder
    tick_s: float | None  # None: no dispatch
    durable: bool = False

    async def checkout(self) -> str | None:
        """Start a checkout and wait for its payment id; answers the workflow id (or None)."""
        workflow_id = f"checkout:{uuid.uuid4().hex}"

        async def call() -> str:
            with SetWorkflowID(workflow_id):
                await DBOS.start_workflow_async(
                    checkout_workflow, LOAD_PAYMENT_TIMEOUT_S, self.tick_s, self.durable
                )
            if await DBOS.get_event_async(workflow_id, PAYMENT_ID, timeout_seconds=WAIT_S) is None:
                raise TimeoutError("no payment id")
            return workflow_id

        return await self.recorder.timed(CHECKOUT, call())

    async def settle(self, workflow_id: str, status: str) -> int | None:
        """Deliver a payment status as the webhook does: the order id, or None on an error."""

        async def call() -> Outcome:
            await DBOS.send_async(
                workflow_id, status, PAYMENT_STATUS, idempotency_key=f"payment-{status}"
            )
            outcome: Outcome | None = await DBOS.get_event_async(
                workflow_id, OUTCOME, timeout_seconds=WAIT_S
            )
            if outcome is None:
                raise TimeoutError("no outcome")
            return outcome

        outcome = await self.recorder.timed(WEBHOOK, call())
        if outcome is not None and outcome["result"] != status:
            self.recorder.error(f"{WEBHOOK}: ended {outcome['result']}, not {status}")
            return None
        return None if outcome is None else outcome["order_id"]

    async def purchase(self, outcome: str) -> None:
        await shop(self.recorder, outcome, self.checkout, self.settle)


async def run_purchases(args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    recorder = Recorder(args.duration, args.warmup)
    tick_s = None if args.dispatch == "none" else args.tick
    shopper = EngineShopper(recorder, tick_s, durable=args.dispatch in ("sleep", "naive"))
    result = await run_metered(
        shopper.purchase,
        recorder,
        args,
        lambda: CpuMeter({"engine": os.getpid()}, database_url),
        separate_client=False,  # the callers share the engine's process and its CPU figure
    )
    return {"kind": "engine", "backend": args.backend, "dispatch": args.dispatch, **result}


async def dispatch_lateness(count: int, tick_s: float, durable: bool) -> dict[str, Any]:
    """Start `count` bare dispatch workflows at once; how late their ticks ran."""
    ids = [f"ticks-{count}-{n}-{uuid.uuid4().hex[:8]}" for n in range(count)]
    started = time.time()

    async def start(n: int, workflow_id: str) -> None:
        with SetWorkflowID(workflow_id):
            handle = await DBOS.start_workflow_async(dispatch_workflow, n, started, tick_s, durable)
        await handle.get_result()

    await asyncio.gather(*(start(n, wid) for n, wid in enumerate(ids)))
    per_workflow = []
    for workflow_id in ids:
        steps = await DBOS.list_workflow_steps_async(workflow_id, load_output=False)
        per_workflow.append(tick_lateness([engine_step(s) for s in steps], tick_s, started))
    return {"count": count, **lateness_summary(per_workflow)}


def engine_step(step: Any) -> Step:
    return Step(
        step["function_name"],
        epoch(step["started_at_epoch_ms"]),
        epoch(step["completed_at_epoch_ms"]),
    )


async def run_ticks(args: argparse.Namespace) -> dict[str, Any]:
    rounds = []
    for count in args.counts:
        rounds.append(
            await dispatch_lateness(count, args.tick, args.dispatch in ("sleep", "naive"))
        )
        last = rounds[-1]
        print(
            f"{count} dispatch workflows, {last['peak_in_flight']} in flight at the peak: "
            f"tick p99 late {last['tick_late_p99_s']:.3f} s"
        )
        if rounds[-1]["tick_late_p99_s"] > args.tick:
            break  # past the engine's ceiling: larger counts would only be later
    return {"kind": "engine", "backend": args.backend, "mode": "ticks", "rounds": rounds}


def store_settings(database: Database) -> Settings:
    """The store's settings on this database, as its server would read them from the environment
    (the database URL is known there only by its environment name)."""
    env: dict[str, Any] = {} if database.url is None else {"DBOS_DATABASE_URL": database.url}
    settings = Settings(data_dir=database.data_dir, log_level="WARNING", **env)
    if settings.uses_sqlite != (database.kind == "sqlite"):
        raise RuntimeError(f"the engine would not run on {database.kind}")
    return settings


def use_wal(path: Path) -> None:
    """In WAL mode, as `widget-store migrate` leaves the store's SQLite files."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(args.backend, args.postgres_url, "widget-store-engine-") as database:
        settings = store_settings(database)
        if settings.uses_sqlite:
            use_wal(database.data_dir / "dbos.sqlite")
        DBOS(config=dbos_config(settings))
        DBOS.launch()
        heap.settle_after_startup()
        try:
            if args.mode == "ticks":
                return await run_ticks(args)
            return await run_purchases(args, database.url)
        finally:
            # Workflows still in flight (abandoned checkouts, dispatches) are cut short here, which
            # DBOS logs as errors: expected, and no part of the figures.
            logging.getLogger("dbos").setLevel(logging.CRITICAL)
            await cut_short_workflows()
            DBOS.destroy()
            join_executor_threads()


async def cut_short_workflows() -> None:
    """Cancel the workflows still running on this loop and wait for their tasks: left running,
    they would go on calling the database from DBOS's threads once it is dropped, retrying for
    ever, and the process could not exit. A call already on a thread runs on regardless
    (join_executor_threads)."""
    running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def join_executor_threads(timeout_s: float = 30.0) -> None:
    """Wait for the calls DBOS's executor threads were running when DBOS.destroy returned.

    Cancelling a workflow's task does not stop a database call already on a thread, and
    DBOS.destroy does not wait for one. Finished before the database is dropped, such a call
    succeeds; after, it would retry against the missing database for ever and the process could
    not exit (seen: a `DBOS.sleep` record in flight at the end of a run).
    """
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread.name.startswith("dbos-executor-"):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def print_ticks(result: dict[str, Any]) -> None:
    rows = [[r["count"], *lateness_cells(r)] for r in result["rounds"]]
    title = f"engine, {result['backend']}, bare dispatch workflows started at once"
    print_table(title, ["workflows", *LATENESS_HEADERS], rows)


def describe(args: argparse.Namespace) -> str:
    load = f"{args.shoppers} callers" if args.mode == "closed" else f"{args.rate:g}/s offered"
    dispatch = f"dispatch: {DISPATCH_STYLES[args.dispatch]}"
    return f"engine, {args.backend}, {args.mode} loop, {load}, {dispatch}, {args.duration:g} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(parser, modes=("closed", "open", "ticks"))
    parser.add_argument(
        "--dispatch",
        choices=list(DISPATCH_STYLES),
        default="schedule",
        help="how paid orders are dispatched (schedule: as the store does)",
    )
    parser.add_argument("--tick", type=float, default=1.0, help="dispatch tick, seconds")
    parser.add_argument("--counts", type=int_list, default=[50, 100, 200, 400], help="--mode ticks")
    args = parser.parse_args()
    if args.mode == "ticks" and args.dispatch == "none":
        parser.error("--mode ticks measures dispatch: --dispatch schedule or sleep")
    result = asyncio.run(run(args))
    if args.mode == "ticks":
        print_ticks(result)
    else:
        print_load_report(describe(args), result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
