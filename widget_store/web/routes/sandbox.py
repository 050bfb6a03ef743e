"""A sandbox payment provider inside the app: the page asks it to pay or decline, and it signs
and delivers the webhook over HTTP as a real provider would, so the browser never holds the
secret. Registered only when Settings.sandbox_enabled (never in production)."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request, Response

from ...shop.errors import Unavailable
from ...shop.payments import SIGNATURE_HEADER, PaymentStatus, sign
from ..deps import PaymentId, errors, loopback_url

router = APIRouter(prefix="/sandbox", tags=["sandbox payment provider"])


def webhook_base_url(request: Request) -> str:
    """The address this server listens on, which is where the provider delivers."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        return str(request.base_url).rstrip("/")
    return loopback_url(*server)


@router.post(
    "/payments/{payment_id}/{payment_status}",
    response_class=Response,
    responses={
        200: {"description": "The webhook's answer: the order id"},
        **errors(403, 404, 409, 503),
    },
)
async def settle_payment(
    payment_id: PaymentId, payment_status: PaymentStatus, request: Request
) -> Response:
    """Pay or decline a payment as the shopper would on the provider's page."""
    client: httpx.AsyncClient = request.app.state.http
    url = f"{webhook_base_url(request)}/payment_webhook/{payment_id}/{payment_status}"
    headers = {SIGNATURE_HEADER: sign(request.app.state.webhook_secret, payment_id, payment_status)}
    try:
        answer = await client.post(url, headers=headers)
    except httpx.HTTPError as exc:
        raise Unavailable(f"The store did not answer the payment webhook: {exc}") from None
    # Relay the store's answer as is: the order id, or its error.
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )
