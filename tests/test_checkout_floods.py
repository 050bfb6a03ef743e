"""Floods of checkouts, over HTTP against real servers on both databases: at stock 0 a new key's
checkout is answered 404 without writing an order or starting a workflow, the keys that did
check out keep their answers, and each client's rate of new checkouts is capped (429), whatever
their outcome, while its retries of keys it holds are never refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from widget_store.testing import StoreServer

from .support import MakeServer, new_key, orders_for_key

CAPPED = {"WIDGET_STORE_MAX_UNPAID_PER_CLIENT": "5"}
ANOTHER_CLIENT = {"X-Forwarded-For": "203.0.113.9"}  # through the trusted proxy (loopback)


def checkouts_in_parallel(client: httpx.Client, keys: list[str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(lambda key: client.post(f"/checkout/{key}"), keys))


def order_count(server: StoreServer) -> int:
    return int(server.database.execute("SELECT count(*) FROM orders")[0][0])


def checkout_workflows(client: httpx.Client) -> list[str]:
    listed = client.get("/workflows", params={"limit": 500}).json()
    return [w["workflow_id"] for w in listed if w["workflow_id"].startswith("checkout:")]


def test_a_sold_out_flood_writes_no_order_and_starts_no_workflow(make_server: MakeServer) -> None:
    """60 checkouts of new keys at stock 0, from one client held to the unpaid cap: every one
    is answered 404, and the store has written nothing for any of them."""
    server = make_server(**CAPPED)
    server.database.execute("UPDATE products SET inventory = 0")
    keys = [new_key("flood") for _ in range(60)]
    with server.client() as client:
        answers = checkouts_in_parallel(client, keys)
        workflows = checkout_workflows(client)
    assert [a.status_code for a in answers] == [404] * 60
    assert all(a.json()["detail"].startswith("Out of stock") for a in answers)
    assert order_count(server) == 0
    assert workflows == []


def test_a_key_answered_sold_out_may_check_out_after_a_restock(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 0")
    key = new_key("later")
    with server.client() as client:
        sold_out = [client.post(f"/checkout/{key}") for _ in range(3)]
        looked_up = client.get(f"/checkout/{key}")
        assert client.post("/restock").status_code == 200
        bought = client.post(f"/checkout/{key}")
        again = client.post(f"/checkout/{key}")
    assert [a.status_code for a in sold_out] == [404] * 3
    assert looked_up.status_code == 404  # it holds nothing
    assert bought.status_code == again.status_code == 200, bought.text
    assert again.text == bought.text
    assert len(orders_for_key(server, key)) == 1


def test_the_key_that_took_the_last_widget_keeps_its_payment_id(make_server: MakeServer) -> None:
    server = make_server()
    server.database.execute("UPDATE products SET inventory = 1")
    last, late = new_key("last"), new_key("late")
    with server.client() as client:
        first = client.post(f"/checkout/{last}")
        sold_out = client.post(f"/checkout/{late}")
        again = [client.post(f"/checkout/{last}") for _ in range(3)]
    assert first.status_code == 200, first.text
    assert sold_out.status_code == 404
    assert all(a.status_code == 200 and a.text == first.text for a in again)
    assert len(orders_for_key(server, last)) == 1
    assert orders_for_key(server, late) == []


def test_new_checkouts_per_client_are_rate_capped(make_server: MakeServer) -> None:
    """A rate of 10 a minute: of 60 new checkouts at stock 0, 10 are answered sold out and 50
    refused 429, still without an order or a workflow; another client is not held to it."""
    server = make_server(WIDGET_STORE_NEW_CHECKOUTS_PER_MINUTE="10")
    server.database.execute("UPDATE products SET inventory = 0")
    with server.client() as client:
        answers = checkouts_in_parallel(client, [new_key("rate") for _ in range(60)])
        other = client.post(f"/checkout/{new_key('rate')}", headers=ANOTHER_CLIENT)
        workflows = checkout_workflows(client)
        # Whatever the outcome: restocked, the client is still past its rate.
        assert client.post("/restock").status_code == 200
        restocked = client.post(f"/checkout/{new_key('rate')}")
    codes = sorted(a.status_code for a in answers)
    assert codes == [404] * 10 + [429] * 50
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["content-type"] == "application/json"
    assert "at most 10 a minute" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 6  # a new checkout every 6 s
    assert other.status_code == 404
    assert order_count(server) == 0
    assert workflows == []
    assert restocked.status_code == 429


def test_retries_of_keys_a_client_holds_are_never_rate_capped(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_NEW_CHECKOUTS_PER_MINUTE="3")
    keys = [new_key("held") for _ in range(3)]
    with server.client() as client:
        payments = [client.post(f"/checkout/{key}") for key in keys]
        refused_key = new_key("held")
        refused = client.post(f"/checkout/{refused_key}")
        retries = [client.post(f"/checkout/{key}") for key in keys for _ in range(3)]
        still_refused = client.post(f"/checkout/{refused_key}")
    assert [p.status_code for p in payments] == [200] * 3
    assert refused.status_code == still_refused.status_code == 429
    assert [r.text for r in retries] == [p.text for p in payments for _ in range(3)]
    assert orders_for_key(server, refused_key) == []
