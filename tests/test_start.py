"""The first minutes: `--help`, a quiet start ending with the address, one clear line for each
thing that stops a start (a wrong setting, a busy port, a database out of reach), and a quiet
stop under load that loses nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from widget_store.testing import free_port, wait_until

from .support import MakeServer

REFUSED = 2  # the exit code of a start refused before serving (cli.py)


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WIDGET_STORE_", "DBOS_"))}
    return subprocess.run(
        [sys.executable, "-m", "widget_store", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_says_what_each_command_does_its_defaults_and_the_settings() -> None:
    top = run_cli("--help", env={})
    assert top.returncode == 0
    assert "Without a command, `widget-store` serves" in top.stdout
    assert "serve" in top.stdout and "migrate" in top.stdout
    assert "WIDGET_STORE_DATA_DIR" in top.stdout and "DBOS_DATABASE_URL" in top.stdout
    assert "Configuration table of README.md" in top.stdout

    serve = run_cli("serve", "--help", env={})
    assert serve.returncode == 0
    assert "address to listen on (default: 127.0.0.1)" in serve.stdout
    assert "port to listen on (default: 8000)" in serve.stdout
    assert "WIDGET_STORE_PAYMENT_TIMEOUT_S" in serve.stdout


def test_a_bad_setting_names_its_environment_variable(tmp_path: Path) -> None:
    done = run_cli(
        "serve",
        "--port",
        str(free_port()),
        env={
            "WIDGET_STORE_DATA_DIR": str(tmp_path / "data"),
            "WIDGET_STORE_PAYMENT_TIMEOUT_S": "abc",
        },
    )
    assert done.returncode == REFUSED
    assert done.stdout == ""
    assert done.stderr == (
        "widget-store: WIDGET_STORE_PAYMENT_TIMEOUT_S: Input should be a valid number, unable to "
        "parse string as a number (see the Configuration table in README.md)\n"
    )
    assert not (tmp_path / "data").exists()


def test_a_busy_port_is_said_before_any_migration(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(
            "serve", "--port", str(port), env={"WIDGET_STORE_DATA_DIR": str(tmp_path / "data")}
        )
    assert done.returncode == REFUSED
    assert done.stderr == (
        f"widget-store: cannot listen on 127.0.0.1:{port} (address already in use); stop "
        f"whatever uses it, or choose another port: widget-store serve --port {port + 1}\n"
    )
    assert not (tmp_path / "data").exists()  # nothing migrated, not even the folder made


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--workers", "-3"], "argument --workers: must be at least 1, not -3"),
        (["--workers", "0"], "argument --workers: must be at least 1, not 0"),
        (["--workers", "65"], "argument --workers: must be at most 64, not 65"),
        (["--port", "99999"], "argument --port: must be a port number from 0 to 65535, not 99999"),
        (["--port", "-1"], "argument --port: must be a port number from 0 to 65535, not -1"),
        (["--port", "http"], "argument --port: 'http' is not a whole number"),
    ],
)
def test_a_wrong_option_is_one_line_and_nothing_starts(
    option: list[str], said: str, tmp_path: Path
) -> None:
    # A free port first: were the option taken, the store would serve there, not on 8000.
    args = ["serve", "--port", str(free_port()), *option]
    done = run_cli(*args, env={"WIDGET_STORE_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == REFUSED
    assert done.stdout == ""
    assert done.stderr == f"widget-store serve: error: {said} (see widget-store serve --help)\n"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_data_folder_that_cannot_be_one_is_named_in_one_line(
    command: str, tmp_path: Path
) -> None:
    """A file where the folder should be, or on its path (tests run as root, for whom no
    folder is read-only: a file on the path is the error root meets too)."""
    file = tmp_path / "not-a-folder"
    file.write_text("")
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["migrate"]
    for folder in (file, file / "data"):
        done = run_cli(*args, env={"WIDGET_STORE_DATA_DIR": str(folder)})
        assert done.returncode == REFUSED, done.stderr
        assert done.stderr == (
            f"widget-store: WIDGET_STORE_DATA_DIR: {file} is a file, not a folder; set it to a "
            "folder the store may create and write in\n"
        )
    assert file.read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_a_data_folder_the_store_cannot_write_in_is_named_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o500)
    done = run_cli("migrate", env={"WIDGET_STORE_DATA_DIR": str(folder)})
    assert done.returncode == REFUSED
    assert done.stderr == (
        f"widget-store: WIDGET_STORE_DATA_DIR: cannot write in {folder} (permission denied); "
        "set it to a folder the store may create and write in\n"
    )


@pytest.mark.slow  # waits the 15 s a start gives a Postgres that is still starting
def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://shop:s3cret@127.0.0.1:{port}/widgets"
    # `migrate` stops with one line; `serve` waits it out (test_start_failure.py).
    done = run_cli(
        "migrate",
        env={"WIDGET_STORE_DATA_DIR": str(tmp_path), "DBOS_DATABASE_URL": url},
    )
    assert done.returncode == REFUSED
    assert done.stderr.splitlines()[-1] == (
        f"widget-store: cannot reach the database at postgresql://shop:***@127.0.0.1:{port}/widgets"
        " (Connection refused); start it, or fix DBOS_DATABASE_URL"
    )
    assert "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_start_is_a_few_lines_ending_with_the_address(make_server: MakeServer) -> None:
    server = make_server()

    def started() -> list[str] | None:
        """The start's lines: up to the one with the address (requests come after)."""
        lines = server.log_text().splitlines()
        ready = [i for i, line in enumerate(lines) if "Widget Store is ready" in line]
        return lines[: ready[0] + 1] if ready else None

    lines = wait_until(started, timeout=10, what="the start's last line")
    assert len(lines) <= 6, "\n".join(lines)
    assert lines[-1].endswith(f"Widget Store is ready: open {server.base_url} (Ctrl-C stops it)")
    assert lines[-2].endswith(f"database: SQLite in {server.database.data_dir}")
    # One format: every line is ours ("<date> <time> LEVEL [pid] logger: message").
    assert all(line.split()[2] in ("INFO", "WARNING") for line in lines), "\n".join(lines)
    assert not any("Applying" in line or "alembic" in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_under_load_is_quiet_and_loses_nothing(
    make_server: MakeServer, sig: signal.Signals
) -> None:
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="2")
    with server.client() as client:
        assert client.post("/load", json={"shoppers": 8}).status_code == 200
        wait_until(
            lambda: server.database.execute("SELECT count(*) FROM orders")[0][0] >= 10 or None,
            timeout=60,
            what="purchases",
        )
    assert server.proc is not None
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=30) == 0
    log = server.log_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-5000:]

    # Started again on the same database: every order ends, none twice.
    server.start()
    with server.client() as client:
        assert client.post("/load/stop").status_code == 200

    def settled() -> bool | None:
        busy = server.database.execute("SELECT count(*) FROM orders WHERE order_status IN (0, 2)")
        return True if busy[0][0] == 0 else None

    wait_until(settled, timeout=90, interval=0.5, what="every order to end")
    with server.client() as client:
        figures = client.get("/stats").json()
    assert figures["ledger"]["unaccounted"] == 0 and figures["oversold"] == 0
    doubles = server.database.execute(
        "SELECT checkout_id FROM orders GROUP BY checkout_id HAVING count(*) > 1"
    )
    assert doubles == []


@pytest.mark.crash
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_request_sent_after_the_crash_answer_reaches_the_restarted_store(
    make_server: MakeServer,
) -> None:
    """The README's crash demo, pasted whole: the /health right after the crash answers from
    the new process (it waited in the kernel's backlog), never from the dying one."""
    server = make_server()
    before = server.health()
    for _ in range(3):
        assert httpx.post(f"{server.base_url}/crash_application", timeout=30).status_code == 202
        after = httpx.get(f"{server.base_url}/health", timeout=30).json()
        assert after["pid"] != before["pid"]
        assert after["restart_count"] == before["restart_count"] + 1
        before = after
