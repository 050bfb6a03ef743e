"""The client that placed each order, for the cap on unpaid checkouts per client.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("client", sa.String(64), nullable=True))
        batch.create_index("orders_client_status", ["client", "order_status"])


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("orders_client_status")
        batch.drop_column("client")
