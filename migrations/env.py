"""Alembic environment: the URL comes from the store's Settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from widget_store.config import Settings
from widget_store.shop.tables import metadata


def database_url() -> str:
    # `widget-store migrate` passes its own settings' URL; a bare `alembic` call reads the env.
    url = context.config.attributes.get("database_url")
    return str(url) if url else Settings().app_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Two instances starting together must not both create the tables.
                connection.execute(text("SELECT pg_advisory_xact_lock(8000151)"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
