"""Security headers on every answer, and the cross-site guard on every state-changing route but
the payment webhook, over plain HTTP against a real server (the browser's side is in
test_page_security.py)."""

from __future__ import annotations

import re
import time

import httpx

from widget_store.testing import StoreServer, signature
from widget_store.web.security import CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY

from .support import HTML_DIR, PENDING, MakeServer, new_key, orders_for_key

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}

# What a browser sends along with a request another site's page made.
CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://shop.evil.example"},
    # An older browser: no Fetch Metadata, only the Origin.
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
]


# Called by payment providers' servers, and checked by their signatures: no cross-site guard.
PROVIDERS_WEBHOOKS = ("/payment_webhook/", "/webhooks/")


def assert_security_headers(answer: httpx.Response, policy: str = CONTENT_SECURITY_POLICY) -> None:
    expected = {**HEADERS, "content-security-policy": policy}
    got = {name: answer.headers.get(name) for name in expected}
    assert got == expected, f"{answer.request.url}: {got}"


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403, (answer.request.url, answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    assert "cross-site" in answer.json()["detail"]


def test_every_answer_has_the_security_headers(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert_security_headers(page)
        for path in (
            "/static/js/main.js",
            "/static/app.css",
            "/static/logo.svg",
            "/static/docs.js",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert_security_headers(answer)
        for answer in (
            client.get("/product"),
            client.get("/health"),
            client.get("/openapi.json"),
            client.get("/order/999999"),  # an error answer too
            client.post("/checkout/bad key!"),
            client.get("/no/such/route"),
        ):
            assert_security_headers(answer)
        assert client.get("/order/999999").status_code == 404


def test_the_page_has_no_inline_script_or_style() -> None:
    """What the policy would block: <script> with a body, <style>, style="", on...= handlers."""
    for name in ("app.html", "docs.html"):
        html = (HTML_DIR / name).read_text()
        assert "<style" not in html, name
        assert not re.search(r"<[^>]*\sstyle\s*=", html), f"{name}: a style attribute"
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", html), f"{name}: an event handler attribute"
        assert "javascript:" not in html, name
        for chunk in html.split("<script")[1:]:
            attributes, _, rest = chunk.partition(">")
            assert "src=" in attributes and rest.startswith("</script>"), f"{name}: inline script"


def test_docs_is_served_from_this_host(shared_server: StoreServer) -> None:
    with shared_server.client() as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert_security_headers(docs, DOCS_CONTENT_SECURITY_POLICY)
        assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
        assert "/static/docs.js" in docs.text
        assert "cdn" not in docs.text.lower() and "https://" not in docs.text
        for path in ("swagger-ui-bundle.js", "swagger-ui.css"):
            answer = client.get(f"/static/vendor/swagger-ui/{path}")
            assert answer.status_code == 200 and len(answer.content) > 100_000, path
        # FastAPI's own pages (which load Swagger UI and ReDoc from a CDN) are off.
        assert client.get("/redoc").status_code == 404
        assert client.get("/docs/oauth2-redirect").status_code == 404
        schema = client.get("/openapi.json").json()
    assert "/docs" not in schema["paths"]
    assert "403" in schema["paths"]["/restock"]["post"]["responses"]
    assert "403" in schema["paths"]["/crash_application"]["post"]["responses"]
    assert "403" in schema["paths"]["/checkout/{idempotency_key}"]["post"]["responses"]
    assert "403" in schema["paths"]["/checkout/{idempotency_key}/cancel"]["post"]["responses"]


def test_cross_site_posts_are_refused_and_the_server_does_not_crash(
    shared_server: StoreServer,
) -> None:
    before = shared_server.health()
    shared_server.database.execute("UPDATE products SET inventory = 7")
    with shared_server.client() as client:
        key = new_key()
        payment = client.post(f"/checkout/{key}").text
        for headers in CROSS_SITE:
            assert_refused(client.post(f"/checkout/{new_key()}", headers=headers))
            assert_refused(client.post(f"/checkout/{key}", headers=headers))
            assert_refused(client.post(f"/checkout/{key}/cancel", headers=headers))
            assert_refused(client.post("/crash_application", headers=headers))
            assert_refused(client.post("/restock", headers=headers))
            assert_refused(client.post("/load", json={"shoppers": 1}, headers=headers))
            assert_refused(client.post("/load/stop", headers=headers))
            assert_refused(client.post(f"/sandbox/payments/{payment}/paid", headers=headers))
        # The refusals carry the security headers, like every answer.
        assert_security_headers(client.post("/restock", headers=CROSS_SITE[0]))
        # Had a refused crash gone through, the process would be gone within 50 ms.
        time.sleep(0.5)
        assert shared_server.health()["pid"] == before["pid"]
        assert shared_server.health()["restart_count"] == before["restart_count"]
        # No other checkout reserved a widget, and no restock either.
        assert client.get("/product").json()["inventory"] == 6
        assert client.get("/load").json()["running"] is False
    # Still waiting for payment: the sandbox did not pay it.
    assert shared_server.database.execute(
        "SELECT order_status FROM orders WHERE checkout_id = :id", id=f"checkout:{key}"
    ) == [(0,)]


def test_same_origin_and_header_less_requests_pass(shared_server: StoreServer) -> None:
    own_origin = shared_server.base_url
    with shared_server.client() as client:
        allowed = [
            {},  # curl, the payment provider, the built-in shoppers
            {"Sec-Fetch-Site": "same-origin", "Origin": own_origin},
            {"Sec-Fetch-Site": "none"},  # typed into the address bar
            {"Origin": own_origin},  # an older browser on the store's own page
            # Sec-Fetch-Site decides when it is there, whatever the Origin says.
            {"Sec-Fetch-Site": "same-origin", "Origin": "http://proxy.example"},
        ]
        for headers in allowed:
            answer = client.post("/restock", headers=headers)
            assert answer.status_code == 200, (headers, answer.text)
        stop = client.post("/load/stop", headers={"Sec-Fetch-Site": "same-origin"})
        assert stop.status_code == 200, stop.text
        payment = client.post(f"/checkout/{new_key()}").text
        paid = client.post(
            f"/sandbox/payments/{payment}/paid", headers={"Origin": own_origin.upper()}
        )
        assert paid.status_code == 200, paid.text
        # The store's own page checks out and cancels.
        key = new_key()
        page = {"Sec-Fetch-Site": "same-origin", "Origin": own_origin}
        assert client.post(f"/checkout/{key}", headers=page).status_code == 200
        assert client.post(f"/checkout/{key}/cancel", headers=page).status_code == 200
        # Reading changes nothing: a link from another site to an order or the page works.
        assert client.get("/", headers=CROSS_SITE[0]).status_code == 200
        assert client.get(f"/checkout/{key}", headers=CROSS_SITE[0]).status_code == 200
        # The payment webhook is called server to server and checked by its signature only.
        payment = client.post(f"/checkout/{new_key()}").text
        delivery = f"/payment_webhook/{payment}/paid"
        signed = {"Widget-Signature": signature(shared_server.secret, payment, "paid")}
        assert client.post(delivery, headers={**CROSS_SITE[0], **signed}).status_code == 200


def test_every_state_changing_route_but_the_webhook_refuses_other_sites(
    shared_server: StoreServer,
) -> None:
    """Each POST, PUT, PATCH and DELETE the store serves (its OpenAPI schema, demo routes
    included), sent on behalf of another site: 403, and nothing changed."""
    before = shared_server.health()
    with shared_server.client() as client:
        key = new_key()
        payment = client.post(f"/checkout/{key}").text
        stock = client.get("/product").json()["inventory"]
        orders = shared_server.database.execute("SELECT count(*) FROM orders")
        values = {"idempotency_key": key, "payment_id": payment, "payment_status": "paid"}
        schema = client.get("/openapi.json").json()
        sent = []
        for path, operations in schema["paths"].items():
            if path.startswith(PROVIDERS_WEBHOOKS):
                continue
            for method in operations.keys() & {"post", "put", "patch", "delete"}:
                url = re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], "1"), path)
                assert_refused(client.request(method, url, headers=CROSS_SITE[0], json={}))
                sent.append(f"{method.upper()} {path}")
        time.sleep(0.5)  # a crash that got through would have happened by now
        assert shared_server.health()["pid"] == before["pid"]
        assert client.get("/product").json()["inventory"] == stock
        assert shared_server.database.execute("SELECT count(*) FROM orders") == orders
    assert orders_for_key(shared_server, key)[0][1] == PENDING  # neither cancelled nor paid
    assert {"POST /checkout/{idempotency_key}", "POST /checkout/{idempotency_key}/cancel"} <= set(
        sent
    )
    assert "POST /crash_application" in sent and "POST /load" in sent, sent


