"""Stock ledger epochs, process starts, and the built-in shoppers' settings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(
            sa.Column("restock_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("reserved_epoch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("returned_epoch", sa.Integer(), nullable=True))
    # Orders from before the ledger: live and returned ones count in epoch 0.
    op.execute("UPDATE orders SET reserved_epoch = 0 WHERE order_status IN (0, 1, 2)")
    op.create_table(
        "process_starts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("executor_id", sa.String(100), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("workflows_recovered", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "load_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("running", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("shoppers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pay_weight", sa.Integer(), nullable=False, server_default="8"),
        sa.Column("decline_weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("abandon_weight", sa.Integer(), nullable=False, server_default="1"),
    )
    op.execute("INSERT INTO load_settings (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("load_settings")
    op.drop_table("process_starts")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("returned_epoch")
        batch.drop_column("reserved_epoch")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("restock_epoch")
