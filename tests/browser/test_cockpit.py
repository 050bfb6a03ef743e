"""The operator's cockpit in a real headless Chromium, against a real server on SQLite and
Postgres: built-in shoppers started from the page, the crash button pressed under load, the live
figures (throughput chart with restart marks, orders by state, the stock ledger), a workflow's
checkpointed steps, and the shopper's own cancel.

Every test ends with the same checks as the store page's: no request left the store's host, no
console error and no uncaught error in the page (while the server is deliberately away, exactly
the failed requests Chromium logs for a dead server are tolerated).
"""

from __future__ import annotations

import re

import pytest

from widget_store.testing import StoreServer, wait_until

from ..support import MakeServer
from .helpers import (
    PHONE,
    UNAUTHORIZED,
    Shop,
    ShopFactory,
    buy,
    element_shot,
    expect,
    hash_params,
    http_error,
    no_sideways_scroll,
    on_payment_page,
)

pytestmark = pytest.mark.browser

# Abandoned checkouts time out in 3 s and a dispatch takes 2 s, so the store goes quiet soon
# after the shoppers stop.
QUICK_ENDINGS = {"WIDGET_STORE_PAYMENT_TIMEOUT_S": "3", "WIDGET_STORE_DISPATCH_TICK_S": "0.2"}
STEP_DURATION = re.compile(r"^(\d+ ms|\d+\.\d+ s|running…)$")


def count_orders(server: StoreServer, where: str = "1 = 1") -> int:
    return int(server.database.execute(f"SELECT count(*) FROM orders WHERE {where}")[0][0])


def wait_for_more_orders(server: StoreServer, than: int, what: str, more: int = 20) -> int:
    """The built-in shoppers keep buying: wait for `more` orders than `than`, and say how many."""
    return wait_until(
        lambda: (n := count_orders(server)) >= than + more and n or None,
        timeout=90,
        interval=0.25,
        what=what,
    )


def figure(shop: Shop, test_id: str) -> int:
    return int((shop.by(test_id).text_content() or "").replace(",", ""))


def crash_from_the_panel(shop: Shop, server: StoreServer) -> dict:
    """Press the page's crash button; return /health of the process that replaced the old one."""
    health = server.health()
    with shop.watch.server_away():
        expect(shop.by("crash")).to_be_enabled(timeout=30_000)
        shop.by("crash").click()
        back = server.wait_healthy(timeout=90, not_pid=health["pid"])
        # The page notices on its own: the restart count it shows goes up, the banner goes.
        expect(shop.by("restart-count")).to_have_text(
            str(health["restart_count"] + 1), timeout=60_000
        )
        expect(shop.by("banner")).to_be_hidden(timeout=60_000)
    assert back["restart_count"] == health["restart_count"] + 1, "one click, one crash"
    return back


