"""`widget-store`: serve (the default) or migrate.

Whatever stops the program before it serves (a wrong setting, a busy port, a database it cannot
reach) is said in one line that names the setting, the port or the database, and what to do;
the exit code is then 2.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pydantic import AliasChoices, ValidationError

from ..config import Settings
from . import logs

log = logging.getLogger("widget_store")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_PORT = 65535
# As Settings.workers allows.
MAX_WORKERS = 64
EXIT_REFUSED = 2
SETTINGS_POINTER = "see the Configuration table in README.md"

DESCRIPTION = """\
An online store that sells a widget and survives any crash.

Without a command, `widget-store` serves: `widget-store serve` with its defaults
(http://127.0.0.1:8000, embedded SQLite in the data folder)."""

SETTINGS_EPILOG = """\
settings are environment variables, among them:
  DBOS_DATABASE_URL               Postgres URL (unset: embedded SQLite)
  WIDGET_STORE_DATA_DIR           the SQLite files and the webhook secret
                                  (default: ~/.local/share/widget-store)
  WIDGET_STORE_DEMO               1 (default): demo mode; 0: production
  WIDGET_STORE_OPERATOR_TOKEN     the operator routes' bearer token (needed when DEMO=0)
  WIDGET_STORE_PAYMENT_TIMEOUT_S  seconds a checkout waits for payment (default: 300)
  WIDGET_STORE_LOG_LEVEL          INFO (default), DEBUG shows DBOS's and Alembic's lines
  WIDGET_STORE_LOG_FORMAT         text (default) or json
every setting, with its default, is in the Configuration table of README.md."""


def refuse(message: str) -> NoReturn:
    """Stop before serving, with one line on stderr."""
    print(f"widget-store: {message}", file=sys.stderr)  # noqa: T201
    sys.exit(EXIT_REFUSED)


def _variable(field: str) -> str:
    """The environment variable that sets a field of Settings."""
    for other in Settings.model_fields.values():
        if isinstance(other.validation_alias, AliasChoices) and field in map(
            str, other.validation_alias.choices
        ):
            return field  # pydantic names a field read through an alias by that alias
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def load_settings() -> Settings:
    """Settings from the environment; a wrong one stops the program with a line naming its
    environment variable (never its value, which may be a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            loc = error["loc"]
            field = str(loc[0]) if loc else ""
            problems.append(f"{_variable(field)}: {message}" if field else message)
        refuse(f"{'; '.join(problems)} ({SETTINGS_POINTER})")


def _data_folder_problem(folder: Path) -> str | None:
    """Why the data folder cannot be used (None when it can): made if missing, 0700 like
    the rest of it (migrate.py), then a file written and removed in it."""
    for path in (folder, *folder.parents):
        # os.path's, which say False for a path it may not look at (mkdir then says why).
        if os.path.exists(path):
            if not os.path.isdir(path):
                return f"{path} is a file, not a folder"
            break
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {folder} ({(exc.strerror or str(exc)).lower()})"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write in {folder} ({(exc.strerror or str(exc)).lower()})"
    return None


def _check_data_folder(settings: Settings) -> None:
    """The data folder holds the SQLite files, and on Postgres the webhook secret the store
    makes when none is set: stop with one line if it cannot be used."""
    if not settings.uses_sqlite and settings.webhook_secret:
        return
    problem = _data_folder_problem(settings.data_dir)
    if problem is not None:
        refuse(
            f"WIDGET_STORE_DATA_DIR: {problem}; set it to a folder the store may create and "
            "write in"
        )


def describe_database(settings: Settings) -> str:
    """The database in use, for people: the SQLite folder, or Postgres without the password."""
    return settings.describe_database()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened before anything else so that a busy port is said at once."""
    from .supervisor import listen

    try:
        return listen(host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        refuse(
            f"cannot listen on {host}:{port} ({reason.lower()}); stop whatever uses it, "
            f"or choose another port: widget-store serve --port {port + 1}"
        )


def _unreachable(settings: Settings, reason: str) -> str:
    where = settings.postgres.display() if settings.postgres else settings.data_dir
    return f"cannot reach the database at {where} ({reason})"


def _migrate(settings: Settings) -> None:
    """`widget-store migrate`: waits a while for the database, else stops with one line."""
    from .migrate import DatabaseUnreachable, migrate

    try:
        migrate(settings)
    except DatabaseUnreachable as exc:
        refuse(f"{_unreachable(settings, exc.reason)}; start it, or fix DBOS_DATABASE_URL")


def _migrate_now(settings: Settings) -> str | None:
    """One attempt at the migrations for `serve`: None once done, else why not. The supervisor
    tries again with its backoff, answering 503 with the reason meanwhile."""
    from .migrate import DatabaseUnreachable, migrate

    try:
        migrate(settings, wait_s=0)
    except DatabaseUnreachable as exc:
        return _unreachable(settings, exc.reason)
    return None


def _database_probe(settings: Settings) -> Callable[[], bool] | None:
    from .migrate import database_answers

    target = settings.postgres
    return None if target is None else functools.partial(database_answers, target)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)  # noqa: T201
        sys.exit(EXIT_REFUSED)


def _number(low: int, high: int, what: str | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; `what` says the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if low <= value <= high:
            return value
        if what is not None:
            raise argparse.ArgumentTypeError(f"must be {what}, not {value}")
        bound = f"at least {low}" if value < low else f"at most {high}"
        raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="widget-store",
        description=DESCRIPTION,
        epilog=SETTINGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,migrate,database-url}")
    serve = commands.add_parser(
        "serve",
        help="(the default) migrate, then serve and restart after any crash",
        description="Apply the migrations, seed the widget, then serve the store and the page, "
        "restarting the server at once after any crash. Ctrl-C or SIGTERM stops it.",
        epilog=SETTINGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port",
        type=_number(0, MAX_PORT, f"a port number from 0 to {MAX_PORT}"),
        default=DEFAULT_PORT,
        help=f"port to listen on (default: {DEFAULT_PORT}), 0 for any free one",
    )
    serve.add_argument(
        "--workers",
        type=_number(1, MAX_WORKERS),
        default=None,
        help=f"serving processes, 1 to {MAX_WORKERS}, each with an executor id of its own "
        "(default: WIDGET_STORE_WORKERS, else the core count on Postgres; 1 on SQLite)",
    )
    commands.add_parser(
        "migrate",
        help="apply the migrations and seed the catalogue, then exit",
        description="Apply the migrations and seed the widget, then exit.",
        epilog=SETTINGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser(
        "database-url",
        help="print DBOS_DATABASE_URL in the form DBOS's CLI reads, then exit",
        description="Print the Postgres URL in DBOS_DATABASE_URL as SQLAlchemy writes it, the "
        "one form both the store and DBOS's own CLI read (libpq's multi-host form, as "
        "`pg_autoctl show uri` prints it, is one DBOS's CLI cannot parse): "
        'export DBOS_DATABASE_URL="$(widget-store database-url)". The password is included.',
        epilog=SETTINGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)

    if args.command == "database-url":
        if settings.postgres is None:
            refuse("DBOS_DATABASE_URL names no Postgres database: the store runs on SQLite")
        print(settings.postgres.render())  # noqa: T201 - the command's output
        return

    if args.command == "migrate":
        _check_data_folder(settings)
        _migrate(settings)
        log.info("database is up to date: %s", describe_database(settings))
        return

    host = getattr(args, "host", DEFAULT_HOST)
    port = getattr(args, "port", DEFAULT_PORT)
    workers = getattr(args, "workers", None) or settings.worker_count
    if workers > 1 and settings.uses_sqlite:
        refuse(f"--workers {workers} needs Postgres (DBOS_DATABASE_URL): SQLite is one process")
    sock = _bind(host, port)
    _check_data_folder(settings)

    from .supervisor import supervise

    sys.exit(
        supervise(
            host,
            port,
            crash_loop_window_s=settings.crash_loop_window_s,
            standby=settings.standby,
            sock=sock,
            workers=workers,
            executor_id=settings.executor_id,
            # The migrations first; a database away is waited for, 503 with why on the port.
            prepare=functools.partial(_migrate_now, settings),
            database_answers=_database_probe(settings),
        )
    )


if __name__ == "__main__":
    main()
