"""Sessions left on a server that is no longer the primary are dropped, so that every pool
reconnects, and with a multi-host URL (`target_session_attrs=read-write`) lands on the server
that is.

After a failover the old primary may come back as a read-only standby. A connection still open
to it, or one made without `target_session_attrs`, answers every write with SQLSTATE 25006
(read_only_sql_transaction). That is no connection error to SQLAlchemy or DBOS: DBOS retries
classes 08, 53 and 57 but not 25006, so a workflow step would fail instead of waiting, and a
pooled connection would keep failing. Marked as a disconnect, the error invalidates the pool
(SQLAlchemy's `is_disconnect`), and DBOS's db_retry and the store's step retries treat it as the
connection loss it is (`DBAPIError.connection_invalidated`).
"""

from __future__ import annotations

import sqlalchemy as sa

READ_ONLY_SQL_TRANSACTION = "25006"

_installed = False


def is_read_only(error: BaseException | None) -> bool:
    """A driver error saying the server refuses writes: a standby, or a demoted primary."""
    return getattr(error, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION


def _on_error(context: sa.engine.ExceptionContext) -> None:
    if context.dialect.name == "postgresql" and is_read_only(context.original_exception):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = True


def drop_sessions_on_read_only_servers() -> None:
    """For every SQLAlchemy engine of this process, DBOS's own included (idempotent)."""
    global _installed
    if not _installed:
        sa.event.listen(sa.Engine, "handle_error", _on_error)
        _installed = True
