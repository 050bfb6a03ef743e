"""Durable orchestration: the checkout and dispatch workflows. Their bodies only sequence steps,
events and compensation; the SQL they run lives in `store`. A change to a step sequence must
keep recorded executions replaying: config.WORKFLOW_VERSION says how."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Literal, TypedDict, TypeVar

from dbos import DBOS, SetWorkflowID, StepOptions

from . import store
from .runtime import current
from .stripe import api as stripe_payments
from .stripe.api import StripePayment
from .tables import DISPATCH_STEPS

log = logging.getLogger(__name__)

T = TypeVar("T")

# Events the checkout publishes, and the topic it listens on.
PAYMENT_ID = "payment_id"
OUTCOME = "outcome"
PAYMENT_STATUS = "payment_status"
# Stripe mode: the checkout's PaymentIntent (stripe_payments.StripePayment), published before
# its payment id, for the page (its client secret) and the webhook (what a payment must match).
STRIPE_PAYMENT = "stripe_payment"
# The patch (docs/upgrading.md) that put the PaymentIntent's step into the checkout.
STRIPE_PAYMENT_PATCH = "stripe-payment-intent"

CHECKOUT = "checkout"
DISPATCH = "dispatch"

# "released": the order was released while its checkout was stopped (an operator cancelled it,
# the reconciler put the widget back), and the checkout, resumed, found it no longer PENDING.
# "not_a_checkout": a fork of a checkout (a new workflow id), which ends at once.
CheckoutResult = Literal[
    "paid", "failed", "cancelled", "expired", "out_of_stock", "released", "not_a_checkout"
]
# What the checkout can be told while it waits: the provider's verdict, or the shopper's cancel.
Settlement = Literal["paid", "failed", "cancelled"]


class PaymentIdEvent(TypedDict):
    """Published once the widget is reserved, or once it is known there is none.

    A dict, never a bare None: `get_event` answers None on timeout too, and the two must differ.
    """

    order_id: int
    payment_id: str | None


class OutcomeEvent(TypedDict):
    order_id: int
    result: CheckoutResult


def checkout_workflow_id(idempotency_key: str) -> str:
    """Shopper keys are `[A-Za-z0-9_-]`, so the `:` keeps them from ever naming a dispatch."""
    return f"{CHECKOUT}:{idempotency_key}"


def is_checkout_id(workflow_id: str) -> bool:
    return workflow_id.startswith(f"{CHECKOUT}:")


def dispatch_workflow_id(order_id: int) -> str:
    # Not DBOS's default child id (`<parent>-<n>`), which a shopper's own key could equal.
    return f"{DISPATCH}:{order_id}"


def _crash_point(step: str) -> None:
    """Test-only fault hook: die right after `step`, as a crash between two steps would."""
    if current().fault_after_step == step:
        log.warning("fault injection: exiting after step %s", step)
        os._exit(1)


@DBOS.workflow(name=CHECKOUT)
async def checkout_workflow(client: str | None = None) -> CheckoutResult:
    """A shopper's checkout; its workflow id is `checkout:<idempotency key>`. `client` is the
    shopper's address, recorded on the order for the cap on unpaid checkouts per client.

    1. place_order: the order and its widget, in one transaction; with none left the order
       is CANCELLED, the payment id is published as None and the checkout ends.
       Stripe mode, a widget reserved: create_payment_intent, the order's PaymentIntent at
       Stripe, published as an event of its own (STRIPE_PAYMENT).
    2. Publish the payment id.
    3. Wait for the payment status, or the shopper's cancel (a timeout counts as failed).
    4. Paid: mark_paid. Otherwise: release_order returns the widget and cancels the order.
    5. Publish the outcome, which the webhook answers from.
    6. Paid: start the dispatch workflow.
    """
    rt = current()
    checkout_id = DBOS.workflow_id
    assert checkout_id is not None  # always set inside a workflow
    if not is_checkout_id(checkout_id):
        # `dbos workflow fork` runs a checkout under a new id: from step 1 it would place a
        # second order under a payment id nobody holds, from a later step wait for a payment
        # that goes to the original. A checkout is its shopper's key; a fork of one does nothing.
        log.warning(
            "workflow %s is not a checkout:<key>; a fork of a checkout ends at once", checkout_id
        )
        return "not_a_checkout"
    order_id, payment_id = await place_order(checkout_id, client)
    _crash_point("place_order")
    # Behind a patch: a checkout recorded without this step has its payment id's event where
    # the patch looks, and replays on without it. Before the payment id is published, so the
    # page never holds a payment id whose PaymentIntent is still to come; and never in front
    # of the wait for payment below, where a parked checkout's recorded timeout would meet it
    # (docs/upgrading.md). Only in Stripe mode: the providers switch while no checkout waits.
    if (
        payment_id is not None
        and rt.stripe is not None
        and await DBOS.patch_async(STRIPE_PAYMENT_PATCH)
    ):
        intent = await create_payment_intent(order_id, payment_id)
        await DBOS.set_event_async(STRIPE_PAYMENT, intent)
    await DBOS.set_event_async(PAYMENT_ID, PaymentIdEvent(order_id=order_id, payment_id=payment_id))
    if payment_id is None:
        await _finish(order_id, "out_of_stock")
        return "out_of_stock"
    _crash_point("publish_payment_id")

    status: Settlement | None = await DBOS.recv_async(
        PAYMENT_STATUS, timeout_seconds=rt.payment_timeout_s
    )
    if status != "paid":
        await release_order(order_id)
        result: CheckoutResult = "expired" if status is None else status
        await _finish(order_id, result)
        return result
    paid_at = await mark_paid(order_id)
    _crash_point("mark_paid")
    if paid_at is None:
        # Released while this checkout was stopped: it ends without a second say on the order.
        await _finish(order_id, "released")
        return "released"
    # The outcome before the dispatch: the webhook waits for the outcome, and starting a
    # workflow costs round trips it need not wait for. A crash in between replays to here and
    # starts the dispatch all the same.
    await _finish(order_id, "paid")
    with SetWorkflowID(dispatch_workflow_id(order_id)):
        await DBOS.start_workflow_async(dispatch_workflow, order_id, paid_at)
    return "paid"


async def _finish(order_id: int, result: CheckoutResult) -> None:
    """Log the checkout's end and publish its outcome."""
    _log_transition(order_id, result)
    await DBOS.set_event_async(OUTCOME, OutcomeEvent(order_id=order_id, result=result))


