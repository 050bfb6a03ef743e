"""The scripts' command lines: the database and load arguments they share, those arguments
forwarded to another script, and running one script from another."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Where `python -m bench.<script>` finds the bench package.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


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


def run_script(script: str, args: Sequence[str]) -> dict[str, Any]:
    """Run another bench script, `python -m bench.<script>` (its output shown as it goes), and
    return its --json results."""
    with tempfile.TemporaryDirectory(prefix="widget-store-bench-") as tmp:
        out = Path(tmp) / "results.json"
        command = [sys.executable, "-m", f"bench.{script}", *args, "--json", str(out)]
        print(f"\n$ python {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True, cwd=REPO_ROOT)
        data: dict[str, Any] = json.loads(out.read_text())
        return data
