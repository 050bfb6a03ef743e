"""Facts about the running server process that /health reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class ProcessInfo:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    workflows_recovered: int = 0
