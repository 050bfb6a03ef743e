"""How fast the store sells under load: purchases a second, and the latency of its two hot
endpoints, with the server's CPU and memory. Prints a table; asserts nothing.

    python -m bench.load                                  # SQLite, 32 shoppers, 60 s, closed loop
    python -m bench.load --backend postgres --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.load --shoppers 8 --duration 30
    python -m bench.load --mode open --rate 20            # 20 purchases a second, Poisson arrivals
    python -m bench.load --url http://127.0.0.1:8000 --secret $WIDGET_STORE_WEBHOOK_SECRET
    python -m bench.load --json bench/results/load-sqlite.json
    python -m bench.load --backend postgres --instances 2  # two store processes, one database
    python -m bench.load --backend postgres --workers 2    # one store, two serving processes

Without --url the script starts a store of its own (`widget-store serve` under its supervisor,
on a fresh SQLite folder or a fresh Postgres database, dropped afterwards), with a 10 s payment
timeout and a million widgets in stock so that no restock is needed. With --url it drives a
store already running on this machine and restocks it whenever it sells out; every shopper
comes from one address, so start that store with the per-client caps off
(WIDGET_STORE_MAX_UNPAID_PER_CLIENT=0, WIDGET_STORE_NEW_CHECKOUTS_PER_MINUTE=0, and
WIDGET_STORE_MAX_CONNECTIONS_PER_CLIENT=0 or above the shoppers), as the script does with its
own store. With --instances N
(Postgres) it starts N store processes on the one database, each with an executor id of its own,
and sends each checkout and each webhook to any of them at random, as a load balancer would;
CPU is then summed over all of them, and peak RSS shown for each.

A purchase is `POST /checkout/<new key>` answered 200, then the signed
`POST /payment_webhook/<payment id>/paid` answered 200. The mix: 80 % of shoppers pay, 10 % are
declined (`failed`), 10 % walk away without paying (their checkouts expire after the timeout).

- closed loop (default): --shoppers shoppers, each starting a new purchase the moment the last
  one ended, for --duration seconds.
- open loop (--mode open): purchases arrive at --rate a second (Poisson) whatever the latency,
  for --duration seconds; the run then waits for the last ones to finish.

Reported apart: the first --warmup seconds (15: each paid order dispatches over the next ten
1 s ticks, so the dispatch load is still growing) and the steady state after it. Errors: any
answer other than 200 (and 404 sold out) and any transport error. CPU: user + system seconds,
from /proc, of the serving child and its supervisor and of the Postgres backends connected to
the store's database (not with --url), from the start of the load to the end of its last
request. "CPU ms per purchase" is their sum over the steady-state window alone divided by the
purchases made in it: in a steady run that window holds the work of its own purchases, their
dispatch and the declined and abandoned checkouts' work included. The load generator's own CPU
is shown apart: it shares the machine. Peak RSS: VmHWM of the serving child and its supervisor.
A Postgres restart during the run (another tenant's) is reported: the figures are then void.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from widget_store.testing import StoreServer, signature

from .cli import add_load_args
from .loadgen import CHECKOUT, LOAD_PAYMENT_TIMEOUT_S, WEBHOOK, Recorder, shop
from .report import print_load_report, write_json
from .resources import CpuMeter, run_metered, store_processes
from .servers import store_server


def new_key() -> str:
    return f"bench-{uuid.uuid4().hex}"


@dataclass
class StoreShopper:
    """Shoppers and the payment provider, speaking HTTP to the store; records into `recorder`."""

    client: httpx.AsyncClient
    secret: str
    recorder: Recorder
    restock_when_sold_out: bool = False

    async def checkout(self, key: str | None = None) -> str | None:
        """Check out (with a new key unless given one): the payment id, or None (sold out or an
        error)."""
        key = key or new_key()
        answer = await self.recorder.timed(CHECKOUT, self.client.post(f"/checkout/{key}"))
        if answer is not None and answer.status_code == 404:
            self.recorder.outcomes["sold out"] += 1
            if self.restock_when_sold_out:
                await self.client.post("/restock")
            return None
        return self._body(CHECKOUT, answer)

    async def settle(self, payment_id: str, status: str) -> str | None:
        """Deliver a signed payment webhook: the order id, or None on an error."""
        answer = await self.recorder.timed(
            WEBHOOK,
            self.client.post(
                f"/payment_webhook/{payment_id}/{status}",
                headers={"Widget-Signature": signature(self.secret, payment_id, status)},
            ),
        )
        return self._body(WEBHOOK, answer)

    def _body(self, endpoint: str, answer: httpx.Response | None) -> str | None:
        """A 200's body; anything else is an error (a transport error is already recorded)."""
        if answer is None:
            return None
        if answer.status_code != 200:
            self.recorder.error(f"{endpoint}: HTTP {answer.status_code}")
            return None
        return answer.text


