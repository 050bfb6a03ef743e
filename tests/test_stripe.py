"""Stripe as the payment provider, over real HTTP: a store in Stripe mode against localstripe (a
fake, stateful Stripe, run as a server by widget_store/testing/stripe.py, with Stripe's
Idempotency-Key and webhook redeliveries), on SQLite and Postgres.

Each checkout makes one PaymentIntent; a card sent by the shopper pays it and the signed
`payment_intent.succeeded` webhook pays the order; a declined card's `payment_failed` cancels
it. The webhook refuses a bad or stale signature (400), answers a repeated event id or a type it
does not use 2xx with no effect, never pays a PaymentIntent that does not match its checkout,
and refunds through Stripe a success that came after the checkout ended. A crash between the
PaymentIntent's call and its checkpoint still makes one PaymentIntent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from pydantic import ValidationError

from widget_store.config import Settings
from widget_store.shop.stripe.api import minor_units
from widget_store.testing import StoreServer, wait_until
from widget_store.testing.stripe import CARD_DECLINED, CARD_OK, FakeStripe

from .conftest import BACKENDS, _close, _make_servers, _skip_unless_available
from .support import CANCELLED, DISPATCHED, PENDING, MakeServer, new_key, wait_status

PRICE_CENTS = 9999  # the seeded widget's $99.99


@pytest.fixture(scope="module", params=BACKENDS)
def stripe_shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StoreServer, FakeStripe]]:
    """One store in Stripe mode per module and backend, on a localstripe of its own that
    delivers its webhooks to it."""
    _skip_unless_available(request.param)
    root = tmp_path_factory.mktemp("stripe")
    fake = FakeStripe(root / "localstripe").start()
    make, servers = _make_servers(str(request.param), root)
    try:
        server = make(start=False, **fake.store_env())
        fake.send_webhooks_to(f"{server.base_url}/webhooks/stripe")
        yield server.start(), fake
    finally:
        _close(servers)
        fake.stop()


@pytest.fixture
def fake_stripe(tmp_path: Path) -> Iterator[FakeStripe]:
    fake = FakeStripe(tmp_path / "localstripe").start()
    yield fake
    fake.stop()


def token(fake: FakeStripe, card: str = CARD_OK) -> str:
    """A card token, as the page's Stripe.js makes one (stripe.createToken)."""
    made = fake.client().v1.tokens.create(
        params={"card": {"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"}}
    )
    return str(made.id)


def checkout(client: httpx.Client, key: str) -> dict[str, Any]:
    """Start a checkout; what GET /checkout/{key} then says of it."""
    answer = client.post(f"/checkout/{key}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = client.get(f"/checkout/{key}").json()
    assert found["payment_id"] == answer.text
    return found


def pay_elsewhere(fake: FakeStripe, payment_id: str, *, amount: int = PRICE_CENTS) -> str:
    """A PaymentIntent made at Stripe by someone else (say, in its dashboard) naming this
    payment id, then paid: its real webhook follows. Its id."""
    intent = fake.client().v1.payment_intents.create(
        params={"amount": amount, "currency": "usd", "metadata": {"payment_id": payment_id}}
    )
    fake.pay(intent.id)
    return str(intent.id)


def event_body(
    kind: str,
    *,
    payment_intent: str,
    payment_id: str,
    amount: int = PRICE_CENTS,
    currency: str = "usd",
    event_id: str | None = None,
) -> bytes:
    """A Stripe event as its webhook body, written out here, not by the store's code."""
    return json.dumps(
        {
            "id": event_id or f"evt_test_{uuid.uuid4().hex}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": payment_intent,
                    "object": "payment_intent",
                    "amount": amount,
                    "currency": currency,
                    "metadata": {"payment_id": payment_id},
                }
            },
        }
    ).encode()


