"""Purchases a second and p99 latency against concurrent shoppers, the store beside the
engine's ceiling (DBOS alone), in one PNG; the figures also go to a JSON file and a table.

    python -m bench.plot                                  # SQLite: 1, 8, 32 shoppers, 60 s each
    python -m bench.plot --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.plot --shoppers 1,8,32,64 --duration 30
    python -m bench.plot --input bench/results/sweep-sqlite.json   # plot saved results again

At each shopper count it runs compare.py's pair (load.py, then engine.py; closed loop) and
takes the steady state. Writes <out-dir>/sweep-<backend>.json and <out-dir>/sweep-<backend>.png
(default out-dir: bench/results/).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .cli import add_load_args, int_list
from .compare import run_pair
from .loadgen import ENDPOINTS
from .report import RESULTS_DIR, print_table, steady, write_json
from .stats import ratio

# Line style by kind; colour by endpoint.
KINDS = {"store": "o-", "engine": "s--"}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    points = []
    for shoppers in args.shoppers:
        store, engine = run_pair(args, mode="closed", shoppers=shoppers)
        points.append({"shoppers": shoppers, "store": store, "engine": engine})
    return {"backend": args.backend, "duration": args.duration, "points": points}


def series(points: list[dict[str, Any]], kind: str, endpoint: str | None) -> list[float]:
    """Steady-state purchases/s (no endpoint) or an endpoint's p99 ms; NaN where there is none."""
    values = []
    for point in points:
        window = steady(point[kind])
        value = window["purchases_per_s"] if endpoint is None else window[endpoint]["p99"]
        values.append(math.nan if value is None else value)
    return values


def plot(data: dict[str, Any], path: Path) -> None:
    points = data["points"]
    shoppers = [p["shoppers"] for p in points]
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    throughput, latency = figure.subplots(1, 2)
    for kind, style in KINDS.items():
        throughput.plot(shoppers, series(points, kind, None), style, color="C2", label=kind)
        for color, endpoint in enumerate(ENDPOINTS):
            values = series(points, kind, endpoint)
            latency.plot(shoppers, values, style, color=f"C{color}", label=f"{kind} {endpoint}")
    throughput.set(ylabel="purchases / s", title="Throughput")
    throughput.set_ylim(bottom=0)
    latency.set(ylabel="p99 latency, ms", title="p99 latency", yscale="log")
    for axes in (throughput, latency):
        axes.set_xscale("log", base=2)
        axes.set(xlabel="concurrent shoppers", xticks=shoppers, xticklabels=shoppers)
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(
        f"Widget Store vs DBOS alone: {data['backend']}, closed loop, steady state "
        f"({data['duration']:g} s runs)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"plot written to {path}")


def print_sweep(data: dict[str, Any]) -> None:
    headers = ["shoppers", "store purchases/s", "engine", "store/engine"]
    headers += [f"{k} {e} p99 ms" for k in KINDS for e in ENDPOINTS]
    rows = []
    for point in data["points"]:
        s, e = (steady(point[kind])["purchases_per_s"] for kind in KINDS)
        ratio_text = "-" if ratio(s, e) is None else f"{ratio(s, e):.2f}"
        p99s = [steady(point[k])[endpoint]["p99"] for k in KINDS for endpoint in ENDPOINTS]
        rows.append([point["shoppers"], s, e, ratio_text, *p99s])
    print_table(f"sweep, {data['backend']}, closed loop, steady state", headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], conflict_handler="resolve"
    )
    add_load_args(parser)
    parser.add_argument(
        "--shoppers", type=int_list, default=[1, 8, 32], help="shopper counts, e.g. 1,8,32"
    )
    parser.add_argument("--input", type=Path, help="plot these saved sweep results, run nothing")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.input:
        data = json.loads(args.input.read_text())
    else:
        data = sweep(args)
        write_json(args.json or args.out_dir / f"sweep-{args.backend}.json", data)
    print_sweep(data)
    plot(data, args.out_dir / f"sweep-{data['backend']}.png")


if __name__ == "__main__":
    main()
