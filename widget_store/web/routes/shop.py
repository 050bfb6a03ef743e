"""The shopper's routes: the product, a checkout started, looked up or cancelled by its key, and
an order's progress. Kept thin: validate, call a checkout or store function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from ...config import Settings
from ...shop import checkout, store
from ...shop.errors import InvalidInput, NotFound
from ...shop.stripe import checkout as stripe_checkout
from ...shop.tables import OrderStatus
from ...shop.workflows import checkout_workflow_id
from .. import admission
from ..admission import CheckoutRate, UnpaidCap, get_checkout_rate
from ..deps import (
    Db,
    IdempotencyKey,
    OrderId,
    checkout_client,
    errors,
    get_settings,
    get_unpaid_cap,
)
from ..schemas import CheckoutOut, OrderOut, ProductOut

router = APIRouter()


@router.get("/product", responses=errors(404))
async def read_product(db: Db) -> ProductOut:
    """The widget, its price and how many are left."""
    product = await db.read(store.get_product)
    if product is None:
        raise NotFound("The catalogue is empty: run `widget-store migrate`")
    return ProductOut.model_validate(product)


@router.post(
    "/checkout/{idempotency_key}",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "The payment id, as plain text"},
        **errors(403, 404, 429, 503),
    },
)
async def create_checkout(
    idempotency_key: IdempotencyKey,
    db: Db,
    client: Annotated[str | None, Depends(checkout_client)],
    cap: Annotated[UnpaidCap, Depends(get_unpaid_cap)],
    rate: Annotated[CheckoutRate, Depends(get_checkout_rate)],
) -> str:
    """Start the checkout for this key (or rejoin it) and answer its payment id."""
    return await admission.start_checkout(db, idempotency_key, client=client, cap=cap, rate=rate)


@router.get("/checkout/{idempotency_key}", responses=errors(404))
async def read_checkout(
    idempotency_key: IdempotencyKey, db: Db, settings: Annotated[Settings, Depends(get_settings)]
) -> CheckoutOut:
    """Where the checkout for this key stands: its order, payment id and status; in Stripe
    mode its PaymentIntent and client secret too, for the page that pays it."""
    checkout_id = checkout_workflow_id(idempotency_key)
    found = await db.read(store.get_checkout, checkout_id=checkout_id)
    if found is None:
        raise NotFound(f"No checkout for key {idempotency_key!r}")
    answer = CheckoutOut(**found, status=OrderStatus(found["order_status"]).name)
    if settings.stripe_mode and found["payment_id"] is not None:
        payment = await stripe_checkout.payment_of(checkout_id)
        if payment is not None:
            answer.stripe_payment_intent = payment["payment_intent"]
            answer.stripe_client_secret = payment["client_secret"]
    return answer


@router.post(
    "/checkout/{idempotency_key}/cancel",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "The cancelled order's id"},
        **errors(403, 404, 409, 503),
    },
)
async def cancel_checkout(idempotency_key: IdempotencyKey) -> str:
    """Cancel a checkout still waiting for payment: the order ends CANCELLED, the widget back."""
    return str(await checkout.cancel_checkout(idempotency_key))


@router.post("/checkout/", include_in_schema=False)
async def reject_empty_key() -> None:
    """An empty key would otherwise fall through to a bare 404."""
    raise InvalidInput("idempotency_key: must not be empty")


@router.get("/order/{order_id}", responses=errors(404))
async def read_order(order_id: OrderId, db: Db) -> OrderOut:
    """One order's status and dispatch progress."""
    order = await db.read(store.get_order, order_id=order_id)
    if order is None:
        raise NotFound(f"No order {order_id}")
    return OrderOut.model_validate(order)