def http_client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    return httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)


async def run_load(
    args: argparse.Namespace,
    base_urls: list[str],
    secret: str,
    database_url: str | None,
    restock: bool = False,
) -> dict[str, Any]:
    """Drive the store at `base_urls` (one, or several instances of one store) as the arguments
    say; the results, resources included (all instances' processes summed)."""
    recorder = Recorder(args.duration, args.warmup)
    async with contextlib.AsyncExitStack() as stack:
        shoppers = []
        processes: dict[str, int] = {}
        for n, url in enumerate(base_urls):
            client = await stack.enter_async_context(http_client(url))
            serving = store_processes(int((await client.get("/health")).json()["pid"]))
            suffix = f"-{n + 1}" if len(base_urls) > 1 else ""
            processes.update({f"{name}{suffix}": pid for name, pid in serving.items()})
            shoppers.append(StoreShopper(client, secret, recorder, restock))
        rng = random.Random(args.seed)

        async def purchase(outcome: str) -> None:
            # Behind a load balancer: the checkout and the provider's webhook each land on any
            # instance, most often not the same one.
            first, then = rng.choice(shoppers), rng.choice(shoppers)
            await shop(recorder, outcome, first.checkout, then.settle)

        result = await run_metered(
            purchase,
            recorder,
            args,
            lambda: CpuMeter(processes, database_url),
            separate_client=True,
        )
    return {"kind": "store", "backend": args.backend, "instances": len(base_urls), **result}


def describe(result: dict[str, Any], args: argparse.Namespace) -> str:
    load = (
        f"{result['shoppers']} shoppers"
        if result["mode"] == "closed"
        else f"{result['rate']:g}/s offered (at most {result['most_in_flight']} in flight)"
    )
    where = result["backend"]
    if result.get("instances", 1) > 1:
        where += f" ({result['instances']} instances)"
    if getattr(args, "workers", 1) > 1:
        where += f" ({args.workers} workers each)"
    return f"{result['kind']}, {where}, {result['mode']} loop, {load}, {args.duration:g} s"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        return asyncio.run(run_load(args, [args.url], args.secret, None, restock=True))
    env = {
        "WIDGET_STORE_PAYMENT_TIMEOUT_S": str(LOAD_PAYMENT_TIMEOUT_S),
        "WIDGET_STORE_WORKERS": str(args.workers),
    }
    with store_server(args, **env) as server, contextlib.ExitStack() as more:
        servers = [server]
        for n in range(2, args.instances + 1):
            # Same database, same application version; an executor id of its own.
            other = StoreServer(
                server.database,
                env_overrides={**env, "WIDGET_STORE_EXECUTOR_ID": f"instance-{n}"},
                secret=server.secret,
            )
            more.callback(other.stop)
            servers.append(other.start())
        urls = [s.base_url for s in servers]
        return asyncio.run(run_load(args, urls, server.secret, server.database.url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_args(parser)
    parser.add_argument("--url", help="drive this running store instead of starting one")
    parser.add_argument(
        "--secret",
        default=os.environ.get("WIDGET_STORE_WEBHOOK_SECRET"),
        help="the --url store's webhook secret (default: $WIDGET_STORE_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="Postgres: serve from this many store processes on one database",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Postgres: serving processes of each store (widget-store serve --workers)",
    )
    args = parser.parse_args()
    if args.workers > 1 and (args.url or args.backend != "postgres"):
        parser.error("--workers needs --backend postgres (SQLite is one process) and no --url")
    if args.instances > 1 and (args.url or args.backend != "postgres"):
        parser.error("--instances needs --backend postgres (SQLite is one process) and no --url")
    if args.url and not args.secret:
        parser.error(
            "--url needs the store's webhook secret: --secret or WIDGET_STORE_WEBHOOK_SECRET"
        )
    if args.url:
        args.backend = "external"
    result = measure(args)
    print_load_report(describe(result, args), result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
