"""The executors: every serving process's DBOS executor id, whether and by whom it was taken over.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executors",
        sa.Column("executor_id", sa.String(100), primary_key=True),
        # The second key of the session advisory lock its process holds while alive.
        sa.Column("lock_key", sa.Integer(), nullable=False),
        # The Postgres backend holding it: a lock held by anyone else does not count.
        sa.Column("lock_backend_pid", sa.Integer(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        # When it last took its lock: a takeover older than this is of an earlier death.
        sa.Column("alive_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_over_by", sa.String(100), nullable=True),
        sa.Column("taken_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflows_taken_over", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("executors")
