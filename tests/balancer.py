"""haproxy for the tests: widget_store.testing.balancer, skipped where it is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from widget_store.testing import balancer
from widget_store.testing.balancer import CONFIG, environment

__all__ = ["CONFIG", "environment", "haproxy", "haproxy_binary"]


def haproxy_binary() -> str:
    """haproxy's path; CI installs it (.ci/run), elsewhere its absence skips the test."""
    found = balancer.find_haproxy()
    if found is None:
        if os.environ.get("WIDGET_STORE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("haproxy is required here (apt-get install haproxy)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return found


@contextmanager
def haproxy(nodes: list[str], log_dir: Path, config: Path = CONFIG) -> Iterator[str]:
    """haproxy in front of three `host:port` nodes; yields its base URL."""
    with balancer.haproxy(nodes, log_dir, haproxy_binary(), config) as url:
        yield url
