"""Refunds due: every SQL statement about money received for a checkout that had already ended.

As in `store`, one function is one transaction body: it takes the session as a keyword
argument and never commits (the caller owns begin, commit and retry).

A refund due is recorded when a `paid` payment reaches a checkout that ended without it
(checkout.deliver_payment), and marked refunded once the money is back with the shopper: by an
operator who refunded it at the provider (POST /refunds/{payment_id}/refunded), or by a durable
step of a provider that refunds through its API. Marking is a conditional UPDATE from `due`, so
either path may run it again after a crash, or both may race, and the first one wins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, Select, bindparam, cast, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from .store import first_row
from .tables import WIDGET_ID, OrderStatus, RefundStatus, orders, products, refunds

# Who marked a refund done through the operator's route.
BY_OPERATOR = "operator"

REFUND_COLUMNS = (
    refunds.c.payment_id,
    refunds.c.order_id,
    refunds.c.amount,
    refunds.c.reason,
    refunds.c.provider,
    refunds.c.provider_payment_id,
    refunds.c.received_at,
    refunds.c.status,
    refunds.c.refunded_at,
    refunds.c.refunded_by,
    refunds.c.refund_reference,
)

_MARK_REFUNDED = (
    update(refunds)
    .where(
        refunds.c.payment_id == bindparam("pid"),
        refunds.c.status == RefundStatus.DUE.value,
    )
    .values(
        status=RefundStatus.REFUNDED.value,
        refunded_at=func.now(),
        refunded_by=bindparam("by"),
        refund_reference=bindparam("reference"),
    )
)


def _one(payment_id: str) -> Select[Any]:
    return select(*REFUND_COLUMNS).where(refunds.c.payment_id == payment_id)


async def record_refund_due(
    *,
    session: AsyncSession,
    payment_id: str,
    reason: str,
    provider: str = "webhook",
    provider_payment_id: str | None = None,
) -> dict[str, Any] | None:
    """Record that the money for this payment id was received after its checkout ended, and
    return the refund due (the first one recorded, on a repeat); None if its order is not
    CANCELLED, so the payment did not come too late after all.

    One statement decides and records: the INSERT copies the order and its price only while the
    order is CANCELLED (a terminal state: mark_paid only moves PENDING orders, so a CANCELLED
    order never takes the money), and a second delivery of the same payment hits the primary
    key and inserts nothing (ON CONFLICT DO NOTHING, safe against two deliveries at once).
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    source = select(
        orders.c.payment_id,
        orders.c.order_id,
        products.c.price,
        literal(reason),
        literal(provider),
        cast(literal(provider_payment_id), refunds.c.provider_payment_id.type),
    ).where(
        orders.c.payment_id == payment_id,
        orders.c.order_status == OrderStatus.CANCELLED,
        products.c.product_id == WIDGET_ID,
    )
    await session.execute(
        insert(refunds)
        .from_select(
            ["payment_id", "order_id", "amount", "reason", "provider", "provider_payment_id"],
            source,
        )
        .on_conflict_do_nothing(index_elements=[refunds.c.payment_id])
    )
    return await first_row(session, _one(payment_id))


async def mark_refunded(
    *,
    session: AsyncSession,
    payment_id: str,
    by: str = BY_OPERATOR,
    reference: str | None = None,
) -> dict[str, Any] | None:
    """Mark a refund due as refunded, by whom and with the provider's reference for it; return
    it. Idempotent: one already refunded is returned as it is (the first marking stands). None
    for a payment id with no refund."""
    await session.execute(_MARK_REFUNDED, {"pid": payment_id, "by": by, "reference": reference})
    return await first_row(session, _one(payment_id))


async def list_refunds(
    *, session: AsyncSession, status: RefundStatus | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The latest `limit` refunds (of one status, if given), newest first."""
    query = select(*REFUND_COLUMNS)
    if status is not None:
        query = query.where(refunds.c.status == status.value)
    query = query.order_by(refunds.c.received_at.desc(), refunds.c.payment_id).limit(limit)
    return [dict(row) for row in (await session.execute(query)).mappings()]


async def refunds_due(*, session: AsyncSession) -> dict[str, Any]:
    """How many refunds are due, and their sum."""
    count, amount = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(refunds.c.amount), cast(0, Numeric(12, 2))),
            ).where(refunds.c.status == RefundStatus.DUE.value)
        )
    ).one()
    return {"count": int(count), "amount": amount}
