"""The benchmark scripts still run: each one briefly, as a subprocess, as a person would.

Nothing here asserts a timing (the machine running CI is anything but quiet): only that each
script exits 0, prints its table, sells something and counts no errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.lateness import Dispatch, peak_in_flight
from widget_store.testing import POSTGRES_URL_ENV

# Slow: runs with `pytest --full` (tests/conftest.py).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHORT_LOAD = ["--duration", "5", "--warmup", "2"]


def run_bench(script: str, *args: str, out: Path) -> tuple[str, dict[str, Any]]:
    """Run `python -m bench.<script>` with --json `out`; its stdout and results."""
    command = [sys.executable, "-m", f"bench.{script}", *args, "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    results: dict[str, Any] = json.loads(out.read_text())
    return done.stdout, results


def database_args(backend: str) -> list[str]:
    return ["--backend", backend, "--postgres-url", os.environ.get(POSTGRES_URL_ENV, "")]


def assert_sold_without_errors(stdout: str, result: dict[str, Any]) -> None:
    assert "purchases/s" in stdout and "steady state" in stdout
    assert result["purchases_total"] > 0
    assert result["errors_total"] == 0, result["errors"]
    assert result["resources"]["cpu_s"] and result["resources"]["peak_rss_mib"]


@pytest.mark.timeout(300)
def test_load_closed_loop(backend: str, tmp_path: Path) -> None:
    stdout, result = run_bench(
        "load", *database_args(backend), *SHORT_LOAD, "--shoppers", "4", out=tmp_path / "r.json"
    )
    assert_sold_without_errors(stdout, result)
    assert {"server", "supervisor"} <= set(result["resources"]["cpu_s"])
    assert 0 < result["store_cpu_ms_per_purchase"] <= result["cpu_ms_per_purchase"]
    if backend == "postgres":
        # The checkout and the dispatch's ten ticks alone make more than 20.
        assert result["transactions_per_purchase"] > 20
        assert "database transactions per purchase" in stdout


@pytest.mark.timeout(300)
def test_load_two_instances(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip("several instances share a Postgres database")
    stdout, result = run_bench(
        "load",
        *database_args("postgres"),
        *SHORT_LOAD,
        "--shoppers",
        "4",
        "--instances",
        "2",
        out=tmp_path / "r.json",
    )
    assert_sold_without_errors(stdout, result)
    assert result["instances"] == 2 and "(2 instances)" in stdout
    assert {"server-1", "server-2"} <= set(result["resources"]["cpu_s"])


@pytest.mark.timeout(300)
def test_load_open_loop(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "load", "--mode", "open", "--rate", "5", *SHORT_LOAD, out=tmp_path / "r.json"
    )
    assert_sold_without_errors(stdout, result)
    assert result["mode"] == "open"


@pytest.mark.timeout(300)
def test_engine(backend: str, tmp_path: Path) -> None:
    stdout, result = run_bench(
        "engine",
        *database_args(backend),
        *SHORT_LOAD,
        "--shoppers",
        "4",
        out=tmp_path / "r.json",
    )
    assert_sold_without_errors(stdout, result)
    assert result["kind"] == "engine"


@pytest.mark.timeout(300)
def test_step_cost(backend: str, tmp_path: Path) -> None:
    stdout, result = run_bench(
        "step_cost", *database_args(backend), "--steps", "20", out=tmp_path / "r.json"
    )
    kinds = [row[0] for row in result["rows"]]
    assert kinds[:2] == ["step: empty", "step: transaction"]
    assert ("step: autocommit" in kinds) == (backend == "postgres")
    assert all(cpu > 0 and wall > 0 for _, cpu, wall in result["rows"]), result["rows"]
    assert "CPU ms" in stdout


@pytest.mark.timeout(300)
def test_capacity(tmp_path: Path) -> None:
    args = ["--waiting", "50", "--probes", "5", "--dispatch-counts", "5,10"]
    stdout, result = run_bench("capacity", *args, out=tmp_path / "r.json")
    assert "checkouts waiting for payment" in stdout and "all ended correctly" in stdout
    waiting = result["waiting"]
    assert waiting["problems"] == [] and waiting["levels"][-1]["waiting"] >= 50
    assert "dispatch workflows started at once" in stdout
    assert result["dispatch"] and result["engine_dispatch"]
    assert result["dispatch"][0]["ticks"] == 5 * 10
    assert 1 <= result["dispatch"][0]["peak_in_flight"] <= 5


@pytest.mark.timeout(300)
def test_compare(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "compare", "--duration", "4", "--warmup", "1", "--shoppers", "2", out=tmp_path / "r.json"
    )
    assert "store/engine" in stdout
    for kind in ("store", "engine"):
        assert result[kind]["purchases_total"] > 0
        assert result[kind]["errors_total"] == 0, result[kind]["errors"]
    assert result["ratios"]["purchases/s"] is not None
    assert len(result["rounds"]) == 1 and result["ratio_ranges"]["purchases/s"] is not None


@pytest.mark.timeout(300)
def test_plot(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.json"
    args = ["--shoppers", "1,2", "--duration", "3", "--warmup", "1", "--out-dir", str(tmp_path)]
    stdout, data = run_bench("plot", *args, out=sweep)
    assert "sweep, sqlite" in stdout
    assert [p["shoppers"] for p in data["points"]] == [1, 2]
    png = tmp_path / "sweep-sqlite.png"
    assert png.read_bytes().startswith(b"\x89PNG")

    # Saved results plot again without running anything.
    png.unlink()
    command = [
        sys.executable,
        "-m",
        "bench.plot",
        "--input",
        str(sweep),
        "--out-dir",
        str(tmp_path),
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("spans", "peak"),
    [
        ([], 0),
        ([(0, 10)], 1),
        ([(0, 10), (10, 20)], 1),  # one ends as the next begins: never two at once
        ([(0, 10), (5, 15), (9, 12), (14, 30)], 3),
        ([(0, 10), (20, 30), (25, 26)], 2),
    ],
)
def test_peak_in_flight_counts_overlapping_dispatches(
    spans: list[tuple[float, float]], peak: int
) -> None:
    dispatches = [Dispatch(late=[], overrun=0.0, began=b, ended=e) for b, e in spans]
    assert peak_in_flight(dispatches) == peak
