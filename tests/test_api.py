"""Every route of the contract, over HTTP, against a real server on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import http.client
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from widget_store.shop.payments import TOLERANCE_S
from widget_store.testing import StoreServer, signature, wait_until

from .support import (
    CANCELLED,
    DISPATCHED,
    PAID,
    PENDING,
    MakeServer,
    new_key,
    orders_for_key,
    wait_status,
)


def inventory(client: httpx.Client) -> int:
    return int(client.get("/product").json()["inventory"])


def test_product(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        body = client.get("/product").json()
    assert body["product_id"] == 1
    assert body["product"] == "Premium Quality Widget"
    assert body["price"] == 99.99
    assert 0 <= body["inventory"] <= 100


def test_an_idle_connection_stays_open_for_a_load_balancer_to_reuse(
    shared_server: StoreServer,
) -> None:
    """A load balancer reuses its idle connections to the store for up to its own idle timeout
    (60 s on common ones). Were the store to close them sooner, a request sent on one just as
    it closes would be lost. 7 s: past uvicorn's default keep-alive of 5 s."""
    url = urlsplit(shared_server.base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read()
        time.sleep(7)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_same_key_gives_same_payment_id_and_one_order(shared_server: StoreServer) -> None:
    key = new_key()
    with shared_server.client() as client:
        client.post("/restock")
        first = client.post(f"/checkout/{key}")
        second = client.post(f"/checkout/{key}")
        stock = inventory(client)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert first.text == second.text and len(first.text) == 32
    assert len(orders_for_key(shared_server, key)) == 1
    assert stock == 99


@pytest.mark.parametrize(
    "bad_key", ["", "a" * 129, "has.dot", "has%20space", "semi;colon", "ümlaut"]
)
def test_bad_idempotency_key_is_422_and_changes_nothing(
    shared_server: StoreServer, bad_key: str
) -> None:
    count = "SELECT count(*) FROM orders"
    with shared_server.client() as client:
        before = shared_server.database.execute(count)[0][0]
        answer = client.post(f"/checkout/{bad_key}")
        after = shared_server.database.execute(count)[0][0]
    assert answer.status_code == 422, answer.text
    assert "idempotency_key" in answer.json()["detail"]
    assert before == after


def test_longest_allowed_key_works(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        assert client.post(f"/checkout/{'k' * 128}").status_code == 200


def test_paid_checkout_reaches_dispatched_with_ten_ticks(shared_server: StoreServer) -> None:
    key = new_key()
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{key}").text
        paid = shared_server.pay(client, payment_id, "paid")
        assert paid.status_code == 200, paid.text
        order_id = int(paid.text)
        assert orders_for_key(shared_server, key) == [
            (order_id, client.get(f"/order/{order_id}").json()["order_status"])
        ]
        seen = []

        def dispatched() -> dict | None:
            order = client.get(f"/order/{order_id}").json()
            seen.append(order["progress_remaining"])
            return order if order["order_status"] == DISPATCHED else None

        order = wait_until(dispatched, timeout=30, what="dispatch")
        steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
    assert order["progress_remaining"] == 0
    assert set(order) >= {"order_id", "order_status", "last_update_time", "progress_remaining"}
    assert seen == sorted(seen, reverse=True) and min(seen) == 0
    assert [s["name"] for s in steps].count("tick_dispatch") == 10
    assert inventory_after(shared_server) is not None


def inventory_after(server: StoreServer) -> int | None:
    rows = server.database.execute("SELECT inventory FROM products")
    return rows[0][0] if rows else None


def test_failed_payment_cancels_and_restocks_exactly_once(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{new_key()}").text
        assert inventory(client) == 99
        first = shared_server.pay(client, payment_id, "failed")
        repeat = shared_server.pay(client, payment_id, "failed")
        late_paid = shared_server.pay(client, payment_id, "paid")
        order = client.get(f"/order/{first.text}").json()
        stock = inventory(client)
    assert first.status_code == repeat.status_code == 200
    assert first.text == repeat.text
    assert late_paid.status_code == 409, late_paid.text
    assert "already ended" in late_paid.json()["detail"]
    assert order["order_status"] == CANCELLED
    assert stock == 100


def test_paid_then_failed_is_409_and_stays_paid(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{new_key()}").text
        paid = shared_server.pay(client, payment_id, "paid")
        repeat = shared_server.pay(client, payment_id, "paid")
        failed = shared_server.pay(client, payment_id, "failed")
        order = client.get(f"/order/{paid.text}").json()
        stock = inventory(client)
    assert paid.status_code == repeat.status_code == 200 and paid.text == repeat.text
    assert failed.status_code == 409
    assert order["order_status"] in (PAID, DISPATCHED)
    assert stock == 99


def test_sandbox_provider_signs_and_delivers(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        paid_id = client.post(f"/checkout/{new_key()}").text
        declined_id = client.post(f"/checkout/{new_key()}").text
        paid = client.post(f"/sandbox/payments/{paid_id}/paid")
        declined = client.post(f"/sandbox/payments/{declined_id}/failed")
        unknown = client.post(f"/sandbox/payments/{uuid.uuid4().hex}/paid")
        assert paid.status_code == declined.status_code == 200
        assert client.get(f"/order/{paid.text}").json()["order_status"] in (PAID, DISPATCHED)
        assert client.get(f"/order/{declined.text}").json()["order_status"] == CANCELLED
    assert unknown.status_code == 404


# Well past the tolerance: the requests go out a little after `now`, and the server's clock
# may have crossed a second boundary by then.
OFF_S = TOLERANCE_S + 60


def forged(server: StoreServer, payment_id: str, status: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    return {
        "unsigned": {},
        "empty": {"Widget-Signature": ""},
        "malformed": {"Widget-Signature": "garbage"},
        "wrong secret": {"Widget-Signature": signature("not-the-secret", payment_id, status)},
        "stale": {"Widget-Signature": signature(server.secret, payment_id, status, now - OFF_S)},
        "future": {"Widget-Signature": signature(server.secret, payment_id, status, now + OFF_S)},
        "other status": {
            "Widget-Signature": signature(
                server.secret, payment_id, "failed" if status == "paid" else "paid"
            )
        },
        "other payment": {"Widget-Signature": signature(server.secret, "someone-else", status)},
        "non-ascii": {"Widget-Signature": f"t={now},v1=\u00e9\u00e9"},
    }


def test_every_bad_signature_is_401_and_changes_nothing(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{new_key()}").text
        for status in ("paid", "failed"):
            for case, headers in forged(shared_server, payment_id, status).items():
                answer = client.post(
                    f"/payment_webhook/{payment_id}/{status}",
                    headers={k: v.encode("latin-1") for k, v in headers.items()},
                )
                assert answer.status_code == 401, (case, answer.text)
                assert answer.json()["detail"], case
        # Still waiting for a real payment, which then works.
        assert inventory(client) == 99
        assert shared_server.pay(client, payment_id, "paid").status_code == 200


def test_signature_within_tolerance_is_accepted(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{new_key()}").text
        header = signature(shared_server.secret, payment_id, "paid", int(time.time()) - 250)
        answer = client.post(
            f"/payment_webhook/{payment_id}/paid", headers={"Widget-Signature": header}
        )
    assert answer.status_code == 200


def test_unknown_ids_are_404_and_bad_values_422(shared_server: StoreServer) -> None:
    unknown = uuid.uuid4().hex
    with shared_server.client() as client:
        assert shared_server.pay(client, unknown, "paid").status_code == 404
        assert client.get("/order/999999999").status_code == 404
        assert client.get("/order/not-a-number").status_code == 422
        bad_status = client.post(
            f"/payment_webhook/{unknown}/refunded",
            headers={"Widget-Signature": signature(shared_server.secret, unknown, "refunded")},
        )
        assert bad_status.status_code == 422
        assert "payment_status" in bad_status.json()["detail"]
        assert client.get("/orders", params={"limit": 0}).status_code == 422


def test_orders_lists_newest_first(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post("/restock")
        client.post(f"/checkout/{new_key()}")
        client.post(f"/checkout/{new_key()}")
        everything = client.get("/orders").json()
        latest = client.get("/orders", params={"limit": 1}).json()
    ids = [o["order_id"] for o in everything]
    assert ids == sorted(ids, reverse=True) and len(ids) >= 2
    assert [o["order_id"] for o in latest] == ids[:1]


def test_restock_sets_inventory_to_100(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        client.post(f"/checkout/{new_key()}")
        answer = client.post("/restock")
        assert answer.status_code == 200
        assert answer.json()["inventory"] == 100 == inventory(client)


def test_page_and_openapi_are_served(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        page = client.get("/")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/checkout/{idempotency_key}" in schema["paths"]
    assert "/payment_webhook/{payment_id}/{payment_status}" in schema["paths"]


def test_health_reports_the_process(shared_server: StoreServer) -> None:
    health = shared_server.health()
    assert health["status"] == "ok"
    assert health["restart_count"] == 0
    # The workflows' compatibility, not the package release (docs/upgrading.md).
    assert health["application_version"] == "widget-store-workflows-1"


async def test_twenty_shoppers_race_for_the_last_five(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 5")
    keys = [new_key() for _ in range(20)]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        answers = await asyncio.gather(*(client.post(f"/checkout/{key}") for key in keys))
        stock = (await client.get("/product")).json()["inventory"]
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 5 + [404] * 15
    assert all(
        a.json()["detail"].startswith("Out of stock") for a in answers if a.status_code == 404
    )
    assert stock == 0
    statuses = sorted(status for key in keys for _, status in orders_for_key(server, key))
    # A loser that read the stock after the last widget went wrote nothing; one that read it
    # before lost at the reservation, with a CANCELLED order of its own.
    assert statuses.count(PENDING) == 5
    assert statuses.count(CANCELLED) == len(statuses) - 5 <= 15


def test_sold_out_answers_404_every_time(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 0")
    key = new_key()
    with server.client() as client:
        first = client.post(f"/checkout/{key}")
        again = client.post(f"/checkout/{key}")
    assert first.status_code == again.status_code == 404
    assert orders_for_key(server, key) == []  # nothing written (test_checkout_floods.py)


def test_payment_timeout_cancels_and_restocks(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="1")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key()}").text
        assert inventory(client) == 99
        order_id = int(client.get("/orders").json()[0]["order_id"])
        wait_status(client, order_id, CANCELLED, timeout=20)
        late = server.pay(client, payment_id, "paid")
        stock = inventory(client)
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    assert stock == 100


def test_contract_tick_is_one_second(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DISPATCH_TICK_S="1")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key()}").text
        order_id = int(server.pay(client, payment_id, "paid").text)
        started = time.monotonic()
        wait_status(client, order_id, DISPATCHED, timeout=30)
    assert 9.5 <= time.monotonic() - started <= 14


def test_production_mode_guards_operator_routes(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="s3cret-token")
    operator = {"Authorization": "Bearer s3cret-token"}
    with server.client() as client:
        assert client.post("/crash_application").status_code == 404
        assert client.post("/restock").status_code == 401
        wrong = client.post("/restock", headers={"Authorization": "Bearer nope"})
        right = client.post("/restock", headers=operator)
        assert client.get("/workflows").status_code == 401
        # Every order is the operator's to list, not the public's.
        assert client.get("/orders").status_code == 401
        assert client.get("/orders", headers=operator).status_code == 200
    assert wrong.status_code == 401
    assert right.status_code == 200 and right.json()["inventory"] == 100
    assert server.health()["demo"] is False


def test_production_mode_has_no_sandbox_provider(make_server: MakeServer) -> None:
    """Nobody can pay, or decline, someone's order without the real provider's signature."""
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="s3cret-token")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key()}").text
        paid = client.post(f"/sandbox/payments/{payment_id}/paid")
        failed = client.post(f"/sandbox/payments/{payment_id}/failed")
        status = server.database.execute(
            "SELECT order_status FROM orders WHERE payment_id = :p", p=payment_id
        )
    assert paid.status_code == failed.status_code == 404, paid.text
    assert status == [(PENDING,)]
    assert server.health()["sandbox"] is False


def test_the_sandbox_can_be_turned_off_in_demo_mode(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_SANDBOX="0")
    with server.client() as client:
        payment_id = client.post(f"/checkout/{new_key()}").text
        assert client.post(f"/sandbox/payments/{payment_id}/paid").status_code == 404
    health = server.health()
    assert health["demo"] is True and health["sandbox"] is False


def test_shopper_cancel_ends_the_checkout_once(shared_server: StoreServer) -> None:
    key = new_key()
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{key}").text
        cancelled = client.post(f"/checkout/{key}/cancel")
        again = client.post(f"/checkout/{key}/cancel")
        late_payment = shared_server.pay(client, payment_id, "paid")
        order = client.get(f"/order/{cancelled.text}").json()
        stock = inventory(client)
    assert cancelled.status_code == again.status_code == 200
    assert cancelled.text == again.text
    assert order["order_status"] == CANCELLED
    assert late_payment.status_code == 409
    assert stock == 100


def test_cancel_of_a_paid_order_is_409(shared_server: StoreServer) -> None:
    key = new_key()
    with shared_server.client() as client:
        client.post("/restock")
        payment_id = client.post(f"/checkout/{key}").text
        order_id = int(shared_server.pay(client, payment_id, "paid").text)
        cancel = client.post(f"/checkout/{key}/cancel")
        status = client.get(f"/order/{order_id}").json()["order_status"]
        unknown = client.post(f"/checkout/{new_key()}/cancel")
    assert cancel.status_code == 409 and "'paid'" in cancel.json()["detail"]
    assert status in (PAID, DISPATCHED)
    assert unknown.status_code == 404


def test_checkout_lookup_by_key(shared_server: StoreServer) -> None:
    key = new_key()
    with shared_server.client() as client:
        client.post("/restock")
        assert client.get(f"/checkout/{key}").status_code == 404
        payment_id = client.post(f"/checkout/{key}").text
        found = client.get(f"/checkout/{key}").json()
        order = client.get(f"/order/{found['order_id']}").json()
    assert found["payment_id"] == payment_id
    assert found["status"] == "PENDING" and found["order_status"] == PENDING
    # Timestamps always carry their zone, whatever the database.
    assert order["created_at"].endswith(("Z", "+00:00"))
