"""What the workflows need from the running process, bound once at start.

Workflow functions are registered with DBOS at import, but their database and settings exist
only once the app starts; and DBOS may resume workflows the moment it launches, so this is
bound before `DBOS.launch()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ..database.handle import Database
from .stripe.api import StripeApi


@dataclass(frozen=True)
class Runtime:
    db: Database
    payment_timeout_s: float
    dispatch_tick_s: float
    # Where this server can call itself, and a client to do it with (the built-in shoppers).
    base_url: str
    http: httpx.AsyncClient
    # Test-only fault injection: die right after this step (see workflows._crash_point).
    fault_after_step: str | None = None
    # Stripe mode: the client the checkouts make their PaymentIntents with, and the refunds of
    # late payments are made with (stripe/api.py); None otherwise.
    stripe: StripeApi | None = None


_current: Runtime | None = None


def bind(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("runtime.bind() was not called before a workflow ran")
    return _current
