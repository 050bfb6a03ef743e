"""Products and orders.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.Integer(), primary_key=True),
        sa.Column("product", sa.String(255), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("inventory", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.CheckConstraint("inventory >= 0", name="inventory_not_negative"),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("checkout_id", sa.String(160), nullable=False, unique=True),
        sa.Column("payment_id", sa.String(64), nullable=False, unique=True),
        sa.Column("order_status", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("progress_remaining", sa.Integer(), nullable=False, server_default="10"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "last_update_time",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.CheckConstraint("progress_remaining >= 0", name="progress_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("orders")
    op.drop_table("products")