@pytest.mark.crash
@pytest.mark.timeout(480)
def test_shoppers_two_crashes_and_the_ledger_still_adds_up(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server(**QUICK_ENDINGS)
    shop = shop_factory(server).open()
    page = shop.page
    page_load_id = page.evaluate("window.widgetStore.pageLoadId")

    # The form, with its defaults, and what is running (nothing yet).
    expect(shop.by("load-panel")).to_be_visible()
    expect(shop.by("load-shoppers")).to_have_value("8")
    expect(shop.by("load-pay")).to_have_value("8")
    expect(shop.by("load-decline")).to_have_value("1")
    expect(shop.by("load-abandon")).to_have_value("1")
    expect(shop.by("load-mix")).to_contain_text("80% pay · 10% decline · 10% abandon")
    expect(shop.by("load-state")).to_have_attribute("data-running", "false")
    expect(shop.by("figures")).to_be_visible()
    expect(shop.by("throughput-bar")).to_have_count(0)
    expect(shop.by("restart-mark")).to_have_count(0)

    # A number out of range is refused by the page itself, with the field marked.
    shop.by("load-shoppers").fill("65")
    shop.by("load-start").click()
    expect(shop.by("load-message")).to_contain_text("Shoppers: enter a whole number from 1 to 64")
    expect(shop.by("load-shoppers")).to_have_attribute("aria-invalid", "true")
    expect(shop.by("load-shoppers")).to_be_focused()
    assert not [url for url in shop.watch.requests if url.endswith("/load")]

    shop.by("load-shoppers").fill("8")
    shop.by("load-start").click()
    expect(shop.by("load-state")).to_have_attribute("data-running", "true")
    expect(shop.by("load-state")).to_contain_text("8 shoppers")
    expect(shop.by("load-message")).to_contain_text("Started 8 shoppers")
    assert server.client().get("/load").json()["running"] is True

    # Purchases show up on the chart without a reload.
    expect(shop.by("throughput-bar").first).to_be_attached(timeout=60_000)
    orders = wait_for_more_orders(server, 10, "the shoppers' first orders")

    first = crash_from_the_panel(shop, server)
    expect(shop.by("fig-restarts")).to_have_text(str(first["restart_count"]), timeout=30_000)
    expect(shop.by("restart-mark")).to_have_count(1, timeout=30_000)
    # The shoppers were recovered with everything else and carry on by themselves.
    orders = wait_for_more_orders(server, orders, "orders after the first restart")

    second = crash_from_the_panel(shop, server)
    expect(shop.by("fig-restarts")).to_have_text(str(second["restart_count"]), timeout=30_000)
    expect(shop.by("restart-mark")).to_have_count(2, timeout=30_000)
    wait_for_more_orders(server, orders, "orders after the second restart")
    expect(shop.by("load-state")).to_have_attribute("data-running", "true")
    expect(shop.by("fig-recovered")).to_have_text(re.compile(r"^\d+ workflows?$"))
    # What the README shows: the cockpit under load, after two crashes.
    page.wait_for_timeout(1500)
    element_shot(shop, shop.by("operator-panel"), "cockpit")

    shop.by("load-stop").click()
    expect(shop.by("load-state")).to_have_attribute("data-running", "false")
    expect(shop.by("load-message")).to_contain_text("Stopping")
    assert server.client().get("/load").json()["running"] is False

    def quiet() -> bool | None:
        return True if count_orders(server, "order_status IN (0, 2)") == 0 else None

    wait_until(quiet, timeout=120, interval=0.5, what="the store to go quiet")
    # Once quiet, the page's figures match the orders table, and the ledger adds up.
    expect(shop.by("fig-pending")).to_have_text("0", timeout=15_000)
    expect(shop.by("fig-paid")).to_have_text("0", timeout=15_000)
    dispatched = count_orders(server, "order_status = 1")
    cancelled = count_orders(server, "order_status = -1")
    assert dispatched > 0 and cancelled > 0
    expect(shop.by("fig-dispatched")).to_have_text(f"{dispatched:,}", timeout=15_000)
    expect(shop.by("fig-cancelled")).to_have_text(f"{cancelled:,}", timeout=15_000)

    expect(shop.by("unaccounted")).to_have_text("0")
    expect(shop.by("unaccounted-row")).to_have_attribute("data-ok", "true")
    expect(shop.by("oversold")).to_have_text("0")
    expect(shop.by("oversold-row")).to_have_attribute("data-ok", "true")
    expect(shop.by("ledger")).to_have_attribute("data-ok", "true")
    expect(shop.by("ledger-equals")).to_have_text("=")
    level, inventory, live, returned = (
        figure(shop, test_id)
        for test_id in (
            "ledger-restock-level",
            "ledger-inventory",
            "ledger-live",
            "ledger-returned",
        )
    )
    assert level == 100 and level == inventory + live - returned
    assert inventory == shop.inventory()
    green = page.evaluate(
        "getComputedStyle(document.querySelector('[data-testid=unaccounted-row]')).color"
    )
    assert green == "rgb(21, 128, 61)", f"the verdict is not green: {green}"

    # The chart: purchases per second above zero, and one mark per crash, numbered.
    values = [
        float(v)
        for v in shop.by("throughput-bar").evaluate_all(
            "bars => bars.map(bar => bar.getAttribute('data-value'))"
        )
    ]
    assert values and max(values) > 0, values
    marks = shop.by("restart-mark").evaluate_all(
        "marks => marks.map(mark => mark.getAttribute('data-restart-count'))"
    )
    assert marks == ["1", "2"], marks
    assert int(figure(shop, "throughput-total")) > 0

    # No order twice for one checkout, no widget sold twice.
    doubles = server.database.execute(
        "SELECT checkout_id FROM orders GROUP BY checkout_id HAVING count(*) > 1"
    )
    assert doubles == []
    # One page load throughout: every figure above came in live.
    assert shop.watch.loads == 1
    assert page.evaluate("window.widgetStore.pageLoadId") == page_load_id
    shop.watch.assert_clean()


def test_workflow_steps_open_from_the_table(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    # Two-second ticks: the dispatch stays in flight for 20 s, long enough to open it twice.
    server = make_server(WIDGET_STORE_DISPATCH_TICK_S="2")
    shop = shop_factory(server).open()
    page = shop.page
    key, payment = buy(shop)
    table = shop.by("workflows-table")
    drawer = shop.by("workflow-detail")
    expect(drawer).to_be_hidden()

    row = table.locator(f'[data-workflow-id="checkout:{key}"]')
    expect(row).to_contain_text("PENDING")
    row.click()
    expect(drawer).to_be_visible()
    expect(shop.by("detail-workflow-id")).to_have_text(f"checkout:{key}")
    expect(shop.by("detail-summary")).to_contain_text("checkout workflow")
    names = drawer.get_by_test_id("step-name")
    expect(names.first).to_have_text("place_order")
    expect(drawer.locator('[data-step-name="mark_paid"]')).to_have_count(0)
    expect(drawer.get_by_test_id("step-duration").first).to_have_text(STEP_DURATION)

    # Paid from elsewhere while the drawer is open: a refresh shows the steps that followed.
    with server.client() as client:
        assert client.post(f"/sandbox/payments/{payment}/paid").status_code == 200
    shop.by("detail-refresh").click()
    expect(drawer.locator('[data-step-name="mark_paid"]')).to_have_count(1)
    listed = names.all_text_contents()
    assert listed.index("place_order") < listed.index("mark_paid"), listed
    ids = [int(n) for n in drawer.locator(".step-id").all_text_contents()]
    assert ids == sorted(ids), f"steps out of order: {ids}"
    [(order_id, _)] = shop.orders_for_key(key)
    child = drawer.get_by_test_id("step-child")
    expect(child).to_have_text(f"dispatch:{order_id}")
    shop.shot("workflow-steps", full_page=False)

    # The child workflow opens in the same drawer.
    child.click()
    expect(shop.by("detail-workflow-id")).to_have_text(f"dispatch:{order_id}")
    ticks = drawer.locator('[data-step-name="tick_dispatch"]')

    def ticked() -> bool | None:
        shop.by("detail-refresh").click()
        expect(shop.by("detail-refresh")).not_to_have_attribute("aria-busy", "true")
        return True if ticks.count() > 0 else None

    wait_until(ticked, timeout=30, interval=0.5, what="a dispatch tick in the drawer")
    expect(ticks.first.get_by_test_id("step-output")).to_contain_text("9")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # From the keyboard: Enter on a row's button opens it; closing gives the focus back.
    dispatch_row = table.locator(f'[data-workflow-id="dispatch:{order_id}"]')
    expect(dispatch_row).to_contain_text("tick_dispatch", timeout=15_000)
    dispatch_row.get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(drawer).to_be_visible()
    expect(shop.by("detail-workflow-id")).to_have_text(f"dispatch:{order_id}")
    expect(ticks.first).to_be_visible()
    expect(shop.by("detail-close")).to_be_focused()
    page.keyboard.press("Enter")
    expect(drawer).to_be_hidden()
    focused = page.evaluate("document.activeElement?.closest('tr')?.dataset.workflowId")
    assert focused == f"dispatch:{order_id}", focused
    shop.watch.assert_clean()


def test_shopper_cancels_on_the_payment_page(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server()
    shop = shop_factory(server).open()
    original = shop.inventory()
    key, payment = buy(shop)
    expect(shop.by("inventory")).to_have_text(str(original - 1))

    expect(shop.by("cancel-order")).to_be_visible()
    shop.by("cancel-order").click()
    expect(shop.by("view-order")).to_be_visible()
    expect(shop.by("order-status")).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("order-headline")).to_contain_text("Cancelled at your request")
    [(order_id, status)] = shop.orders_for_key(key)
    assert status == -1
    assert hash_params(shop.page.url) == ("order", {"id": str(order_id), "key": key})
    expect(shop.by("order-cancel")).to_be_hidden()
    expect(shop.by("buy-another")).to_be_visible()
    assert shop.inventory() == original  # the widget came back, once
    recent = shop.by("recent-orders").locator(f'[data-order-id="{order_id}"]')
    expect(recent).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("fig-cancelled")).to_have_text("1")
    expect(shop.by("ledger-inventory")).to_have_text(str(original))
    expect(shop.by("unaccounted")).to_have_text("0")
    shop.shot("order-cancelled-by-shopper")

    # A payment arriving after the cancel changes nothing.
    with server.client() as client:
        late = client.post(f"/sandbox/payments/{payment}/paid")
        assert late.status_code == 409, late.text
        assert "already ended" in late.json()["detail"]
        again = client.post(f"/checkout/{key}/cancel")
        assert (again.status_code, again.text) == (200, str(order_id))
    assert shop.orders_for_key(key) == [(order_id, -1)]
    assert shop.inventory() == original

    shop.by("back-to-store").click()
    expect(shop.by("view-store")).to_be_visible()
    expect(shop.by("inventory")).to_have_text(str(original))
    expect(shop.by("buy")).to_have_text("Buy Now")
    shop.watch.assert_clean()


def test_shopper_cancels_from_the_order_page_and_too_late_gets_the_reason(
    make_server: MakeServer, shop_factory: ShopFactory
) -> None:
    server = make_server()
    shop = shop_factory(server, viewport=PHONE).open()
    original = shop.inventory()
    key, payment = buy(shop)
    [(order_id, _)] = shop.orders_for_key(key)

    # Away from the payment page, to the order in the recent orders: it can be cancelled there.
    shop.by("recent-orders").locator(f'[data-order-id="{order_id}"] a').click()
    expect(shop.by("view-order")).to_be_visible()
    expect(shop.by("order-status")).to_have_attribute("data-status", "PENDING")
    expect(shop.by("order-cancel")).to_be_visible()
    expect(shop.by("order-pay")).to_be_visible()
    no_sideways_scroll(shop.page)
    shop.shot("phone-order-pending")
    shop.by("order-cancel").click()
    expect(shop.by("order-status")).to_have_attribute("data-status", "CANCELLED")
    expect(shop.by("order-cancel")).to_be_hidden()
    expect(shop.by("order-pay")).to_be_hidden()
    assert shop.orders_for_key(key) == [(order_id, -1)]
    assert shop.inventory() == original

    # The next checkout is paid elsewhere (another tab, say) before the shopper cancels it.
    shop.by("buy-another").click()
    new_key, new_payment = on_payment_page(shop)
    assert new_key != key
    with server.client() as client:
        assert client.post(f"/sandbox/payments/{new_payment}/paid").status_code == 200
    with shop.watch.tolerating(http_error(409, "Conflict")):
        shop.by("cancel-order").click()
        expect(shop.by("pay-message")).to_contain_text("This checkout already ended")
        expect(shop.by("pay-message")).to_contain_text("'paid'")  # the store's own reason
    assert len(shop.watch.tolerated) == 1
    expect(shop.by("pay")).to_be_disabled()
    expect(shop.by("pay-cancel-row")).to_be_hidden()
    no_sideways_scroll(shop.page)
    shop.by("pay-see-order").click()
    expect(shop.by("view-order")).to_be_visible()
    expect(shop.by("order-status")).to_have_attribute(
        "data-status", re.compile("^(PAID|DISPATCHED)$")
    )
    [(new_order, new_status)] = shop.orders_for_key(new_key)
    assert new_status in (1, 2)
    expect(shop.by("order-id")).to_have_text(f"#{new_order}")
    assert shop.inventory() == original - 1
    shop.watch.assert_clean()


def test_production_hides_the_shoppers_and_figures_need_the_token(production_shop: Shop) -> None:
    shop = production_shop
    with shop.watch.tolerating(UNAUTHORIZED):
        shop.open()
        expect(shop.by("token-form")).to_be_visible()
        expect(shop.by("load-panel")).to_be_hidden()
        expect(shop.by("figures-empty")).to_contain_text("Enter the operator token")
        expect(shop.by("figures")).to_be_hidden()
        # Told once that it needs the token, the page stops asking for the figures.
        shop.page.wait_for_timeout(2500)
        stats_asked = [url for url in shop.watch.requests if url.endswith("/stats")]
        assert len(stats_asked) == 1, stats_asked

        shop.enter_operator_token()
        expect(shop.by("figures")).to_be_visible()
        expect(shop.by("workflows-empty")).to_have_text("No workflows in flight.")
    assert shop.watch.tolerated
    expect(shop.by("figures-empty")).to_be_hidden()
    expect(shop.by("ledger-equation")).to_have_text(
        re.compile(r"^\s*100\s+restock level\s*=\s*100\s+inventory\s*\+\s*0\s+live orders")
    )
    expect(shop.by("unaccounted")).to_have_text("0")
    expect(shop.by("oversold")).to_have_text("0")
    expect(shop.by("fig-pending")).to_have_text("0")
    expect(shop.by("fig-restarts")).to_have_text("0")
    expect(shop.by("refunds-due")).to_have_text("0")
    expect(shop.by("refunds-due-row")).to_have_attribute("data-ok", "true")

    # The figures follow the store live.
    key, payment_id = buy(shop)
    expect(shop.by("fig-pending")).to_have_text("1")
    expect(shop.by("ledger-live")).to_have_text("1")
    expect(shop.by("ledger-inventory")).to_have_text("99")
    expect(shop.by("unaccounted")).to_have_text("0")
    expect(shop.by("load-panel")).to_be_hidden()
    assert not [url for url in shop.watch.requests if "/load" in url]
    element_shot(shop, shop.by("operator-panel"), "cockpit-production")

    # A payment that lands after its checkout was cancelled is a refund due: a red line.
    server = shop.server
    with server.client() as client:
        assert client.post(f"/checkout/{key}/cancel").status_code == 200
        assert server.pay(client, payment_id, "paid").status_code == 409
        price = client.get("/product").json()["price"]
    expect(shop.by("refunds-due")).to_have_text("1")
    expect(shop.by("refunds-due-amount")).to_have_text(f"${price:,.2f}")
    expect(shop.by("refunds-due-row")).to_have_attribute("data-ok", "false")
    expect(shop.by("unaccounted")).to_have_text("0")
    shop.watch.assert_clean()
