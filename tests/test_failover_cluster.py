"""The failover harness (widget_store/testing/failover.py) on real Postgres servers:
pg_auto_failover promotes the synchronous secondary when the primary's node is lost, a bare
streaming pair is promoted by hand, and both leave no process or folder behind."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from widget_store.testing import wait_until
from widget_store.testing.failover import (
    FailoverCluster,
    StreamingPair,
    processes_in,
    sqlalchemy_url,
)

REQUIRE_ENV = "WIDGET_STORE_TEST_REQUIRE_POSTGRES"


def need(missing: str | None) -> None:
    """Skip where the machine lacks what the harness runs, unless CI requires it."""
    if missing is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{missing}, and {REQUIRE_ENV}=1 requires it")
    pytest.skip(missing)


def leftovers(folder: Path) -> list[str]:
    """Processes still working in `folder` or naming it on their command line."""
    found = set(processes_in(folder))
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in (proc / "cmdline").read_text():
                found.add(int(proc.name))
        except OSError:
            continue
    return [f"{pid}: {Path(f'/proc/{pid}/cmdline').read_text(errors='replace')}" for pid in found]


def node(port: int) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to that node alone, whatever its role."""
    return psycopg.connect(host="127.0.0.1", port=port, dbname="widgets", user="postgres")


def has_row(port: int, what: str) -> bool | None:
    """Whether a standby on `port` has replayed the row (None: not yet)."""
    with node(port) as conn:
        if conn.execute("SELECT pg_is_in_recovery()").fetchone() != (True,):
            return None
        found = conn.execute("SELECT 1 FROM marks WHERE what = %s", [what]).fetchone()
        return True if found else None


def server_port(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT inet_server_port()")).scalar_one())


def test_the_url_gives_sqlalchemy_both_nodes() -> None:
    url = sa.make_url(sqlalchemy_url((5441, 5442)))
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.database) == ("postgres", "widgets")
    assert url.query["host"] == ("127.0.0.1:5441", "127.0.0.1:5442")
    assert url.query["target_session_attrs"] == "read-write"


@pytest.mark.slow
def test_losing_the_primary_node_promotes_the_synchronous_secondary_and_it_rejoins() -> None:
    need(FailoverCluster.missing())
    cluster = FailoverCluster()
    try:
        cluster.start()
        folder = cluster.folder
        assert folder is not None
        first, second = cluster.node_ports
        assert cluster.libpq_uri == (
            f"postgres://127.0.0.1:{first},127.0.0.1:{second}/widgets"
            "?target_session_attrs=read-write&sslmode=prefer"
        )
        old = cluster.primary()
        assert old == first

        with psycopg.connect(cluster.libpq_uri, user="postgres") as conn:
            assert conn.info.port == old
            names = conn.execute("SHOW synchronous_standby_names").fetchone()
            assert names and names[0], "the primary waits for no synchronous standby"
            conn.execute("CREATE TABLE marks (what text)")
            conn.execute("INSERT INTO marks VALUES ('before the kill')")
        engine = sa.create_engine(cluster.url)
        with engine.connect() as conn:
            assert server_port(conn) == old
        engine.dispose()

        killed = cluster.kill_primary()
        promoted = cluster.wait_promoted(old, timeout=60)
        assert promoted - killed < 30  # the trial settings fail over in about 7 s
        assert cluster.primary() == second

        engine = sa.create_engine(cluster.url)
        with engine.begin() as conn:
            assert server_port(conn) == second
            rows = conn.execute(sa.text("SELECT what FROM marks")).scalars().all()
            assert rows == ["before the kill"]
            conn.execute(sa.text("INSERT INTO marks VALUES ('after the failover')"))
        engine.dispose()
        assert cluster.describe_failovers().startswith("1: ")

        cluster.rejoin(old)
        assert cluster.primary() == second

        wait_until(
            lambda: has_row(old, "after the failover"), timeout=30, what="the old primary to follow"
        )
    finally:
        cluster.stop()
    assert not folder.exists()
    assert leftovers(folder) == []


@pytest.mark.slow
def test_a_streaming_pair_promoted_by_hand_keeps_the_old_primary_read_only() -> None:
    need(StreamingPair.missing())
    pair = StreamingPair()
    try:
        pair.start()
        folder = pair.folder
        assert folder is not None
        old, new = pair.primary_port, pair.standby_port

        engine = sa.create_engine(pair.url)
        with engine.begin() as conn:
            assert server_port(conn) == old
            conn.execute(sa.text("CREATE TABLE marks (what text)"))
            conn.execute(sa.text("INSERT INTO marks VALUES ('before the kill')"))
        engine.dispose()

        pair.kill_primary()
        pair.promote_standby()
        assert pair.primary_port == new
        pair.restart_old_primary_as_standby()

        with node(old) as conn, pytest.raises(psycopg.Error) as refused:
            conn.execute("INSERT INTO marks VALUES ('on the old primary')")
        assert refused.value.sqlstate == "25006"  # read_only_sql_transaction

        engine = sa.create_engine(pair.url)
        with engine.begin() as conn:
            assert server_port(conn) == new
            rows = conn.execute(sa.text("SELECT what FROM marks")).scalars().all()
            assert rows == ["before the kill"]
            conn.execute(sa.text("INSERT INTO marks VALUES ('after the promotion')"))
        engine.dispose()

        wait_until(
            lambda: has_row(old, "after the promotion"),
            timeout=30,
            what="the old primary to follow",
        )
    finally:
        pair.stop()
    assert not folder.exists()
    assert leftovers(folder) == []
