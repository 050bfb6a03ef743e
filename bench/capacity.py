"""How much the store holds at once: (a) checkouts waiting for payment, with the server's
memory and the latency of new checkouts meanwhile; (b) dispatch workflows in flight, with how
late their 1 s ticks run, beside DBOS alone on the same counts. Prints tables; exits 1 only if
the waiting checkouts did not all end correctly.

    python -m bench.capacity                   # SQLite: 2,000 waiting; 50..400 dispatching
    python -m bench.capacity --waiting 10000   # the target
    python -m bench.capacity --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.capacity --waiting 0 --dispatch-counts 50,100,200,400,800   # (b) only
    python -m bench.capacity --waiting 2000 --dispatch-counts ""                # (a) only
    python -m bench.capacity --json bench/results/capacity-sqlite.json

(a) A store of its own (fresh database, a million widgets, a one-hour payment timeout) gets
--waiting checkouts that are never paid, --concurrency at a time. At 0, 1/4, 1/2, 3/4 and all of
them the script records the serving process's RSS, its CPU use over 2 s with no request made
(what the waiting checkouts cost by themselves), how fast that level was filled, and the latency
of --probes new checkouts made one after another (they join the waiting ones). Then every
waiting checkout is settled (--paid-fraction paid, the rest declined), and once no order is
PENDING or PAID any more the script checks that they all ended as answered: DISPATCHED for
each payment answered `paid`, CANCELLED for each declined one, nothing else, and inventory =
a million - DISPATCHED.

(b) A second fresh store; for each of --dispatch-counts: that many checkouts, then all paid
at once (--concurrency webhooks at a time). Once all are DISPATCHED, the recorded steps give how
late each tick ran: the store's dispatch ticks on a schedule, tick i due i seconds after the
order was paid (paid_at, the output of the checkout's mark_paid step: GET
/workflows/checkout:<key>/steps), and its tick_dispatch steps (GET
/workflows/dispatch:<order id>/steps) say when each tick completed; a tick is late by that
minus when it was due (had the dispatch a DBOS.sleep step before each tick, as the store first
did, each tick would be due 1 s after its sleep began). The dispatch's overrun is its last
tick's completion minus (paid_at + 10 s). The largest count whose tick p99 lateness is at most
1 s is reported; counts stop at the first one past it. Paying a large round takes a while
itself, so each round also reports the most dispatches that really overlapped (from each one's
payment to its last tick). Then `python -m bench.engine --mode ticks` measures
bare DBOS dispatch workflows (the same schedule, empty steps) on the same counts and database.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from functools import partial
from typing import Any

from widget_store.shop.workflows import checkout_workflow_id, dispatch_workflow_id
from widget_store.testing import Database, StoreServer, wait_until

from .cli import add_database_args, int_list, run_script
from .lateness import (
    LATENESS_HEADERS,
    Dispatch,
    Step,
    epoch,
    lateness_cells,
    lateness_summary,
    tick_lateness,
)
from .load import StoreShopper, http_client, new_key
from .loadgen import CHECKOUT, DECLINE, PAY, WEBHOOK, Recorder, bounded_gather
from .report import print_table, write_json
from .resources import cpu_seconds, memory_mib
from .servers import PLENTY, order_counts, store_server

TICK_S = 1.0
FINAL = ("DISPATCHED", "CANCELLED")


# --- (a) checkouts waiting for payment --------------------------------------------------------


async def start_checkouts(shopper: StoreShopper, count: int, concurrency: int) -> list[str]:
    """`count` new checkouts; the payment ids of those answered."""
    answers = await bounded_gather([shopper.checkout] * count, concurrency)
    return [payment_id for payment_id in answers if payment_id is not None]


async def probe(shopper: StoreShopper, probes: int) -> tuple[list[str], dict[str, Any]]:
    """`probes` checkouts one after another: their payment ids and latency."""
    recorder = Recorder(duration_s=0, warmup_s=0)
    prober = StoreShopper(shopper.client, shopper.secret, recorder)
    payment_ids = [await prober.checkout() for _ in range(probes)]
    shopper.recorder.errors.update(recorder.errors)
    return [p for p in payment_ids if p is not None], recorder.latency(CHECKOUT)


async def fill_and_probe(
    shopper: StoreShopper, serving_pid: int, args: argparse.Namespace
) -> tuple[list[str], list[dict[str, Any]]]:
    """Fill up to --waiting, probing at each quarter; the payment ids and one row per level."""
    waiting: list[str] = []
    levels = []
    for quarter in range(5):
        target = args.waiting * quarter // 4
        began = time.perf_counter()
        started = await start_checkouts(shopper, target - len(waiting), args.concurrency)
        fill_rate = len(started) / (time.perf_counter() - began) if started else None
        waiting += started
        level = {
            "waiting": len(waiting),
            "rss_mib": memory_mib(serving_pid, "VmRSS"),
            "idle_cpu_percent": await idle_cpu_percent(serving_pid),
        }
        probed, latency = await probe(shopper, args.probes)
        waiting += probed
        levels.append({**level, "fill_per_s": fill_rate, "checkout": latency})
        print(f"{level['waiting']} waiting: RSS {level['rss_mib']:.0f} MiB", flush=True)
    return waiting, levels


async def idle_cpu_percent(pid: int, seconds: float = 2.0) -> float:
    """The process's CPU use while no request is made, in % of one core."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) * 100 / seconds


