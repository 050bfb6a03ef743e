"""An index of the unsettled orders (PENDING or PAID) alone: every serving process looks for
them every few seconds (durable/reconciler.py), and without it each look read every order
ever placed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# PENDING (0) or PAID (2), written out as the reconciler's query writes it, so that both
# Postgres and SQLite see that the query's rows are all in the index.
UNSETTLED = "order_status IN (0, 2)"


def upgrade() -> None:
    op.create_index(
        "orders_unsettled",
        "orders",
        ["order_id"],
        postgresql_where=sa.text(UNSETTLED),
        sqlite_where=sa.text(UNSETTLED),
    )


def downgrade() -> None:
    op.drop_index("orders_unsettled", table_name="orders")
