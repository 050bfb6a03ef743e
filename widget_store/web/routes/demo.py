"""The demo's routes: the crash button and the built-in shoppers. Registered only in demo mode
(web/app.py): in production these routes do not exist (404)."""

from __future__ import annotations

import asyncio
import logging
import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...demo import shoppers
from ..deps import Db, errors
from ..schemas import LoadIn, LoadOut

log = logging.getLogger(__name__)

CRASH_DELAY_S = 0.05

router = APIRouter()


def _exit_now() -> None:
    log.warning("crash button pressed: exiting now")
    logging.shutdown()
    os._exit(1)


@router.post("/crash_application", status_code=202, responses=errors(403))
async def crash_application(request: Request) -> JSONResponse:
    """Kill the process at once, as a crash would; the supervisor brings it back.

    It first stops accepting connections (the server's `stop_accepting`, server/worker.py):
    from then on new connections wait in the kernel's backlog for the next process, so a
    request sent after this answer reaches the restarted store. Then it answers, and dies 50 ms
    later: a client whose request is dropped unanswered may send it again (browsers re-send a
    POST whose reused connection closes), and that copy would crash the freshly restarted
    server a second time.
    """
    stop_accepting = getattr(request.app.state, "stop_accepting", None)
    if stop_accepting is not None:
        stop_accepting()
    asyncio.get_running_loop().call_later(CRASH_DELAY_S, _exit_now)
    return JSONResponse(
        {"detail": "Crashing now: the store will be back within seconds"},
        status_code=202,
        headers={"Connection": "close"},
    )


@router.get("/load")
async def read_load(db: Db) -> LoadOut:
    """The built-in shoppers' settings."""
    return LoadOut.model_validate(await db.read(shoppers.get_load_settings))


@router.post("/load", responses=errors(400, 403))
async def start_load(load: LoadIn, db: Db) -> LoadOut:
    """Start (or change) the built-in shoppers: N durable shoppers with this mix."""
    return LoadOut.model_validate(await shoppers.start_load(db, **load.model_dump()))


@router.post("/load/stop", responses=errors(403))
async def stop_load(db: Db) -> LoadOut:
    """Stop the built-in shoppers after their current purchase."""
    return LoadOut.model_validate(await shoppers.stop_load(db))
