"""Run a real store in a subprocess, on a database of its own, for the tests and benchmarks.

Crash tests need the real thing: a supervisor process, a serving child that can be killed, and
a database that outlives both.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

T = TypeVar("T")

POSTGRES_URL_ENV = "WIDGET_STORE_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GaveUp(Exception):
    """Raised by a probe to stop waiting at once: what it waits for can no longer happen."""


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = "it"
) -> T:
    """Poll until `probe` returns something other than None (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except GaveUp:
            raise
        except Exception as exc:  # the server may be restarting
            last_error = exc
        else:
            if value is not None:
                return value
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout} s for {what}; last error: {last_error!r}")


def children(pid: int) -> list[int]:
    """A process's children (Linux), started from any of its threads."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(part) for part in listed.read().split()]
        except OSError:
            continue
    return found


def serving_workers(supervisor_pid: int) -> dict[str, int]:
    """Executor id -> pid of each serving child of a supervisor; its standbys, which carry a
    worker's executor id too, left out. A child that exits meanwhile is left out as well."""
    found = {}
    for pid in children(supervisor_pid):
        if is_standby(pid):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                env = dict(
                    item.split(b"=", 1) for item in environ.read().split(b"\0") if b"=" in item
                )
        except OSError:
            continue
        found[env[b"WIDGET_STORE_EXECUTOR_ID"].decode()] = pid
    return found


def is_standby(pid: int) -> bool:
    """A standby still waiting to start (server/standby.py): one thread, where a process that
    serves runs uvicorn's, DBOS's and the pools' besides. False for a process that is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) == 1
    except OSError:
        return False


def signature(secret: str, payment_id: str, status: str, timestamp: int | None = None) -> str:
    """The contract's webhook signature, written out independently of the store's own code."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{t}.{payment_id}.{status}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={t},v1={digest}"


@dataclass
class Database:
    """A database of the store's own: a fresh SQLite folder, or a fresh Postgres database."""

    kind: str
    data_dir: Path
    url: str | None = None  # the Postgres URL given to the store, None on SQLite
    _admin_url: str | None = None

    @classmethod
    def create(cls, kind: str, data_dir: Path, postgres_admin_url: str | None = None) -> Database:
        if kind == "sqlite":
            return cls(kind, data_dir)
        if not postgres_admin_url:
            raise ValueError(f"a Postgres database needs {POSTGRES_URL_ENV}")
        admin = sa.make_url(postgres_admin_url).set(drivername="postgresql+psycopg")
        name = f"widget_store_test_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        url = admin.set(database=name).render_as_string(hide_password=False)
        return cls(kind, data_dir, url, admin.render_as_string(hide_password=False))

    @property
    def app_url(self) -> str:
        """Where the store's tables are, for tests that look at or arrange the rows."""
        return self.url or f"sqlite:///{self.data_dir / 'store.sqlite'}"

    def execute(self, sql: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.app_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def inventory(self) -> int:
        """The widget's stock, read from the products table."""
        return int(self.execute("SELECT inventory FROM products")[0][0])

    def first_step_after(self, workflow_ids: list[str], after_ms: float) -> float | None:
        """When (epoch seconds) the first step of these workflows started after `after_ms`,
        read from DBOS's system tables (Postgres: the `dbos` schema of this database)."""
        rows = self.execute(
            "SELECT min(started_at_epoch_ms) FROM dbos.operation_outputs"
            " WHERE workflow_uuid = ANY(:ids) AND started_at_epoch_ms > :after",
            ids=workflow_ids,
            after=after_ms,
        )
        value = rows[0][0] if rows else None
        return float(value) / 1000 if value is not None else None

    def drop(self) -> None:
        if self._admin_url is None or self.url is None:
            return
        name = sa.make_url(self.url).database
        engine = sa.create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@dataclass
class StoreServer:
    """`widget-store serve` in a subprocess: the supervisor and, under it, the serving child."""

    database: Database
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    secret: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self.log_path = self.database.data_dir / f"server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WIDGET_STORE_", "DBOS_"))
        }
        env.update(
            WIDGET_STORE_DATA_DIR=str(self.database.data_dir),
            WIDGET_STORE_WEBHOOK_SECRET=self.secret,
            # Tests and benchmarks play many shoppers from one address; the tests of the caps
            # per client (unpaid checkouts, new checkouts a minute, open connections) set them
            # back.
            WIDGET_STORE_MAX_UNPAID_PER_CLIENT="0",
            WIDGET_STORE_NEW_CHECKOUTS_PER_MINUTE="0",
            WIDGET_STORE_MAX_CONNECTIONS_PER_CLIENT="0",
            # One serving process (on Postgres the default is one a core): the tests of
            # several workers ask for them.
            WIDGET_STORE_WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        if self.database.url:
            env["DBOS_DATABASE_URL"] = self.database.url
        env.update(self.env_overrides)
        return env

    def start(self, *, wait: bool = True) -> StoreServer:
        self.database.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "widget_store", "serve", "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        answer = httpx.get(f"{self.base_url}/health", timeout=timeout)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def wait_healthy(self, *, timeout: float = 30.0, not_pid: int | None = None) -> dict[str, Any]:
        """Wait until a serving child answers (one other than `not_pid`, after a crash)."""

        def probe() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise GaveUp(f"supervisor exited with {self.proc.returncode}")
            body = self.health(timeout=1.0)
            return None if body["pid"] == not_pid else body

        try:
            return wait_until(probe, timeout=timeout, what="the store to serve")
        except (TimeoutError, GaveUp) as exc:
            raise type(exc)(f"{exc}\n--- server log ---\n{self.log_text()[-5000:]}") from None

    def kill_worker(self, sig: int = signal.SIGKILL) -> int:
        """Kill the serving child (not the supervisor), as `kill -9` would; return its pid."""
        pid = int(self.health()["pid"])
        os.kill(pid, sig)
        return pid

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def pay(self, client: httpx.Client, payment_id: str, status: str) -> httpx.Response:
        """Deliver a correctly signed webhook, as the payment provider would."""
        return client.post(
            f"/payment_webhook/{payment_id}/{status}",
            headers={"Widget-Signature": signature(self.secret, payment_id, status)},
        )


def temp_dir(prefix: str = "widget-store-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
