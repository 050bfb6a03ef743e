"""What the browser tests share: launching Debian's Chromium, a shop (a fresh browser context on
one server), watching a page for stray requests and console errors, reading the page's URL
state, and saving screenshots."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from widget_store.testing import StoreServer

from ..support import REPO_ROOT, orders_for_key

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    # The tests' modules still import; their `browser` fixture (launch_browser) then skips, or
    # fails where a browser is required, before any of them uses these.
    expect = sync_playwright = None

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


REQUIRE_BROWSER_ENV = "WIDGET_STORE_TEST_REQUIRE_BROWSER"

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

PAYMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# What Chromium logs for a request the dying server never answered, or answered 503 while it
# came back: the only console errors the crash test tolerates, and only from the store itself.
SERVER_AWAY_ERROR = re.compile(
    r"^Failed to load resource: (net::ERR_(EMPTY_RESPONSE|CONNECTION_RESET|CONNECTION_REFUSED"
    r"|CONNECTION_CLOSED|CONNECTION_ABORTED|SOCKET_NOT_CONNECTED)"
    r"|the server responded with a status of 503 \(Service Unavailable\))$"
)


def http_error(status: int, reason: str) -> re.Pattern[str]:
    """What Chromium logs for a request answered with this HTTP error status."""
    return re.compile(
        rf"^Failed to load resource: the server responded with a status of {status} "
        rf"\({re.escape(reason)}\)$"
    )


# What Chromium logs for each 401 the page gets in production mode before the operator's token.
UNAUTHORIZED = http_error(401, "Unauthorized")


# Production mode: no crash button, built-in shoppers or sandbox provider; the operator's views
# behind a token.
OPERATOR_TOKEN = "op-secret"
PRODUCTION = {"WIDGET_STORE_DEMO": "false", "WIDGET_STORE_OPERATOR_TOKEN": OPERATOR_TOKEN}


def require_chromium() -> None:
    """Skip without a browser, unless the run says a browser is required (CI): then fail."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem is None:
        return
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"browser tests required ({REQUIRE_BROWSER_ENV}=1) but {problem}")
    pytest.skip(f"browser tests: {problem}")


@dataclass
class PageWatch:
    """Everything a page did that a test may want to hold against it."""

    base_url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, url)
    page_errors: list[str] = field(default_factory=list)
    tolerated: list[tuple[str, str]] = field(default_factory=list)
    loads: int = 0
    _tolerate: re.Pattern[str] | None = None

    def attach(self, page: Page) -> PageWatch:
        page.on("request", self._on_request)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("load", lambda _: self._on_load())
        return self

    def _on_load(self) -> None:
        self.loads += 1

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = str(message.location.get("url", ""))
        entry = (message.text, url)
        if self._is_tolerated(message.text, url):
            self.tolerated.append(entry)
        else:
            self.console_errors.append(entry)

    def _is_tolerated(self, text: str, url: str) -> bool:
        return (
            self._tolerate is not None
            and bool(self._tolerate.match(text))
            and url.startswith(self.base_url + "/")
        )

    @contextmanager
    def tolerating(self, errors: re.Pattern[str]) -> Iterator[None]:
        """Console errors the test provokes on purpose, from the store's own URLs, and only
        while this lasts (Chromium logs every failed or 4xx/5xx request as an error)."""
        self._tolerate = errors
        try:
            yield
        finally:
            self._tolerate = None

    def server_away(self) -> AbstractContextManager[None]:
        """While the test deliberately takes the server away, its failed requests are expected."""
        return self.tolerating(SERVER_AWAY_ERROR)

    def foreign_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if not (url.startswith(self.base_url + "/") or url.startswith("data:"))
        ]

    def assert_clean(self) -> None:
        # This module is not rewritten by pytest, so every assert says what it found.
        assert self.requests, "the page made no requests at all"
        foreign = self.foreign_requests()
        assert not foreign, f"requests left the store's host: {foreign}"
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


def hash_params(url: str) -> tuple[str, dict[str, str]]:
    """The view and the parameters the page keeps in its URL's hash (#/pay?key=…&payment=…)."""
    fragment = urlsplit(url).fragment
    path, _, query = fragment.partition("?")
    return path.strip("/"), {name: values[0] for name, values in parse_qs(query).items()}


