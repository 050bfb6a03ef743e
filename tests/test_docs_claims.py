"""The docs name what the running store really answers, and only files that exist.

- Every field of a real `GET /health` answer (and of each of its `executors`, on Postgres) is
  named, in backquotes, in docs/api.md's Health section.
- Every metric a real `GET /metrics` exports is named in docs/operations.md's Metrics section
  (a counter may be named with its `_total`; prometheus-client's `_created` series go with
  the metric they belong to).
- Every Python file README.md and docs/*.md name by a path exists: `widget_store/...py`, and
  any other `<folder>/<file>.py`, from the repository's top, the package's, or one of its
  rooms' (`routes/shop.py` is `widget_store/web/routes/shop.py`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from widget_store.testing import StoreServer

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "widget_store"
API = ROOT / "docs" / "api.md"
OPERATIONS = ROOT / "docs" / "operations.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A path to a Python file with at least one folder in it.
PYTHON_PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w-]+\.py)(?![\w])")


def section(path: Path, heading: str) -> str:
    """The text of a page under `heading`, up to the next heading of its level or above."""
    text = path.read_text(encoding="utf-8")
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if line.strip() == heading]
    assert len(starts) == 1, f"{path.relative_to(ROOT)} needs one {heading!r} heading"
    found = []
    for line in lines[starts[0] + 1 :]:
        hashes = len(line) - len(line.lstrip("#"))
        if hashes and line[hashes : hashes + 1] == " " and hashes <= level:
            break
        found.append(line)
    return "\n".join(found)


def field_names(answer: Any) -> set[str]:
    """Every key of a JSON answer, nested objects' and list items' included."""
    names: set[str] = set()
    if isinstance(answer, dict):
        for key, value in answer.items():
            names.add(key)
            names |= field_names(value)
    elif isinstance(answer, list):
        for item in answer:
            names |= field_names(item)
    return names


def undocumented_fields(answer: dict[str, Any], docs: str) -> list[str]:
    quoted = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", docs))
    return sorted(field_names(answer) - quoted)


def metric_names(exposition: str) -> set[str]:
    """The metrics of a Prometheus text exposition, by family; a `_created` family that
    prometheus-client writes beside a counter or histogram counts as that metric."""
    families = {family.name for family in text_string_to_metric_families(exposition)}
    return {
        name
        for name in families
        if not (name.endswith("_created") and name.removesuffix("_created") in families)
    }


def undocumented_metrics(names: set[str], docs: str) -> list[str]:
    def named(name: str) -> bool:
        return re.search(rf"(?<![\w]){re.escape(name)}(?:_total)?(?![\w])", docs) is not None

    return sorted(name for name in names if not named(name))


def missing_paths() -> list[str]:
    rooms = [path for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"]
    bases = [ROOT, PACKAGE, *rooms]
    missing = []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for named in PYTHON_PATH.findall(line):
                found = (
                    (ROOT / named).is_file()
                    if named.startswith("widget_store/")
                    else any((base / named).is_file() for base in bases)
                )
                if not found:
                    missing.append(f"{page.relative_to(ROOT)}:{number}: {named}")
    return missing


def test_every_health_field_is_in_the_api_docs(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        answer = client.get("/health")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"status", "pid", "executors"} <= body.keys()
    missing = undocumented_fields(body, section(API, "## Health"))
    assert not missing, f"/health fields not named in docs/api.md's Health section: {missing}"


def test_every_metric_is_in_the_operations_docs(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.get("/health")  # a request, so the request metrics have a series
        answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    names = metric_names(answer.text)
    assert "widget_store_orders_stranded" in names
    missing = undocumented_metrics(names, section(OPERATIONS, "## Metrics"))
    assert not missing, f"metrics not named in docs/operations.md's Metrics section: {missing}"


def test_every_python_path_the_docs_name_exists() -> None:
    missing = missing_paths()
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)


def test_the_checks_can_fail() -> None:
    """Each check finds what is missing, on made-up docs and a made-up exposition."""
    answer = {"status": "ok", "executors": [{"executor_id": "a", "alive": True}]}
    assert undocumented_fields(answer, "`status`, `executors`, `executor_id`") == ["alive"]
    exposition = (
        "# HELP widget_store_x_total X\n# TYPE widget_store_x_total counter\n"
        "widget_store_x_total 1.0\n"
        "# HELP widget_store_x_created X\n# TYPE widget_store_x_created gauge\n"
        "widget_store_x_created 1.7e9\n"
        "# HELP widget_store_y Y\n# TYPE widget_store_y gauge\nwidget_store_y 0.0\n"
        "# HELP widget_store_y_amount Y\n# TYPE widget_store_y_amount gauge\n"
        "widget_store_y_amount 0.0\n"
    )
    names = metric_names(exposition)
    assert names == {"widget_store_x", "widget_store_y", "widget_store_y_amount"}
    assert undocumented_metrics(names, "`widget_store_x_total`, `widget_store_y_amount`") == [
        "widget_store_y"
    ]
    assert PYTHON_PATH.findall("see `widget_store/shop/nowhere.py` and tests/x.py.") == [
        "widget_store/shop/nowhere.py",
        "tests/x.py",
    ]
