"""The page as served for `/`: html/app.html with the product and its stock already in it, so the
first paint shows what a shopper came for, before the script has read anything. The script then
takes over (html/js/views/store.js, whose stock levels this mirrors)."""

from __future__ import annotations

import html
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..database.handle import Database
from ..paths import HTML_DIR
from ..shop import store

log = logging.getLogger(__name__)

LOW_STOCK = 10  # store.js's LOW_STOCK

PLACEHOLDERS = {
    "name": '<h1 id="product-name" data-testid="product-name">Premium Quality Widget</h1>',
    "description": '<p class="product-desc" data-testid="product-description">'
    "Enhance your productivity with our top-rated widgets!</p>",
    "price": '<div class="price" data-testid="price">$99.99</div>',
    "level": '<p class="stock" data-testid="stock" data-level="unknown">',
    "message": '<span class="stock-message" data-testid="stock-message">Checking stock…</span>',
    "count": '<span class="stock-count">· <span data-testid="inventory">–</span> available</span>',
}


def page_template() -> str:
    text = (HTML_DIR / "app.html").read_text()
    missing = [name for name, placeholder in PLACEHOLDERS.items() if placeholder not in text]
    if missing:  # the page changed under this module: serve it as it is, and say so
        log.warning("html/app.html lacks the first paint's placeholders: %s", ", ".join(missing))
    return text


def render(template: str, product: dict[str, Any] | None) -> str:
    """The page with `product` (a row of the products table) in it; as it is without one."""
    if product is None:
        return template
    inventory = int(product["inventory"])
    level = "out" if inventory <= 0 else "low" if inventory <= LOW_STOCK else "plenty"
    message = {"out": "Sold out", "low": f"Only {inventory} left", "plenty": "In stock"}[level]
    price = Decimal(str(product["price"]))
    hidden = "" if level == "plenty" else " hidden"
    filled = {
        "name": '<h1 id="product-name" data-testid="product-name">'
        f"{html.escape(str(product['product']))}</h1>",
        "description": '<p class="product-desc" data-testid="product-description">'
        f"{html.escape(str(product['description']))}</p>",
        "price": f'<div class="price" data-testid="price">${price:,.2f}</div>',
        "level": f'<p class="stock" data-testid="stock" data-level="{level}">',
        "message": f'<span class="stock-message" data-testid="stock-message">{message}</span>',
        "count": f'<span class="stock-count"{hidden}>· '
        f'<span data-testid="inventory">{inventory}</span> available</span>',
    }
    for name, placeholder in PLACEHOLDERS.items():
        template = template.replace(placeholder, filled[name], 1)
    return template


async def page(db: Database, template: str) -> str:
    """The page for `/`, with the stock as the database has it now; without it if the database
    cannot say (the script then shows the store as restarting, as it would anyway)."""
    try:
        product = await db.read(store.get_product)
    except SQLAlchemyError as exc:
        log.warning("serving the page without its stock: %s", exc)
        product = None
    return render(template, product)
