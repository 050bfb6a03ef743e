"""The scripts' output: plain text tables, the load report load.py and engine.py print, and the
results as JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loadgen import ENDPOINTS

# Where the results quoted in the README are kept.
RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
    store = fmt(result.get("store_cpu_ms_per_purchase"))
    print(f"CPU ms per purchase (steady state): {per}, the store's processes alone {store}")
    if result.get("transactions_per_purchase") is not None:
        print(f"database transactions per purchase: {fmt(result['transactions_per_purchase'])}")
    print(f"peak RSS MiB: {rss}")
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
