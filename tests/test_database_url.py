"""database_url.py: every form of Postgres URL libpq accepts, read once and written out for each
driver. The units need no database; the rest connect, for real, through each driver the store
uses (SQLAlchemy sync and async, raw psycopg, DBOS's system database) and run a whole store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from widget_store.config import Settings
from widget_store.database.url import InvalidDatabaseUrl, PostgresUrl
from widget_store.testing import Database, StoreServer, free_port

from .support import FAST_TICK, new_key

PASSWORD = "p@ss:w/rd%?#&= ü"
SOCKET_DIR = "/var/run/postgresql"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # libpq's multi-host form, as `pg_autoctl show uri` prints it.
        (
            "postgres://u@h1:5441,h2:5442/widgets?target_session_attrs=read-write&sslmode=prefer",
            {
                "user": "u",
                "dbname": "widgets",
                "host": "h1,h2",
                "port": "5441,5442",
                "target_session_attrs": "read-write",
                "sslmode": "prefer",
            },
        ),
        # SQLAlchemy's multi-host form, which libpq alone would misread (last host wins).
        (
            "postgresql+psycopg://u@/widgets?host=h1:5441&host=h2:5442&target_session_attrs=read-write",
            {
                "user": "u",
                "dbname": "widgets",
                "host": "h1,h2",
                "port": "5441,5442",
                "target_session_attrs": "read-write",
            },
        ),
        # Hosts in the query string as libpq's comma lists.
        (
            "postgresql:///widgets?host=h1,h2&port=5441,5442",
            {
                "dbname": "widgets",
                "host": "h1,h2",
                "port": "5441,5442",
                "target_session_attrs": "read-write",  # added: several hosts, writes
            },
        ),
        # A Unix socket folder, percent-encoded or not.
        (
            "postgresql://u@/db?host=%2Fvar%2Frun%2Fpostgresql",
            {"user": "u", "dbname": "db", "host": SOCKET_DIR},
        ),
        (
            "postgresql:///db?host=/tmp/pg&port=6000",
            {"dbname": "db", "host": "/tmp/pg", "port": "6000"},
        ),
        # TLS settings pass through.
        (
            "postgresql+psycopg2://u@db.example:5432/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            {
                "user": "u",
                "dbname": "shop",
                "host": "db.example",
                "port": "5432",
                "sslmode": "verify-full",
                "sslrootcert": "/etc/ca.pem",
            },
        ),
        # A password with every character a URL reserves.
        (
            "postgresql://u:p%40ss%3Aw%2Frd%25%3F%23%26%3D%20%C3%BC@h/db",
            {"user": "u", "password": PASSWORD, "dbname": "db", "host": "h"},
        ),
        # IPv6, and libpq's key=value form.
        (
            "postgres://u@[::1]:5432/db",
            {"user": "u", "dbname": "db", "host": "::1", "port": "5432"},
        ),
        (
            "host=h1 port=5433 dbname=db user=u",
            {"user": "u", "dbname": "db", "host": "h1", "port": "5433"},
        ),
    ],
)
def test_each_form_is_read_by_libpqs_rules(url: str, expected: dict[str, str]) -> None:
    parsed = PostgresUrl.parse(url)
    assert dict(parsed.params) == expected
    # Each driver's form reads back to the same target, the password intact.
    assert dict(PostgresUrl.parse(parsed.render()).params) == expected
    assert dict(PostgresUrl.parse(parsed.libpq()).params) == expected
    engine = sa.create_engine(parsed.sqlalchemy())
    try:
        _, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    assert {k: str(v) for k, v in kwargs.items() if k != "context"} == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u@h/db", "scheme mysql:// is not Postgres's"),
        ("postgresql://u@h:5432/", "names no database"),
        ("postgresql://u@h:99999/db", "'99999' is not a port"),
        ("postgresql://u@/db?host=h1:1&host=h2:2&port=3", "use one form"),
        ("postgresql://u@h/db?no_such_option=1", 'invalid URI query parameter: "no_such_option"'),
    ],
)
def test_a_url_libpq_refuses_says_why(url: str, reason: str) -> None:
    with pytest.raises(InvalidDatabaseUrl, match=reason):
        PostgresUrl.parse(url)


def test_the_password_stays_out_of_messages_and_display() -> None:
    url = "postgresql://u:s3cret-pw@h1:1,h2:2/db?target_session_attrs=read-write"
    assert PostgresUrl.parse(url).display() == (
        "postgresql://u:***@h1:1,h2:2/db?target_session_attrs=read-write"
    )
    with pytest.raises(InvalidDatabaseUrl) as caught:
        PostgresUrl.parse("postgresql://u:s3cret-pw@h/db?nope=s3cret-pw")
    assert "s3cret-pw" not in str(caught.value)


def test_settings_keep_one_form_for_every_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOS_DATABASE_URL", "postgres://u@h1:5441,h2:5442/widgets")
    settings = Settings()
    assert settings.database_url == (
        "postgresql+psycopg://u@/widgets?host=h1%2Ch2&port=5441%2C5442"
        "&target_session_attrs=read-write"
    )
    assert settings.system_database_url == settings.app_database_url == settings.database_url
    # DBOS_SYSTEM_DATABASE_URL in SQLAlchemy's own form names the same database: accepted.
    monkeypatch.setenv(
        "DBOS_SYSTEM_DATABASE_URL", "postgresql://u@/widgets?host=h1:5441&host=h2:5442"
    )
    assert Settings().postgres == settings.postgres


# --- for real, on the local Postgres -----------------------------------------------------


@pytest.fixture
def database(postgres_admin_url: str, tmp_path: Path) -> Iterator[Database]:
    db = Database.create("postgres", tmp_path, postgres_admin_url)
    yield db
    db.drop()


@pytest.fixture
def role(postgres_admin_url: str) -> Iterator[str]:
    """A role whose password needs every escape (trust auth ignores it; parsing may not)."""
    name = f"widget_store_pw_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(
        PostgresUrl.parse(postgres_admin_url).sqlalchemy(), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        quoted = conn.execute(sa.text("SELECT quote_literal(:pw)"), {"pw": PASSWORD}).scalar()
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN SUPERUSER PASSWORD {quoted}"))
    yield name
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
    engine.dispose()


def _forms(database: Database, role: str) -> dict[str, str]:
    target = PostgresUrl.parse(str(database.url))
    name, host, port = target.database, target.params["host"], target.params["port"]
    dead = free_port()  # nothing listens there: libpq moves on to the next host
    from urllib.parse import quote

    forms = {
        "plain": f"postgresql://postgres@{host}:{port}/{name}",
        "libpq multi-host": f"postgres://postgres@{host}:{dead},{host}:{port}/{name}"
        "?target_session_attrs=read-write",
        "sqlalchemy multi-host": f"postgresql+psycopg://postgres@/{name}"
        f"?host={host}:{dead}&host={host}:{port}&target_session_attrs=read-write",
        "hosts in the query": f"postgresql:///{name}?host={host},{host}&port={dead},{port}"
        "&user=postgres",
        "sslmode": f"postgresql://postgres@{host}:{port}/{name}?sslmode=disable&connect_timeout=5",
        "password": f"postgresql://{role}:{quote(PASSWORD, safe='')}@{host}:{port}/{name}",
    }
    if Path(SOCKET_DIR).is_dir():
        forms["unix socket"] = f"postgresql://postgres@/{name}?host={SOCKET_DIR}&port={port}"
    return forms


@pytest.mark.slow
def test_every_driver_connects_with_every_form(database: Database, role: str) -> None:
    for form, url in _forms(database, role).items():
        target = PostgresUrl.parse(url)
        engine = sa.create_engine(target.sqlalchemy())
        try:
            with engine.connect() as conn:
                assert (
                    conn.execute(sa.text("SELECT current_database()")).scalar() == target.database
                )
        finally:
            engine.dispose()
        with psycopg.connect(target.libpq()) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
            assert row is not None and row[0] == target.database, form

        async def via_async(target: PostgresUrl = target) -> str:
            engine = create_async_engine(target.sqlalchemy())
            try:
                async with engine.connect() as conn:
                    return str((await conn.execute(sa.text("SELECT 1"))).scalar())
            finally:
                await engine.dispose()

        assert asyncio.run(via_async()) == "1", form
        # DBOS builds its system database from the rendered string (and so does its CLI).
        engine = sa.create_engine(sa.make_url(target.render()).set(drivername="postgresql+psycopg"))
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar() == 1, form
        finally:
            engine.dispose()


@pytest.mark.slow
@pytest.mark.crash
def test_a_store_on_a_multi_host_url_serves_and_dboss_cli_reads_it(
    database: Database, tmp_path: Path
) -> None:
    """The operator's report: a multi-host URL whose first host is down. The store migrates,
    serves a purchase, and `dbos workflow list` reads the URL `widget-store database-url` gives."""
    target = PostgresUrl.parse(str(database.url))
    host, port, name = target.params["host"], target.params["port"], target.database
    url = (
        f"postgresql://postgres@{host}:{free_port()},{host}:{port}/{name}"
        "?target_session_attrs=read-write"
    )
    server = StoreServer(database, env_overrides={**FAST_TICK, "DBOS_DATABASE_URL": url})
    try:
        server.start()
        key = new_key("multihost")
        with server.client() as client:
            payment = client.post(f"/checkout/{key}")
            assert payment.status_code == 200, payment.text
            paid = server.pay(client, payment.text, "paid")
            assert paid.status_code == 200, paid.text
        env = {**server.env(), "DBOS_DATABASE_URL": url}
        converted = subprocess.run(
            [sys.executable, "-m", "widget_store", "database-url"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert PostgresUrl.parse(converted).same_target(PostgresUrl.parse(url))
        listed = subprocess.run(
            [str(Path(sys.executable).parent / "dbos"), "workflow", "list"],
            env={**env, "DBOS_DATABASE_URL": converted},
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert f"checkout:{key}" in listed.stdout
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:s3cret@h1:5432,h2/", "postgresql://u:s3cret@h/db?nope=1", "mysql://u@h/db"],
)
def test_a_url_the_store_cannot_use_stops_it_with_one_line(url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDGET_STORE_", "DBOS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "widget_store", "serve", "--port", "0"],
        env={**env, "DBOS_DATABASE_URL": url, "WIDGET_STORE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("widget-store: DBOS_DATABASE_URL: not a Postgres URL libpq accepts")
    assert "s3cret" not in done.stderr + done.stdout
