"""`widget-store`: serve (the default) or migrate."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from ..config import Settings
from . import logs

log = logging.getLogger("widget_store")


def load_settings() -> Settings:
    """Settings from the environment; a wrong one stops the program with a message naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        sys.exit(f"widget-store: invalid configuration: {problems}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="widget-store",
        description="An online store that sells a widget and survives any crash.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="migrate, then serve and restart after any crash")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="serving processes, each with an executor id of its own (default: "
        "WIDGET_STORE_WORKERS, else the core count on Postgres; 1 on SQLite)",
    )
    commands.add_parser("migrate", help="apply the migrations and seed the catalogue, then exit")
    args = parser.parse_args(argv)

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)

    workers = getattr(args, "workers", None) or settings.worker_count
    if workers > 1 and settings.uses_sqlite:
        sys.exit(
            f"widget-store: --workers {workers} needs Postgres (DBOS_DATABASE_URL): "
            "SQLite is one process"
        )

    from .migrate import migrate

    migrate(settings)
    if args.command == "migrate":
        log.info("database is up to date")
        return

    from .supervisor import supervise

    sys.exit(
        supervise(
            getattr(args, "host", "127.0.0.1"),
            getattr(args, "port", 8000),
            crash_loop_window_s=settings.crash_loop_window_s,
            workers=workers,
            executor_id=settings.executor_id,
        )
    )


if __name__ == "__main__":
    main()
