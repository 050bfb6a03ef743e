"""The run cleans up after itself: every temporary folder goes into the run's own folder
(conftest._own_temp_folder), which is checked for leftovers and removed at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from widget_store.testing import temp_dir


def test_temporary_folders_go_into_the_runs_own_folder(_own_temp_folder: Path) -> None:
    assert Path(tempfile.gettempdir()) == _own_temp_folder
    assert os.environ["TMPDIR"] == str(_own_temp_folder)
    made = temp_dir()
    try:
        assert made.parent == _own_temp_folder
    finally:
        made.rmdir()
    # Subprocesses (the servers, the benchmark scripts) inherit it.
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == str(_own_temp_folder)
