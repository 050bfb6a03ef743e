"""What the routes ask of a checkout: start one idempotently, and deliver a payment to it."""

from __future__ import annotations

from typing import cast

from dbos import DBOS, SetWorkflowID

from . import store
from .db import Database
from .errors import Conflict, NotFound, OutOfStock, Unavailable
from .payments import PaymentStatus
from .workflows import (
    OUTCOME,
    PAYMENT_ID,
    PAYMENT_STATUS,
    OutcomeEvent,
    PaymentIdEvent,
    checkout_workflow,
    checkout_workflow_id,
)

# How long a request waits on a workflow before answering 503: the work goes on regardless,
# and a retry with the same key or delivery picks up its result.
WAIT_S = 30.0


async def start_checkout(idempotency_key: str) -> str:
    """Start (or rejoin) the checkout for this key and return its payment id."""
    workflow_id = checkout_workflow_id(idempotency_key)
    with SetWorkflowID(workflow_id):
        # An existing id is not started again: DBOS hands back the checkout already under way.
        await DBOS.start_workflow_async(checkout_workflow)
    event = cast(
        PaymentIdEvent | None,
        await DBOS.get_event_async(workflow_id, PAYMENT_ID, timeout_seconds=WAIT_S),
    )
    if event is None:
        raise Unavailable("The checkout is still starting; retry with the same key")
    if event["payment_id"] is None:
        raise OutOfStock()
    return event["payment_id"]


async def deliver_payment(db: Database, payment_id: str, status: PaymentStatus) -> int:
    """Hand a verified payment status to its checkout and return the order id.

    A repeated delivery gets the first answer again. A status that contradicts how the checkout
    ended (timed out, or settled the other way) is a Conflict and changes nothing.
    """
    checkout_id = await db.read(store.find_checkout, payment_id=payment_id)
    if checkout_id is None:
        raise NotFound(f"Unknown payment id {payment_id!r}")

    outcome = cast(
        OutcomeEvent | None, await DBOS.get_event_async(checkout_id, OUTCOME, timeout_seconds=0)
    )
    if outcome is None:
        # Keyed per status, so a provider's retries of one delivery make one message.
        await DBOS.send_async(
            checkout_id, status, PAYMENT_STATUS, idempotency_key=f"payment-{status}"
        )
        outcome = cast(
            OutcomeEvent | None,
            await DBOS.get_event_async(checkout_id, OUTCOME, timeout_seconds=WAIT_S),
        )
        if outcome is None:
            raise Unavailable("Payment received; the checkout is still settling it, retry shortly")
    if outcome["result"] != status:
        raise Conflict(
            f"Checkout for payment {payment_id!r} already ended as {outcome['result']!r}; "
            f"a {status!r} payment changes nothing"
        )
    return outcome["order_id"]
