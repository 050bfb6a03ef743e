"""Debian's haproxy with deploy/haproxy.cfg as it is, in front of the tests' store instances."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from widget_store.testing import free_port, wait_until

from .support import REPO_ROOT

CONFIG = REPO_ROOT / "deploy" / "haproxy.cfg"


def haproxy_binary() -> str:
    """haproxy's path; CI installs it (.ci/run), elsewhere its absence skips the test."""
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy",) if os.access(path, os.X_OK)), None
    )
    if found is None:
        if os.environ.get("WIDGET_STORE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("haproxy is required here (apt-get install haproxy)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return found


def environment(nodes: list[str], port: int) -> dict[str, str]:
    """The addresses deploy/haproxy.cfg reads: its bind and its three servers."""
    assert len(nodes) == 3, "deploy/haproxy.cfg names three servers"
    env = {**os.environ, "WIDGET_STORE_LB_BIND": f"127.0.0.1:{port}"}
    for n, node in enumerate(nodes, start=1):
        env[f"WIDGET_STORE_NODE_{n}"] = node
    return env


@contextmanager
def haproxy(nodes: list[str], log_dir: Path) -> Iterator[str]:
    """haproxy in front of three `host:port` nodes; yields its base URL."""
    port = free_port()
    log = (log_dir / "haproxy.log").open("ab")
    proc = subprocess.Popen(
        [haproxy_binary(), "-db", "-f", str(CONFIG)],
        env=environment(nodes, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200 or None,
            timeout=20,
            what="haproxy to serve",
        )
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