def stripe_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """Stripe's scheme (HMAC-SHA256 over "<t>.<body>"), written out independently."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def deliver(
    client: httpx.Client, fake: FakeStripe, body: bytes, signature: str | None = None
) -> httpx.Response:
    """POST an event to the store's webhook, signed with the endpoint's secret unless told."""
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature or stripe_signature(fake.webhook_secret, body)
    return client.post("/webhooks/stripe", content=body, headers=headers)


def events_of(server: StoreServer, payment_id: str) -> list[tuple[str, str]]:
    """(type, outcome) of each webhook event the store kept for this payment id."""
    rows = server.database.execute(
        "SELECT type, outcome FROM stripe_events WHERE payment_id = :p ORDER BY received_at",
        p=payment_id,
    )
    return [(row[0], row[1]) for row in rows]


def outcome_of(server: StoreServer, payment_id: str, outcome: str) -> None:
    """Wait until the store has acted on an event for this payment id with this outcome."""
    wait_until(
        lambda: any(o == outcome for _, o in events_of(server, payment_id)) or None,
        timeout=30,
        what=f"a Stripe event for {payment_id} with outcome {outcome}",
    )


def test_each_checkout_has_one_payment_intent_and_a_card_pays_it(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    key = new_key("stripe")
    with server.client() as client:
        found = checkout(client, key)
        payment_id = found["payment_id"]
        [intent] = fake.payment_intents(payment_id)
        assert (intent.amount, intent.currency) == (PRICE_CENTS, "usd")
        assert intent.to_dict()["metadata"]["payment_id"] == payment_id
        assert found["stripe_payment_intent"] == intent.id
        assert found["stripe_client_secret"] == intent.client_secret
        # The same key again: the same payment id, still one PaymentIntent.
        assert client.post(f"/checkout/{key}").text == payment_id

        card = token(fake)
        paid = client.post(f"/checkout/{key}/card", json={"token": card})
        assert paid.status_code == 200, paid.text
        assert paid.json() == {"status": "succeeded"}
        # The page sending the card again (a retry across a restart) changes nothing.
        again = client.post(f"/checkout/{key}/card", json={"token": card})
        assert again.json() == {"status": "succeeded"}

        wait_status(client, found["order_id"], DISPATCHED)
        assert events_of(server, payment_id) == [("payment_intent.succeeded", "paid")]
        assert len(fake.payment_intents(payment_id)) == 1
        charges = fake.client().v1.charges.list(params={"limit": 100}).data
        assert sum(1 for charge in charges if charge.payment_intent == intent.id) == 1
        # A paid checkout takes no card.
        late = client.post(f"/checkout/{key}/card", json={"token": token(fake)})
        assert late.status_code == 409, late.text


def test_a_declined_card_ends_the_checkout_and_returns_the_widget(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    key = new_key("declined")
    with server.client() as client:
        found = checkout(client, key)
        declined = client.post(f"/checkout/{key}/card", json={"token": token(fake, CARD_DECLINED)})
        assert declined.status_code == 402, declined.text
        assert "declined" in declined.json()["detail"]
        wait_status(client, found["order_id"], CANCELLED)
        outcome_of(server, found["payment_id"], "failed")
        [(returned,)] = server.database.execute(
            "SELECT returned_epoch IS NOT NULL FROM orders WHERE order_id = :o",
            o=found["order_id"],
        )
        assert returned  # the widget is back
        assert client.get("/stats").json()["ledger"]["unaccounted"] == 0


def test_bad_or_stale_signatures_are_refused_and_change_nothing(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    with server.client() as client:
        found = checkout(client, new_key("forged"))
        body = event_body(
            "payment_intent.succeeded",
            payment_intent=found["stripe_payment_intent"],
            payment_id=found["payment_id"],
        )
        now = int(time.time())
        refused = {
            "no signature": client.post(
                "/webhooks/stripe", content=body, headers={"Content-Type": "application/json"}
            ),
            "another secret": deliver(client, fake, body, stripe_signature("whsec_other", body)),
            "stale": deliver(
                client, fake, body, stripe_signature(fake.webhook_secret, body, now - 301)
            ),
            "another body": deliver(
                client, fake, body, stripe_signature(fake.webhook_secret, body + b" ")
            ),
            "malformed": deliver(client, fake, body, "v1=deadbeef"),
        }
        for why, answer in refused.items():
            assert answer.status_code == 400, (why, answer.text)
            assert "detail" in answer.json()
        assert client.get(f"/order/{found['order_id']}").json()["order_status"] == PENDING
        assert events_of(server, found["payment_id"]) == []
        # The same body, signed right: it pays.
        paid = deliver(client, fake, body)
        assert paid.status_code == 200, paid.text
        assert paid.json()["outcome"] == "paid"
        wait_status(client, found["order_id"], DISPATCHED)


def test_the_same_event_again_and_other_types_change_nothing(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    with server.client() as client:
        found = checkout(client, new_key("replayed"))
        payment_intent, payment_id = found["stripe_payment_intent"], found["payment_id"]
        failed = event_body(
            "payment_intent.payment_failed", payment_intent=payment_intent, payment_id=payment_id
        )
        first = deliver(client, fake, failed)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "failed" and not first.json()["duplicate"]
        wait_status(client, found["order_id"], CANCELLED)
        again = deliver(client, fake, failed)
        assert again.status_code == 200, again.text
        assert again.json()["duplicate"] and again.json()["outcome"] == "failed"
        assert events_of(server, payment_id) == [("payment_intent.payment_failed", "failed")]

        for kind in ("charge.succeeded", "payment_intent.created", "customer.created"):
            other = deliver(
                client,
                fake,
                event_body(kind, payment_intent=payment_intent, payment_id=payment_id),
            )
            assert other.status_code == 200, other.text
            assert other.json()["outcome"] == "ignored"
        assert events_of(server, payment_id) == [("payment_intent.payment_failed", "failed")]
        assert client.get(f"/order/{found['order_id']}").json()["order_status"] == CANCELLED


def test_a_payment_intent_that_does_not_match_its_checkout_never_pays_it(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    with server.client() as client:
        found = checkout(client, new_key("mismatch"))
        payment_intent, payment_id = found["stripe_payment_intent"], found["payment_id"]
        # Another PaymentIntent naming the checkout, for too little, paid at Stripe: its real
        # webhook arrives, and is kept as a mismatch.
        pay_elsewhere(fake, payment_id, amount=100)
        outcome_of(server, payment_id, "mismatch")
        # The checkout's own PaymentIntent, with another amount or currency in the event.
        for amount, currency in ((PRICE_CENTS + 1, "usd"), (PRICE_CENTS, "eur")):
            body = event_body(
                "payment_intent.succeeded",
                payment_intent=payment_intent,
                payment_id=payment_id,
                amount=amount,
                currency=currency,
            )
            answer = deliver(client, fake, body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outcome"] == "mismatch", answer.json()
        assert client.get(f"/order/{found['order_id']}").json()["order_status"] == PENDING
        # The right one pays.
        fake.pay(payment_intent)
        # DISPATCHED, not PAID: at the tests' tick the order may pass PAID between two looks.
        wait_status(client, found["order_id"], DISPATCHED)
        outcomes = [outcome for _, outcome in events_of(server, payment_id)]
        assert sorted(outcomes) == ["mismatch", "mismatch", "mismatch", "paid"], outcomes


def test_a_success_after_the_cancel_is_refunded_through_stripe(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    key = new_key("late")
    with server.client() as client:
        found = checkout(client, key)
        payment_intent, payment_id = found["stripe_payment_intent"], found["payment_id"]
        assert client.post(f"/checkout/{key}/cancel").status_code == 200
        # The shopper's card was charged anyway (paid elsewhere, or just as they cancelled).
        fake.pay(payment_intent)
        outcome_of(server, payment_id, "refund_due")

        def refunded() -> dict[str, Any] | None:
            rows = client.get("/refunds").json()
            row = next(row for row in rows if row["payment_id"] == payment_id)
            return row if row["status"] == "refunded" else None

        row = wait_until(refunded, timeout=30, what="the refund through Stripe")
        assert row["provider"] == "stripe" and row["provider_payment_id"] == payment_intent
        assert row["reason"] == "cancelled" and row["refunded_by"] == "stripe"
        made = fake.client().v1.refunds.list(params={"payment_intent": payment_intent}).data
        assert [refund.id for refund in made] == [row["refund_reference"]]
        assert made[0].amount == PRICE_CENTS

        # The same event delivered again: answered, no second refund.
        [event] = [
            e
            for e in fake.client().v1.events.list(params={"type": "payment_intent.succeeded"}).data
            if e.data.object.to_dict()["id"] == payment_intent
        ]
        body = json.dumps(event.to_dict()).encode()
        again = deliver(client, fake, body)
        assert again.status_code == 200 and again.json()["duplicate"], again.text
        made = fake.client().v1.refunds.list(params={"payment_intent": payment_intent}).data
        assert len(made) == 1
        assert client.get("/stats").json()["refunds_due"] == 0


def test_the_page_is_allowed_stripe_and_nothing_else(
    stripe_shop: tuple[StoreServer, FakeStripe],
) -> None:
    server, fake = stripe_shop
    with server.client() as client:
        health = client.get("/health").json()
        assert health["stripe"] == {
            "publishable_key": "pk_test_widgetstore",
            "js_url": f"{fake.base_url}/js.stripe.com/v3/",
        }
        policy = dict(
            directive.split(" ", 1)
            for directive in client.get("/").headers["Content-Security-Policy"].split("; ")
        )
        assert policy["script-src"] == f"'self' {fake.base_url}"
        assert policy["connect-src"] == f"'self' {fake.base_url}"
        assert policy["frame-src"] == fake.base_url
        assert policy["default-src"] == "'self'"
        # Stripe.js is where the page is told it is.
        assert httpx.get(health["stripe"]["js_url"]).status_code == 200


def test_without_a_secret_key_a_payment_intent_made_elsewhere_pays_through_the_webhook(
    make_server: MakeServer, fake_stripe: FakeStripe
) -> None:
    server = make_server(start=False, **fake_stripe.store_env(secret_key=False))
    fake_stripe.send_webhooks_to(f"{server.base_url}/webhooks/stripe")
    server.start()
    key = new_key("elsewhere")
    with server.client() as client:
        found = checkout(client, key)
        assert found["stripe_payment_intent"] is None
        assert fake_stripe.payment_intents(found["payment_id"]) == []
        assert client.get("/health").json()["stripe"] is None
        assert "frame-src" not in client.get("/").headers["Content-Security-Policy"]
        absent = client.post(f"/checkout/{key}/card", json={"token": "tok_x1234"})
        assert absent.status_code == 404
        # Made by hand at Stripe (say, in its dashboard), naming the payment id.
        pay_elsewhere(fake_stripe, found["payment_id"])
        wait_status(client, found["order_id"], DISPATCHED)
        # The seed's signed webhook still works beside it.
        other = checkout(client, new_key("seed"))
        paid = server.pay(client, other["payment_id"], "paid")
        assert paid.status_code == 200, paid.text
        # A success after the cancel is a refund due; with no secret key the store cannot
        # refund it, so it stays due for the operator.
        late_key = new_key("late")
        late = checkout(client, late_key)
        assert client.post(f"/checkout/{late_key}/cancel").status_code == 200
        intent = pay_elsewhere(fake_stripe, late["payment_id"])
        outcome_of(server, late["payment_id"], "refund_due")
        [row] = [r for r in client.get("/refunds").json() if r["payment_id"] == late["payment_id"]]
        assert (row["status"], row["provider"], row["provider_payment_id"]) == (
            "due",
            "stripe",
            intent,
        )
        assert "no WIDGET_STORE_STRIPE_SECRET_KEY" in server.log_text()


@pytest.mark.crash
def test_a_crash_right_after_the_payment_intent_call_still_makes_one(
    make_server: MakeServer, fake_stripe: FakeStripe
) -> None:
    """The store dies after Stripe made the PaymentIntent and before the step's checkpoint: the
    step runs again with the same Idempotency-Key, and Stripe answers the same PaymentIntent."""
    server = make_server(
        start=False,
        WIDGET_STORE_FAULT_AFTER_STEP="create_payment_intent:called",
        **fake_stripe.store_env(),
    )
    fake_stripe.send_webhooks_to(f"{server.base_url}/webhooks/stripe")
    server.start()
    key = new_key("crash")
    with server.client() as client:
        pid = server.health()["pid"]
        with pytest.raises(httpx.TransportError):
            client.post(f"/checkout/{key}")
        server.wait_healthy(not_pid=pid)
        found = checkout(client, key)
        payment_id = found["payment_id"]
        # The call was made twice, the second answered from the first.
        assert payment_id in fake_stripe.replayed_keys()
        [intent] = fake_stripe.payment_intents(payment_id)
        assert found["stripe_payment_intent"] == intent.id
        fake_stripe.pay(intent.id)
        wait_status(client, found["order_id"], DISPATCHED)
    assert server.database.inventory() == 99


@pytest.mark.slow
def test_checkouts_recorded_before_the_payment_intent_step_replay_without_it(
    make_server: MakeServer, fake_stripe: FakeStripe
) -> None:
    """Checkouts left waiting by a release without the step (here: the store without Stripe)
    resume in Stripe mode on their old path, and are paid as before; new ones make their
    PaymentIntent behind the patch's marker."""
    server = make_server()
    old_keys = [new_key("before") for _ in range(2)]
    with server.client() as client:
        old = [checkout(client, key) for key in old_keys]
    assert server.stop() == 0
    server.env_overrides.update(fake_stripe.store_env())
    fake_stripe.send_webhooks_to(f"{server.base_url}/webhooks/stripe")
    server.start()
    with server.client() as client:
        assert server.health()["workflows_recovered"] == 2
        for key, found in zip(old_keys, old, strict=True):
            assert client.get(f"/checkout/{key}").json()["stripe_payment_intent"] is None
            paid = server.pay(client, found["payment_id"], "paid")
            assert paid.status_code == 200, paid.text
            wait_status(client, found["order_id"], DISPATCHED)
            names = [s["name"] for s in client.get(f"/workflows/checkout:{key}/steps").json()]
            assert "create_payment_intent" not in names, names
        key = new_key("after")
        new = checkout(client, key)
        names = [s["name"] for s in client.get(f"/workflows/checkout:{key}/steps").json()]
        assert names[:3] == [
            "place_order",
            "DBOS.patch-stripe-payment-intent",
            "create_payment_intent",
        ], names
        fake_stripe.pay(new["stripe_payment_intent"])
        wait_status(client, new["order_id"], DISPATCHED)
        assert client.get("/stats").json()["stranded"] == 0


