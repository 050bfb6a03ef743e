"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis) against a real server, on SQLite
and Postgres: no answer may be a 500, and every answer must be one the schema documents (status,
content type, body shape). Then the store's invariants must still hold.

What the schema promises is what clients are generated from, so a drift between /openapi.json
and the routes (an undocumented 422 body, a status nobody declared) breaks someone's client.
POST /crash_application is left out: it kills the server by design.

Why not `schemathesis.pytest.from_fixture(...).parametrize()`: schemathesis 4.32 renames pytest
nodes through `Node._nodeid`, which pytest 9.2 no longer has (AttributeError). So each operation
is driven through schemathesis's Python API instead: `operation.as_strategy()` under Hypothesis's
`@given`, once with valid data and once with invalid data, and every failure is collected so one
run reports all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from widget_store.testing import StoreServer, signature

from .support import new_key

# Slow: runs with `pytest --full` (tests/conftest.py).
pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # A request the schema forbids must be refused, not quietly accepted.
    negative_data_rejection,
]
# Per operation and mode; about 20 operations, so a backend's run stays within a minute or two.
MAX_EXAMPLES = 25
NOT_FUZZED = {"POST /crash_application"}

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]


def operations(server: StoreServer) -> Iterator[Operation]:
    """Every operation /openapi.json documents, except those that must not be fuzzed."""
    api = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    for result in api.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the schema describes badly
        operation = result.ok()
        if operation.label not in NOT_FUZZED:
            yield operation


def sign_webhook(case: Case, secret: str) -> None:
    """Sign a webhook case correctly: with only random signatures every valid case would stop at
    the 401, and the payment handling behind it would never be fuzzed."""
    if not case.operation.path.startswith("/payment_webhook/"):
        return
    params = case.path_parameters or {}
    header = signature(secret, str(params.get("payment_id")), str(params.get("payment_status")))
    case.headers["Widget-Signature"] = header


