"""Stripe's routes (shop/stripe/checkout.py does the work): its webhook, server to server, which
exists whenever WIDGET_STORE_STRIPE_WEBHOOK_SECRET is set; and, in Stripe mode, the shopper's
card, sent by the page as a Stripe.js token. Wired by web/app.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from ...shop.stripe import api as stripe_payments
from ...shop.stripe import checkout as stripe_checkout
from ..deps import Db, IdempotencyKey, errors, get_settings
from ..schemas import CardIn, CardOut, StripeEventOut

# The payment provider's: no cross-site guard, its signature is what it is checked by.
webhook_router = APIRouter()
# The shopper's: web/app.py adds the cross-site guard.
card_router = APIRouter()


@webhook_router.post("/webhooks/stripe", responses=errors(400, 503))
async def receive_stripe_event(
    request: Request,
    db: Db,
    signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> StripeEventOut:
    """A Stripe webhook event, verified by the `stripe` library against the endpoint's secret
    (300 s tolerance): `payment_intent.succeeded` pays the checkout its PaymentIntent's
    `metadata.payment_id` names, `payment_intent.payment_failed` ends it; other types are
    answered and ignored. A PaymentIntent that does not match its checkout (amount, currency,
    or not the checkout's own) never settles it: answered, logged and kept as a `mismatch`.
    The same event id again: its first answer, nothing changes."""
    settings = get_settings(request)
    secret = settings.stripe_webhook_secret
    assert secret is not None  # the route exists only with it (web/app.py)
    event = stripe_payments.verify_event(await request.body(), signature, secret)
    outcome = await stripe_checkout.receive_event(db, event, currency=settings.stripe_currency)
    return StripeEventOut.model_validate(outcome)


@card_router.post(
    "/checkout/{idempotency_key}/card", responses=errors(402, 403, 404, 409, 422, 503)
)
async def pay_by_card(idempotency_key: IdempotencyKey, body: CardIn, db: Db) -> CardOut:
    """Pay the checkout with a card: the Stripe.js token's card set on its PaymentIntent, which
    the store then confirms. 200 with the PaymentIntent's status; a declined card: 402 (its
    webhook then ends the checkout, the widget back). Safe to send again: the same token gets
    Stripe's first answers back."""
    status = await stripe_checkout.pay_by_card(db, idempotency_key, body.token)
    return CardOut(status=status)