def _log_transition(order_id: int, transition: str) -> None:
    """One structured line per workflow transition (fields for the JSON log format)."""
    log.info(
        "order %s %s (workflow %s)",
        order_id,
        transition,
        DBOS.workflow_id,
        extra={"order_id": order_id, "transition": transition, "workflow_id": DBOS.workflow_id},
    )


# The steps below each run one idempotent transaction (see their store functions): it needs
# no checkpoint of its own in the store's database, so a step costs one commit there plus
# DBOS's step record, instead of a datasource transaction's extra checkpoint row, pre-read and
# ownership check. Each body is sync: DBOS runs a sync step whole on one of its executor
# threads (its checkpoint read, the body, its checkpoint write), where an async step would
# hop to a thread and back for each checkpoint call and run its body on the event loop in
# between; measured, a tick costs little more than an empty step. Retried every half second
# (two hours in all) while the database is away: a workflow waits its database out rather than
# ending in ERROR with its order half done, and goes on within half a second of its return
# (growing pauses would leave it idle for seconds after a restart).
IDEMPOTENT_STEP = StepOptions(
    retries_allowed=True, max_attempts=14_400, interval_seconds=0.5, backoff_rate=1.0
)


async def _step(
    name: str, body: Callable[..., T], *, one_statement: bool = False, **kwargs: Any
) -> T:
    """Run `body` in one transaction (Database.transact) as the durable step `name`;
    `one_statement`: a body that writes with one statement (Database.transact says why)."""
    options: StepOptions = {**IDEMPOTENT_STEP, "name": name}
    return await DBOS.run_step_async(
        options, current().db.transact, body, one_statement=one_statement, **kwargs
    )


async def place_order(checkout_id: str, client: str | None) -> tuple[int, str | None]:
    """The order and its widget, in one transaction (store.place_order)."""
    return await _step("place_order", store.place_order, checkout_id=checkout_id, client=client)


