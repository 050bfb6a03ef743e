"""What the routes share: path parameter types, dependencies that read the app's state or check
the caller, and the OpenAPI entries for error answers."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request

from ..config import Settings
from ..database.handle import Database
from ..demo import shoppers
from ..durable.lifecycle import ProcessInfo
from ..shop.errors import Unauthorized
from .admission import UnpaidCap

IdempotencyKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Chosen by the shopper's browser; the same key always means the same checkout",
    ),
]
PaymentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# Order ids are the orders table's INTEGER keys: anything past 2**31 - 1 cannot be one, and
# Postgres would refuse to even compare against it.
OrderId = Annotated[int, Path(ge=1, le=2**31 - 1)]


ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give: always a JSON `detail`.

    Spelled out as application/json, since FastAPI would file a bare model under the route's
    own media type (text/plain for the routes that answer an id).
    """
    return {
        code: {"content": {"application/json": {"schema": ERROR_SCHEMA}}, "description": "Error"}
        for code in codes
    }


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_process(request: Request) -> ProcessInfo:
    process: ProcessInfo = request.app.state.process
    return process


def require_operator(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Demo mode leaves operator actions open, as the public demo does; else a bearer token."""
    if settings.demo:
        return
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.operator_token or ""
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("Operator actions need Authorization: Bearer <operator token>")


def checkout_client(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    shopper_pass: Annotated[str | None, Header(alias=shoppers.PASS_HEADER)] = None,
) -> str | None:
    """Who is checking out, for the cap on unpaid checkouts: the socket's address, or the
    X-Forwarded-For entry a trusted proxy appended (uvicorn rewrote it: forwarded_allow_ips,
    docs/security.md). None for the built-in shoppers, which are exempt; they exist in demo
    mode only, so in production their pass is ignored and opens nothing."""
    if settings.demo and shoppers.is_shopper_pass(request.app.state.webhook_secret, shopper_pass):
        return None
    return request.client.host if request.client else None


def get_unpaid_cap(settings: Annotated[Settings, Depends(get_settings)]) -> UnpaidCap:
    return UnpaidCap(settings.max_unpaid_per_client, settings.payment_timeout_s)


Db = Annotated[Database, Depends(get_db)]
# For a route's `dependencies=[...]`.
Operator = Depends(require_operator)


def loopback_url(host: str, port: int) -> str:
    """An address of this server that the server itself can call (a wildcard bind means all):
    the runtime's `base_url` (shop/runtime.py), and where the sandbox provider delivers its
    webhooks."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
