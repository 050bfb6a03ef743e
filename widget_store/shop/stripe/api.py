"""Stripe as the payment provider: every call the store makes to Stripe, and the check of its
webhooks, through the official `stripe` library (stripe-python) and nothing else.

Each call that creates or changes something at Stripe carries an `Idempotency-Key` derived
from the store's payment id, so a call repeated after a crash (a durable step run again before
its checkpoint was written, a shopper's retry) gets Stripe's first answer back instead of a
second PaymentIntent, confirmation or refund:

- the checkout's PaymentIntent: the payment id itself;
- the card set on it, and its confirmation: `<payment id>:card:<token>` and
  `<payment id>:confirm:<token>`;
- the refund of a payment that came too late: `refund:<payment id>`.

Amounts are in the currency's smallest unit, as Stripe counts them (cents for usd).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from ..errors import BadRequest, InvalidInput, PaymentDeclined, Unavailable

if TYPE_CHECKING:
    # Imported where it is called instead: stripe-python is about 10 MiB of each process's
    # memory and 30 ms of its start, which a store with no Stripe key configured never needs.
    import stripe

log = logging.getLogger(__name__)

# Stripe's zero-decimal currencies: an amount in them counts whole units, not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
# Each call's deadline; stripe-python's own retries (network errors, 409, 5xx) come on top,
# with the same Idempotency-Key.
TIMEOUT_S = 20.0
NETWORK_RETRIES = 2
# PaymentIntent statuses a card can still be set and confirmed in.
CONFIRMABLE = frozenset({"requires_payment_method", "requires_confirmation"})

# The webhook events the store acts on; every other type is answered 2xx and ignored.
SUCCEEDED = "payment_intent.succeeded"
FAILED = "payment_intent.payment_failed"


class StripePayment(TypedDict):
    """A checkout's PaymentIntent, as its checkout publishes it (workflows.STRIPE_PAYMENT):
    what the page needs to pay it, and what a webhook's PaymentIntent must match."""

    payment_intent: str
    client_secret: str
    amount: int
    currency: str


@dataclass(frozen=True)
class StripeApi:
    """A Stripe client for one secret key (and API base), and the store's currency."""

    client: stripe.StripeClient
    http: stripe.HTTPXClient
    currency: str

    async def close(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]


def connect(secret_key: str, *, api_base: str | None, currency: str) -> StripeApi:
    """A client on Stripe's API, or on `api_base` (localstripe in the tests). It calls through
    httpx's async client: the workflows' steps and the routes await every call, on the serving
    process's event loop."""
    import stripe

    http = stripe.HTTPXClient(timeout=TIMEOUT_S)
    client = stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=http,
    )
    return StripeApi(client=client, http=http, currency=currency)


def minor_units(price: Decimal | float | str, currency: str) -> int:
    """A price in the currency's smallest unit: 99.99 usd is 9999, 1000 jpy is 1000."""
    exponent = Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal(100)
    return int((Decimal(str(price)) * exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def create_payment_intent(
    api: StripeApi, *, payment_id: str, order_id: int, amount: int
) -> StripePayment:
    """The checkout's PaymentIntent for `amount` in the store's currency. Its Idempotency-Key
    is the payment id: run again, Stripe answers the PaymentIntent the first run made.
    `metadata.payment_id` is how its webhooks find the checkout."""
    intent = await api.client.v1.payment_intents.create_async(
        params={
            "amount": amount,
            "currency": api.currency,
            "metadata": {"payment_id": payment_id, "order_id": str(order_id)},
        },
        options={"idempotency_key": payment_id},
    )
    if not intent.client_secret:
        raise RuntimeError(f"Stripe answered PaymentIntent {intent.id} without a client secret")
    return StripePayment(
        payment_intent=intent.id,
        client_secret=intent.client_secret,
        amount=intent.amount,
        currency=intent.currency,
    )


async def pay_with_card(api: StripeApi, *, payment_intent: str, payment_id: str, token: str) -> str:
    """Set the card of a Stripe.js token (`stripe.createToken`) as the PaymentIntent's payment
    method and confirm the PaymentIntent; answer its status (`succeeded`, `processing`, or
    `requires_action` for a card that asks the shopper to authenticate, which the page's
    Stripe.js then does with the client secret).

    Idempotent: each call has an Idempotency-Key of the payment id and the token, so the same
    card sent again (the page retrying across a restart) gets Stripe's first answers; and a
    PaymentIntent already past confirmation is answered as it stands, changing nothing. The
    payment itself is settled by Stripe's webhook, as any other.
    """
    import stripe

    try:
        intent = await api.client.v1.payment_intents.retrieve_async(payment_intent)
        if intent.status not in CONFIRMABLE:
            return str(intent.status)
        found = await api.client.v1.tokens.retrieve_async(token)
        if found.card is None:
            raise InvalidInput("token: not a card token")
        await api.client.v1.payment_intents.update_async(
            payment_intent,
            params={"payment_method": found.card.id},
            options={"idempotency_key": f"{payment_id}:card:{token}"},
        )
        confirmed = await api.client.v1.payment_intents.confirm_async(
            payment_intent, options={"idempotency_key": f"{payment_id}:confirm:{token}"}
        )
    except stripe.CardError as exc:
        raise PaymentDeclined(exc.user_message or "The card was declined") from None
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise InvalidInput(f"token: Stripe does not know it ({exc.user_message})") from None
        raise InvalidInput(f"Stripe refused the card: {exc.user_message}") from None
    except stripe.StripeError as exc:
        log.warning("Stripe did not take the card for payment %s: %s", payment_id, exc)
        raise Unavailable("The payment provider did not answer; retry shortly") from None
    return str(confirmed.status)


async def refund(api: StripeApi, *, payment_id: str, payment_intent: str) -> str:
    """Refund a PaymentIntent whole; answer the refund's id. Its Idempotency-Key is
    `refund:<payment id>`: run again, Stripe answers the refund the first run made."""
    made = await api.client.v1.refunds.create_async(
        params={"payment_intent": payment_intent, "metadata": {"payment_id": payment_id}},
        options={"idempotency_key": f"refund:{payment_id}"},
    )
    return made.id


def verify_event(payload: bytes, signature: str | None, secret: str) -> stripe.Event:
    """The event in a webhook's body, once stripe-python has checked its `Stripe-Signature`
    (HMAC-SHA256 over "<t>.<body>" with the endpoint's secret, any `v1` matching, `t` at most
    300 s old). BadRequest for a signature it refuses or a body that is no event."""
    import stripe

    try:
        event: stripe.Event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise BadRequest(f"Stripe-Signature refused: {exc.user_message or exc}") from None
    except ValueError as exc:
        raise BadRequest(f"Not a Stripe event: {exc}") from None
    return event


def intent_fields(event: stripe.Event) -> dict[str, Any]:
    """The PaymentIntent a `payment_intent.*` event carries: id, amount, currency and the
    payment id in its metadata (None where it has none)."""
    intent = event.data.object.to_dict()
    metadata = intent.get("metadata") or {}
    payment_id = metadata.get("payment_id")
    return {
        "payment_intent": intent.get("id"),
        "amount": intent.get("amount"),
        "currency": intent.get("currency"),
        "payment_id": payment_id if isinstance(payment_id, str) else None,
    }