# Calls to Stripe: retried on any error (stripe-python has already retried network errors and
# Stripe's 5xx, with the same Idempotency-Key) 1, 2, 4 ... 64 s apart, about two minutes in
# all. Past that the checkout ends in ERROR and the reconciler releases its order.
STRIPE_STEP = StepOptions(
    retries_allowed=True, max_attempts=8, interval_seconds=1.0, backoff_rate=2.0
)


async def create_payment_intent(order_id: int, payment_id: str) -> StripePayment:
    """Stripe mode: the order's PaymentIntent, for the widget's price in the store's currency,
    with the payment id as its Idempotency-Key and metadata (stripe/api.py). A crash
    after Stripe made it and before this step's checkpoint runs the step again, and Stripe
    answers the same PaymentIntent: never two."""
    options: StepOptions = {**STRIPE_STEP, "name": "create_payment_intent"}
    return await DBOS.run_step_async(options, _create_payment_intent, order_id, payment_id)


async def _create_payment_intent(order_id: int, payment_id: str) -> StripePayment:
    rt = current()
    if rt.stripe is None:
        raise RuntimeError("a PaymentIntent to make, and no Stripe secret key configured")
    product = await rt.db.read(store.get_product)
    if product is None:
        raise RuntimeError("the catalogue is empty: no price to ask Stripe for")
    intent = await stripe_payments.create_payment_intent(
        rt.stripe,
        payment_id=payment_id,
        order_id=order_id,
        amount=stripe_payments.minor_units(product["price"], rt.stripe.currency),
    )
    # Test-only: die with the PaymentIntent made at Stripe and this step not yet recorded.
    _crash_point("create_payment_intent:called")
    return intent


async def mark_paid(order_id: int) -> float | None:
    """The order PAID; answers the moment, which fixes the dispatch schedule (store.mark_paid),
    or None when the order was already released."""
    return await _step("mark_paid", store.mark_paid, one_statement=True, order_id=order_id)


async def release_order(order_id: int, *, why: str | None = None) -> bool:
    """Compensation, the undo of place_order: the order CANCELLED and its widget back, exactly
    once (store.release_order, only from PENDING), and whether this call did it.

    The one path for it. The checkout workflow runs it as a durable step when it ends unpaid.
    Outside any workflow, DBOS runs the same body as a plain call: the reconciler and a late
    settlement run it for a checkout that stopped without settling, and log `why`.
    """
    released = await _step("release_order", store.release_order, order_id=order_id)
    if released and why is not None:
        log_repair(order_id, "released", "order %s released: %s", order_id, why)
    return released


def log_repair(order_id: int, transition: str, message: str, *args: object) -> None:
    """A warning for an order put right outside its checkout (released, or its dispatch started
    or resumed), with the fields of a transition for the JSON log format."""
    log.warning(message, *args, extra={"order_id": order_id, "transition": transition})


async def tick_dispatch(order_id: int, remaining: int) -> int:
    """One dispatch tick: progress down to `remaining` (store.advance_dispatch)."""
    return await _step(
        "tick_dispatch",
        store.advance_dispatch,
        one_statement=True,
        order_id=order_id,
        remaining=remaining,
    )


@DBOS.workflow(name=DISPATCH)
async def dispatch_workflow(order_id: int, paid_at: float) -> None:
    """Ship a paid order: ten ticks, the i-th due `i` tick lengths after it was paid.

    Each tick is a durable step, so none is lost or counted twice. The schedule comes from
    `paid_at`, itself a checkpointed step output, so the wait between ticks needs no durable
    sleep of its own: after a crash, replayed ticks return at once and the next one waits only
    for what is left of its slot. One step per tick instead of two, and a schedule that does
    not drift. DISPATCHED at zero.
    """
    rt = current()
    for tick in range(1, DISPATCH_STEPS + 1):
        await asyncio.sleep(max(0.0, paid_at + tick * rt.dispatch_tick_s - time.time()))
        await tick_dispatch(order_id, DISPATCH_STEPS - tick)
        _crash_point("tick_dispatch")
    _log_transition(order_id, "dispatched")
