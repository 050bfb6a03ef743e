"""Refuse, before routing, a request path that cannot name any of the store's resources.

An encoded slash (`/checkout/x%2Fy`) would be decoded into a second path segment and reach
another route, or none (a 404 for what is really a bad key, or `x%2Fcancel` cancelling `x`);
a control character (`%00`) can be in no key or id, and Postgres refuses NUL in text outright.
Both are a 422 here, whatever the route.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathGuard:
    """Plain ASGI middleware: no task or buffering of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _problem(scope.get("raw_path") or b"", scope["path"])
            if problem:
                await JSONResponse({"detail": problem}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _problem(raw_path: bytes, path: str) -> str | None:
    if _ENCODED_SLASH.search(raw_path):
        return "path: an encoded slash (%2F) cannot be part of a key or id"
    if _CONTROL.search(path):
        return "path: control characters cannot be part of a key or id"
    return None