async def settle_all(
    shopper: StoreShopper, payment_ids: list[str], args: argparse.Namespace
) -> dict[str, int]:
    """Pay --paid-fraction of them, decline the rest; how many of each were answered 200."""
    rng = random.Random(args.seed)
    plan = [(p, PAY if rng.random() < args.paid_fraction else DECLINE) for p in payment_ids]
    answers = await bounded_gather(
        [partial(shopper.settle, p, s) for p, s in plan], args.concurrency
    )
    answered = {PAY: 0, DECLINE: 0}
    for (_, status), order_id in zip(plan, answers, strict=True):
        answered[status] += order_id is not None
    return answered


def wait_final(database: Database, timeout_s: float) -> dict[str, int]:
    """Poll the orders until none is PENDING or PAID (or the time is up); their counts.

    A failed poll (the database busy, or out of connections) counts as not yet.
    """

    def settled() -> dict[str, int] | None:
        counts = order_counts(database)
        return counts if all(status in FINAL for status in counts) else None

    try:
        return wait_until(settled, timeout=timeout_s, interval=1.0, what="every order to end")
    except TimeoutError:
        return order_counts(database)


def check_final(
    counts: dict[str, int], answered: dict[str, int], stock: int, errors: int
) -> list[str]:
    """What is wrong with how the settled checkouts ended (nothing: an empty list)."""
    problems = []
    expected = {"DISPATCHED": answered[PAY], "CANCELLED": answered[DECLINE]}
    if counts != {k: v for k, v in expected.items() if v}:
        problems.append(f"orders {counts}, expected {expected}")
    if stock != PLENTY - counts.get("DISPATCHED", 0):
        problems.append(f"inventory {stock} != {PLENTY} - {counts.get('DISPATCHED', 0)} dispatched")
    if errors:
        problems.append(f"{errors} request errors")
    return problems


async def waiting_part(server: StoreServer, args: argparse.Namespace) -> dict[str, Any]:
    recorder = Recorder(duration_s=0, warmup_s=0)
    async with http_client(server.base_url) as client:
        shopper = StoreShopper(client, server.secret, recorder)
        serving_pid = int((await client.get("/health")).json()["pid"])
        waiting, levels = await fill_and_probe(shopper, serving_pid, args)
        began = time.perf_counter()
        answered = await settle_all(shopper, waiting, args)
        settle_s = time.perf_counter() - began
        peak = memory_mib(serving_pid)
    errors = sum(recorder.errors.values())
    # A checkout whose webhook failed waits the full hour: then only the paid ones are awaited.
    timeout = args.settle_timeout if not errors else 20.0
    counts = await asyncio.to_thread(wait_final, server.database, timeout)
    problems = check_final(counts, answered, server.database.inventory(), errors)
    return {
        "levels": levels,
        "peak_rss_mib": peak,
        "settle_s": settle_s,
        "webhook": recorder.latency(WEBHOOK),
        "answered": answered,
        "orders": counts,
        "errors": dict(recorder.errors),
        "problems": problems,
    }


def print_waiting(result: dict[str, Any], backend: str) -> None:
    headers = ["waiting", "RSS MiB", "idle CPU %", "filled at /s", "new checkout p50 ms", "p99"]
    rows = [
        [r["waiting"], r["rss_mib"], r["idle_cpu_percent"], r["fill_per_s"]]
        + [r["checkout"]["p50"], r["checkout"]["p99"]]
        for r in result["levels"]
    ]
    print_table(f"store, {backend}: checkouts waiting for payment", headers, rows)
    first, last = result["levels"][0], result["levels"][-1]
    per = (last["rss_mib"] - first["rss_mib"]) * 1024 / max(1, last["waiting"] - first["waiting"])
    hook = result["webhook"]
    print(f"memory per waiting checkout: {per:.1f} KiB   peak RSS {result['peak_rss_mib']:.0f} MiB")
    print(
        f"settled {sum(result['answered'].values())} in {result['settle_s']:.1f} s "
        f"(webhook p50 {hook['p50'] or 0:.0f} ms, p99 {hook['p99'] or 0:.0f} ms): "
        f"answered {result['answered']}, orders {result['orders']}"
    )
    print("check: all ended correctly" if not result["problems"] else "check FAILED:")
    for problem in result["problems"]:
        print(f"  {problem}")
    if result["errors"]:
        print(f"errors: {result['errors']}")


# --- (b) dispatch workflows in flight ----------------------------------------------------------


async def recorded_steps(shopper: StoreShopper, workflow_id: str) -> list[dict[str, Any]]:
    answer = await shopper.client.get(f"/workflows/{workflow_id}/steps")
    answer.raise_for_status()
    steps: list[dict[str, Any]] = answer.json()
    return steps


