"""Settings: defaults, URL normalisation, and clear failures for wrong configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from widget_store.config import Settings
from widget_store.durable.dbos_config import dbos_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(("WIDGET_STORE_", "DBOS_")):
            monkeypatch.delenv(key)


def test_defaults_run_on_embedded_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_STORE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.uses_sqlite
    assert settings.async_app_database_url == f"sqlite+aiosqlite:///{tmp_path}/store.sqlite"
    assert settings.system_database_url == f"sqlite:///{tmp_path}/dbos.sqlite"
    assert settings.demo and settings.dispatch_tick_s == 1.0


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h:5432/db",
        "postgres://u@h:5432/db",
        "postgresql+psycopg2://u@h:5432/db",
        "postgresql+psycopg://u@h:5432/db",
    ],
)
def test_postgres_urls_use_psycopg_3(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DBOS_DATABASE_URL", url)
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@h:5432/db"
    assert settings.system_database_url == settings.app_database_url == settings.database_url


def test_other_databases_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOS_DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(ValidationError, match="not a Postgres URL libpq accepts"):
        Settings()


def test_production_mode_needs_an_operator_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_STORE_DEMO", "0")
    with pytest.raises(ValidationError, match="WIDGET_STORE_OPERATOR_TOKEN"):
        Settings()


def test_the_sandbox_provider_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_STORE_OPERATOR_TOKEN", "t")
    assert Settings().sandbox_enabled
    monkeypatch.setenv("WIDGET_STORE_DEMO", "0")
    assert not Settings().sandbox_enabled
    monkeypatch.setenv("WIDGET_STORE_SANDBOX", "1")
    with pytest.raises(ValidationError, match="WIDGET_STORE_SANDBOX cannot be on"):
        Settings()


def test_webhook_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_webhook_secret()
    assert len(first) == 64
    assert Settings(data_dir=tmp_path).resolved_webhook_secret() == first
    assert (tmp_path / "webhook_secret").stat().st_mode & 0o777 == 0o600


def test_the_data_folder_made_for_the_secret_is_the_store_users_alone(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "data"
    Settings(data_dir=folder).resolved_webhook_secret()
    assert folder.stat().st_mode & 0o777 == 0o700


def test_configured_secret_wins(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, webhook_secret="given").resolved_webhook_secret() == "given"
    assert not (tmp_path / "webhook_secret").exists()


def test_dbos_runs_on_a_bounded_number_of_executor_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dbos_config(Settings())["max_executor_threads"] is None  # SQLite: DBOS's own
    monkeypatch.setenv("DBOS_DATABASE_URL", "postgresql://u@h:5432/db")
    assert dbos_config(Settings())["max_executor_threads"] == 4
    monkeypatch.setenv("WIDGET_STORE_EXECUTOR_THREADS", "3")
    assert dbos_config(Settings())["max_executor_threads"] == 3
    monkeypatch.setenv("WIDGET_STORE_EXECUTOR_THREADS", "1")
    with pytest.raises(ValidationError, match="executor_threads"):
        Settings()


def test_the_server_will_not_start_with_the_sandbox_in_production(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "WIDGET_STORE_DATA_DIR": str(tmp_path),
        "WIDGET_STORE_DEMO": "0",
        "WIDGET_STORE_OPERATOR_TOKEN": "t",
        "WIDGET_STORE_SANDBOX": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "widget_store", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "WIDGET_STORE_SANDBOX cannot be on" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was made
