"""The store against the engine's ceiling: load.py, then engine.py, with the same load, each in a
process of its own, one after the other; prints both tables and the store/engine ratios of the
steady state. Asserts nothing.

    python -m bench.compare                               # SQLite, 32 shoppers, 60 s, closed loop
    python -m bench.compare --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.compare --shoppers 8 --duration 30
    python -m bench.compare --mode open --rate 20
    python -m bench.compare --json bench/results/compare-sqlite.json
    python -m bench.compare --rounds 3                    # 3 pairs: medians, range of ratios

A ratio above 1 on a latency or on CPU per purchase (below 1 on purchases a second) is what the
store adds on top of DBOS: HTTP, FastAPI, its own tables and SQL. The engine's CPU includes its
callers (they share its process); the store's does not include the load generator's.

On a shared machine one run of either side can differ from the next by a fifth or more, so
--rounds N runs the pair N times, store and engine alternating, and reports each metric's median
over the rounds for each side, the ratio of the medians, and the range of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from .cli import add_load_args, forward_load_args, run_script
from .report import print_table, steady, write_json
from .stats import ratio

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
    return run_script("load", forwarded), run_script("engine", engine_args)


def comparison(pairs: list[tuple[Result, Result]]) -> list[list[Any]]:
    """Per metric: the store's and the engine's median over the rounds, the ratio of the two
    medians, and the lowest and highest of the rounds' own ratios."""
    rows = []
    for name, metric in METRICS:
        stores = [v for v in (metric(store) for store, _ in pairs) if v is not None]
        engines = [v for v in (metric(engine) for _, engine in pairs) if v is not None]
        s = statistics.median(stores) if stores else None
        e = statistics.median(engines) if engines else None
        each = [r for r in (ratio(metric(st), metric(en)) for st, en in pairs) if r is not None]
        rows.append([name, s, e, ratio(s, e), (min(each), max(each)) if each else None])
    return rows


def ratios(rows: list[list[Any]]) -> dict[str, float | None]:
    return {name: r for name, _, _, r, _ in rows}


def cell(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(parser)
    parser.add_argument(
        "--engine-dispatch",
        choices=["naive", "schedule", "sleep", "none"],
        default="naive",
        help="the engine's structure: naive (the seed's, the ceiling to beat) or the store's own",
    )
    parser.add_argument("--rounds", type=int, default=1, help="pairs to run; medians reported")
    args = parser.parse_args()
    pairs = [run_pair(args) for _ in range(args.rounds)]
    rows = comparison(pairs)
    title = (
        f"store vs engine ({args.engine_dispatch}), {args.backend}, {args.mode} loop, steady state"
    )
    if args.rounds > 1:
        title += f", medians of {args.rounds} rounds"
    print_table(
        title,
        ["metric", "store", "engine", "store/engine", "rounds' ratios"],
        [
            [name, s, e, cell(r), None if span is None else f"{span[0]:.2f}-{span[1]:.2f}"]
            for name, s, e, r, span in rows
        ],
    )
    rounds = [
        {
            "store": store,
            "engine": engine,
            "ratios": ratios(comparison([(store, engine)])),
        }
        for store, engine in pairs
    ]
    write_json(
        args.json,
        {
            # The first round in full (one round: the run), then every round, then the medians.
            "store": pairs[0][0],
            "engine": pairs[0][1],
            "rounds": rounds,
            "medians": {n: {"store": s, "engine": e} for n, s, e, _, _ in rows},
            "ratios": ratios(rows),
            "ratio_ranges": {n: span for n, _, _, _, span in rows},
        },
    )


if __name__ == "__main__":
    main()
