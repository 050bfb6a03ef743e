"""The shop page's first paint: the product and its stock are in the HTML the server sends, so
they show at once, before the script has read anything; and the shop view has no operator
button (Restock, crash and the built-in shoppers are in the cockpit)."""

from __future__ import annotations

import time

import httpx
import pytest

from ..support import MakeServer
from .helpers import PHONE, ShopFactory, expect

pytestmark = pytest.mark.browser


def test_the_html_carries_the_stock(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 7")
    page = httpx.get(server.base_url + "/").text
    assert 'data-level="low"' in page and "Only 7 left" in page
    assert '<span data-testid="inventory">7</span>' in page
    assert "Checking stock" not in page


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_product_and_stock_show_within_a_second(
    make_server: MakeServer, shop_factory: ShopFactory, phone: bool
) -> None:
    server = make_server()
    shop = shop_factory(server, **({"viewport": PHONE} if phone else {}))
    started = time.monotonic()
    shop.page.goto(server.base_url + "/", wait_until="commit")
    expect(shop.by("product-name")).to_be_visible(timeout=1000)
    expect(shop.by("stock-message")).to_have_text("In stock", timeout=1000)
    expect(shop.by("inventory")).to_have_text("100", timeout=1000)
    expect(shop.by("price")).to_have_text("$99.99", timeout=1000)
    assert time.monotonic() - started < 1.5
    buttons = shop.by("view-store").locator("button")
    expect(buttons).to_have_count(1)
    expect(buttons.first).to_have_attribute("data-testid", "buy")
    expect(shop.by("server-pill")).to_have_attribute("data-state", "online", timeout=30_000)
    shop.watch.assert_clean()
