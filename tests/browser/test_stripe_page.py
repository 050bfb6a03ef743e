"""The page in Stripe mode, in a real headless Chromium: the store against localstripe (a fake
Stripe run as a server, widget_store/testing/stripe.py), whose Stripe.js the page loads. Buy
Now, a card typed into Stripe.js's card element, the token sent to the store, Stripe's webhook,
the order DISPATCHED, with the crash button pressed in between; and a declined card ending
CANCELLED with the widget back. The page talks to the store and to that Stripe only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from widget_store.testing import StoreServer
from widget_store.testing.stripe import CARD_DECLINED, CARD_OK, FakeStripe

from ..support import CANCELLED, DISPATCHED, MakeServer
from .helpers import Shop, ShopFactory, buy, expect, http_error

pytestmark = pytest.mark.browser

# localstripe's card that asks for 3-D Secure: the PaymentIntent waits in requires_action.
CARD_3DS = "4000002500003155"
# What Chromium logs for the store's 402 to a declined card.
PAYMENT_REQUIRED = http_error(402, "Payment Required")


@pytest.fixture
def stripe_server(
    make_server: MakeServer, tmp_path: Path
) -> Iterator[tuple[StoreServer, FakeStripe]]:
    """A store in Stripe mode on a localstripe of its own, which sends it its webhooks."""
    fake = FakeStripe(tmp_path / "localstripe").start()
    try:
        server = make_server(start=False, WIDGET_STORE_DISPATCH_TICK_S="0.4", **fake.store_env())
        fake.send_webhooks_to(f"{server.base_url}/webhooks/stripe")
        yield server.start(), fake
    finally:
        fake.stop()


def type_card(shop: Shop, number: str) -> None:
    """Type a card into localstripe's card element (its own fields, in the page)."""
    element = shop.by("card-element")
    expect(element.locator("input")).to_have_count(5, timeout=20_000)
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "75001"),
    ):
        element.locator(f'input[placeholder="{field}"]').fill(value)


def only_store_and_stripe(shop: Shop, fake: FakeStripe) -> None:
    """Every request went to the store or to the configured Stripe; and no error."""
    elsewhere = [url for url in shop.watch.foreign_requests() if not url.startswith(fake.base_url)]
    assert not elsewhere, f"requests left the store and its Stripe: {elsewhere}"
    assert any(url.startswith(f"{fake.base_url}/js.stripe.com/v3/") for url in shop.watch.requests)
    assert any(url.startswith(f"{fake.base_url}/v1/tokens") for url in shop.watch.requests)
    assert not shop.watch.page_errors, shop.watch.page_errors
    assert not shop.watch.console_errors, shop.watch.console_errors


@pytest.mark.crash
def test_a_card_pays_through_stripe_across_a_crash(
    stripe_server: tuple[StoreServer, FakeStripe], shop_factory: ShopFactory
) -> None:
    server, fake = stripe_server
    shop = shop_factory(server).open()
    key, payment_id = buy(shop)
    expect(shop.by("view-pay")).to_have_attribute("data-mode", "stripe")
    expect(shop.by("card-form")).to_be_visible()
    expect(shop.by("pay-actions")).to_be_hidden()  # no sandbox Pay or Decline
    type_card(shop, CARD_OK)
    shop.shot("stripe-card")
    health = server.health()
    shop.by("card-pay").click()
    expect(shop.by("pay-message")).to_contain_text("Waiting for Stripe", timeout=20_000)

    # The card is with the store and Stripe charged it; the store dies before the order ships.
    with shop.watch.server_away():
        shop.by("crash").click()
        expect(shop.by("banner")).to_be_visible()
        server.wait_healthy(not_pid=health["pid"])
        expect(shop.by("banner")).to_be_hidden(timeout=30_000)

    expect(shop.by("view-order")).to_be_visible(timeout=60_000)
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=60_000)
    [(order_id, status)] = shop.orders_for_key(key)
    assert status == DISPATCHED
    assert server.health()["restart_count"] == health["restart_count"] + 1
    [intent] = fake.payment_intents(payment_id)
    assert intent.status == "succeeded"
    assert shop.inventory() == 99
    assert shop.watch.loads == 1
    only_store_and_stripe(shop, fake)


def test_a_declined_card_ends_cancelled_with_the_widget_back(
    stripe_server: tuple[StoreServer, FakeStripe], shop_factory: ShopFactory
) -> None:
    server, fake = stripe_server
    shop = shop_factory(server).open()
    key, payment_id = buy(shop)
    assert shop.inventory() == 99
    type_card(shop, CARD_DECLINED)
    # The store answers the declined card 402, which Chromium logs.
    with shop.watch.tolerating(PAYMENT_REQUIRED):
        shop.by("card-pay").click()
        expect(shop.by("pay-message")).to_contain_text("declined", timeout=20_000)
        expect(shop.by("order-status")).to_have_attribute(
            "data-status", "CANCELLED", timeout=30_000
        )
    [(_, status)] = shop.orders_for_key(key)
    assert status == CANCELLED
    assert shop.inventory() == 100
    [intent] = fake.payment_intents(payment_id)
    assert intent.status == "requires_payment_method"
    only_store_and_stripe(shop, fake)


def test_a_card_that_asks_for_authentication_pays_once_the_shopper_confirms(
    stripe_server: tuple[StoreServer, FakeStripe], shop_factory: ShopFactory
) -> None:
    """The store's confirmation answers requires_action; the page hands the PaymentIntent's
    client secret to Stripe.js, whose authentication step (localstripe's dialog) completes it."""
    server, fake = stripe_server
    shop = shop_factory(server).open()
    key, payment_id = buy(shop)
    type_card(shop, CARD_3DS)
    shop.by("card-pay").click()
    confirm = shop.page.get_by_role("button", name="Complete authentication")
    expect(confirm).to_be_visible(timeout=20_000)
    confirm.click()
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=60_000)
    [(_, status)] = shop.orders_for_key(key)
    assert status == DISPATCHED
    [intent] = fake.payment_intents(payment_id)
    assert intent.status == "succeeded"
    only_store_and_stripe(shop, fake)
