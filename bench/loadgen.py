"""What the benchmark scripts share: the purchase mix, the closed and open load loops and the
recorder they fill, percentiles, /proc readers, tables, JSON, databases and store servers.

Not a script: `load.py`, `engine.py`, `capacity.py`, `compare.py` and `plot.py` import it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from widget_store.testing import Database, StoreServer, temp_dir

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# What a shopper does after checking out: pay, have the card declined, or walk away.
PAY, DECLINE, ABANDON = "paid", "failed", "abandon"
MIX = {PAY: 0.8, DECLINE: 0.1, ABANDON: 0.1}
CHECKOUT, WEBHOOK = "checkout", "webhook"
ENDPOINTS = (CHECKOUT, WEBHOOK)

# How long an abandoned checkout waits before it gives its widget back, in the load runs.
LOAD_PAYMENT_TIMEOUT_S = 10.0
# Inventory set at the start of a run, so that no restock is needed during it.
PLENTY = 1_000_000
DISPATCH_TICK_NAME = "tick_dispatch"
SLEEP_STEP_NAME = "DBOS.sleep"


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count and p50/p95/p99/max, in milliseconds."""
    summary: dict[str, Any] = {"n": len(seconds)}
    for q in (50, 95, 99, 100):
        value = percentile(seconds, q)
        summary["max" if q == 100 else f"p{q}"] = None if value is None else value * 1000
    return summary


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# --- the recorder and the load loops ----------------------------------------------------------


