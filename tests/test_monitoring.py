"""What operators watch the store with: deploy/prometheus/alerts.yml, valid for Prometheus, each
alert firing when it should and only then (promtool's own unit tests, alerts.test.yml), and
deploy/grafana/widget-store.json, every query valid PromQL; and every store metric either reads
exported by a real store's /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from widget_store.testing import StoreServer, wait_until

from .relay import Relay
from .support import REPO_ROOT, MakeServer

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "widget-store.json"
# The store's series, as the rules name them (Prometheus's own `up` is not the store's).
STORE_SERIES = re.compile(r"\bwidget_store_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return found


def run(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS: 6 rules found" in run("check", "rules", RULES.name)
    assert "SUCCESS" in run("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES_DIR / "alerts.test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested


def rule_expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_dashboard_query_is_valid_promql_on_the_stores_series(tmp_path: Path) -> None:
    """promtool checks each query, as the expression of a recording rule."""
    queries = dashboard_expressions()
    assert queries and all(STORE_SERIES.search(query) for query in queries)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool(), "check", "rules", "queries.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_real_store_exports_every_series_the_rules_and_the_dashboard_read(
    make_server: MakeServer,
) -> None:
    server = make_server()
    with server.client() as client:
        client.post("/checkout/alerts-key")  # so the checkout's latency histogram has a series
        answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    exported = {
        sample.name
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    read = {
        name
        for query in rule_expressions() + dashboard_expressions()
        for name in STORE_SERIES.findall(query)
    }
    assert read - exported == set()
    # And Prometheus's own linter finds nothing wrong with the exposition.
    lint = subprocess.run(
        [promtool(), "check", "metrics"], input=answer.text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.crash
def test_metrics_say_the_database_is_away_and_back(make_server: MakeServer, backend: str) -> None:
    """The alert on the database reads `widget_store_database_up`: a scrape while the database
    is out of reach still answers, with 0, and 1 again once it is back."""
    if backend != "postgres":
        pytest.skip("a Postgres that goes away")
    server = make_server(start=False)
    assert server.database.url is not None
    with Relay(server.database.url) as relay:
        server.env_overrides["DBOS_DATABASE_URL"] = relay.url
        server.start()
        assert database_up(server) == 1
        relay.close()
        assert database_up(server) == 0
        relay.open()
        wait_until(lambda: database_up(server) == 1 or None, timeout=30, what="database up")


def database_up(server: StoreServer) -> float:
    with server.client() as client:
        answer = client.get("/metrics", timeout=15)
    assert answer.status_code == 200, answer.text
    [value] = [
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "widget_store_database_up"
    ]
    return value