def test_stripe_settings() -> None:
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET"):
        Settings(stripe_secret_key="sk_test_x")
    with pytest.raises(ValidationError, match="origin"):
        Settings(stripe_webhook_secret="whsec_x", stripe_api_base="http://host/v1")
    settings = Settings(
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret="whsec_x",
        stripe_api_base="http://127.0.0.1:8420/",
    )
    assert settings.stripe_mode
    assert settings.stripe_js_url == "http://127.0.0.1:8420/js.stripe.com/v3/"
    assert settings.stripe_origins == ("http://127.0.0.1:8420", "http://127.0.0.1:8420")
    real = Settings(stripe_secret_key="sk_live_x", stripe_webhook_secret="whsec_x")
    assert real.stripe_origins == ("https://js.stripe.com", "https://api.stripe.com")
    assert not Settings(stripe_webhook_secret="whsec_x").stripe_mode


@pytest.mark.parametrize(
    ("price", "currency", "amount"),
    [("99.99", "usd", 9999), ("0.5", "eur", 50), ("1000", "jpy", 1000), ("12.345", "usd", 1235)],
)
def test_amounts_are_in_the_currency_s_smallest_unit(
    price: str, currency: str, amount: int
) -> None:
    assert minor_units(price, currency) == amount


def test_the_tests_sign_as_stripe_does() -> None:
    """The tests' own signature and stripe-python agree, so the tests above check the store's
    use of the library, not a scheme of their own."""
    body = event_body("payment_intent.succeeded", payment_intent="pi_x", payment_id="p")
    secret = "whsec_test"
    event = stripe.Webhook.construct_event(body, stripe_signature(secret, body), secret)
    assert event.type == "payment_intent.succeeded"


def test_a_store_without_stripe_never_loads_the_library() -> None:
    """stripe-python is about 10 MiB of a process's memory: a serving process imports it only
    when Stripe is configured (shop/stripe/api.py), and the standby, which imports everything
    a start needs, does not either."""
    probe = "import sys, widget_store.server.worker; print('stripe' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "False"
