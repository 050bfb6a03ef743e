"""What the routes ask of a checkout when Stripe is the payment provider: its PaymentIntent
(for the page), a card paid into it, and Stripe's webhook events settling it; and the refund,
through Stripe, of a payment that came after its checkout had ended.

A webhook event settles a checkout only with a PaymentIntent that matches it: the checkout's
own (when the store made one), for the order's amount and currency. `payment_intent.succeeded`
then pays it exactly as the seed's `paid` webhook does (checkout.deliver_payment), and
`payment_intent.payment_failed` ends it, the widget back. A success for a checkout that had
already ended is a refund due (refunds.py), refunded through Stripe by a small durable workflow
when the store has a secret key. Every event the store acted on is kept (tables.stripe_events),
so a redelivery of the same event id is answered from it and changes nothing; an event of
another type is answered and ignored, as Stripe expects.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ...database.handle import Database
from .. import checkout, refunds, store
from ..errors import CheckoutEnded, Conflict, NotFound
from ..payments import PaymentStatus
from ..runtime import current
from ..tables import OrderStatus, RefundStatus, stripe_events
from ..workflows import STRIPE_PAYMENT, STRIPE_STEP, checkout_workflow_id
from . import api as stripe_payments
from .api import FAILED, SUCCEEDED, StripePayment

if TYPE_CHECKING:
    import stripe  # only for its types: api.py imports it where it is called

log = logging.getLogger(__name__)

PROVIDER = "stripe"
# What each event type the store acts on tells a checkout.
SETTLES: dict[str, PaymentStatus] = {SUCCEEDED: "paid", FAILED: "failed"}
# The store's payment ids (store.place_order: uuid4 hex; the routes take [A-Za-z0-9_-]).
PAYMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Outcome = Literal["paid", "failed", "refund_due", "mismatch", "unknown_payment", "ended", "ignored"]


class EventOutcome(TypedDict):
    """What the store did with one webhook event (the answer's body, and its row)."""

    event_id: str
    type: str
    outcome: Outcome
    payment_id: str | None
    order_id: int | None
    detail: str | None
    duplicate: bool


# --- The checkout's PaymentIntent, and a card paid into it -----------------------------------


async def payment_of(checkout_id: str) -> StripePayment | None:
    """The PaymentIntent the checkout made (Stripe mode), or None: not made yet, or never (a
    checkout of another mode, or sold out)."""
    events = await DBOS.get_all_events_async(checkout_id)
    return cast(StripePayment | None, events.get(STRIPE_PAYMENT))


async def pay_by_card(db: Database, idempotency_key: str, token: str) -> str:
    """The shopper's card (a Stripe.js token) set on their checkout's PaymentIntent, which is
    then confirmed; answers the PaymentIntent's status. The checkout moves on when Stripe's
    webhook says how the payment went, as with any payment."""
    api = current().stripe
    if api is None:
        raise NotFound("Stripe is not configured: no card is taken here")
    checkout_id = checkout_workflow_id(idempotency_key)
    found = await db.read(store.get_checkout, checkout_id=checkout_id)
    if found is None:
        raise NotFound(f"No checkout for key {idempotency_key!r}")
    if found["order_status"] != OrderStatus.PENDING or found["payment_id"] is None:
        status = OrderStatus(found["order_status"]).name
        raise Conflict(f"The checkout already ended (order {found['order_id']} is {status})")
    payment = await payment_of(checkout_id)
    if payment is None:
        raise Conflict(
            "This checkout has no Stripe PaymentIntent (it began before Stripe was configured); "
            "it is paid at the provider with its payment id"
        )
    return await stripe_payments.pay_with_card(
        api,
        payment_intent=payment["payment_intent"],
        payment_id=found["payment_id"],
        token=token,
    )


# --- Webhook events ---------------------------------------------------------------------------


async def receive_event(db: Database, event: stripe.Event, *, currency: str) -> EventOutcome:
    """Act on one verified event (stripe_payments.verify_event), once per event id. `currency`
    is the store's, which a PaymentIntent the store did not make must be in."""
    if event.type not in SETTLES:
        return _outcome(event, "ignored", None, None, None)
    seen = await db.read(find_event, event_id=event.id)
    if seen is not None:
        return cast(EventOutcome, {**seen, "duplicate": True})
    fields = stripe_payments.intent_fields(event)
    outcome, order_id, detail = await _act(db, SETTLES[event.type], fields, currency)
    payment_id = fields["payment_id"]
    answer = _outcome(event, outcome, payment_id, order_id, detail)
    level = logging.INFO if outcome in ("paid", "failed") else logging.WARNING
    log.log(
        level,
        "Stripe event %s (%s, PaymentIntent %s, payment %s): %s%s",
        event.id,
        event.type,
        fields["payment_intent"],
        payment_id,
        outcome,
        f": {detail}" if detail else "",
        extra={"order_id": order_id, "transition": f"stripe_{outcome}"},
    )
    await db.run(record_event, row={**answer, "payment_intent": fields["payment_intent"]})
    return answer


def _outcome(
    event: stripe.Event,
    outcome: Outcome,
    payment_id: str | None,
    order_id: int | None,
    detail: str | None,
) -> EventOutcome:
    return EventOutcome(
        event_id=event.id,
        type=event.type,
        outcome=outcome,
        payment_id=payment_id,
        order_id=order_id,
        detail=detail[:500] if detail else None,
        duplicate=False,
    )


async def _act(
    db: Database, status: PaymentStatus, fields: dict[str, Any], currency: str
) -> tuple[Outcome, int | None, str | None]:
    payment_id = fields["payment_id"]
    if payment_id is None or not PAYMENT_ID.fullmatch(payment_id):
        return "unknown_payment", None, "the PaymentIntent names no payment id of this store"
    checkout_id = await db.read(store.find_checkout, payment_id=payment_id)
    if checkout_id is None:
        return "unknown_payment", None, f"no checkout has payment id {payment_id!r}"
    problem = await _mismatch(db, checkout_id, fields, currency)
    if problem is not None:
        return "mismatch", None, problem
    payment_intent = fields["payment_intent"]
    try:
        order_id = await checkout.deliver_payment(
            db, payment_id, status, provider=PROVIDER, provider_payment_id=payment_intent
        )
    except CheckoutEnded as ended:
        # Recorded by deliver_payment as a refund due when it was money for an ended checkout.
        refund = ended.refund
        if refund is None:  # a failure, or its order was paid otherwise: nothing is due
            return "ended", None, ended.detail
        if refund["status"] == RefundStatus.DUE:
            await start_refund(payment_id, refund["provider_payment_id"] or payment_intent)
        return "refund_due", refund["order_id"], ended.detail
    return status, order_id, None


async def _mismatch(
    db: Database, checkout_id: str, fields: dict[str, Any], currency: str
) -> str | None:
    """Why this PaymentIntent does not match its checkout, or None when it does: the
    checkout's own PaymentIntent if it made one, the same amount, the same currency."""
    own = await payment_of(checkout_id)
    if own is not None:
        if fields["payment_intent"] != own["payment_intent"]:
            return (
                f"PaymentIntent {fields['payment_intent']} is not the checkout's own "
                f"({own['payment_intent']})"
            )
        amount, expected_currency = own["amount"], own["currency"]
    else:
        product = await db.read(store.get_product)
        if product is None:
            return "the catalogue is empty"
        amount = stripe_payments.minor_units(product["price"], currency)
        expected_currency = currency
    got = (fields["amount"], str(fields["currency"] or "").lower())
    if got != (amount, expected_currency):
        return f"{got[0]} {got[1]} paid where the order is {amount} {expected_currency}"
    return None


async def find_event(*, session: AsyncSession, event_id: str) -> dict[str, Any] | None:
    """What the store did with this event id, if it acted on it before."""
    query = select(
        stripe_events.c.event_id,
        stripe_events.c.type,
        stripe_events.c.outcome,
        stripe_events.c.payment_id,
        stripe_events.c.order_id,
        stripe_events.c.detail,
    ).where(stripe_events.c.event_id == event_id)
    return await store.first_row(session, query)


async def record_event(*, session: AsyncSession, row: dict[str, Any]) -> None:
    """Keep what the store did with an event; the first record of an event id stands (two
    deliveries at once both act, idempotently, and one row is kept)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = {column.name for column in stripe_events.columns} - {"received_at"}
    await session.execute(
        insert(stripe_events)
        .values({key: value for key, value in row.items() if key in columns})
        .on_conflict_do_nothing(index_elements=[stripe_events.c.event_id])
    )


# --- Refunds through Stripe -------------------------------------------------------------------

STRIPE_REFUND = "stripe_refund"


def refund_workflow_id(payment_id: str) -> str:
    return f"{STRIPE_REFUND}:{payment_id}"


async def start_refund(payment_id: str, payment_intent: str) -> None:
    """Refund a refund due through Stripe, once: the workflow is keyed by the payment id, so
    starting it again (a redelivered event) joins the one under way or done. Without a secret
    key the store cannot: the refund stays due for the operator."""
    if current().stripe is None:
        log.warning(
            "payment %s (PaymentIntent %s) is a refund due: refund it at Stripe, then "
            "POST /refunds/%s/refunded (no WIDGET_STORE_STRIPE_SECRET_KEY to refund it here)",
            payment_id,
            payment_intent,
            payment_id,
        )
        return
    with SetWorkflowID(refund_workflow_id(payment_id)):
        await DBOS.start_workflow_async(stripe_refund_workflow, payment_id, payment_intent)


@DBOS.workflow(name=STRIPE_REFUND)
async def stripe_refund_workflow(payment_id: str, payment_intent: str) -> str | None:
    """Refund the PaymentIntent at Stripe (a durable step, its Idempotency-Key
    `refund:<payment id>`, so a crash before its checkpoint gets Stripe's first refund back),
    then mark the refund due refunded, by `stripe`, with Stripe's refund id. Answers that id;
    None in a process with no secret key, where the refund stays due for the operator."""
    api = current().stripe
    if api is None:
        log.warning("refund of payment %s left due: no Stripe secret key here", payment_id)
        return None
    refund_id = await DBOS.run_step_async(
        {**STRIPE_STEP, "name": "stripe_refund"},
        stripe_payments.refund,
        api,
        payment_id=payment_id,
        payment_intent=payment_intent,
    )
    await current().db.run(
        refunds.mark_refunded, payment_id=payment_id, by=PROVIDER, reference=refund_id
    )
    log.info(
        "payment %s refunded through Stripe (refund %s)",
        payment_id,
        refund_id,
        extra={"transition": "refunded"},
    )
    return refund_id
