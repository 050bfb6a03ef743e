"""What a run costs: CPU seconds and peak memory of the store's processes from /proc, and of the
Postgres backends serving its database; `run_metered` drives a load while metering it."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from widget_store.testing import children, is_standby

from .loadgen import Purchase, Recorder, drive

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
    """The serving child and, when it runs under one, its supervisor and its other children:
    with --workers, the other serving processes, and each one's standby."""
    found = {"server": serving_pid}
    supervisor = parent_pid(serving_pid)
    if "widget_store" in command_line(supervisor) or "widget-store" in command_line(supervisor):
        found["supervisor"] = supervisor
        serving: list[int] = []
        standbys: list[int] = []
        for child in children(supervisor):
            if child != serving_pid:
                (standbys if is_standby(child) else serving).append(child)
        for n, child in enumerate(serving, start=2):
            found[f"server-{n}"] = child
        for n, child in enumerate(standbys, start=1):
            found["standby" if len(standbys) == 1 else f"standby-{n}"] = child
    return found


@dataclass(frozen=True)
class PostgresSnapshot:
    """When the Postgres server started, and the backends connected to one of its databases."""

    started_at: str | None = None
    backends: tuple[int, ...] = ()
    # Transactions the database has ended so far (committed and rolled back), every client's.
    transactions: int = 0


def postgres_snapshot(url: str | None) -> PostgresSnapshot:
    """The server's start time and the pids of the backends connected to this URL's database
    (not this query's own); empty without a URL."""
    if url is None:
        return PostgresSnapshot()
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            started = conn.execute(sa.text("SELECT pg_postmaster_start_time()::text")).scalar()
            # Counted when a backend reports its statistics (at most a second late): over a
            # window of tens of seconds, near enough.
            transactions = conn.execute(
                sa.text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                    "WHERE datname = current_database()"
                )
            ).scalar_one()
            rows = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            backends = tuple(int(row[0]) for row in rows)
            return PostgresSnapshot(started, backends, int(transactions))
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
            # Less the first snapshot's own (the second's had not ended when it read the count).
            resources["transactions"] = after.transactions - self._postgres_before.transactions - 1
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
    result.update(
        steady_resources=window,
        client_cpu_s=client_cpu,
        **per_purchase(window, purchases),
    )
    return result


def per_purchase(window: dict[str, Any], purchases: int) -> dict[str, float | None]:
    """A metered window's costs divided by the purchases made in it: CPU ms of everything
    metered, of the store's processes alone (the serving processes and supervisor, not
    Postgres), and database transactions (Postgres only)."""
    if not purchases:
        return {"cpu_ms_per_purchase": None, "store_cpu_ms_per_purchase": None}
    cpu = window["cpu_s"]
    store = sum(seconds for name, seconds in cpu.items() if name != "postgres")
    found: dict[str, float | None] = {
        "cpu_ms_per_purchase": sum(cpu.values()) * 1000 / purchases,
        "store_cpu_ms_per_purchase": store * 1000 / purchases,
    }
    if "transactions" in window:
        found["transactions_per_purchase"] = window["transactions"] / purchases
    return found