async def store_lateness(shopper: StoreShopper, key: str, order_id: int) -> Dispatch:
    """One paid order's dispatch: its ticks, due on the schedule its checkout's mark_paid fixed."""
    checkout = await recorded_steps(shopper, checkout_workflow_id(key))
    paid_at = next(float(s["output"]) for s in checkout if s["name"] == "mark_paid")
    dispatch = await recorded_steps(shopper, dispatch_workflow_id(order_id))
    steps = [Step(s["name"], epoch(s["started_at"]), epoch(s["completed_at"])) for s in dispatch]
    return tick_lateness(steps, TICK_S, paid_at)


async def dispatch_round(
    shopper: StoreShopper, server: StoreServer, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`count` orders paid at once; how late their dispatch ticks ran."""
    keys = [new_key() for _ in range(count)]
    payment_ids = await bounded_gather(
        [partial(shopper.checkout, k) for k in keys], args.concurrency
    )
    checked_out = [(k, p) for k, p in zip(keys, payment_ids, strict=True) if p is not None]
    order_ids = await bounded_gather(
        [partial(shopper.settle, p, PAY) for _, p in checked_out], args.concurrency
    )
    paid = [(k, int(o)) for (k, _), o in zip(checked_out, order_ids, strict=True) if o is not None]
    await asyncio.to_thread(wait_final, server.database, args.settle_timeout)
    lateness = await bounded_gather([partial(store_lateness, shopper, k, o) for k, o in paid], 8)
    return {"count": count, **lateness_summary(lateness)}


async def dispatch_part(server: StoreServer, args: argparse.Namespace) -> list[dict[str, Any]]:
    recorder = Recorder(duration_s=0, warmup_s=0)
    rounds = []
    async with http_client(server.base_url) as client:
        shopper = StoreShopper(client, server.secret, recorder)
        for count in args.dispatch_counts:
            rounds.append(await dispatch_round(shopper, server, count, args))
            last = rounds[-1]
            print(
                f"{count} paid at once, {last['peak_in_flight']} in flight at the peak: "
                f"tick p99 late {last['tick_late_p99_s']:.3f} s"
            )
            if rounds[-1]["tick_late_p99_s"] > TICK_S:
                break
    if recorder.errors:
        print(f"errors: {dict(recorder.errors)}")
    return rounds


def largest_on_time(rounds: list[dict[str, Any]]) -> int | None:
    on_time = [r["count"] for r in rounds if r["tick_late_p99_s"] <= TICK_S]
    return max(on_time, default=None)


def print_dispatch(store: list[dict[str, Any]], engine: list[dict[str, Any]], backend: str) -> None:
    by_count = {r["count"]: r for r in engine}
    headers = ["paid at once", "peak in flight", *LATENESS_HEADERS]
    headers += ["engine peak in flight", "engine tick late p50 ms", "p99"]
    rows = []
    for r in store:
        engine_round = by_count.get(r["count"], {})
        rows.append(
            [r["count"], r["peak_in_flight"], *lateness_cells(r)]
            + [engine_round.get("peak_in_flight"), *lateness_cells(engine_round)[:2]]
        )
    print_table(f"store, {backend}: dispatch workflows started at once (1 s ticks)", headers, rows)
    print(
        f"largest count with tick p99 <= {TICK_S:g} s: store {largest_on_time(store)}, "
        f"engine {largest_on_time(engine)} (of {[r['count'] for r in engine]})"
    )


def engine_ticks(args: argparse.Namespace) -> list[dict[str, Any]]:
    counts = ",".join(str(c) for c in args.dispatch_counts)
    command = ["--mode", "ticks", "--counts", counts, "--backend", args.backend]
    rounds: list[dict[str, Any]] = run_script(
        "engine", [*command, "--postgres-url", args.postgres_url]
    )["rounds"]
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_args(parser)
    parser.add_argument("--waiting", type=int, default=2000, help="checkouts waiting; 0 skips (a)")
    parser.add_argument("--probes", type=int, default=50, help="new checkouts timed at each level")
    parser.add_argument("--paid-fraction", type=float, default=0.1)
    parser.add_argument(
        "--dispatch-counts", type=int_list, default=[50, 100, 200, 400], help='"" skips (b)'
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests at once")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    results: dict[str, Any] = {"backend": args.backend}
    if args.waiting:
        with store_server(args, WIDGET_STORE_PAYMENT_TIMEOUT_S="3600") as server:
            results["waiting"] = asyncio.run(waiting_part(server, args))
        print_waiting(results["waiting"], args.backend)
    if args.dispatch_counts:
        with store_server(args) as server:
            results["dispatch"] = asyncio.run(dispatch_part(server, args))
        results["engine_dispatch"] = engine_ticks(args)
        print_dispatch(results["dispatch"], results["engine_dispatch"], args.backend)
    write_json(args.json, results)
    sys.exit(1 if results.get("waiting", {}).get("problems") else 0)


if __name__ == "__main__":
    main()
