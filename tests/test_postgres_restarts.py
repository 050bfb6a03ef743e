"""Postgres restarted three times under a stream of purchases: every request gets a final
answer, every paid order is dispatched, the ledger holds and nothing is stranded. How long the
answers took after Postgres was back is bench/pg_restarts.py's figure (docs/performance.md),
which does the work here and prints the same report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import pg_restarts

from .support import MakeServer

pytestmark = pytest.mark.slow


def test_purchases_through_postgres_restarts_lose_nothing(
    make_server: MakeServer, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("restarts the Postgres server")
    if not Path("/etc/postgresql").is_dir() or os.geteuid() != 0:
        pytest.skip("needs a local Postgres cluster this user can restart")
    server = make_server()
    result = pg_restarts.run(server, restarts=3)
    summary = pg_restarts.report(result)
    assert len(result.restarts) == 3, summary
    assert not result.problems, summary
    assert result.paid, summary
    # Every request was answered: none hung up without an answer.
    assert all(status for _, _, status, _ in result.requests), summary
