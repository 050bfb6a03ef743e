"""The cap on unpaid checkouts per client: nobody can hold the whole stock by checking out
without paying. Real servers, both databases: the cap counts PENDING orders in the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from widget_store.testing import wait_until

from .support import MakeServer, new_key

CAP = 5
CAPPED = {"WIDGET_STORE_MAX_UNPAID_PER_CLIENT": str(CAP)}


def test_one_client_holds_at_most_the_cap_and_others_still_buy(make_server: MakeServer) -> None:
    server = make_server(**CAPPED)
    keys = [new_key("cap") for _ in range(30)]
    with server.client() as client, ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda key: client.post(f"/checkout/{key}"), keys))
        held = [key for key, answer in zip(keys, answers, strict=True) if answer.is_success]
        refused = [answer for answer in answers if answer.status_code == 429]
        stock = client.get("/product").json()["inventory"]
        # A key the client already holds is never refused, however many it holds.
        again = client.post(f"/checkout/{held[0]}")
        # Another shopper, behind a trusted proxy (loopback, by default), still buys.
        other = client.post(
            f"/checkout/{new_key('cap')}", headers={"X-Forwarded-For": "203.0.113.7"}
        )
    assert len(held) == CAP, [answer.status_code for answer in answers]
    assert len(refused) == 30 - CAP
    assert stock == 100 - CAP
    assert again.status_code == 200 and again.text == answers[keys.index(held[0])].text
    assert other.status_code == 200, other.text
    first = refused[0]
    assert first.headers["content-type"] == "application/json"
    assert f"{CAP} unpaid checkouts" in first.json()["detail"]
    # The oldest of them expires within the payment window, which is when to come back.
    assert 1 <= int(first.headers["Retry-After"]) <= 300
    orders = server.database.execute("SELECT count(*) FROM orders")
    assert orders == [(CAP + 1,)]  # the refused checkouts made no order at all


def test_paying_frees_a_place_and_the_cap_survives_a_restart(make_server: MakeServer) -> None:
    server = make_server(**CAPPED)
    with server.client() as client:
        payments = [client.post(f"/checkout/{new_key('cap')}").text for _ in range(CAP)]
        refused_key = new_key("cap")
        assert client.post(f"/checkout/{refused_key}").status_code == 429
        server.kill_worker()
        server.wait_healthy()
        # Counted from the database, so a restart does not reset it.
        assert client.post(f"/checkout/{new_key('cap')}").status_code == 429
        assert server.pay(client, payments[0], "paid").status_code == 200
        # The refused key made nothing, so it can be used once a place is free.
        retried = client.post(f"/checkout/{refused_key}")
        assert retried.status_code == 200, retried.text
        assert client.post(f"/checkout/{new_key('cap')}").status_code == 429


def test_an_untrusted_proxy_header_is_ignored(make_server: MakeServer) -> None:
    """From an address not in WIDGET_STORE_FORWARDED_ALLOW_IPS, X-Forwarded-For names nobody:
    a client cannot escape the cap by inventing addresses."""
    server = make_server(**CAPPED, WIDGET_STORE_FORWARDED_ALLOW_IPS="192.0.2.1")
    statuses = []
    with server.client() as client:
        for n in range(CAP + 1):
            forged = {"X-Forwarded-For": f"198.51.100.{n}"}
            statuses.append(client.post(f"/checkout/{new_key('cap')}", headers=forged).status_code)
    assert statuses == [200] * CAP + [429]


def test_the_built_in_shoppers_are_not_capped(make_server: MakeServer) -> None:
    """They all buy from the server's own address, and many walk away without paying: held
    neither to the unpaid cap nor to the rate of new checkouts."""
    server = make_server(
        **CAPPED, WIDGET_STORE_NEW_CHECKOUTS_PER_MINUTE="2", WIDGET_STORE_PAYMENT_TIMEOUT_S="60"
    )
    with server.client() as client:
        mix = {"shoppers": 12, "pay_weight": 0, "decline_weight": 0, "abandon_weight": 1}
        assert client.post("/load", json=mix).status_code == 200

        def pending() -> int:
            rows = server.database.execute("SELECT count(*) FROM orders WHERE order_status = 0")
            return int(rows[0][0])

        wait_until(lambda: pending() > CAP or None, timeout=30, what="more than the cap pending")
        client.post("/load/stop")
