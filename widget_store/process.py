"""Facts about the running server process that /health reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class ProcessInfo:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    workflows_recovered: int = 0


def loopback_url(host: str, port: int) -> str:
    """An address of this server that the server itself can call (a wildcard bind means all)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
