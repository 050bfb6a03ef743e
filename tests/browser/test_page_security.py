"""The security work in a real headless Chromium, against a real server on SQLite and Postgres:
the page's Content-Security-Policy enforced, another site's page unable to press the store's
buttons, /docs with nothing from another host, and the page in production mode (no sandbox
provider, no public list of orders).

The page tests end with the same checks as test_page.py's: no request left the store's host,
no console error (so no CSP violation), no uncaught error.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest

from widget_store.testing import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

from ..support import MakeServer
from .helpers import (
    PAYMENT_ID,
    PRODUCTION,
    UNAUTHORIZED,
    PageWatch,
    Shop,
    ShopFactory,
    buy,
    element_shot,
    expect,
    hash_params,
    on_payment_page,
    screenshot,
)

pytestmark = pytest.mark.browser

# Another site's page: on load it fetches POST /restock (a "simple" request, sent without a
# preflight), and its button submits a form to POST /crash_application, the classic CSRF.
ATTACKER_PAGE = """<!doctype html>
<html><head><title>Win a prize</title></head><body>
<form id="prize" method="post" action="{store}/crash_application">
  <button type="submit">Claim your prize</button>
</form>
<script>
  window.restocked = fetch("{store}/restock", {{ method: "POST", mode: "no-cors" }})
    .then(() => "sent", (error) => String(error));
</script>
</body></html>
"""


@contextmanager
def attacker_site(store: str) -> Iterator[str]:
    """A tiny web server on another port, reached as `localhost` (the store is 127.0.0.1), so
    the browser sees another site, whose one page goes for the store's buttons."""
    body = ATTACKER_PAGE.format(store=store).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_press_the_buttons(
    make_server: MakeServer, browser: Browser, shop_factory: ShopFactory
) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 3")
    before = server.health()
    context = browser.new_context()
    try:
        page = context.new_page()
        with attacker_site(server.base_url) as site:
            with page.expect_response(f"{server.base_url}/restock") as restocked:
                page.goto(site + "/")
            assert restocked.value.status == 403
            assert page.evaluate("window.restocked") == "sent"

            with page.expect_navigation() as crashed:
                page.get_by_role("button", name="Claim your prize").click()
            answer = crashed.value
            assert answer is not None and answer.status == 403
            sent = answer.request.all_headers()
            assert (answer.request.method, sent["sec-fetch-site"]) == ("POST", "cross-site")
            assert sent["origin"] == site
            assert "cross-site" in answer.json()["detail"]
    finally:
        context.close()

    # Had the crash gone through, the process would have exited 50 ms after answering.
    assert server.health()["pid"] == before["pid"]
    assert server.health()["restart_count"] == 0
    assert server.client().get("/product").json()["inventory"] == 3
    log = server.log_text()
    assert "POST /restock 403" in log and "POST /crash_application 403" in log

    # The store's own page still presses them: the cockpit's Restock here (the crash button has
    # a test of its own in test_page.py).
    shop = shop_factory(server).open()
    expect(shop.by("inventory")).to_have_text("3")
    shop.by("operator-restock").click()
    expect(shop.by("inventory")).to_have_text("100")
    expect(shop.by("operator-message")).to_contain_text("Restocked")
    assert server.health()["pid"] == before["pid"]
    shop.watch.assert_clean()


def test_the_policy_is_enforced_in_the_browser(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    """The header is not decoration: Chromium refuses an inline script and a style attribute
    on the store page, and reports each as a violation of the policy."""
    shop = shop_factory(make_server()).open()
    violations = shop.page.evaluate(
        """async () => {
          const seen = [];
          document.addEventListener("securitypolicyviolation", (event) =>
            seen.push(event.effectiveDirective));
          const script = document.createElement("script");
          script.textContent = "window.__inlineRan = true";
          document.body.append(script);
          const styled = document.createElement("p");
          styled.setAttribute("style", "color: red");
          document.body.append(styled);
          await new Promise((resolve) => setTimeout(resolve, 200));
          return { seen, ran: window.__inlineRan === true, color: getComputedStyle(styled).color };
        }"""
    )
    assert violations["ran"] is False
    assert violations["color"] != "rgb(255, 0, 0)"
    assert sorted(set(violations["seen"])) == ["script-src-elem", "style-src-attr"], violations
    # Those two violations are the only console errors, and they are the test's own doing.
    errors = [text for text, _ in shop.watch.console_errors]
    assert len(errors) == 2 and all("Content Security Policy" in text for text in errors), errors


def operation(page: Page, method: str, path: str) -> Locator:
    """Swagger UI's block for one operation."""
    summary = page.locator(".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$"))
    return page.locator(f".opblock-{method.lower()}").filter(has=summary)