def screenshot(target: Page | Locator, backend: str, name: str, **options: Any) -> Path:
    """A page (full page unless told otherwise) or one element, as <backend>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{backend}-{name}.png"
    if hasattr(target, "goto"):
        options.setdefault("full_page", True)
    target.screenshot(path=str(path), animations="disabled", **options)
    return path


# Records every value the order view's progress bar shows, from page load on.
RECORD_PROGRESS = """
window.__progressSeen = [];
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.querySelector('[data-testid="progress"]');
  const record = () => window.__progressSeen.push(
    [bar.dataset.status || "", Number(bar.getAttribute("aria-valuenow"))]);
  new MutationObserver(record).observe(
    bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
});
"""


def launch_browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright, for a module-scoped `browser` fixture."""
    require_chromium()
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Shop:
    """A fresh browser context (so fresh localStorage) on one server, and what it saw."""

    def __init__(self, browser: Browser, server: StoreServer, backend: str, viewport: Any) -> None:
        self.server = server
        self.backend = backend
        self.context = browser.new_context(viewport=viewport)
        self.context.add_init_script(RECORD_PROGRESS)
        self.page: Page = self.context.new_page()
        self.watch = PageWatch(server.base_url).attach(self.page)

    def by(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    def open(self, path: str = "/") -> Shop:
        self.page.goto(self.server.base_url + path)
        try:
            expect(self.by("server-pill")).to_have_attribute("data-state", "online", timeout=30_000)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nconsole errors: {self.watch.console_errors}"
                f"\n--- server log ---\n{self.server.log_text()[-3000:]}"
            ) from None
        return self

    def expect_operator_locked(self) -> None:
        """Wait until both operator panels that poll (figures and workflows) have been told 401:
        until then a request may still be in flight, and its 401 would land after a test stops
        tolerating it."""
        expect(self.by("figures-empty")).to_contain_text("operator token")
        expect(self.by("workflows-empty")).to_contain_text("operator token")

    def enter_operator_token(self, token: str = OPERATOR_TOKEN) -> None:
        """Type the operator token into the panel's form and send it, as the operator does."""
        self.by("operator-token").fill(token)
        self.by("operator-token").press("Enter")

    def shot(self, name: str, *, full_page: bool = True) -> None:
        screenshot(self.page, self.backend, name, full_page=full_page)

    def orders_for_key(self, key: str) -> list[tuple[int, int]]:
        return orders_for_key(self.server, key)

    def inventory(self) -> int:
        return self.server.database.inventory()

    def close(self) -> None:
        self.context.close()


ShopFactory = Callable[..., Shop]


def shop_contexts(browser: Browser, backend: str) -> Iterator[ShopFactory]:
    """For a `shop_factory` fixture: shops made on demand, all closed at the end."""
    shops: list[Shop] = []

    def make(server: StoreServer, viewport: Any = DESKTOP) -> Shop:
        shop = Shop(browser, server, backend, viewport)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()


def buy(shop: Shop) -> tuple[str, str]:
    """Click Buy Now and land on the payment page: the checkout's key and payment id."""
    shop.by("buy").click()
    return on_payment_page(shop)


def on_payment_page(shop: Shop) -> tuple[str, str]:
    expect(shop.by("view-pay")).to_be_visible()
    expect(shop.by("payment-id")).to_have_text(PAYMENT_ID)
    view, params = hash_params(shop.page.url)
    assert view == "pay", f"not on the payment page: {shop.page.url}"
    assert params["payment"] == shop.by("payment-id").text_content()
    return params["key"], params["payment"]


def element_shot(shop: Shop, target: Locator, name: str) -> Path:
    """One element as <backend>-<name>.png, cut from a full-page capture, so that the sticky top
    bar, which covers whatever scrolls under it, is not drawn over a tall element."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{shop.backend}-{name}.png"
    shop.page.evaluate("window.scrollTo(0, 0)")
    box = target.evaluate(
        "node => { const r = node.getBoundingClientRect();"
        " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; }"
    )
    shop.page.screenshot(path=str(path), full_page=True, clip=box, animations="disabled")
    return path


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the page is {width}px wider than the window"
