"""The store's tables, on one SQLAlchemy MetaData that Alembic migrates."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    false,
    func,
    text,
)

metadata = MetaData()

WIDGET_ID = 1
DISPATCH_STEPS = 10
RESTOCK_LEVEL = 100


def as_utc(moment: datetime) -> datetime:
    """A timestamp read from these tables, zoned UTC. SQLite hands the DateTime(timezone=True)
    columns back without a zone; they are UTC (func.now() is CURRENT_TIMESTAMP there)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class OrderStatus(IntEnum):
    """The seed's status codes, kept for the contract."""

    CANCELLED = -1
    PENDING = 0
    DISPATCHED = 1
    PAID = 2


# The orders a workflow still has to move on, written out with literal values: a partial index
# on it (orders_unsettled) serves a query only where the query's condition says the same.
UNSETTLED = text(f"order_status IN ({OrderStatus.PENDING.value}, {OrderStatus.PAID.value})")


class RefundStatus(StrEnum):
    """A refund due: money received for a checkout that had already ended, to be paid back."""

    DUE = "due"
    REFUNDED = "refunded"


products = Table(
    "products",
    metadata,
    Column("product_id", Integer, primary_key=True),
    Column("product", String(255), nullable=False),
    Column("description", String(2000), nullable=False),
    # The never-oversold invariant, also enforced by every reservation's conditional UPDATE.
    Column(
        "inventory",
        Integer,
        CheckConstraint("inventory >= 0", name="inventory_not_negative"),
        nullable=False,
    ),
    Column("price", Numeric(10, 2), nullable=False),
    # Counts restocks, so the live ledger can tell widgets reserved before the last one apart.
    Column("restock_epoch", Integer, nullable=False, server_default="0"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", Integer, primary_key=True, autoincrement=True),
    # The checkout workflow that owns the order; unique, so one checkout key makes one order.
    Column("checkout_id", String(160), nullable=False, unique=True),
    # What the shopper hands the payment provider; the webhook finds the checkout by it.
    Column("payment_id", String(64), nullable=False, unique=True),
    Column("order_status", Integer, nullable=False, server_default=str(OrderStatus.PENDING.value)),
    Column(
        "progress_remaining",
        Integer,
        CheckConstraint("progress_remaining >= 0", name="progress_not_negative"),
        nullable=False,
        server_default=str(DISPATCH_STEPS),
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "last_update_time",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    # The restock epoch the widget was taken in (None: never reserved, sold out) and the one it
    # was returned in (None: not returned). The stock ledger is exact with these, even when a
    # restock happens while checkouts are in flight.
    Column("reserved_epoch", Integer, nullable=True),
    Column("returned_epoch", Integer, nullable=True),
    # The shopper's network address, for the cap on unpaid checkouts per client (None: exempt,
    # such as the built-in shoppers, or placed before the cap existed).
    Column("client", String(64), nullable=True),
    Index("orders_client_status", "client", "order_status"),
    # The unsettled orders alone, for the reconciler's look every few seconds (migration 0007).
    Index(
        "orders_unsettled",
        "order_id",
        postgresql_where=UNSETTLED,
        sqlite_where=UNSETTLED,
    ),
)

# Money received for a checkout that had already ended (a `paid` webhook after it expired, was
# cancelled, declined or stopped): the provider captured it, the order never took it, so it is
# owed back. One row per payment id, kept after it is refunded; a refund is carried out by an
# operator (POST /refunds/{payment_id}/refunded) or, for a provider that can refund, by a
# durable step that marks it refunded the same way (shop/refunds.py).
refunds = Table(
    "refunds",
    metadata,
    # The store's payment id: the same delivery again finds its row and records nothing twice.
    Column("payment_id", String(64), primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.order_id"), nullable=False),
    # The order's price when the money came in.
    Column("amount", Numeric(10, 2), nullable=False),
    # How the checkout had ended: expired, cancelled, failed, released, stopped, out_of_stock.
    Column("reason", String(32), nullable=False),
    # Which provider took the money ("webhook": the seed's signed webhook), and its own id for
    # the payment, where it has one that differs from the store's (what a refund call needs).
    Column("provider", String(32), nullable=False, server_default="webhook"),
    Column("provider_payment_id", String(255), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "status",
        String(16),
        CheckConstraint("status IN ('due', 'refunded')", name="refund_status_known"),
        nullable=False,
        server_default=RefundStatus.DUE.value,
    ),
    # Who refunded it ("operator", or the provider's step), when, and the provider's reference
    # for the refund if given.
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    Column("refunded_by", String(64), nullable=True),
    Column("refund_reference", String(255), nullable=True),
    Index("refunds_status", "status"),
)

# Stripe's webhook events the store acted on (POST /webhooks/stripe, shop/stripe/checkout.py):
# one row per event id, so a redelivery is answered from it and changes nothing, and what each
# did, for the operator: paid, failed, refund_due, mismatch (a PaymentIntent that did not match
# its checkout, which it never settles), unknown_payment, ended (the checkout had already
# ended, and nothing was due). Event types the store does not use are not kept.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("payment_intent", String(255), nullable=True),
    # The store's payment id, from the PaymentIntent's metadata.
    Column("payment_id", String(64), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("order_id", Integer, nullable=True),
    Column("detail", String(500), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

process_starts = Table(
    "process_starts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("executor_id", String(100), nullable=False),
    Column("restart_count", Integer, nullable=False),
    Column("workflows_recovered", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
)

# The built-in shoppers' settings: one row, changed by the operator panel.
load_settings = Table(
    "load_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("running", Boolean, nullable=False, server_default=false()),
    # Bumped by every start or change, so shoppers of an earlier setting stop by themselves.
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("shoppers", Integer, nullable=False, server_default="0"),
    Column("pay_weight", Integer, nullable=False, server_default="8"),
    Column("decline_weight", Integer, nullable=False, server_default="1"),
    Column("abandon_weight", Integer, nullable=False, server_default="1"),
)
