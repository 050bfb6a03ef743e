"""Who a client is, for the cap on unpaid checkouts: the socket's address, the X-Forwarded-For
entry a trusted proxy appended (never one a client wrote), one shared address behind a proxy that
sets no header, and no pass around the cap in production. Real servers, real requests: the
clients connect from loopback addresses of their own (127.0.0.2, 127.0.0.3), and the proxy is
Debian's haproxy with deploy/haproxy.cfg."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest

from widget_store.testing import StoreServer
from widget_store.testing.balancer import CONFIG

from .balancer import haproxy
from .support import MakeServer, new_key

# One unpaid checkout a client: the second new one answers 429, which shows who the store
# thinks the client is.
CAPPED = {"WIDGET_STORE_MAX_UNPAID_PER_CLIENT": "1"}

# The client is the same on both databases: one is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def client_from(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is this machine's)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=60)


def checkouts(client: httpx.Client, *forged: str) -> list[int]:
    """The status of one new checkout for each forged X-Forwarded-For value ("" for none)."""
    statuses = []
    for value in forged:
        headers = {"X-Forwarded-For": value} if value else {}
        statuses.append(client.post(f"/checkout/{new_key('xff')}", headers=headers).status_code)
    return statuses


def proxy_without_forwardfor(tmp_path: Path) -> Path:
    """deploy/haproxy.cfg without `option forwardfor`: a proxy that sets no X-Forwarded-For."""
    text = CONFIG.read_text()
    assert "    option forwardfor\n" in text
    config = tmp_path / "haproxy-no-forwardfor.cfg"
    config.write_text(text.replace("    option forwardfor\n", ""))
    return config


def test_a_client_that_is_no_trusted_proxy_cannot_name_itself(make_server: MakeServer) -> None:
    """127.0.0.2 is not in WIDGET_STORE_FORWARDED_ALLOW_IPS (127.0.0.1 by default): whatever
    X-Forwarded-For it sends, it is 127.0.0.2, held to one cap."""
    server = make_server(**CAPPED)
    with client_from("127.0.0.2", server.base_url) as client:
        assert checkouts(client, "198.51.100.1", "198.51.100.2", "") == [200, 429, 429]
    # A client at another address has a cap of its own.
    with client_from("127.0.0.3", server.base_url) as client:
        assert checkouts(client, "198.51.100.1") == [200]


def test_the_entry_the_trusted_proxy_appended_is_the_client(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """haproxy (`option forwardfor`) appends the address it was connected from to whatever
    X-Forwarded-For the client sent; the store, trusting haproxy's address only, takes the
    rightmost entry that is not a trusted proxy: haproxy's, never the client's own."""
    server = make_server(**CAPPED)
    with haproxy([f"127.0.0.1:{server.port}"] * 3, tmp_path) as url:
        with client_from("127.0.0.2", url) as one, client_from("127.0.0.3", url) as two:
            # Both forge the same address first: each is still itself.
            assert checkouts(one, "198.51.100.7") == [200]
            assert checkouts(two, "198.51.100.7") == [200]
            # A new forged address each time, or a chain of them, does not escape the cap.
            assert checkouts(one, "198.51.100.8", "203.0.113.1, 127.0.0.9", "") == [429] * 3
            assert checkouts(two, "198.51.100.9") == [429]
    holders = server.database.execute("SELECT count(*) FROM orders")
    assert holders == [(2,)]


def test_behind_a_proxy_that_sets_no_header_every_client_shares_one_cap(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Without X-Forwarded-For, the store sees the proxy's own address on every request: all
    the shoppers behind it are one client, with one cap between them."""
    server = make_server(**CAPPED)
    with haproxy(
        [f"127.0.0.1:{server.port}"] * 3, tmp_path, proxy_without_forwardfor(tmp_path)
    ) as url:
        with client_from("127.0.0.2", url) as one, client_from("127.0.0.3", url) as two:
            assert checkouts(one, "") == [200]
            assert checkouts(two, "") == [429]


def shopper_pass(secret: str) -> str:
    """The built-in shoppers' pass, written out independently of the store's own code."""
    return hmac.new(secret.encode(), b"built-in shoppers", hashlib.sha256).hexdigest()


def test_the_shoppers_pass_opens_nothing_in_production(make_server: MakeServer) -> None:
    """Production has no built-in shoppers: their pass, which anyone holding the webhook secret
    can make, is ignored, and the cap holds."""
    server: StoreServer = make_server(
        **CAPPED, WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="t"
    )
    assert server.health()["demo"] is False
    shown = {"Widget-Store-Shopper": shopper_pass(server.secret)}
    with server.client() as client:
        first = client.post(f"/checkout/{new_key('pass')}", headers=shown)
        second = client.post(f"/checkout/{new_key('pass')}", headers=shown)
    assert first.status_code == 200, first.text
    assert second.status_code == 429, second.text


def test_the_shoppers_pass_still_lifts_the_cap_in_demo_mode(make_server: MakeServer) -> None:
    """The built-in shoppers all buy from the server's own address (test_unpaid_cap.py runs
    them); the pass they show is what keeps them out of the cap. A wrong pass is none."""
    server = make_server(**CAPPED)
    shown = {"Widget-Store-Shopper": shopper_pass(server.secret)}
    wrong = {"Widget-Store-Shopper": shopper_pass("not the secret")}
    with server.client() as client:
        statuses = [
            client.post(f"/checkout/{new_key('pass')}", headers=headers).status_code
            for headers in (shown, shown, shown, wrong, wrong)
        ]
    assert statuses == [200, 200, 200, 200, 429]
