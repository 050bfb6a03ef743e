"""Browser-facing protections: security headers on every answer, and a guard that keeps other
sites from pressing the store's buttons.

- `SecurityHeaders`, a plain ASGI middleware, adds a Content-Security-Policy that allows only
  this origin's own files (no inline script or style, no framing) and the usual companions.
  A response that sets its own policy (/docs) keeps it.
- `refuse_cross_site`, a FastAPI dependency on every router but the payment provider's
  (web/app.py), answers 403 to a state-changing request (any method but GET, HEAD and OPTIONS)
  a browser sent on behalf of another site (Fetch Metadata, else the Origin header): no other
  site can make a visitor's browser check out, cancel, restock or crash. A request with neither
  header (curl, the payment provider, the built-in shoppers) is no browser's cross-site request
  and passes. The payment webhook has no such guard: its caller is a provider's server, and its
  signature is what it is checked by.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..shop.errors import StoreError


def _policy(*directives: str) -> str:
    return "; ".join(directives)


_BASE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)

CONTENT_SECURITY_POLICY = _policy(*_BASE_POLICY, "img-src 'self'")


def stripe_content_security_policy(js_origin: str, api_origin: str) -> str:
    """The page's policy in Stripe mode: also Stripe.js, from its origin (which may frame the
    card's fields), and calls to Stripe's API; those origins and nothing more (with localstripe
    both are one)."""
    origins = " ".join(dict.fromkeys((js_origin, api_origin)))
    directives = [
        f"script-src 'self' {js_origin}"
        if d == "script-src 'self'"
        else f"connect-src 'self' {origins}"
        if d == "connect-src 'self'"
        else d
        for d in _BASE_POLICY
    ]
    return _policy(*directives, f"frame-src {js_origin}", "img-src 'self'")


# Swagger UI's stylesheet draws its icons as data: images; nothing else differs.
DOCS_CONTENT_SECURITY_POLICY = _policy(*_BASE_POLICY, "img-src 'self' data:")

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # frame-ancestors, for browsers that predate it.
    "X-Frame-Options": "DENY",
}
_ENCODED = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response, keeping any of them a route set itself;
    its policy is `content_security_policy` (in Stripe mode, stripe_content_security_policy)."""

    def __init__(
        self, app: ASGIApp, content_security_policy: str = CONTENT_SECURITY_POLICY
    ) -> None:
        self.app = app
        self.encoded = [
            (name, content_security_policy.encode("latin-1"))
            if name == b"content-security-policy"
            else (name, value)
            for name, value in _ENCODED
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self.encoded if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CrossSiteRequest(StoreError):
    status_code = 403


# Sec-Fetch-Site values of a request this origin's own page made, or a person typed in.
_OWN_SITES = frozenset({"same-origin", "none"})
# Methods that change nothing: a link from another site to the page or an order still works.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_host(origin: str, host: str | None) -> bool:
    """Does the Origin header name the host (and port) the request was sent to?

    The scheme is not compared: behind a proxy that ends TLS the store itself sees plain
    HTTP. A Host without a port matches an Origin on its scheme's default port.
    """
    if not host:
        return False
    try:
        theirs = urlsplit(origin)
        ours = urlsplit(f"//{host}")
        their_port = theirs.port or _DEFAULT_PORTS.get(theirs.scheme)
        our_port = ours.port
    except ValueError:
        return False
    if theirs.scheme not in _DEFAULT_PORTS or not theirs.hostname or not ours.hostname:
        return False
    if theirs.hostname != ours.hostname:  # urlsplit lowercases both
        return False
    return their_port == (our_port if our_port is not None else _DEFAULT_PORTS[theirs.scheme])


def refuse_cross_site(request: Request) -> None:
    """403 for a request another site's page made the browser send.

    Fetch Metadata first: browsers send Sec-Fetch-Site on every request, and only
    `same-origin` (this page) and `none` (typed in, a bookmark) are the store's own. Without
    it (an older browser), an Origin header must name this very host. With neither, the
    request did not come from a browser page at all (curl, the payment provider, the built-in
    shoppers): no other site's page can be behind it. A GET, HEAD or OPTIONS changes nothing
    and always passes.
    """
    if request.method in _SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() in _OWN_SITES:
            return
        raise CrossSiteRequest(
            f"Refused: a cross-site request (Sec-Fetch-Site: {site[:40]}); use the store's own page"
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    if not _same_host(origin, request.headers.get("host")):
        raise CrossSiteRequest(
            f"Refused: a cross-site request (Origin: {origin[:100]}); use the store's own page"
        )


# For a router's `dependencies=[...]` (web/app.py puts it on every router but the providers').
SameOrigin = Depends(refuse_cross_site)
