"""How late dispatch ticks ran against their schedule, from the steps DBOS recorded, and how
many dispatches were really in flight at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .stats import percentile

DISPATCH_TICK_NAME = "tick_dispatch"
SLEEP_STEP_NAME = "DBOS.sleep"


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
