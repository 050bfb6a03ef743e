"""Prometheus metrics: requests and their latency per route, and the store's state at scrape."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..database.handle import Database
from ..durable import reconciler
from ..durable.lifecycle import ProcessInfo
from ..shop import refunds, store
from ..shop.tables import OrderStatus
from . import stats

log = logging.getLogger("widget_store.requests")

# How long a scrape waits for the database before answering without it: well inside
# Prometheus's default scrape timeout of 10 s.
DATABASE_WAIT_S = 5.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per app, so tests and several apps in one process never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "widget_store_http_requests",
            "HTTP requests by route and status code (checkouts and webhooks by outcome)",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "widget_store_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.orders = Gauge(
            "widget_store_orders", "Orders by status", ["status"], registry=self.registry
        )
        self.inventory = Gauge("widget_store_inventory", "Widgets in stock", registry=self.registry)
        self.stranded = Gauge(
            "widget_store_orders_stranded",
            "Orders reserved or paid that no running or queued workflow will move on",
            registry=self.registry,
        )
        self.refunds_due = Gauge(
            "widget_store_refunds_due",
            "Payments received for checkouts that had already ended, not yet refunded",
            registry=self.registry,
        )
        self.refunds_due_amount = Gauge(
            "widget_store_refunds_due_amount",
            "The sum of the refunds due, in the price's currency",
            registry=self.registry,
        )
        self.restarts = Gauge(
            "widget_store_process_restarts",
            "Times the supervisor restarted the serving process",
            registry=self.registry,
        )
        self.recovered = Gauge(
            "widget_store_workflows_recovered",
            "Workflows this serving process recovered at start",
            registry=self.registry,
        )
        self.takeovers = Gauge(
            "widget_store_workflow_takeovers",
            "Lost executors whose workflows this serving process took over since it started",
            registry=self.registry,
        )
        self.database_up = Gauge(
            "widget_store_database_up",
            "1 when this scrape could read the store's state from the database, else 0",
            registry=self.registry,
        )

    async def render(self, db: Database, process: ProcessInfo, restart_count: int) -> bytes:
        """Read the store's state, then the exposition text.

        A database out of reach still gets an answer, within DATABASE_WAIT_S: the figures it
        could not read keep their last values, and `widget_store_database_up` says 0, which an
        alert can tell from a store that is down (deploy/prometheus/alerts.yml).
        """
        try:
            async with asyncio.timeout(DATABASE_WAIT_S):
                await self._read_state(db)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("metrics: the database could not be read: %s", exc)
            self.database_up.set(0)
        else:
            self.database_up.set(1)
        self.restarts.set(restart_count)
        self.recovered.set(process.workflows_recovered)
        liveness = process.liveness
        self.takeovers.set(len(liveness.taken_over) if liveness is not None else 0)
        return generate_latest(self.registry)

    async def _read_state(self, db: Database) -> None:
        counts = await db.read(stats.count_orders_by_status)
        for status in OrderStatus:
            self.orders.labels(status=status.name).set(counts.get(status.value, 0))
        product = await db.read(store.get_product)
        self.inventory.set(product["inventory"] if product else 0)
        self.stranded.set(await reconciler.count_stranded(db))
        due = await db.read(refunds.refunds_due)
        self.refunds_due.set(due["count"])
        self.refunds_due_amount.set(float(due["amount"]))


class RequestMetrics:
    """ASGI middleware: count, time and log each request under its route template.

    Labels use the template (`/order/{order_id}`), not the path, so an id never becomes a
    label value of its own. Plain ASGI rather than BaseHTTPMiddleware: no extra task per request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            log.info(
                "%s %s %d %.1f ms",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
