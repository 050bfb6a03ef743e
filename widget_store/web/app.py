"""The app factory: settings in, a FastAPI app out. It only wires: the lifespan (DBOS launched,
web/lifespan.py), the middleware, the routes by audience, and the error answers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from ..config import Settings
from . import errors, pages
from .body_limit import BodyLimit
from .lifespan import lifespan
from .metrics import Metrics, RequestMetrics
from .path_guard import PathGuard
from .routes import demo, operator, payments, sandbox, shop
from .routes import stripe as stripe_routes
from .security import (
    CONTENT_SECURITY_POLICY,
    SameOrigin,
    SecurityHeaders,
    stripe_content_security_policy,
)


def create_app(
    settings: Settings, base_url: str, *, on_started: Callable[[], None] | None = None
) -> FastAPI:
    """`base_url` is where this server can call itself (the built-in shoppers do);
    `on_started` runs once the app has started, before it serves (the server's garbage-collector
    settings, server/heap.py)."""
    app = FastAPI(
        title="Widget Store",
        summary="An online store that sells a widget and survives any crash.",
        version="1.0.0",
        lifespan=lifespan(settings, base_url, on_started),
        # /docs is served by web/pages.py, from the vendored Swagger UI (no CDN); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    add_middleware(app, settings)
    add_routes(app, settings)
    errors.install(app)
    return app


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Each added one wraps the ones before: the last is outermost."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(PathGuard)
    # Outermost of the app's own middleware: even an answer they give gets the headers. In
    # Stripe mode the page may also load Stripe.js and call Stripe, from their origins only.
    policy = CONTENT_SECURITY_POLICY
    if settings.stripe_mode:
        policy = stripe_content_security_policy(*settings.stripe_origins)
    app.add_middleware(SecurityHeaders, content_security_policy=policy)


def add_routes(app: FastAPI, settings: Settings) -> None:
    """By audience: the shopper's browser and API, the payment provider, the operator, and in
    the demo the built-in shoppers and the sandbox provider. Every router but the payment
    provider's refuses another site's state-changing requests (security.refuse_cross_site);
    the provider's webhook is called server to server and checked by its signature."""
    pages.install(app)
    app.include_router(shop.router, dependencies=[SameOrigin])
    app.include_router(payments.router)
    # Stripe (config.py): its webhook whenever its secret is set, the card in Stripe mode.
    if settings.stripe_webhook_secret:
        app.include_router(stripe_routes.webhook_router)
    if settings.stripe_mode:
        app.include_router(stripe_routes.card_router, dependencies=[SameOrigin])
    app.include_router(operator.router, dependencies=[SameOrigin])
    if settings.demo:
        app.include_router(demo.router, dependencies=[SameOrigin])
    # Never in production (Settings.sandbox says why).
    if settings.sandbox_enabled:
        app.include_router(sandbox.router, dependencies=[SameOrigin])
