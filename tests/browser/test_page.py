"""The store page in a real headless Chromium, against a real server on SQLite and Postgres.

Every test ends with the same checks: no request left the store's host, no console error and
no uncaught error in the page (the crash test tolerates, while the server is away, exactly the
failed requests Chromium logs for a dead server).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Route

from ..support import HTML_DIR, MakeServer
from .helpers import (
    PAYMENT_ID,
    PHONE,
    UNAUTHORIZED,
    Shop,
    ShopFactory,
    buy,
    element_shot,
    expect,
    hash_params,
    http_error,
    on_payment_page,
)

pytestmark = pytest.mark.browser

# Long enough to watch the progress bar move at the page's 500 ms poll.
SLOW_TICK = {"WIDGET_STORE_DISPATCH_TICK_S": "0.4"}


def progress_seen(shop: Shop) -> list[tuple[str, int]]:
    return [(status, value) for status, value in shop.page.evaluate("window.__progressSeen")]


def test_buy_pay_and_watch_dispatch(make_server: MakeServer, shop_factory: ShopFactory) -> None:
    shop = shop_factory(make_server(**SLOW_TICK)).open()
    before = shop.inventory()
    expect(shop.by("inventory")).to_have_text(str(before))
    expect(shop.by("stock-message")).to_have_text("In stock")
    expect(shop.by("price")).to_have_text("$99.99")
    expect(shop.by("buy")).to_be_enabled()
    shop.shot("store")

    key, payment = buy(shop)
    expect(shop.by("amount")).to_have_text("$99.99")
    expect(shop.by("pay-product")).to_have_text("Premium Quality Widget")
    shop.shot("payment")

    shop.by("pay").click()
    expect(shop.by("view-order")).to_be_visible()
    [(order_id, _)] = shop.orders_for_key(key)
    assert hash_params(shop.page.url) == ("order", {"id": str(order_id), "key": key})
    expect(shop.by("order-id")).to_have_text(f"#{order_id}")

    progress = shop.page.get_by_role("progressbar", name="Dispatch progress", exact=True)
    expect(progress).to_have_attribute("aria-valuemax", "10")
    # Mid-dispatch: PAID, some steps done, some to go.
    expect(shop.by("order-status")).to_have_attribute("data-status", "PAID")
    expect(progress).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]$"))
    expect(shop.by("timeline").locator('[data-step="dispatching"]')).to_have_attribute(
        "data-state", "current"
    )
    shop.shot("order-dispatching")

    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    expect(shop.by("order-status")).to_have_text("Dispatched")
    expect(progress).to_have_attribute("aria-valuenow", "10")
    expect(shop.by("progress-text")).to_have_text("10 / 10")
    expect(shop.by("buy-another")).to_be_visible()
    recent = shop.by("recent-orders").locator(f'[data-order-id="{order_id}"]')
    expect(recent).to_have_attribute("data-status", "DISPATCHED")
    shop.shot("order-dispatched")

    seen = [value for status, value in progress_seen(shop) if status in ("PAID", "DISPATCHED")]
    assert seen == sorted(seen), f"the progress bar went backwards: {seen}"
    assert any(0 < value < 10 for value in seen), f"no step shown mid-dispatch: {seen}"
    assert seen[-1] == 10
    assert shop.orders_for_key(key) == [(order_id, 1)]

    shop.by("back-to-store").click()
    expect(shop.by("view-store")).to_be_visible()
    expect(shop.by("inventory")).to_have_text(str(before - 1))
    assert payment
    shop.watch.assert_clean()


def test_decline_cancels_and_returns_the_widget(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(make_server()).open()
    original = shop.inventory()
    expect(shop.by("inventory")).to_have_text(str(original))

    key, _ = buy(shop)
    # The widget is reserved while the shopper decides (the page polls the stock).
    expect(shop.by("inventory")).to_have_text(str(original - 1))

    shop.by("decline").click()
    expect(shop.by("view-order")).to_be_visible()
    expect(shop.by("order-status")).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("order-status")).to_have_text("Cancelled")
    timeline = shop.by("timeline")
    expect(timeline.locator('[data-step="cancelled"]')).to_be_visible()
    expect(timeline.locator('[data-step="cancelled"]')).to_have_attribute("data-state", "failed")
    expect(timeline.locator('[data-step="dispatched"]')).to_be_hidden()
    expect(shop.by("progress-block")).to_be_hidden()
    [(order_id, status)] = shop.orders_for_key(key)
    assert status == -1
    shop.shot("order-cancelled")

    # "Buy another" is offered; the store shows the widget back on the shelf.
    expect(shop.by("buy-another")).to_be_visible()
    shop.by("back-to-store").click()
    expect(shop.by("view-store")).to_be_visible()
    expect(shop.by("inventory")).to_have_text(str(original))
    expect(shop.by("buy")).to_have_text("Buy Now")
    assert shop.inventory() == original
    recent = shop.by("recent-orders").locator(f'[data-order-id="{order_id}"]')
    expect(recent).to_have_attribute("data-status", "CANCELLED")
    shop.watch.assert_clean()


@pytest.mark.crash
def test_crash_mid_dispatch_shows_banner_and_order_still_dispatches(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server(WIDGET_STORE_DISPATCH_TICK_S="0.5")
    shop = shop_factory(server).open()
    page_load_id = shop.page.evaluate("window.widgetStore.pageLoadId")
    key, _ = buy(shop)
    shop.by("pay").click()
    expect(shop.by("view-order")).to_be_visible()
    [(order_id, _)] = shop.orders_for_key(key)
    order_url = shop.page.url

    progress = shop.by("progress")
    expect(shop.by("order-status")).to_have_attribute("data-status", "PAID")
    expect(progress).to_have_attribute("aria-valuenow", re.compile(r"^[2-8]$"))
    panel = shop.by("operator-panel")
    row = shop.by("workflows-table").locator(f'[data-workflow-id="dispatch:{order_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("dispatch")
    expect(row).to_contain_text("PENDING")
    health = server.health()
    expect(shop.by("restart-count")).to_have_text(str(health["restart_count"]))
    element_shot(shop, panel, "operator-panel")

    with shop.watch.server_away():
        shop.by("crash").click()
        banner = shop.by("banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Store restarting: your order is safe")
        shop.page.evaluate("window.scrollTo(0, 0)")
        shop.shot("restarting-banner", full_page=False)
        back = server.wait_healthy(not_pid=health["pid"])
        expect(banner).to_be_hidden(timeout=30_000)

    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=60_000)
    expect(progress).to_have_attribute("aria-valuenow", "10")
    # One click, one crash: the restarted server must not be crashed a second time.
    assert back["restart_count"] == health["restart_count"] + 1
    expect(shop.by("restart-count")).to_have_text(str(back["restart_count"]))
    expect(shop.by("operator-message")).to_contain_text("Crashed")
    # The same page carried on: no reload, same URL, same order.
    assert shop.watch.loads == 1
    assert shop.page.evaluate("window.widgetStore.pageLoadId") == page_load_id
    assert shop.page.url == order_url
    assert shop.orders_for_key(key) == [(order_id, 1)]
    assert server.health()["restart_count"] == back["restart_count"]
    shop.watch.assert_clean()


def test_low_stock_and_sold_out(make_server: MakeServer, shop_factory: ShopFactory) -> None:
    server = make_server()
    shop = shop_factory(server).open()
    expect(shop.by("buy")).to_be_enabled()

    server.database.execute("UPDATE products SET inventory = 3")
    shop.page.reload()
    expect(shop.by("stock-message")).to_have_text("Only 3 left")
    expect(shop.by("inventory")).to_have_text("3")
    expect(shop.by("buy")).to_be_enabled()

    server.database.execute("UPDATE products SET inventory = 0")
    shop.page.reload()
    expect(shop.by("inventory")).to_have_text("0")
    expect(shop.by("stock-message")).to_have_text("Sold out")
    expect(shop.by("buy")).to_be_disabled()
    expect(shop.by("store-message")).to_contain_text("Sold out")
    shop.shot("store-sold-out")

    # The operator's restock (in the cockpit: the shop view has no operator button) puts the
    # widget back on sale, without a reload.
    expect(shop.by("view-store").locator('[data-testid="restock"]')).to_have_count(0)
    shop.by("operator-restock").click()
    expect(shop.by("inventory")).to_have_text("100")
    expect(shop.by("buy")).to_be_enabled()
    expect(shop.by("stock-message")).to_have_text("In stock")
    expect(shop.by("operator-message")).to_contain_text("Restocked")
    shop.watch.assert_clean()


def test_buy_when_it_sold_out_meanwhile(make_server: MakeServer, shop_factory: ShopFactory) -> None:
    """The page still shows stock, the store has none left: 404, and no checkout lingers."""
    server = make_server()
    shop = shop_factory(server)
    stale = {**server.client().get("/product").json(), "inventory": 5}
    shop.page.route("**/product", lambda route: route.fulfill(json=stale))
    shop.open()
    expect(shop.by("stock-message")).to_have_text("Only 5 left")
    server.database.execute("UPDATE products SET inventory = 0")

    with shop.watch.tolerating(http_error(404, "Not Found")):
        shop.by("buy").click()
        expect(shop.by("store-message")).to_contain_text("Sold out")
    assert len(shop.watch.tolerated) == 1
    assert hash_params(shop.page.url)[0] == "store"
    assert shop.page.evaluate("localStorage.getItem('widget-store:checkout')") is None

    shop.page.unroute("**/product")
    expect(shop.by("stock-message")).to_have_text("Sold out")
    expect(shop.by("buy")).to_be_disabled()
    assert shop.inventory() == 0
    shop.watch.assert_clean()


def test_paying_a_checkout_that_timed_out_shows_it_ended(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="1")
    shop = shop_factory(server).open()
    original = shop.inventory()
    key, _ = buy(shop)
    # The checkout stops waiting for the payment, cancels and puts the widget back.
    newest = shop.by("recent-orders").locator("li").first
    expect(newest).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("inventory")).to_have_text(str(original))

    with shop.watch.tolerating(http_error(409, "Conflict")):
        shop.by("pay").click()
        expect(shop.by("pay-message")).to_contain_text("This checkout already ended")
    assert len(shop.watch.tolerated) == 1
    expect(shop.by("pay")).to_be_disabled()
    expect(shop.by("decline")).to_be_disabled()
    shop.shot("payment-ended")

    shop.by("start-over").click()
    expect(shop.by("view-store")).to_be_visible()
    expect(shop.by("buy")).to_have_text("Buy Now")
    new_key, _ = buy(shop)
    assert new_key != key
    assert [status for _, status in shop.orders_for_key(key)] == [-1]
    shop.watch.assert_clean()


def test_reload_on_payment_page_continues_the_same_checkout(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server()
    shop = shop_factory(server).open()
    key, payment = buy(shop)
    pay_url = shop.page.url

    shop.page.reload()
    expect(shop.by("view-pay")).to_be_visible()
    expect(shop.by("payment-id")).to_have_text(payment)
    assert shop.page.url == pay_url

    # A fresh visit to "/" (say, a retry after a crash) continues it too.
    shop.page.goto(server.base_url + "/")
    expect(shop.by("view-pay")).to_be_visible()
    expect(shop.by("payment-id")).to_have_text(payment)
    assert hash_params(shop.page.url) == ("pay", {"key": key, "payment": payment})

    # Back in the store, Buy Now continues this checkout rather than starting a second one.
    shop.page.goto(server.base_url + "/#/store")
    expect(shop.by("buy")).to_have_text("Continue checkout")
    assert buy(shop) == (key, payment)

    assert len(shop.orders_for_key(key)) == 1
    assert server.database.execute("SELECT count(*) FROM orders")[0][0] == 1

    shop.by("pay").click()
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    # The purchase is over: the next one gets a key of its own.
    shop.by("buy-another").click()
    new_key, new_payment = on_payment_page(shop)
    assert new_key != key and new_payment != payment
    assert server.database.execute("SELECT count(*) FROM orders")[0][0] == 2
    shop.watch.assert_clean()


def test_buy_now_retries_with_the_same_key(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    """A dropped connection, then a 503, then the answer: one key throughout, one order."""
    server = make_server()
    shop = shop_factory(server).open()
    seen: list[str] = []

    def flaky(route: Route) -> None:
        seen.append(route.request.url)
        if len(seen) == 1:
            route.abort("connectionreset")
        elif len(seen) == 2:
            route.fulfill(status=503, json={"detail": "The checkout is still starting"})
        else:
            route.continue_()

    shop.page.route("**/checkout/*", flaky)
    with shop.watch.server_away():
        key, payment = buy(shop)
    assert len(seen) == 3
    assert {url.rsplit("/", 1)[1] for url in seen} == {key}
    assert len(shop.orders_for_key(key)) == 1
    expect(shop.by("banner")).to_be_hidden()
    assert len(shop.watch.tolerated) == 2
    assert payment
    shop.watch.assert_clean()


def test_production_mode_hides_crash_and_asks_for_the_operator_token(production_shop: Shop) -> None:
    shop = production_shop
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.open()
        expect(shop.by("crash")).to_be_hidden()
        expect(shop.by("token-form")).to_be_visible()
        shop.expect_operator_locked()
        shop.by("operator-restock").click()
        expect(shop.by("operator-message")).to_contain_text("needs the operator token")

        shop.enter_operator_token()
        expect(shop.by("workflows-empty")).to_have_text("No workflows in flight.")
    assert shop.watch.tolerated
    key, _ = buy(shop)
    row = shop.by("workflows-table").locator(f'[data-workflow-id="checkout:{key}"]')
    expect(row).to_contain_text("PENDING")
    shop.by("operator-restock").click()
    expect(shop.by("operator-message")).to_contain_text("Restocked")
    expect(shop.by("inventory")).to_have_text("100")
    shop.watch.assert_clean()


def test_no_request_leaves_the_store(make_server: MakeServer, shop_factory: ShopFactory) -> None:
    shop = shop_factory(make_server()).open()
    key, _ = buy(shop)
    shop.by("pay").click()
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    shop.by("recent-orders").locator("a").first.click()
    expect(shop.by("view-order")).to_be_visible()
    shop.by("operator-restock").click()
    expect(shop.by("operator-message")).to_contain_text("Restocked")
    shop.page.reload()
    expect(shop.by("view-order")).to_be_visible()

    urls = shop.watch.requests
    base = shop.server.base_url
    assert f"{base}/" in urls
    assert {f"{base}/static/js/main.js", f"{base}/static/app.css"} <= set(urls)
    assert shop.watch.foreign_requests() == []
    shop.watch.assert_clean()
    assert key

    # And nothing in the page's own files points anywhere else (html/vendor/ holds third-party
    # code served to /docs only, whose own test checks it loads nothing from elsewhere).
    for path in HTML_DIR.rglob("*"):
        if not path.is_file() or "vendor" in path.relative_to(HTML_DIR).parts:
            continue
        text = path.read_text()
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name


def test_phone_keyboard_flow_has_no_console_errors(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    shop = shop_factory(make_server(**SLOW_TICK), viewport=PHONE).open()
    page = shop.page

    def no_sideways_scroll() -> None:
        width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert width <= 0, f"the page is {width}px wider than the phone"

    no_sideways_scroll()
    shop.shot("phone-store")

    def tab_to(test_id: str) -> None:
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement?.dataset.testid") == test_id:
                return
        raise AssertionError(f"{test_id} is not reachable with the Tab key")

    tab_to("buy")
    page.keyboard.press("Enter")
    expect(shop.by("view-pay")).to_be_visible()
    expect(shop.by("payment-id")).to_have_text(PAYMENT_ID)
    no_sideways_scroll()
    shop.shot("phone-payment")

    tab_to("pay")
    page.keyboard.press("Enter")
    expect(shop.by("view-order")).to_be_visible()
    expect(shop.by("order-status")).to_have_attribute("data-status", "PAID")
    expect(shop.by("announcer")).to_contain_text("being dispatched")
    expect(shop.by("progress")).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]$"))
    no_sideways_scroll()
    shop.shot("phone-order-dispatching")
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    expect(shop.by("announcer")).to_contain_text("Dispatched")
    no_sideways_scroll()
    shop.shot("phone-order-dispatched")

    # The operator's buttons are reachable too.
    tab_to("operator-restock")
    page.keyboard.press("Enter")
    expect(shop.by("operator-message")).to_contain_text("Restocked")
    tab_to("crash")

    assert shop.watch.console_errors == []
    assert shop.watch.page_errors == []
    shop.watch.assert_clean()
