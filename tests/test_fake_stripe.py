"""The fake Stripe the Stripe tests run (localstripe, widget_store/testing/stripe.py) behaves as
Stripe documents where the store's promises depend on it: a repeated Idempotency-Key gets the
first answer back (so a call repeated after a crash makes nothing twice), and a webhook is
delivered again until it is answered 2xx, each time signed as stripe-python verifies. The
store's own calls (shop/stripe/api.py) are what make the requests here."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

from widget_store.shop.errors import PaymentDeclined
from widget_store.shop.stripe import api as stripe_payments
from widget_store.testing import wait_until
from widget_store.testing.stripe import CARD_DECLINED, CARD_OK, SECRET_KEY, FakeStripe


@pytest.fixture
def fake_stripe(tmp_path: Path) -> Iterator[FakeStripe]:
    fake = FakeStripe(tmp_path / "localstripe").start()
    yield fake
    fake.stop()


def card_token(fake: FakeStripe, number: str) -> str:
    made = fake.client().v1.tokens.create(
        params={"card": {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}}
    )
    return str(made.id)


def test_a_repeated_idempotency_key_gets_the_first_answer(fake_stripe: FakeStripe) -> None:
    async def calls() -> None:
        api = stripe_payments.connect(SECRET_KEY, api_base=fake_stripe.base_url, currency="usd")
        try:
            first = await stripe_payments.create_payment_intent(
                api, payment_id="pay-1", order_id=1, amount=9999
            )
            again = await stripe_payments.create_payment_intent(
                api, payment_id="pay-1", order_id=1, amount=9999
            )
            assert again == first
            # The same key with other parameters is refused, as Stripe does.
            with pytest.raises(stripe.IdempotencyError):
                await stripe_payments.create_payment_intent(
                    api, payment_id="pay-1", order_id=1, amount=5
                )
            intent = first["payment_intent"]
            token = card_token(fake_stripe, CARD_OK)
            for _ in range(2):
                status = await stripe_payments.pay_with_card(
                    api, payment_intent=intent, payment_id="pay-1", token=token
                )
                assert status == "succeeded"
            refunds = {
                await stripe_payments.refund(api, payment_id="pay-1", payment_intent=intent)
                for _ in range(2)
            }
            assert len(refunds) == 1

            declined = await stripe_payments.create_payment_intent(
                api, payment_id="pay-2", order_id=2, amount=9999
            )
            with pytest.raises(PaymentDeclined, match="declined"):
                await stripe_payments.pay_with_card(
                    api,
                    payment_intent=declined["payment_intent"],
                    payment_id="pay-2",
                    token=card_token(fake_stripe, CARD_DECLINED),
                )
        finally:
            await api.close()

    asyncio.run(calls())
    assert len(fake_stripe.payment_intents("pay-1")) == 1
    assert {"pay-1", "refund:pay-1"} <= set(fake_stripe.replayed_keys())
    [intent] = fake_stripe.payment_intents("pay-1")
    refunds = fake_stripe.client().v1.refunds.list(params={"payment_intent": intent.id}).data
    assert len(refunds) == 1


def test_a_webhook_is_delivered_again_until_answered(fake_stripe: FakeStripe) -> None:
    received: list[tuple[int, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            event = stripe.Webhook.construct_event(
                body, self.headers["Stripe-Signature"], fake_stripe.webhook_secret
            )
            # The first delivery fails, as a store restarting would.
            status = 503 if not received else 200
            received.append((status, event.type))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fake_stripe.send_webhooks_to(f"http://127.0.0.1:{server.server_address[1]}/hook")
        intent = fake_stripe.client().v1.payment_intents.create(
            params={"amount": 100, "currency": "usd"}
        )
        fake_stripe.pay(intent.id)
        wait_until(lambda: len(received) >= 2 or None, timeout=20, what="the redelivery")
    finally:
        server.shutdown()
        server.server_close()
    assert received == [
        (503, "payment_intent.succeeded"),
        (200, "payment_intent.succeeded"),
    ]
