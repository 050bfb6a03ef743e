"""axe-core (Deque's engine, vendored under vendor/axe-core, test-only) on every view of the
page, at desktop and phone width: no violation at all, of any impact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..support import MakeServer
from .helpers import DESKTOP, PHONE, Shop, ShopFactory, buy, expect

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def axe_violations(shop: Shop) -> list[dict[str, Any]]:
    """Run axe on the page as it is now. Injected through the debugging protocol (evaluate),
    which the page's Content-Security-Policy does not apply to: nothing is added to the page."""
    if not shop.page.evaluate("() => typeof window.axe !== 'undefined'"):
        shop.page.evaluate(AXE.read_text() + "\n;undefined")
    results: dict[str, Any] = shop.page.evaluate(
        """async () => await axe.run(document, {
            resultTypes: ["violations"],
            // axe's default rules and its experimental ones (label-content-name-mismatch is
            // one); not the WCAG AAA rules, which axe leaves off by default.
            rules: Object.fromEntries(
                axe.getRules(["experimental"]).map(r => [r.ruleId, {enabled: true}])
            ),
        })"""
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]],
        }
        for v in results["violations"]
    ]


def check(shop: Shop, view: str, found: dict[str, list[dict[str, Any]]]) -> None:
    violations = axe_violations(shop)
    if violations:
        found[view] = violations


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_every_view_passes_axe(
    make_server: MakeServer, shop_factory: ShopFactory, viewport: dict[str, int]
) -> None:
    shop = shop_factory(make_server(), viewport=viewport).open()
    found: dict[str, list[dict[str, Any]]] = {}
    check(shop, "store", found)
    buy(shop)
    check(shop, "payment", found)
    shop.by("pay").click()
    expect(shop.by("view-order")).to_be_visible()
    check(shop, "order (paid)", found)
    expect(shop.by("order-status")).to_have_attribute("data-status", "DISPATCHED", timeout=30_000)
    check(shop, "order (dispatched)", found)
    assert not found, "\n".join(f"{view}: {items}" for view, items in found.items())
    shop.watch.assert_clean()
