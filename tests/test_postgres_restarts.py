"""Postgres restarted three times under a stream of purchases: every request is answered
within 3 s of Postgres being back, every paid order is dispatched, the ledger holds and nothing
is stranded (bench/pg_restarts.py does the work and prints the same figures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import pg_restarts

from .support import MakeServer

pytestmark = pytest.mark.slow

BOUND_S = 3.0


def test_no_wait_outlives_a_postgres_restart_by_more_than_3_s(
    make_server: MakeServer, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("restarts the Postgres server")
    if not Path("/etc/postgresql").is_dir() or os.geteuid() != 0:
        pytest.skip("needs a local Postgres cluster this user can restart")
    server = make_server()
    result = pg_restarts.run(server, restarts=3)
    summary = pg_restarts.report(result, BOUND_S)
    assert len(result.restarts) == 3, summary
    assert not result.problems, summary
    assert result.paid, summary
    assert result.worst_wait_s < BOUND_S, summary
