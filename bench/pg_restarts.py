"""How long a request waits after Postgres comes back: Postgres restarted (fast mode) a few
times under a stream of purchases, a checkout then its webhook every 100 ms. Prints how many
requests were answered more than 3 s after Postgres accepted connections again, and the worst
wait, and checks that every paid order was dispatched and the ledger holds. Needs a local
cluster this user may restart (root, as in the CI image).

    python -m bench.pg_restarts --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

When Postgres accepts connections again is found by a probe that connects every 10 ms while
the restart runs, not by the restart command's return: pg_ctlcluster waits half-second polls
and a last check after Postgres is ready, and returns two seconds or so late.

A request's wait after Postgres is back: from that moment (after the latest restart that began
before the request was answered) to its answer, or its whole time if it started later. Every
answer counts, 503 included; a shopper retries a 503 or a dropped connection with the same key,
or the same webhook, until it gets a final answer.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from widget_store.testing import Database, StoreServer, temp_dir, wait_until

from .chaos import postgres_version

DISPATCHED, PENDING = 1, 0


@dataclass
class Result:
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (down, back), monotonic
    # start, end, status (0: no answer), what (checkout or webhook)
    requests: list[tuple[float, float, int, str]] = field(default_factory=list)
    paid: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def wait_after_back(self, start: float, end: float) -> float:
        backs = [back for down, back in self.restarts if down < end and back <= end]
        return end - max([start, *backs])

    @property
    def worst_wait_s(self) -> float:
        return max((self.wait_after_back(s, e) for s, e, _, _ in self.requests), default=0.0)

    def late(self, bound_s: float) -> int:
        return sum(1 for s, e, _, _ in self.requests if self.wait_after_back(s, e) > bound_s)

    def worst(self, n: int = 5) -> list[str]:
        ranked = sorted(self.requests, key=lambda r: -self.wait_after_back(r[0], r[1]))
        return [
            f"{what} {status}: {self.wait_after_back(s, e):.2f} s after Postgres was back"
            for s, e, status, what in ranked[:n]
        ]


async def timed(result: Result, what: str, call: object) -> httpx.Response | None:
    started = time.monotonic()
    try:
        answer: httpx.Response = await call  # type: ignore[misc]
    except httpx.TransportError:
        result.requests.append((started, time.monotonic(), 0, what))
        return None
    result.requests.append((started, time.monotonic(), answer.status_code, what))
    return answer


async def purchase(server: StoreServer, http: httpx.AsyncClient, result: Result) -> None:
    key = f"pgr-{uuid.uuid4().hex}"
    deadline = time.monotonic() + 90
    payment_id = None
    while payment_id is None and time.monotonic() < deadline:
        answer = await timed(result, "checkout", http.post(f"/checkout/{key}"))
        if answer is not None and answer.status_code == 200:
            payment_id = answer.text
        elif answer is not None and answer.status_code == 404:
            # Sold out, a final answer for this key: restock for the shoppers that follow.
            await http.post("/restock")
            return
        else:
            await asyncio.sleep(0.1)
    if payment_id is None:
        result.problems.append(f"checkout {key} never answered 200")
        return
    while time.monotonic() < deadline:
        headers = {"Widget-Signature": _signature(server, payment_id)}
        answer = await timed(
            result, "webhook", http.post(f"/payment_webhook/{payment_id}/paid", headers=headers)
        )
        if answer is not None and answer.status_code == 200:
            result.paid.append(int(answer.text))
            return
        if answer is not None and answer.status_code not in (502, 503, 504):
            result.problems.append(f"payment {payment_id}: {answer.status_code} {answer.text}")
            return
        await asyncio.sleep(0.1)
    result.problems.append(f"payment {payment_id} never answered 200")


def _signature(server: StoreServer, payment_id: str) -> str:
    from widget_store.testing import signature

    return signature(server.secret, payment_id, "paid")


def restart_postgres(url: str) -> tuple[float, float]:
    """Restart the cluster (fast mode); (when the restart began, when Postgres accepted
    connections again: the first probe to reach a postmaster started after the restart began).
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 2})

    def postmaster_started() -> object:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_postmaster_start_time()")).scalar_one()

    try:
        before = postmaster_started()
        down = time.monotonic()
        restart = subprocess.Popen(
            ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"]
            + ["-m", "fast"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        back = None
        while back is None:
            attempt = time.monotonic()
            if attempt - down > 60:
                raise TimeoutError("Postgres did not accept connections within 60 s")
            try:
                if postmaster_started() != before:
                    back = attempt
            except sa.exc.DBAPIError:
                pass
            time.sleep(0.01)
        output, _ = restart.communicate(timeout=60)
        if restart.returncode:
            raise subprocess.CalledProcessError(restart.returncode, restart.args, output)
    finally:
        engine.dispose()
    return down, back


async def purchases_during(
    server: StoreServer,
    faults: Callable[[Result], Awaitable[None]],
    every_s: float = 0.1,
    timeout_s: float = 60,
) -> Result:
    """A purchase started every `every_s` until `faults` is done; then every purchase's end."""
    result = Result()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=timeout_s) as http:
        tasks: list[asyncio.Task[None]] = []
        stop = asyncio.Event()

        async def shoppers() -> None:
            while not stop.is_set():
                tasks.append(asyncio.create_task(purchase(server, http, result)))
                await asyncio.sleep(every_s)

        producing = asyncio.create_task(shoppers())
        await faults(result)
        stop.set()
        await producing
        await asyncio.gather(*tasks)
    return result


async def stream(
    server: StoreServer, restarts: int, every_s: float = 0.1, between_s: float = 4.0
) -> Result:
    """Purchases every `every_s` while Postgres restarts `restarts` times, `between_s` apart."""
    url = server.database.url
    assert url is not None

    async def restarting(result: Result) -> None:
        for _ in range(restarts):
            await asyncio.sleep(between_s)
            result.restarts.append(await asyncio.to_thread(restart_postgres, url))
        await asyncio.sleep(between_s)

    return await purchases_during(server, restarting, every_s)


def audit(server: StoreServer, result: Result, timeout_s: float = 60) -> None:
    """Every paid order dispatched, none left PENDING, the ledger exact, nothing stranded."""
    with server.client(timeout=30) as client:

        def settled() -> bool | None:
            rows = server.database.execute(
                "SELECT count(*) FROM orders WHERE order_status IN (0, 2)"
            )
            return rows[0][0] == 0 or None

        try:
            wait_until(settled, timeout=timeout_s, interval=0.2, what="every order to settle")
        except TimeoutError as exc:
            result.problems.append(str(exc))
        for order_id in result.paid:
            status = client.get(f"/order/{order_id}").json()["order_status"]
            if status != DISPATCHED:
                result.problems.append(f"order {order_id} paid but {status}")
        stats = client.get("/stats").json()
        if stats["ledger"]["unaccounted"] != 0:
            result.problems.append(f"ledger: {stats['ledger']}")
        if stats["stranded"] != 0:
            result.problems.append(f"{stats['stranded']} stranded")


def run(server: StoreServer, restarts: int = 3) -> Result:
    result = asyncio.run(stream(server, restarts))
    audit(server, result)
    return result


def report(result: Result, bound_s: float = 3.0) -> str:
    outages = ", ".join(f"{back - down:.2f} s" for down, back in result.restarts)
    answered = [e - s for s, e, _, _ in result.requests]
    return (
        f"{len(result.restarts)} Postgres restarts (fast mode; restart to accepting connections "
        f"again: {outages}); {len(result.requests)} requests, {len(result.paid)} paid orders\n"
        f"requests answered more than {bound_s:g} s after Postgres accepted connections again: "
        f"{result.late(bound_s)} of {len(result.requests)}\n"
        f"worst wait after Postgres accepted connections again: {result.worst_wait_s:.2f} s\n"
        f"slowest request overall: {max(answered, default=0):.2f} s\n"
        + "slowest after Postgres was back:\n  "
        + "\n  ".join(result.worst())
        + "\n"
        + ("problems:\n  " + "\n  ".join(result.problems) if result.problems else "audit: ok")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()
    database = Database.create("postgres", temp_dir("widget-store-bench-"), args.postgres_url)
    server = StoreServer(database, env_overrides={"WIDGET_STORE_DISPATCH_TICK_S": "0.2"})
    try:
        server.start()
        result = run(server, args.restarts)
    finally:
        server.stop()
        database.drop()
    print(report(result))


if __name__ == "__main__":
    main()
