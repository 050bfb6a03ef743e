"""Refunds due: money received for a checkout that had already ended, until it is refunded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False, server_default="webhook"),
        sa.Column("provider_payment_id", sa.String(255), nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "status",
            sa.String(16),
            sa.CheckConstraint("status IN ('due', 'refunded')", name="refund_status_known"),
            nullable=False,
            server_default="due",
        ),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refunded_by", sa.String(64), nullable=True),
        sa.Column("refund_reference", sa.String(255), nullable=True),
    )
    op.create_index("refunds_status", "refunds", ["status"])


def downgrade() -> None:
    op.drop_index("refunds_status", table_name="refunds")
    op.drop_table("refunds")