def test_docs_work_offline(make_server: MakeServer, browser: Browser, backend: str) -> None:
    server = make_server()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        watch = PageWatch(server.base_url).attach(page)
        page.goto(server.base_url + "/docs")
        with server.client() as client:
            schema = client.get("/openapi.json").json()
        operations = [
            (method.upper(), path) for path, item in schema["paths"].items() for method in item
        ]
        blocks = page.locator(".opblock")
        expect(blocks).to_have_count(len(operations))
        expect(page.locator(".info .title")).to_contain_text("Widget Store")
        for method, path in operations:
            block = page.locator(f".opblock-{method.lower()}").filter(
                has=page.locator(
                    ".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$")
                )
            )
            expect(block).to_have_count(1)

        # Try it out: GET /product from the docs, same origin, under the same policy.
        product = operation(page, "GET", "/product")
        product.locator(".opblock-summary").click()
        product.get_by_role("button", name="Try it out").click()
        with page.expect_response(f"{server.base_url}/product") as answered:
            product.get_by_role("button", name="Execute").click()
        assert answered.value.status == 200
        status = product.locator(".live-responses-table tbody .response-col_status")
        expect(status.first).to_have_text("200")
        expect(product.locator(".live-responses-table")).to_contain_text("Premium Quality Widget")
        screenshot(page, backend, "docs", full_page=False)

        assert f"{server.base_url}/static/vendor/swagger-ui/swagger-ui-bundle.js" in watch.requests
        assert watch.foreign_requests() == []
        watch.assert_clean()
    finally:
        context.close()


def test_production_payment_waits_for_the_provider_and_lists_own_orders(
    production_shop: Shop,
) -> None:
    shop = production_shop
    server = shop.server
    # The operator panel asks once for its figures and workflows, and is told 401.
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.open()
        shop.expect_operator_locked()
        expect(shop.by("token-form")).to_be_visible()
        expect(shop.by("recent-title")).to_have_text("Your recent orders")
        expect(shop.by("recent-empty")).to_have_text("No orders from this browser yet.")

        # Somebody else's order, which this browser must not list.
        with server.client() as client:
            assert client.post("/checkout/someone-else").status_code == 200

        key, payment = buy(shop)
    expect(shop.by("payment-id")).to_have_text(PAYMENT_ID)
    expect(shop.by("pay-title")).to_have_text("Complete your payment")
    expect(shop.by("pay-instructions")).to_be_visible()
    expect(shop.by("pay-waiting")).to_be_visible()
    expect(shop.by("pay")).to_be_hidden()
    expect(shop.by("decline")).to_be_hidden()
    expect(shop.by("pay-actions")).to_be_hidden()
    expect(shop.by("cancel-order")).to_be_visible()
    assert shop.page.title() == "Pay · Widget Store"
    [(order_id, _)] = shop.orders_for_key(key)
    mine = shop.by("recent-orders").locator(f'[data-order-id="{order_id}"]')
    expect(mine).to_have_attribute("data-status", "PENDING")
    shop.shot("payment-production")

    # A reload keeps the shopper on the payment page, still without the sandbox's buttons.
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.page.reload()
        shop.expect_operator_locked()
    expect(shop.by("view-pay")).to_be_visible()
    expect(shop.by("payment-id")).to_have_text(payment)
    expect(shop.by("pay-waiting")).to_be_visible()
    expect(shop.by("pay")).to_be_hidden()

    # The shopper pays at the provider, whose signed webhook reaches the store: the page moves
    # on to the order by itself.
    with server.client() as client:
        paid = server.pay(client, payment, "paid")
        assert paid.status_code == 200, paid.text
    expect(shop.by("view-order")).to_be_visible()
    assert hash_params(shop.page.url) == ("order", {"id": str(order_id), "key": key})
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    expect(mine).to_have_attribute("data-status", "DISPATCHED")

    # A second purchase, declined at the provider: it ends cancelled, listed above the first.
    shop.by("buy-another").click()
    second_key, second_payment = on_payment_page(shop)
    with server.client() as client:
        assert server.pay(client, second_payment, "failed").status_code == 200
    expect(shop.by("order-status")).to_have_attribute("data-status", "CANCELLED")
    [(second_id, _)] = shop.orders_for_key(second_key)
    listed = shop.by("recent-orders").locator("li")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_have_attribute("data-order-id", str(second_id))
    expect(listed.nth(0)).to_have_attribute("data-status", "CANCELLED")
    expect(listed.nth(1)).to_have_attribute("data-order-id", str(order_id))
    element_shot(shop, shop.by("recent-orders"), "recent-orders-production")

    # The list is the browser's own and outlives a reload; it never asked for every order.
    loads = shop.watch.loads
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.page.goto(server.base_url + "/#/store")
        shop.page.reload()
        shop.expect_operator_locked()
    assert shop.watch.loads == loads + 1
    expect(listed).to_have_count(2)
    expect(listed.nth(1)).to_have_attribute("data-status", "DISPATCHED")
    requests = shop.watch.requests
    assert not [url for url in requests if "/orders" in url or "/sandbox/" in url], requests
    shop.watch.assert_clean()


def test_production_order_that_times_out_unpaid_ends_the_wait(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server(**PRODUCTION, WIDGET_STORE_PAYMENT_TIMEOUT_S="2")
    shop = shop_factory(server)
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.open()
        shop.expect_operator_locked()
        key, _ = buy(shop)
    expect(shop.by("pay-waiting")).to_be_visible()
    # Nobody pays: the checkout gives the widget back, and the page says how it ended.
    expect(shop.by("view-order")).to_be_visible(timeout=20_000)
    expect(shop.by("order-status")).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("buy-another")).to_be_visible()
    assert [status for _, status in shop.orders_for_key(key)] == [-1]

    def inventory_back() -> bool | None:
        return True if httpx.get(f"{server.base_url}/product").json()["inventory"] == 100 else None

    wait_until(inventory_back, timeout=10, what="the widget back on the shelf")
    shop.watch.assert_clean()
