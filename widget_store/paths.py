"""Where the page and the migrations are: inside the package when installed from a wheel,
at the top of the repository in a checkout. Never relative to the working directory."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is neither in {_PACKAGE} nor beside it")


HTML_DIR = _find("html")
MIGRATIONS_DIR = _find("migrations")
ALEMBIC_INI = _find("alembic.ini")
