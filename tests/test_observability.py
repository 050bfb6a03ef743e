"""What operators read: /metrics (Prometheus), JSON logs, and DBOS's OpenTelemetry export."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from widget_store.testing import StoreServer, wait_until

from .support import MakeServer, new_key

# Slow (about 45 s): runs with `pytest --full` (tests/conftest.py).
pytestmark = pytest.mark.slow


def scrape(server: StoreServer, **headers: str) -> dict[tuple[str, tuple], float]:
    """Every sample, keyed by (name, sorted labels), parsed by prometheus-client's own parser."""
    with server.client() as client:
        answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def requests_total(samples: dict, route: str, status: str) -> float:
    key = (
        "widget_store_http_requests_total",
        (("method", "POST"), ("route", route), ("status", status)),
    )
    return samples.get(key, 0.0)


def test_metrics_match_the_orders_table(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 6")
    with server.client() as client:
        payments = [client.post(f"/checkout/{new_key('m')}").text for _ in range(6)]
        sold_out = client.post(f"/checkout/{new_key('m')}")
        for payment_id in payments[:3]:
            assert server.pay(client, payment_id, "paid").status_code == 200
        for payment_id in payments[3:5]:
            assert server.pay(client, payment_id, "failed").status_code == 200
        assert server.pay(client, payments[0], "failed").status_code == 409
        assert client.post(f"/payment_webhook/{payments[5]}/paid").status_code == 401
    assert sold_out.status_code == 404

    samples = scrape(server)
    rows = dict(server.database.execute("SELECT order_status, count(*) FROM orders GROUP BY 1"))
    by_status = {
        name: samples[("widget_store_orders", (("status", name),))]
        for name in ("CANCELLED", "PENDING", "PAID", "DISPATCHED")
    }
    assert by_status["CANCELLED"] == rows.get(-1, 0) == 2  # two declined; sold out is no order
    assert by_status["PENDING"] == rows.get(0, 0) == 1
    assert by_status["PAID"] + by_status["DISPATCHED"] == rows.get(2, 0) + rows.get(1, 0) == 3
    checkout = "/checkout/{idempotency_key}"
    webhook = "/payment_webhook/{payment_id}/{payment_status}"
    assert requests_total(samples, checkout, "200") == 6
    assert requests_total(samples, checkout, "404") == 1
    assert requests_total(samples, webhook, "200") == 5
    assert requests_total(samples, webhook, "409") == 1
    assert requests_total(samples, webhook, "401") == 1
    assert samples[("widget_store_inventory", ())] == 2  # the two declined came back
    latency_count = (
        "widget_store_http_request_duration_seconds_count",
        (("method", "POST"), ("route", checkout)),
    )
    assert samples[latency_count] == 7
    assert samples[("widget_store_process_restarts", ())] == 0


def test_metrics_need_the_token_in_production(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="tok")
    with server.client() as client:
        assert client.get("/metrics").status_code == 401
    assert ("widget_store_inventory", ()) in scrape(server, Authorization="Bearer tok")


def test_json_logs_one_object_per_line(make_server: MakeServer) -> None:
    # DEBUG: DBOS's routine lines are written at DEBUG (server/logs.py).
    server = make_server(WIDGET_STORE_LOG_FORMAT="json", WIDGET_STORE_LOG_LEVEL="DEBUG")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key('j')}").text
        order_id = server.pay(client, payment_id, "failed").text
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    assert lines, server.log_text()[-2000:]
    requests = [line for line in lines if line.get("route") == "/checkout/{idempotency_key}"]
    assert requests and requests[0]["status"] == 200 and requests[0]["duration_ms"] > 0
    transitions = [line for line in lines if line.get("transition") == "failed"]
    assert transitions and transitions[0]["order_id"] == int(order_id)
    assert any(line["name"].startswith("dbos") for line in lines)  # DBOS's own lines too


class _Collector(BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).paths.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[str]]]:
    """A stand-in OTLP/HTTP collector on loopback that records what it is sent."""
    _Collector.paths = []
    httpd = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Collector.paths
    httpd.shutdown()
    httpd.server_close()


def test_dbos_exports_traces_to_the_otlp_endpoint(
    make_server: MakeServer, otlp_collector: tuple[str, list[str]]
) -> None:
    endpoint, received = otlp_collector
    server = make_server(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key('o')}").text
        server.pay(client, payment_id, "failed")
    wait_until(
        lambda: True if "/v1/traces" in received else None, timeout=30, what="an OTLP export"
    )
