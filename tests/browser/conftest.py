"""Fixtures of the browser tests: Debian's Chromium, and shops (fresh browser contexts) on
servers from the `make_server` fixture (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ..support import MakeServer
from .helpers import PRODUCTION, Shop, ShopFactory, launch_browser, shop_contexts

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Debian Chromium per browser-test module (it skips where there is none)."""
    yield from launch_browser()


@pytest.fixture
def shop_factory(browser: Browser, backend: str) -> Iterator[ShopFactory]:
    """Shops (fresh browser contexts) on demand, all closed at the end."""
    yield from shop_contexts(browser, backend)


@pytest.fixture
def production_shop(make_server: MakeServer, shop_factory: ShopFactory) -> Shop:
    """A shop, not yet opened, on a fresh server in production mode (helpers.PRODUCTION)."""
    return shop_factory(make_server(**PRODUCTION))