@dataclass
class Recorder:
    """Latencies, purchases and errors of one run, each stamped with when it ended.

    The run is cut in two windows by when things ended: the first `warmup_s` (dispatch workflows
    are still ramping up: each paid order adds ten ticks over the next ten seconds) and the rest,
    the steady state. Errors count whenever they happen.
    """

    duration_s: float
    warmup_s: float
    started: float = field(default_factory=time.perf_counter)
    latencies: list[tuple[str, float, float]] = field(default_factory=list)
    purchases: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def restart_clock(self) -> None:
        self.started = time.perf_counter()

    async def timed(self, endpoint: str, call: Awaitable[T]) -> T | None:
        """Await `call` and record its latency; an exception is recorded as an error, None."""
        began = time.perf_counter()
        try:
            result = await call
        except Exception as exc:
            self.error(f"{endpoint}: {type(exc).__name__}")
            return None
        self.latencies.append((endpoint, self.now(), time.perf_counter() - began))
        return result

    def error(self, what: str) -> None:
        self.errors[what] += 1

    def purchased(self) -> None:
        self.purchases.append(self.now())

    def latency(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's latencies over the whole run, windows aside."""
        return latency_summary([s for name, _, s in self.latencies if name == endpoint])

    def windows(self) -> list[tuple[str, float, float]]:
        warmup = min(self.warmup_s, self.duration_s)
        spans = [(f"first {warmup:g} s", 0.0, warmup), ("steady state", warmup, self.duration_s)]
        return [span for span in spans if span[2] > span[1]]

    def window_summary(self, start: float, end: float) -> dict[str, Any]:
        purchases = sum(1 for t in self.purchases if start <= t < end)
        summary: dict[str, Any] = {
            "seconds": end - start,
            "purchases": purchases,
            "purchases_per_s": purchases / (end - start),
        }
        for endpoint in ENDPOINTS:
            summary[endpoint] = latency_summary(
                [s for name, t, s in self.latencies if name == endpoint and start <= t < end]
            )
        return summary

    def summary(self) -> dict[str, Any]:
        return {
            "windows": {name: self.window_summary(a, b) for name, a, b in self.windows()},
            "purchases_total": len(self.purchases),
            "outcomes": dict(self.outcomes),
            "errors": dict(self.errors),
            "errors_total": sum(self.errors.values()),
        }


Purchase = Callable[[str], Awaitable[None]]


async def shop(
    recorder: Recorder,
    outcome: str,
    checkout: Callable[[], Awaitable[str | None]],
    settle: Callable[[str, str], Awaitable[object | None]],
) -> None:
    """One shopper's purchase: check out, then pay, decline or walk away.

    `checkout` answers a payment id and `settle` something other than None on success; both
    record their own latency and errors. A purchase counts once the payment is answered `paid`.
    """
    payment_id = await checkout()
    if payment_id is None:
        return
    if outcome != ABANDON and await settle(payment_id, outcome) is None:
        return
    recorder.outcomes[outcome] += 1
    if outcome == PAY:
        recorder.purchased()


def choose_outcome(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


async def _guarded(purchase: Purchase, outcome: str, recorder: Recorder) -> None:
    """A purchase must never take its loop down: anything unexpected is an error."""
    try:
        await purchase(outcome)
    except Exception as exc:
        recorder.error(f"purchase: {type(exc).__name__}: {exc}"[:120])


async def closed_loop(
    purchase: Purchase, recorder: Recorder, shoppers: int, rng: random.Random
) -> None:
    """`shoppers` shoppers, each starting a new purchase as soon as the last one ended."""

    async def shopper() -> None:
        while recorder.now() < recorder.duration_s:
            await _guarded(purchase, choose_outcome(rng), recorder)

    recorder.restart_clock()
    await asyncio.gather(*(shopper() for _ in range(shoppers)))


async def open_loop(purchase: Purchase, recorder: Recorder, rate: float, rng: random.Random) -> int:
    """Purchases arriving at `rate` a second (Poisson), however slowly the earlier ones go.

    Returns the most purchases that were in flight at once.
    """
    tasks: set[asyncio.Task[None]] = set()
    most_in_flight = 0
    recorder.restart_clock()
    due = rng.expovariate(rate)
    while due < recorder.duration_s:
        await asyncio.sleep(max(0.0, due - recorder.now()))
        task = asyncio.create_task(_guarded(purchase, choose_outcome(rng), recorder))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        most_in_flight = max(most_in_flight, len(tasks))
        due += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return most_in_flight


async def drive(purchase: Purchase, recorder: Recorder, args: argparse.Namespace) -> dict[str, Any]:
    """Run the loop the arguments ask for; return what describes the load."""
    rng = random.Random(args.seed)
    if args.mode == "open":
        most = await open_loop(purchase, recorder, args.rate, rng)
        return {"mode": "open", "rate": args.rate, "most_in_flight": most}
    await closed_loop(purchase, recorder, args.shoppers, rng)
    return {"mode": "closed", "shoppers": args.shoppers}


async def bounded_gather(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls with at most `limit` at once, answers in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


# --- processes: CPU and memory from /proc ------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parent_pid(pid: int | str) -> int:
    return int(_stat_fields(pid)[1])


def memory_mib(pid: int | str, key: str = "VmHWM") -> float:
    """A /proc/<pid>/status size in MiB: VmHWM is the peak resident set, VmRSS the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def command_line(pid: int | str) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def store_processes(serving_pid: int) -> dict[str, int]:
    """The serving child and, when it runs under one, its supervisor."""
    found = {"server": serving_pid}
    supervisor = parent_pid(serving_pid)
    if "widget_store" in command_line(supervisor) or "widget-store" in command_line(supervisor):
        found["supervisor"] = supervisor
    return found


@dataclass(frozen=True)
class PostgresSnapshot:
    """When the Postgres server started, and the backends connected to one of its databases."""

    started_at: str | None = None
    backends: tuple[int, ...] = ()


def postgres_snapshot(url: str | None) -> PostgresSnapshot:
    """The server's start time and the pids of the backends connected to this URL's database
    (not this query's own); empty without a URL."""
    if url is None:
        return PostgresSnapshot()
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            started = conn.execute(sa.text("SELECT pg_postmaster_start_time()::text")).scalar()
            rows = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return PostgresSnapshot(started, tuple(int(row[0]) for row in rows))
    finally:
        engine.dispose()


def _cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # a backend that just disconnected
    return found


@dataclass
class CpuMeter:
    """CPU seconds used between `start` and `stop` by named processes, and by the Postgres
    backends of a database (all of them, including connections opened during the run; a
    connection closed during the run takes its share with it). Also notes a Postgres restart
    during the run, which voids the figures."""

    processes: dict[str, int]
    postgres_url: str | None = None
    _before: dict[str, float] = field(default_factory=dict)
    _postgres_before: PostgresSnapshot = field(default_factory=PostgresSnapshot)
    _backends_before: dict[int, float] = field(default_factory=dict)
    _started: float = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self._postgres_before = postgres_snapshot(self.postgres_url)
        self._backends_before = _cpu_by_pid(self._postgres_before.backends)
        self._started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._started
        used = {name: cpu_seconds(pid) - self._before[name] for name, pid in self.processes.items()}
        peak = {name: memory_mib(pid) for name, pid in self.processes.items()}
        resources = {"wall_s": wall, "cpu_s": used, "peak_rss_mib": peak}
        if self.postgres_url is not None:
            after = postgres_snapshot(self.postgres_url)
            used["postgres"] = sum(
                cpu - self._backends_before.get(pid, 0.0)
                for pid, cpu in _cpu_by_pid(after.backends).items()
            )
            resources["postgres_restarted"] = after.started_at != self._postgres_before.started_at
        return resources


async def meter_window(meter: CpuMeter, start: float, end: float) -> dict[str, Any]:
    """Meter from `start` to `end` seconds from now (the /proc and Postgres reads off the loop)."""
    await asyncio.sleep(start)
    await asyncio.to_thread(meter.start)
    await asyncio.sleep(end - start)
    return await asyncio.to_thread(meter.stop)


async def run_metered(
    purchase: Purchase,
    recorder: Recorder,
    args: argparse.Namespace,
    meter: Callable[[], CpuMeter],
    separate_client: bool,
) -> dict[str, Any]:
    """Drive the load (see `drive`) and meter the CPU twice: over the whole run, from the first
    request to the end of the last, and over the steady-state window alone. The window gives
    the CPU per purchase: in a steady run, the work done in a window is the work of the
    purchases made in it, their dispatch included. `separate_client`: also the load generator's
    own CPU (this process), when it is not part of what is metered."""
    whole = meter()
    window_name, start, end = recorder.windows()[-1]
    await asyncio.to_thread(whole.start)
    client_before = cpu_seconds("self")
    load, window = await asyncio.gather(
        drive(purchase, recorder, args), meter_window(meter(), start, end)
    )
    client_cpu = cpu_seconds("self") - client_before if separate_client else None
    result = {**load, **recorder.summary(), "resources": await asyncio.to_thread(whole.stop)}
    purchases = result["windows"][window_name]["purchases"]
    cpu = sum(window["cpu_s"].values())
    result.update(
        steady_resources=window,
        client_cpu_s=client_cpu,
        cpu_ms_per_purchase=cpu * 1000 / purchases if purchases else None,
    )
    return result


# --- databases and store servers --------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, postgres_url: str, prefix: str) -> Iterator[Database]:
    """A fresh SQLite folder or Postgres database, removed afterwards (the folder even when the
    database could not be made or dropped)."""
    data_dir = temp_dir(prefix)
    try:
        database = Database.create(backend, data_dir, postgres_url)
        try:
            yield database
        finally:
            database.drop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def store_server(args: argparse.Namespace, **env: str) -> Iterator[StoreServer]:
    """A store on a fresh database, with plenty of widgets, stopped and dropped afterwards."""
    with fresh_database(args.backend, args.postgres_url, "widget-store-bench-") as database:
        server = StoreServer(database, env_overrides=env)
        try:
            server.start()
            database.execute("UPDATE products SET inventory = :n", n=PLENTY)
            yield server
        finally:
            server.stop()


def order_counts(database: Database) -> dict[str, int]:
    """Orders by status name, straight from the store's table."""
    names = {-1: "CANCELLED", 0: "PENDING", 1: "DISPATCHED", 2: "PAID"}
    rows = database.execute("SELECT order_status, count(*) FROM orders GROUP BY order_status")
    return {names[int(status)]: int(count) for status, count in rows}


def inventory(database: Database) -> int:
    return int(database.execute("SELECT inventory FROM products")[0][0])


# --- dispatch tick lateness -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    started: float  # epoch seconds
    completed: float


def epoch(value: str | int | float | None) -> float:
    """An ISO timestamp (HTTP) or epoch milliseconds (DBOS) as epoch seconds."""
    if value is None:
        raise ValueError("the step has not completed")
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return value / 1000


@dataclass(frozen=True)
class Dispatch:
    """How one dispatch workflow kept its schedule."""

    late: list[float]  # each tick's completion minus when it was due, seconds
    overrun: float  # the last tick's completion minus (origin + ticks x tick length)
    began: float  # its schedule's origin, epoch seconds
    ended: float  # its last tick's completion


def tick_lateness(steps: Sequence[Step], tick_s: float, origin: float | None = None) -> Dispatch:
    """How late each tick of a dispatch was, and how late the whole dispatch ended.

    Tick i is due i x `tick_s` after `origin` (the store's dispatch: when the order was paid);
    a dispatch that sleeps durably before each tick (a DBOS.sleep step) has each tick due one
    `tick_s` after its sleep began, and its first sleep as origin. A tick is late by when its
    step completed minus when it was due; the dispatch's overrun is when its last tick
    completed minus (origin + ticks x `tick_s`): what a shopper sees, all lateness summed.
    """
    sleeps = [s for s in steps if s.name == SLEEP_STEP_NAME]
    ticks = [s for s in steps if s.name == DISPATCH_TICK_NAME]
    if sleeps:
        origin = sleeps[0].started
        due = [sleep.started + tick_s for sleep in sleeps]
    elif origin is not None:
        due = [origin + n * tick_s for n in range(1, len(ticks) + 1)]
    else:
        raise ValueError("ticks on a schedule need its origin")
    late = [tick.completed - when for tick, when in zip(ticks, due, strict=True)]
    ended = ticks[-1].completed
    return Dispatch(late, ended - (origin + len(ticks) * tick_s), origin, ended)


def peak_in_flight(dispatches: Sequence[Dispatch]) -> int:
    """The most dispatches whose spans (origin to last tick) overlapped at one moment: what a
    round really had in flight, since paying a large round takes a while itself."""
    edges = sorted([(d.began, 1) for d in dispatches] + [(d.ended, -1) for d in dispatches])
    peak = current = 0
    for _, change in edges:  # at a tie, an end (-1) sorts before a start: no false overlap
        current += change
        peak = max(peak, current)
    return peak


def lateness_summary(dispatches: Sequence[Dispatch]) -> dict[str, Any]:
    """Tick lateness and dispatch overrun, p50/p99 in seconds, over many dispatch workflows."""
    ticks = [late for d in dispatches for late in d.late]
    overruns = [d.overrun for d in dispatches]
    return {
        "workflows": len(dispatches),
        "peak_in_flight": peak_in_flight(dispatches),
        "ticks": len(ticks),
        "tick_late_p50_s": percentile(ticks, 50),
        "tick_late_p99_s": percentile(ticks, 99),
        "overrun_p50_s": percentile(overruns, 50),
        "overrun_p99_s": percentile(overruns, 99),
    }


LATENESS_KEYS = ("tick_late_p50_s", "tick_late_p99_s", "overrun_p50_s", "overrun_p99_s")
LATENESS_HEADERS = ["tick late p50 ms", "p99", "dispatch overrun p50 ms", "p99"]


def lateness_cells(summary: dict[str, Any]) -> list[float | None]:
    """A lateness summary's figures in milliseconds, in LATENESS_HEADERS' order."""
    return [None if summary.get(k) is None else summary[k] * 1000 for k in LATENESS_KEYS]


# --- command lines, tables, JSON --------------------------------------------------------------


def add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="an admin URL: each run makes a fresh database there and drops it afterwards",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")


def add_load_args(
    parser: argparse.ArgumentParser, modes: Sequence[str] = ("closed", "open")
) -> None:
    """The arguments load.py and engine.py share, so that their runs compare."""
    add_database_args(parser)
    parser.add_argument("--mode", choices=modes, default="closed")
    parser.add_argument("--shoppers", type=int, default=32, help="closed loop: concurrent shoppers")
    parser.add_argument("--rate", type=float, default=20.0, help="open loop: purchases a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, default=15.0, help="seconds reported apart from the steady state"
    )
    parser.add_argument("--seed", type=int, default=1)


LOAD_FLAGS = ("backend", "postgres_url", "mode", "shoppers", "rate", "duration", "warmup", "seed")


def forward_load_args(args: argparse.Namespace, **overrides: Any) -> list[str]:
    """The shared load arguments as a command line, for running load.py or engine.py."""
    values = {**{name: getattr(args, name) for name in LOAD_FLAGS}, **overrides}
    return [
        part
        for name, value in values.items()
        for part in (f"--{name.replace('_', '-')}", str(value))
    ]


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [list(headers), *[[fmt(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = (
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join([first, *rest])

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


LOAD_HEADERS = [
    "window",
    "s",
    "purchases",
    "purchases/s",
    "checkout p50 ms",
    "p95",
    "p99",
    "webhook p50 ms",
    "p95",
    "p99",
]


def load_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, w in result["windows"].items():
        row = [name, w["seconds"], w["purchases"], w["purchases_per_s"]]
        for endpoint in ENDPOINTS:
            row += [w[endpoint]["p50"], w[endpoint]["p95"], w[endpoint]["p99"]]
        rows.append(row)
    return rows


def print_load_report(title: str, result: dict[str, Any]) -> None:
    """The table load.py and engine.py print: windows, then errors, outcomes and resources."""
    print_table(title, LOAD_HEADERS, load_rows(result))
    print(f"purchases: {result['purchases_total']}   outcomes: {result['outcomes']}")
    print(f"errors: {result['errors_total']}   {result['errors'] or ''}")
    resources = result["resources"]
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in resources["cpu_s"].items())
    rss = ", ".join(f"{name} {mib:.0f}" for name, mib in resources["peak_rss_mib"].items())
    client = result["client_cpu_s"]
    client_text = "" if client is None else f"   (load generator {client:.1f})"
    print(f"CPU seconds over {resources['wall_s']:.1f} s: {cpu}{client_text}")
    per = fmt(result["cpu_ms_per_purchase"])
    print(f"CPU ms per purchase (steady state): {per}   peak RSS MiB: {rss}")
    if resources.get("postgres_restarted") or result["steady_resources"].get("postgres_restarted"):
        print("WARNING: Postgres restarted during the run: these figures are not valid")
    sys.stdout.flush()


def steady(result: dict[str, Any]) -> dict[str, Any]:
    """The steady-state window, or the only window of a run too short to have one."""
    windows: dict[str, dict[str, Any]] = result["windows"]
    return windows.get("steady state") or next(iter(windows.values()))


def write_json(path: Path | None, data: Any) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"results written to {path}")


def run_script(script: str, args: Sequence[str]) -> dict[str, Any]:
    """Run another bench script (its output shown as it goes) and return its --json results."""
    with tempfile.TemporaryDirectory(prefix="widget-store-bench-") as tmp:
        out = Path(tmp) / "results.json"
        command = [sys.executable, str(BENCH_DIR / script), *args, "--json", str(out)]
        print(f"\n$ {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)
        data: dict[str, Any] = json.loads(out.read_text())
        return data
