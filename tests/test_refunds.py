"""Money for a checkout that had already ended: a signed `paid` webhook after a cancel or an
expiry answers 409 and is kept as a refund due, once however often it is delivered, counted in
/stats and /metrics until an operator marks it refunded; over HTTP, on SQLite and Postgres."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from widget_store.testing import StoreServer

from .support import CANCELLED, MakeServer, new_key, orders_for_key, wait_status

TOKEN = "refund-operator-token"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


def gauge(client: httpx.Client, name: str, **headers: str) -> float:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    return samples[name]


def refund_rows(server: StoreServer, payment_id: str) -> list[tuple[str, str]]:
    """(status, reason) of every refund row for this payment id, read from the table."""
    rows = server.database.execute(
        "SELECT status, reason FROM refunds WHERE payment_id = :p", p=payment_id
    )
    return [(row[0], row[1]) for row in rows]


def test_a_payment_after_the_cancel_is_a_refund_due_until_the_operator_refunds_it(
    make_server: MakeServer,
) -> None:
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN=TOKEN)
    key = new_key("refund")
    with server.client() as client:
        price = client.get("/product").json()["price"]
        payment_id = client.post(f"/checkout/{key}").text
        assert client.post(f"/checkout/{key}/cancel").status_code == 200
        [(order_id, status)] = orders_for_key(server, key)
        assert status == CANCELLED

        late = server.pay(client, payment_id, "paid")
        assert late.status_code == 409, late.text
        assert "refund due" in late.json()["detail"]
        # Delivered again, and several times at once: still one refund.
        with ThreadPoolExecutor(4) as pool:
            again = list(pool.map(lambda _: server.pay(client, payment_id, "paid"), range(4)))
        assert [answer.status_code for answer in again] == [409] * 4
        # A `failed` for it is no money: nothing more is recorded.
        assert server.pay(client, payment_id, "failed").status_code == 409
        assert refund_rows(server, payment_id) == [("due", "cancelled")]

        # The operator's figures count it; they need the token in production.
        assert client.get("/refunds").status_code == 401
        assert client.get("/stats").status_code == 401
        [refund] = client.get("/refunds", headers=OPERATOR).json()
        assert refund["payment_id"] == payment_id and refund["order_id"] == order_id
        assert refund["amount"] == price and refund["reason"] == "cancelled"
        assert refund["status"] == "due" and refund["refunded_at"] is None
        assert refund["provider"] == "webhook"
        stats = client.get("/stats", headers=OPERATOR).json()
        assert stats["refunds_due"] == 1 and stats["refunds_due_amount"] == price
        assert gauge(client, "widget_store_refunds_due", **OPERATOR) == 1
        assert gauge(client, "widget_store_refunds_due_amount", **OPERATOR) == price
        # Nothing else moved: the order stays cancelled, its widget back once.
        assert client.get(f"/order/{order_id}").json()["order_status"] == CANCELLED
        assert server.database.inventory() == 100

        # Marking it refunded needs the token, refuses another site, and is idempotent.
        mark = f"/refunds/{payment_id}/refunded"
        assert client.post(mark).status_code == 401
        wrong = client.post(mark, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        cross_site = client.post(
            mark,
            headers={**OPERATOR, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site.status_code == 403
        assert refund_rows(server, payment_id) == [("due", "cancelled")]
        done = client.post(mark, headers=OPERATOR, json={"reference": "re_test_123"})
        assert done.status_code == 200, done.text
        refunded = done.json()
        assert refunded["status"] == "refunded" and refunded["refunded_by"] == "operator"
        assert refunded["refund_reference"] == "re_test_123" and refunded["refunded_at"]
        repeat = client.post(mark, headers=OPERATOR)
        assert repeat.status_code == 200 and repeat.json() == refunded

        stats = client.get("/stats", headers=OPERATOR).json()
        assert stats["refunds_due"] == 0 and stats["refunds_due_amount"] == 0
        assert gauge(client, "widget_store_refunds_due", **OPERATOR) == 0
        assert client.get("/refunds?status=due", headers=OPERATOR).json() == []
        assert client.get("/refunds?status=refunded", headers=OPERATOR).json() == [refunded]
        # A delivery after the refund records nothing new and leaves it refunded.
        assert server.pay(client, payment_id, "paid").status_code == 409
        assert refund_rows(server, payment_id) == [("refunded", "cancelled")]

        unknown = client.post(f"/refunds/{new_key('none')}/refunded", headers=OPERATOR)
        assert unknown.status_code == 404, unknown.text
        assert (
            client.post(
                f"/refunds/{payment_id}/refunded", headers=OPERATOR, json={"x": 1}
            ).status_code
            == 422
        )
    amount = server.database.execute("SELECT amount FROM refunds")[0][0]
    assert Decimal(str(amount)) == Decimal(str(price))


def test_a_payment_after_the_expiry_is_a_refund_due_and_a_paid_one_is_not(
    make_server: MakeServer,
) -> None:
    server = make_server(WIDGET_STORE_PAYMENT_TIMEOUT_S="1")
    with server.client() as client:
        paid = client.post(f"/checkout/{new_key('paid')}").text
        assert server.pay(client, paid, "paid").status_code == 200
        expired_key = new_key("expired")
        expired = client.post(f"/checkout/{expired_key}").text
        [(order_id, _)] = orders_for_key(server, expired_key)
        wait_status(client, order_id, CANCELLED, timeout=20)

        late = server.pay(client, expired, "paid")
        assert late.status_code == 409, late.text
        assert "expired" in late.json()["detail"] and "refund due" in late.json()["detail"]
        # The paid checkout's repeat is its 200 again, and no refund.
        assert server.pay(client, paid, "paid").status_code == 200
        assert refund_rows(server, expired) == [("due", "expired")]
        assert refund_rows(server, paid) == []
        assert client.get("/stats").json()["refunds_due"] == 1
