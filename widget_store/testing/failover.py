"""Real Postgres failovers for the tests and benchmarks: pg_auto_failover, or a bare pair.

`FailoverCluster` drives deploy/pg-auto-failover.sh (a monitor, a primary and its synchronous
secondary), where losing the primary's node makes the monitor promote the secondary.
`StreamingPair` is a primary and a synchronous streaming standby with no manager, for the manual
case: promote by hand, then bring the old primary back as a read-only standby.

Both run on free ports as the postgres user (Postgres refuses root), in a temporary folder of
their own that `stop()` removes with every process working in it, at exit too if a test forgot.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, LiteralString, Self

import psycopg

from . import free_port, temp_dir, wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "pg-auto-failover.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")  # the Postgres Debian's pg_auto_failover is built for
CLUSTER_USER = "postgres"
DATABASE = "widgets"
# pg_rewind needs data checksums (or wal_log_hints) to tell which pages changed.
INITDB_OPTIONS = ("--data-checksums", "--auth=trust", "--encoding=UTF8", "--locale=C")
# The states in which pg_auto_failover has a node take writes.
WRITABLE_STATES = frozenset({"single", "wait_primary", "primary", "join_primary", "apply_settings"})


def sqlalchemy_url(ports: tuple[int, ...]) -> str:
    """The store's setting for these nodes: libpq tries them in turn and keeps the writable one."""
    hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
    return (
        f"postgresql+psycopg://{CLUSTER_USER}@/{DATABASE}?{hosts}&target_session_attrs=read-write"
    )


