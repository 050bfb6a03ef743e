"""The store through a Postgres failover, for real (bench/failover.py's runs, shortened): a
purchase every 100 ms while the primary is lost and its synchronous standby promoted. Every
payment answered 200 ends DISPATCHED on the new primary, the checkouts waiting at the kill are
paid after it, nothing is stranded and the ledger is exact. How long each step took is the
benchmark's to print (docs/performance.md), not this test's to assert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.failover import WAITING, Failover, run_managed, run_manual
from widget_store.testing import Database, StoreServer
from widget_store.testing.failover import FailoverCluster, StreamingPair

from .support import FAST_TICK
from .test_failover_cluster import need

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def store_on(url: str, folder: Path) -> StoreServer:
    return StoreServer(Database("postgres", folder, url), env_overrides=dict(FAST_TICK))


@pytest.fixture
def cluster() -> Iterator[FailoverCluster]:
    need(FailoverCluster.missing())
    with FailoverCluster() as running:
        yield running


@pytest.fixture
def pair() -> Iterator[StreamingPair]:
    need(StreamingPair.missing())
    with StreamingPair() as running:
        yield running


def kept_every_promise(run: Failover) -> None:
    assert run.result.problems == []
    assert len(run.waiting_paid) == WAITING
    assert len(run.result.paid) > WAITING  # the stream's own purchases paid too
    assert run.served_again_s is not None  # checkouts were served after the promotion


def test_pg_auto_failover_with_the_serving_process_killed_at_once(
    cluster: FailoverCluster, tmp_path: Path
) -> None:
    """The primary's node and the serving process killed together: the restarted process's
    recovery of pending workflows runs across the failover, and leaves none behind."""
    server = store_on(cluster.url, tmp_path)
    try:
        server.start()
        run = run_managed(server, cluster, before_s=2.0, after_s=6.0)
    finally:
        server.stop()
    kept_every_promise(run)


def test_a_manual_promotion_then_the_old_primary_back_read_only(
    pair: StreamingPair, tmp_path: Path
) -> None:
    """`pg_ctl promote` 1 s after the primary died; the old primary then returns as a standby
    that answers writes with SQLSTATE 25006: no process wedges, no workflow is stranded."""
    server = store_on(pair.url, tmp_path)
    try:
        server.start()
        run = run_manual(server, pair, before_s=2.0, after_s=6.0)
        # Still serving with the old primary back: a purchase from start to dispatch.
        kept_every_promise(run)
        assert run.old_primary_back_at is not None
    finally:
        server.stop()
