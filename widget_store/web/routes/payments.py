"""The payment provider's route: its signed webhook settles a checkout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import PlainTextResponse

from ...shop import checkout
from ...shop.errors import BadSignature
from ...shop.payments import SIGNATURE_HEADER, PaymentStatus, SignatureError, verify
from ..deps import Db, PaymentId, errors

router = APIRouter()


@router.post(
    "/payment_webhook/{payment_id}/{payment_status}",
    response_class=PlainTextResponse,
    responses={200: {"description": "The order id, as plain text"}, **errors(401, 404, 409, 503)},
)
async def receive_payment(
    payment_id: PaymentId,
    payment_status: PaymentStatus,
    request: Request,
    db: Db,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> str:
    """The payment provider's signed webhook: settle the checkout, answer the order id."""
    try:
        verify(request.app.state.webhook_secret, signature, payment_id, payment_status)
    except SignatureError as exc:
        raise BadSignature(str(exc)) from None
    return str(await checkout.deliver_payment(db, payment_id, payment_status))