def processes_in(folder: Path) -> list[int]:
    """Every process working in `folder`: a postmaster and its children work in their data
    folder, and the script starts each pg_autoctl in its node's (even once `folder` is gone)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append(int(proc.name))
    return found


def takes_writes(port: int) -> bool:
    """Whether this node commits writes now (raises if not): libpq picks it for
    target_session_attrs=read-write, and a commit would not wait for a synchronous standby
    that is not there. A promoted node opens read-write sessions while it still names its lost
    peer as synchronous (pg_auto_failover's stop_replication state, primary_demote_timeout
    long); commits there wait until the monitor moves it on to wait_primary."""
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname=DATABASE,
        user=CLUSTER_USER,
        target_session_attrs="read-write",
        connect_timeout=2,
        autocommit=True,
    ) as conn:
        row = conn.execute("SHOW synchronous_standby_names").fetchone()
        if row and row[0]:
            synced = conn.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')"
            ).fetchone()
            if not (synced and synced[0]):
                raise RuntimeError(f"commits on :{port} wait for a synchronous standby")
        return True


def _free_ports(n: int) -> tuple[int, ...]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return tuple(sorted(ports))


def _as_cluster_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", CLUSTER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(
    argv: list[str], *, timeout: float, check: bool = True, env: dict[str, str] | None = None
) -> str:
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd="/", env=environment
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr}")
    return done.stdout


def _own_folder(prefix: str, folder: Path | None) -> Path:
    """`folder` (a new temporary one if None), made the cluster's user's."""
    made = folder is None
    folder = (temp_dir(prefix) if folder is None else folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return folder
    try:
        _open_parents(folder)
    except RuntimeError:
        if made:
            shutil.rmtree(folder)
        raise
    shutil.chown(folder, CLUSTER_USER, CLUSTER_USER)
    return folder


def _open_parents(folder: Path) -> None:
    """Let the cluster's user through the folders above `folder`. The tests' temporary folders
    are root's and 0700: they get o+x (no listing); above the temporary folder, nothing is
    changed, and a closed folder there stops us with its name."""
    top = Path(tempfile.gettempdir()).resolve()
    closed = [parent for parent in folder.parents if not parent.stat().st_mode & stat.S_IXOTH]
    for parent in closed:
        if parent != top and top not in parent.parents:
            raise RuntimeError(f"{CLUSTER_USER} cannot reach {folder}: {parent} is closed")
    for parent in closed:
        parent.chmod(stat.S_IMODE(parent.stat().st_mode) | stat.S_IXOTH)


def _remove(folder: Path) -> None:
    """Kill what still works in `folder`, then remove it. A killed postmaster's children end
    on their own soon after it: they get a few seconds first."""
    deadline = time.monotonic() + 5
    while processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in processes_in(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _exists(pid: int | None) -> bool:
    """Whether the pid is taken, if only by a zombie (to Postgres, a postmaster still there)."""
    return pid is not None and Path(f"/proc/{pid}").exists()


def _alive(pid: int | None) -> bool:
    """Whether the process runs: a killed one stays a zombie until reaped, which can take a
    second or two where PID 1 reaps lazily."""
    try:
        return pid is not None and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _conninfo(port: int, dbname: str = "postgres") -> str:
    return f"host=127.0.0.1 port={port} user={CLUSTER_USER} dbname={dbname}"


class _Harness:
    """Start in a folder of one's own, stop by removing it, also at exit."""

    folder: Path | None = None

    def start(self, timeout: float = 60.0) -> Self:
        raise NotImplementedError

    def _stop(self, folder: Path) -> None:
        raise NotImplementedError

    def _adopt(self, prefix: str) -> Path:
        self.folder = _own_folder(prefix, self.folder)
        atexit.register(self.stop)
        return self.folder

    def stop(self) -> None:
        """Stop every process and remove the folder; safe to call twice."""
        atexit.unregister(self.stop)
        folder, self.folder = self.folder, None
        if folder is not None:
            try:
                self._stop(folder)
            finally:
                _remove(folder)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class FailoverCluster(_Harness):
    """pg_auto_failover on one machine: a monitor, a primary and its synchronous secondary."""

    folder: Path | None = None  # where it runs: a new temporary folder if None
    ports: tuple[int, ...] = field(default_factory=lambda: _free_ports(3))  # monitor, node1, node2
    libpq_uri: str = ""  # what `pg_autoctl show uri` prints, once started
    failovers: list[float] = field(default_factory=list)  # kill_primary() to wait_promoted(), s
    _killed_at: float | None = field(default=None, repr=False)

    @staticmethod
    def missing() -> str | None:
        """Why this machine cannot run one, or None."""
        if shutil.which("pg_autoctl") is None:
            return (
                "pg_autoctl is not installed "
                "(apt-get install postgresql-15-auto-failover pg-auto-failover-cli)"
            )
        if not (PG_BIN / "pg_ctl").exists():
            return f"Postgres 15 is not installed ({PG_BIN})"
        return None

    @property
    def node_ports(self) -> tuple[int, int]:
        return self.ports[1], self.ports[2]

    @property
    def url(self) -> str:
        return sqlalchemy_url(self.node_ports)

    def start(self, timeout: float = 180.0) -> Self:
        folder = self._adopt("widget-store-failover-")
        try:
            out = _run([str(SCRIPT), "start", str(folder), *map(str, self.ports)], timeout=timeout)
        except BaseException:
            self.stop()
            raise
        self.libpq_uri = out.strip().splitlines()[-1]
        return self

    def nodes(self) -> list[dict[str, Any]]:
        """The monitor's view of the nodes (`pg_autoctl show state --json`)."""
        nodes: list[dict[str, Any]] = json.loads(self._script("state", "--json"))
        return nodes

    def primary(self, timeout: float = 30.0) -> int:
        """The port of the node the monitor has as the primary; waits out a failover under way."""

        def probe() -> int | None:
            ports = [
                int(node["nodeport"])
                for node in self.nodes()
                if node["current_group_state"] in WRITABLE_STATES
                and node["assigned_group_state"] == node["current_group_state"]
            ]
            return ports[0] if len(ports) == 1 else None

        return wait_until(probe, timeout=timeout, interval=0.2, what="a primary")

    def kill_primary(self) -> float:
        """Lose the primary's node, its keeper and Postgres killed together (kill -9 of the
        node's process group), as a machine is lost: the loss the monitor always fails over
        from. Returns time.monotonic() just after the kill."""
        self._script("kill", self._name(self.primary()))
        self._killed_at = time.monotonic()
        return self._killed_at

    def wait_promoted(self, old_port: int, timeout: float = 60.0) -> float:
        """Wait until the node other than `old_port` takes writes; returns time.monotonic()."""
        (port,) = (p for p in self.node_ports if p != old_port)
        wait_until(lambda: takes_writes(port), timeout=timeout, what=f"node :{port} to take writes")
        promoted = time.monotonic()
        if self._killed_at is not None:
            self.failovers.append(promoted - self._killed_at)
            self._killed_at = None
        return promoted

    def rejoin(self, old_port: int, timeout: float = 60.0) -> None:
        """Bring the lost node back: it rewinds, follows the new primary and becomes its
        synchronous secondary again."""
        wait = {"START_TIMEOUT": str(int(timeout))}
        self._script("restart", self._name(old_port), timeout=timeout + 10, env=wait)

    def describe_failovers(self) -> str:
        """The failovers measured (kill_primary() to wait_promoted()), for a report."""
        if not self.failovers:
            return "none"
        times = ", ".join(f"{seconds:.1f}" for seconds in self.failovers)
        return f"{len(self.failovers)}: {times} s from the kill to a new primary taking writes"

    def _name(self, port: int) -> str:
        return f"node{self.node_ports.index(port) + 1}"

    def _script(
        self, command: str, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
    ) -> str:
        if self.folder is None:
            raise RuntimeError("the cluster is not running")
        argv = [str(SCRIPT), command, str(self.folder), *args]
        return _run(argv, timeout=timeout, env=env)

    def _stop(self, folder: Path) -> None:
        _run([str(SCRIPT), "stop", str(folder)], timeout=90)


@dataclass
class StreamingPair(_Harness):
    """A primary and a synchronous streaming standby, initdb'd with data checksums (which
    pg_rewind needs), and nothing to fail over but the caller."""

    folder: Path | None = None  # where it runs: a new temporary folder if None
    ports: tuple[int, ...] = field(default_factory=lambda: _free_ports(2))
    primary_index: int = 0  # which of the two nodes is the primary now

    @staticmethod
    def missing() -> str | None:
        """Why this machine cannot run one, or None."""
        absent = [
            name for name in ("initdb", "pg_ctl", "pg_rewind") if not (PG_BIN / name).exists()
        ]
        return (
            f"Postgres 15 is not installed ({PG_BIN}: no {', '.join(absent)})" if absent else None
        )

    @property
    def url(self) -> str:
        return sqlalchemy_url(self.ports)

    @property
    def primary_port(self) -> int:
        return self.ports[self.primary_index]

    @property
    def standby_port(self) -> int:
        return self.ports[1 - self.primary_index]

    def start(self, timeout: float = 60.0) -> Self:
        folder = self._adopt("widget-store-streaming-")
        try:
            self._pg(
                "initdb", f"--pgdata={self._data(0)}", f"--username={CLUSTER_USER}", *INITDB_OPTIONS
            )
            with (self._data(0) / "postgresql.conf").open("a") as conf:
                conf.write(
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{folder}'\n"
                    "max_connections = 100\n"
                    # A promotion asked for while the standby waits to reach its lost primary
                    # again waits for the end of that pause (5 s by default).
                    "wal_retrieve_retry_interval = '500ms'\n"
                    # pg_rewind reads the old primary's WAL back to the last checkpoint the two
                    # share, which the crash recovery it runs first would otherwise recycle.
                    "wal_keep_size = '256MB'\n"
                )
            self._pg_ctl(0, "start")
            self._sql(self.ports[0], "CREATE DATABASE widgets", dbname="postgres")
            self._pg(
                "pg_basebackup",
                f"--dbname={_conninfo(self.ports[0])}",
                f"--pgdata={self._data(1)}",
                "--write-recovery-conf",
                "--checkpoint=fast",
            )
            self._pg_ctl(1, "start")
            self._follow(primary=0, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def kill_primary(self) -> float:
        """kill -9 the primary's postmaster; returns time.monotonic() just after."""
        pid = _postmaster_pid(self._data(self.primary_index))
        if pid is None:
            raise RuntimeError("the primary is not running")
        os.kill(pid, signal.SIGKILL)
        return time.monotonic()

    def promote_standby(self) -> float:
        """`pg_ctl promote` the standby, which then commits alone (no synchronous standby
        left to wait for); returns time.monotonic() once it takes writes."""
        standby = 1 - self.primary_index
        self._pg_ctl(standby, "promote")
        self.primary_index = standby
        self._sql(self.primary_port, "ALTER SYSTEM SET synchronous_standby_names = ''")
        self._sql(self.primary_port, "SELECT pg_reload_conf()")
        wait_until(lambda: takes_writes(self.primary_port), timeout=30, what="the promoted node")
        return time.monotonic()

    def restart_old_primary_as_standby(self, timeout: float = 60.0) -> None:
        """Bring the old primary back following the new one: pg_rewind drops what it wrote
        that the new primary never had, and it starts in recovery, so that it refuses writes
        (SQLSTATE 25006). Once it streams, the new primary commits synchronously again."""
        old = 1 - self.primary_index
        data = self._data(old)
        # Its postmaster's pid, until reaped, keeps a new one from starting on its folder.
        pid = _postmaster_pid(data)

        def gone() -> bool | None:
            return None if processes_in(data) or _exists(pid) else True

        wait_until(gone, timeout=30, what="the old postmaster to be gone")
        # pg_rewind reads the new primary's timeline from its control file, which has it only
        # after a checkpoint: before that, it finds both on one timeline and rewinds nothing.
        self._sql(self.primary_port, "CHECKPOINT")
        # It writes standby.signal and primary_conninfo even when no rewind is needed.
        source = _conninfo(self.primary_port)
        self._pg(
            "pg_rewind",
            f"--target-pgdata={data}",
            f"--source-server={source}",
            "--write-recovery-conf",
        )
        self._pg_ctl(old, "start")
        self._follow(primary=self.primary_index, timeout=timeout)

    def _follow(self, *, primary: int, timeout: float) -> None:
        """Wait for the standby to have all of `primary`'s WAL, then make it synchronous. (A
        standby that cannot follow may still show as streaming now and then, and a synchronous
        commit would then wait for it for ever.)"""
        port = self.ports[primary]

        def caught_up() -> bool | None:
            rows = self._sql(
                port,
                "SELECT 1 FROM pg_stat_replication"
                " WHERE state = 'streaming' AND flush_lsn >= pg_current_wal_lsn()",
            )
            return True if rows else None

        wait_until(caught_up, timeout=timeout, interval=0.1, what="the standby to catch up")
        self._sql(port, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        self._sql(port, "SELECT pg_reload_conf()")

        def synchronous() -> bool | None:
            rows = self._sql(port, "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'")
            return True if rows else None

        wait_until(synchronous, timeout=timeout, what="synchronous replication")

    def _data(self, index: int) -> Path:
        if self.folder is None:
            raise RuntimeError("the pair is not running")
        return self.folder / f"node{index + 1}"

    def _pg(self, program: str, *args: str, timeout: float = 60.0) -> str:
        return _run(_as_cluster_user([str(PG_BIN / program), *args]), timeout=timeout)

    def _pg_ctl(self, index: int, action: str) -> None:
        data = self._data(index)
        options = (
            [] if action != "start" else ["-l", f"{data}.log", "-o", f"-p {self.ports[index]}"]
        )
        self._pg("pg_ctl", "-D", str(data), "-w", "-t", "60", *options, action)

    def _sql(
        self, port: int, sql: LiteralString, *, dbname: str = DATABASE
    ) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host="127.0.0.1", port=port, dbname=dbname, user=CLUSTER_USER, autocommit=True
        ) as conn:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description else []

    def _stop(self, folder: Path) -> None:
        for index in (0, 1):
            data = folder / f"node{index + 1}"
            pid = _postmaster_pid(data)
            if _alive(pid):
                stop = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
                _run(_as_cluster_user(stop), timeout=60, check=False)
