"""Debian's haproxy with deploy/haproxy.cfg as it is, in front of store instances (tests and
benchmarks)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from . import free_port, wait_until

# The shipped configuration, in the checkout the tests and benchmarks run from.
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"


def find_haproxy() -> str | None:
    """haproxy's path, or None where it is not installed (`apt-get install haproxy`)."""
    return shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy",) if os.access(path, os.X_OK)), None
    )


def environment(nodes: list[str], port: int) -> dict[str, str]:
    """The addresses deploy/haproxy.cfg reads: its bind and its three servers."""
    assert len(nodes) == 3, "deploy/haproxy.cfg names three servers"
    env = {**os.environ, "WIDGET_STORE_LB_BIND": f"127.0.0.1:{port}"}
    for n, node in enumerate(nodes, start=1):
        env[f"WIDGET_STORE_NODE_{n}"] = node
    return env


@contextmanager
def haproxy(
    nodes: list[str], log_dir: Path, binary: str | None = None, config: Path = CONFIG
) -> Iterator[str]:
    """haproxy in front of three `host:port` nodes; yields its base URL. `config`: the shipped
    deploy/haproxy.cfg, or a variant of it a test wrote."""
    binary = binary or find_haproxy()
    if binary is None:
        raise FileNotFoundError("haproxy is not installed (apt-get install haproxy)")
    port = free_port()
    log = (log_dir / "haproxy.log").open("ab")
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(config)],
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