def fuzz(operation: Operation, mode: GenerationMode, server: StoreServer) -> None:
    """Send MAX_EXAMPLES generated requests; raise (shrunk by Hypothesis) on the first failure."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,  # nothing written into the repo
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def send(case: Case) -> None:
        if mode.is_positive:  # invalid data keeps its fuzzed header: the 401 path
            sign_webhook(case, server.secret)
        case.call_and_validate(base_url=server.base_url, checks=CHECKS, timeout=60)

    send()


def explain(exc: BaseException) -> str:
    """The failure with what caused it: a flaky one (failed once, passed when Hypothesis tried
    it again) carries the original errors inside, which its own message does not show."""
    text = str(exc)
    for inner in getattr(exc, "exceptions", ()):
        text += f"\n  underlying error: {type(inner).__name__}: {explain(inner)}"
    return text


def test_api_answers_as_its_schema_says(shared_server: StoreServer) -> None:
    failures = []
    for operation in operations(shared_server):
        for mode in GenerationMode:
            try:
                fuzz(operation, mode, shared_server)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to make invalid here (no parameters, or only headers)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"--- {operation.label} ({mode.value} data)\n{explain(exc)}")
    assert not failures, "\n\n".join(failures)


def test_invariants_hold_after_fuzzing(shared_server: StoreServer) -> None:
    """Whatever the fuzzer sent: no request crashed the server, stock never went negative, and
    no key made two orders."""
    with shared_server.client() as client:
        client.post("/load/stop")  # the fuzzer may have started the built-in shoppers
    assert shared_server.health()["restart_count"] == 0, shared_server.log_text()[-4000:]
    db = shared_server.database
    assert db.execute("SELECT inventory FROM products WHERE inventory < 0") == []
    doubled = db.execute(
        "SELECT checkout_id, count(*) FROM orders GROUP BY checkout_id HAVING count(*) > 1"
    )
    assert doubled == []


# Regressions for what the fuzzer found, one request each, so a fix can be checked directly.


def openapi(client: httpx.Client) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


@pytest.mark.parametrize("order_id", [2**31, 2**63, -(2**63) - 1])
def test_order_id_out_of_the_column_range_is_not_a_server_error(
    shared_server: StoreServer, order_id: int
) -> None:
    """No order can have this id, so 404 (or 422 if the schema bounds it); Postgres answered
    500 past 2**31 - 1 (integer out of range), SQLite past 2**63 - 1 (OverflowError)."""
    with shared_server.client() as client:
        answer = client.get(f"/order/{order_id}")
    assert answer.status_code in (404, 422), answer.text


def test_json_error_answers_are_documented_as_json(shared_server: StoreServer) -> None:
    """Routes answering plain text on success still answer errors as JSON ErrorOut, but
    /openapi.json documented those errors under text/plain."""
    with shared_server.client() as client:
        answer = client.post(
            "/payment_webhook/nosuchpayment/paid",
            headers={"Widget-Signature": signature(shared_server.secret, "nosuchpayment", "paid")},
        )
        api = openapi(client)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    undocumented = [
        f"{method.upper()} {path} {status}: {sorted(response.get('content', {}))}"
        for path, item in api["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if "ErrorOut" in json.dumps(response) and "application/json" not in response["content"]
    ]
    assert not undocumented, "\n".join(undocumented)


def test_a_body_that_is_not_utf8_gets_a_documented_answer(shared_server: StoreServer) -> None:
    """FastAPI answers 400 "There was an error parsing the body" to undecodable bytes; the
    schema documents only 200 and 422 for POST /load."""
    with shared_server.client() as client:
        answer = client.post(
            "/load", content=b"a\xff", headers={"Content-Type": "application/json"}
        )
        documented = openapi(client)["paths"]["/load"]["post"]["responses"]
    assert str(answer.status_code) in documented, answer.text


def test_order_times_carry_their_offset(shared_server: StoreServer) -> None:
    """The schema says `date-time` (RFC 3339, offset required); on SQLite the times came back
    naive ("2026-11-25T17:11:14"): `func.now()` there is CURRENT_TIMESTAMP, stored and read back
    without a zone, so a client cannot tell what instant they mean."""
    with shared_server.client() as client:
        payment_id = client.post(f"/checkout/{new_key('fuzz-times')}").text
        order_id = shared_server.pay(client, payment_id, "failed").text
        order = client.get(f"/order/{order_id}").json()
    for name in ("created_at", "last_update_time"):
        assert datetime.fromisoformat(order[name]).tzinfo is not None, order


def test_an_oversized_signature_timestamp_is_401(shared_server: StoreServer) -> None:
    """A 400-digit `t` overflowed the clock comparison: 500 and a dropped connection."""
    with shared_server.client() as client:
        answer = client.post(
            "/payment_webhook/nosuchpayment/paid",
            headers={"Widget-Signature": f"t={'9' * 400},v1=00"},
        )
    assert answer.status_code == 401
    assert "timestamp" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        '{"shoppers": NaN}',
        '{"shoppers": 2, "abandon_weight": false}',
        '{"shoppers": 2.0}',
        '{"shoppers": "2"}',
        '{"shoppers": 2, "surprise": 1}',
    ],
)
def test_load_settings_are_strict(shared_server: StoreServer, body: str) -> None:
    """NaN answered 500 (it cannot be written back as JSON), and false was taken for 0."""
    with shared_server.client() as client:
        before = client.get("/load").json()
        answer = client.post("/load", content=body, headers={"Content-Type": "application/json"})
        after = client.get("/load").json()
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    assert after == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflows/%00/steps"),
        ("GET", "/checkout/x%00"),
        ("POST", "/checkout/x%2Fy"),
        ("POST", "/checkout/x%2fcancel"),
        ("POST", "/checkout/x%2Fy/cancel"),
    ],
)
def test_ids_with_nul_or_an_encoded_slash_are_422(
    shared_server: StoreServer, method: str, path: str
) -> None:
    """NUL answered 500 on Postgres (text cannot hold it); `x%2Fy` was decoded into two path
    segments and answered 404, and `x%2Fcancel` reached the cancel route of key `x`."""
    # Counted before and after: the fuzzing above, on this same server, can make keys that
    # start with x itself.
    x_orders = "SELECT count(*) FROM orders WHERE checkout_id LIKE 'checkout:x%'"
    before = shared_server.database.execute(x_orders)
    with shared_server.client() as client:
        answer = client.request(method, path)
    after = shared_server.database.execute(x_orders)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("path:")
    assert after == before


def test_every_route_on_the_database_documents_its_503(shared_server: StoreServer) -> None:
    """Under load a route can find every pooled connection busy and answer 503 "retry shortly"
    (on SQLite, a write waiting out the file's lock). POST /load's schema did not say it could:
    such a 503 fails the fuzzer's conformance check on that call and not on its retry, which is
    what Hypothesis reports as "Failed on the first call but did not on a subsequent one"."""
    with shared_server.client() as client:
        api = openapi(client)
    undocumented = [
        f"{method.upper()} {path}"
        for path, item in api["paths"].items()
        for method, operation in item.items()
        if path != "/health" and "503" not in operation["responses"]
    ]
    assert not undocumented, undocumented
