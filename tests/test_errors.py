"""Error answers the app gives for what no handler expects: a bug is a 500 with a JSON `detail`
and the security headers every other answer carries. (The app as create_app makes it, with one
route added that fails; no server, no database: nothing here does I/O.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from widget_store.config import Settings
from widget_store.web.app import create_app
from widget_store.web.security import SECURITY_HEADERS


@pytest.mark.asyncio
async def test_an_unexpected_error_is_a_500_with_the_security_headers(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), "http://127.0.0.1:8000")

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://store") as client:
        answer = await client.get("/fails")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "Internal error"}
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value
    assert "a bug" not in answer.text
