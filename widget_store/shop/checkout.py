"""What the routes ask of a checkout: start one idempotently, and deliver a payment to it."""

from __future__ import annotations

from typing import cast

from dbos import DBOS, SetWorkflowID

from ..database.handle import Database
from . import refunds, store
from .errors import CheckoutEnded, NotFound, OutOfStock, Unavailable
from .payments import PaymentStatus
from .runtime import current
from .workflows import (
    OUTCOME,
    PAYMENT_ID,
    PAYMENT_STATUS,
    OutcomeEvent,
    PaymentIdEvent,
    Settlement,
    checkout_workflow,
    checkout_workflow_id,
    release_order,
)

# How long a request waits on a workflow before answering 503: the work goes on regardless,
# and a retry with the same key or delivery picks up its result.
WAIT_S = 30.0
# The first part of that wait, after which a settlement looks at whether its checkout still runs.
FIRST_WAIT_S = 1.0
# DBOS statuses of a checkout workflow that ended, or will never run again on its own, without
# necessarily publishing its outcome.
ENDED_WITHOUT_SETTLING = frozenset({"CANCELLED", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


async def start_checkout(idempotency_key: str, client: str | None) -> str:
    """Start the checkout for this key (or rejoin the one under way) and wait for its payment
    id. `client` is the shopper's address, recorded on the order.

    Sold out, a key with no checkout yet is answered OutOfStock at once: no workflow, no order,
    nothing written, so a flood of checkouts at stock 0 costs two reads each. Such a key holds
    nothing, and after a restock it may check out. A checkout that did begin keeps its answer:
    its payment id, or OutOfStock for good if it found the widget gone (place_order settles
    that race in one transaction).
    """
    workflow_id = checkout_workflow_id(idempotency_key)
    if await _sold_out_before_it_began(workflow_id):
        raise OutOfStock()
    with SetWorkflowID(workflow_id):
        # An existing id is not started again: DBOS hands back the checkout already under way.
        await DBOS.start_workflow_async(checkout_workflow, client)
    event = cast(
        PaymentIdEvent | None,
        await DBOS.get_event_async(workflow_id, PAYMENT_ID, timeout_seconds=WAIT_S),
    )
    if event is None:
        raise Unavailable("The checkout is still starting; retry with the same key")
    if event["payment_id"] is None:
        raise OutOfStock()
    return event["payment_id"]


async def _sold_out_before_it_began(workflow_id: str) -> bool:
    """None left, and no checkout of this key has begun.

    The stock is read first: a checkout of this key that took the last widget had begun (its
    workflow recorded) before the reservation committed, so once the stock reads 0 the status
    read finds that checkout, and the key is answered its payment id again, never sold out.
    """
    if await current().db.read(store.get_inventory) > 0:
        return False
    return await DBOS.get_workflow_status_async(workflow_id) is None


async def deliver_payment(
    db: Database,
    payment_id: str,
    status: PaymentStatus,
    *,
    provider: str = "webhook",
    provider_payment_id: str | None = None,
) -> int:
    """Hand a verified payment status to its checkout and return the order id. `provider`
    names who took the money, and `provider_payment_id` its own id for it (a Stripe
    PaymentIntent), as a refund due records them.

    A `paid` for a checkout that had already ended is money the provider captured and no order
    took: it is recorded as a refund due, then answered with the Conflict. Recorded before the
    answer, and idempotent (refunds.record_refund_due), so a crash in between loses nothing:
    the provider, given no 2xx, delivers it again, and the repeat records nothing twice.
    """
    checkout_id = await db.read(store.find_checkout, payment_id=payment_id)
    if checkout_id is None:
        raise NotFound(f"Unknown payment id {payment_id!r}")
    try:
        return await _settle(checkout_id, status, f"payment {payment_id!r}")
    except CheckoutEnded as ended:
        if status != "paid":
            raise
        refund = await db.run(
            refunds.record_refund_due,
            payment_id=payment_id,
            reason=ended.ended_as,
            provider=provider,
            provider_payment_id=provider_payment_id,
        )
        if refund is None:  # its order took the money after all (paid, then stopped)
            raise
        raise CheckoutEnded(
            f"{ended.detail}. The payment is recorded as a refund due "
            f"({refund['status']}, reason {refund['reason']!r})",
            ended.ended_as,
            refund,
        ) from None


async def cancel_checkout(idempotency_key: str) -> int:
    """The shopper's cancel: the checkout ends through its own path (order CANCELLED, widget
    back), exactly as a declined payment would; a payment arriving later gets a Conflict."""
    checkout_id = checkout_workflow_id(idempotency_key)
    if await DBOS.get_workflow_status_async(checkout_id) is None:
        raise NotFound(f"No checkout for key {idempotency_key!r}")
    return await _settle(checkout_id, "cancelled", f"key {idempotency_key!r}")


async def _refuse_if_ended(checkout_id: str, settlement: Settlement, what: str) -> None:
    """A checkout that ended without publishing its outcome (cancelled by an operator with
    DBOS's CLI or Conductor, or ended in ERROR) settles nothing: its order is released here
    if it still holds its widget (as the reconciler would), and the answer is a Conflict."""
    status = await DBOS.get_workflow_status_async(checkout_id)
    if status is None or status.status not in ENDED_WITHOUT_SETTLING:
        return
    order = await current().db.read(store.get_checkout, checkout_id=checkout_id)
    if order is not None:
        why = f"its checkout was stopped ({status.status}) before it settled"
        await release_order(order["order_id"], why=why)
    raise CheckoutEnded(
        f"Checkout for {what} was stopped ({status.status}) before it settled; its order is "
        f"cancelled and its widget released, so {settlement!r} changes nothing",
        "stopped",
    )


async def _settle(checkout_id: str, settlement: Settlement, what: str) -> int:
    """Tell a waiting checkout how it ends and return the order id.

    A repeat gets the first answer again. A settlement that contradicts how the checkout ended
    (timed out, cancelled, or settled the other way) is a Conflict and changes nothing.
    """
    # Sent even when the checkout has already ended: keyed per settlement, so a repeat (or a
    # provider's retry) makes no second message, and a message the checkout never reads
    # changes nothing. One round trip fewer than asking first.
    await DBOS.send_async(
        checkout_id, settlement, PAYMENT_STATUS, idempotency_key=f"settle-{settlement}"
    )
    # A first short wait answers nearly every settlement; then, before waiting out the rest, a
    # look at whether the checkout is still there to settle anything.
    outcome = cast(
        OutcomeEvent | None,
        await DBOS.get_event_async(checkout_id, OUTCOME, timeout_seconds=FIRST_WAIT_S),
    )
    if outcome is None:
        await _refuse_if_ended(checkout_id, settlement, what)
        outcome = cast(
            OutcomeEvent | None,
            await DBOS.get_event_async(checkout_id, OUTCOME, timeout_seconds=WAIT_S - FIRST_WAIT_S),
        )
    if outcome is None:
        raise Unavailable("Received; the checkout is still settling it, retry shortly")
    if outcome["result"] != settlement:
        raise CheckoutEnded(
            f"Checkout for {what} already ended as {outcome['result']!r}; "
            f"{settlement!r} changes nothing",
            outcome["result"],
        )
    return outcome["order_id"]
