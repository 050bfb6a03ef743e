"""Percentiles, latency summaries and ratios for the benchmarks' tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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
