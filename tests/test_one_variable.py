"""One variable, DBOS_DATABASE_URL, for the store and DBOS's CLI: `dbos migrate` puts both schemas
in the one database it names, `dbos start` serves on the store's port, and a
DBOS_SYSTEM_DATABASE_URL naming another database is refused."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from widget_store.config import Settings
from widget_store.testing import Database, free_port, wait_until

from .support import REPO_ROOT
from .test_operations import DBOS_CLI, with_venv_path

POSTGRES_URL_ENV = "WIDGET_STORE_TEST_POSTGRES_URL"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith(("DBOS_", "WIDGET_STORE_")):
            monkeypatch.delenv(key)
    return monkeypatch


def test_a_sqlite_url_names_the_data_folder(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("DBOS_DATABASE_URL", f"sqlite:///{tmp_path}/dbos.sqlite")
    settings = Settings()
    assert settings.uses_sqlite and settings.data_dir == tmp_path.resolve()
    assert settings.system_database_url == f"sqlite:///{tmp_path.resolve()}/dbos.sqlite"
    assert settings.app_database_url == f"sqlite:///{tmp_path.resolve()}/store.sqlite"


def test_a_sqlite_url_of_another_file_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DBOS_DATABASE_URL", "sqlite:///somewhere/store.sqlite")
    with pytest.raises(ValidationError, match="dbos.sqlite"):
        Settings()


def test_a_sqlite_url_and_another_data_dir_are_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("DBOS_DATABASE_URL", f"sqlite:///{tmp_path}/a/dbos.sqlite")
    clean_env.setenv("WIDGET_STORE_DATA_DIR", str(tmp_path / "b"))
    with pytest.raises(ValidationError, match="set one of them"):
        Settings()


def test_dbos_system_database_url_must_name_the_same_database(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("DBOS_DATABASE_URL", "postgresql://postgres@127.0.0.1/store")
    clean_env.setenv("DBOS_SYSTEM_DATABASE_URL", "postgresql://postgres@127.0.0.1/store")
    assert Settings().system_database_url.endswith("/store")
    clean_env.setenv("DBOS_SYSTEM_DATABASE_URL", f"sqlite:///{tmp_path}/dbos.sqlite")
    with pytest.raises(ValidationError, match="DBOS_SYSTEM_DATABASE_URL"):
        Settings()
    clean_env.delenv("DBOS_DATABASE_URL")
    with pytest.raises(ValidationError, match="DBOS_SYSTEM_DATABASE_URL"):
        Settings()  # only DBOS's variable: the store would use SQLite in its default folder


def operator_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOS_", "WIDGET_STORE_"))}
    return with_venv_path({**env, "DBOS_DATABASE_URL": url, **extra})


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        inspector = sa.inspect(engine)
        names = set(inspector.get_table_names())
        if engine.dialect.name == "postgresql":
            names |= {f"dbos.{t}" for t in inspector.get_table_names(schema="dbos")}
        return names
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_dbos_migrate_puts_both_schemas_in_the_one_database(kind: str, tmp_path: Path) -> None:
    if kind == "postgres" and not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(f"set {POSTGRES_URL_ENV}")
    database = Database.create(kind, tmp_path / "data", os.environ.get(POSTGRES_URL_ENV))
    database.data_dir.mkdir(parents=True)  # DBOS's SQLite makes the file, not its folder
    try:
        url = database.url or f"sqlite:///{database.data_dir}/dbos.sqlite"
        done = subprocess.run(
            [DBOS_CLI, "migrate"],
            cwd=REPO_ROOT,
            env=operator_env(url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        if kind == "sqlite":
            assert "workflow_status" in tables(url)
            assert "orders" in tables(f"sqlite:///{database.data_dir}/store.sqlite")
            assert not (REPO_ROOT / "widget_store.sqlite").exists()
        else:
            found = tables(url)
            assert "dbos.workflow_status" in found and "orders" in found
    finally:
        database.drop()


@pytest.mark.slow
def test_dbos_start_serves_on_the_stores_port(tmp_path: Path) -> None:
    port = free_port()
    env = operator_env(
        f"sqlite:///{tmp_path}/dbos.sqlite", WIDGET_STORE_PORT=str(port), PYTHONUNBUFFERED="1"
    )
    log = (tmp_path / "start.log").open("wb")
    proc = subprocess.Popen(
        [DBOS_CLI, "start"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        health = wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json(),
            timeout=60,
            what="`dbos start` to serve",
        )
        assert health["status"] == "ok"
        assert (tmp_path / "store.sqlite").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
