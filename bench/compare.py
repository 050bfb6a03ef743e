"""The store against the engine's ceiling: load.py, then engine.py, with the same load, each in a
process of its own, one after the other; prints both tables and the store/engine ratios of the
steady state. Asserts nothing.

    python bench/compare.py                               # SQLite, 32 shoppers, 60 s, closed loop
    python bench/compare.py --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/compare.py --shoppers 8 --duration 30
    python bench/compare.py --mode open --rate 20
    python bench/compare.py --json bench/results/compare-sqlite.json

A ratio above 1 on a latency or on CPU per purchase (below 1 on purchases a second) is what the
store adds on top of DBOS: HTTP, FastAPI, its own tables and SQL. The engine's CPU includes its
callers (they share its process); the store's does not include the load generator's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    add_load_args,
    forward_load_args,
    print_table,
    ratio,
    run_script,
    steady,
    write_json,
)

Result = dict[str, Any]

METRICS: list[tuple[str, Callable[[Result], float | None]]] = [
    ("purchases/s", lambda r: steady(r)["purchases_per_s"]),
    ("checkout p50 ms", lambda r: steady(r)["checkout"]["p50"]),
    ("checkout p99 ms", lambda r: steady(r)["checkout"]["p99"]),
    ("webhook p50 ms", lambda r: steady(r)["webhook"]["p50"]),
    ("webhook p99 ms", lambda r: steady(r)["webhook"]["p99"]),
    ("CPU ms per purchase", lambda r: r["cpu_ms_per_purchase"]),
    ("errors", lambda r: r["errors_total"]),
]


def run_pair(args: argparse.Namespace, **overrides: Any) -> tuple[Result, Result]:
    """load.py and engine.py on the same load (the arguments, with any overrides)."""
    forwarded = forward_load_args(args, **overrides)
    engine_args = [*forwarded, "--dispatch", getattr(args, "engine_dispatch", "naive")]
    return run_script("load.py", forwarded), run_script("engine.py", engine_args)


def comparison(store: Result, engine: Result) -> list[list[Any]]:
    rows = []
    for name, metric in METRICS:
        s, e = metric(store), metric(engine)
        rows.append([name, s, e, ratio(s, e)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(parser)
    parser.add_argument(
        "--engine-dispatch",
        choices=["naive", "schedule", "sleep", "none"],
        default="naive",
        help="the engine's structure: naive (the seed's, the ceiling to beat) or the store's own",
    )
    args = parser.parse_args()
    store, engine = run_pair(args)
    rows = comparison(store, engine)
    print_table(
        f"store vs engine ({args.engine_dispatch}), {args.backend}, {args.mode} loop, steady state",
        ["metric", "store", "engine", "store/engine"],
        [[name, s, e, None if r is None else f"{r:.2f}"] for name, s, e, r in rows],
    )
    ratios = {name: r for name, _, _, r in rows}
    write_json(args.json, {"store": store, "engine": engine, "ratios": ratios})


if __name__ == "__main__":
    main()
