"""What the browser loads: the page with the product in it, the API's docs, and html/'s files,
every one served by the store itself (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..paths import HTML_DIR
from . import first_paint
from .security import DOCS_CONTENT_SECURITY_POLICY


def install(app: FastAPI) -> None:
    router = APIRouter(include_in_schema=False)
    page_template = first_paint.page_template()

    @router.get("/")
    async def read_page(request: Request) -> HTMLResponse:
        """The page with the product and its stock in it (web/first_paint.py)."""
        return HTMLResponse(await first_paint.page(request.app.state.db, page_template))

    @router.get("/docs")
    async def read_docs() -> FileResponse:
        """Swagger UI on /openapi.json, every file served from html/ (see html/vendor/)."""
        return FileResponse(
            HTML_DIR / "docs.html",
            headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY},
        )

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HTML_DIR), name="static")
