"""The app's lifespan: the serving process launched on DBOS (durable/lifecycle.py), the demo's
shoppers given their queue and their way in, and what the routes read put on the app's state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI

from ..config import Settings
from ..demo import shoppers
from ..durable import lifecycle

log = logging.getLogger(__name__)


def lifespan(
    settings: Settings, base_url: str, on_started: Callable[[], None] | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """`base_url` is where this server can call itself (the built-in shoppers do); `on_started`
    runs once the app has started, before it serves."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        webhook_secret = settings.resolved_webhook_secret()
        # The built-in shoppers call the store through this client (shoppers.PASS_HEADER).
        http = httpx.AsyncClient(
            timeout=60, headers={shoppers.PASS_HEADER: shoppers.shopper_pass(webhook_secret)}
        )
        try:
            async with lifecycle.serving(settings, base_url=base_url, http=http) as (db, process):
                await shoppers.register_queue()
                app.state.settings = settings
                app.state.db = db
                app.state.http = http
                app.state.webhook_secret = webhook_secret
                app.state.process = process
                # Said once the start is done: one that fails before this is said by the
                # supervisor.
                log.info(
                    "serving (restart %d): recovered %d workflow(s) of executor %s",
                    settings.restart_count,
                    process.workflows_recovered,
                    settings.executor_id,
                )
                if on_started is not None:
                    on_started()
                yield
        finally:
            await http.aclose()

    return run