def test_production_mode_guards_and_headers(make_server: MakeServer) -> None:
    server = make_server(WIDGET_STORE_DEMO="0", WIDGET_STORE_OPERATOR_TOKEN="t")
    operator = {"Authorization": "Bearer t"}
    with server.client() as client:
        assert_security_headers(client.get("/"))
        assert_security_headers(client.get("/static/js/main.js"))
        assert_security_headers(client.get("/product"))
        assert_security_headers(client.get("/docs"), DOCS_CONTENT_SECURITY_POLICY)
        key = new_key()
        assert client.post(f"/checkout/{key}").status_code == 200  # no Origin: a script
        for headers in CROSS_SITE:
            # The operator's own token does not make another site's request acceptable.
            assert_refused(client.post("/restock", headers={**headers, **operator}))
            assert_refused(client.post(f"/checkout/{new_key()}", headers=headers))
            assert_refused(client.post(f"/checkout/{key}/cancel", headers=headers))
        assert orders_for_key(server, key)[0][1] == PENDING
        assert client.post("/restock", headers=operator).status_code == 200
        same_origin = {"Sec-Fetch-Site": "same-origin", **operator}
        assert client.post("/restock", headers=same_origin).status_code == 200
        # Demo routes and the sandbox do not exist here at all.
        assert client.post("/crash_application", headers=operator).status_code == 404
        assert client.post("/sandbox/payments/x/paid").status_code == 404
