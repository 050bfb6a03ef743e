"""The cockpit's load control under the most built-in shoppers the store allows: how long each
change of the load takes to answer, and a real shopper's checkout latency meanwhile.

    python -m bench.load_control [--backend sqlite|postgres] [--changes 4] [--probe-s 30]

A store in demo mode runs the built-in shoppers at their maximum; the script changes their mix
every few seconds (POST /load, as the cockpit does) and times each answer, while a probe buys
and pays a widget every half second as a real shopper would (Buy Now, then the sandbox's Pay),
from an address of its own. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx

from widget_store.demo.shoppers import MAX_SHOPPERS

from .cli import add_database_args
from .servers import store_server

PROBE_EVERY_S = 0.5


def probe(base_url: str, stop: threading.Event, latencies: list[float], errors: list[str]) -> None:
    """A real shopper: Buy Now, then pay at the sandbox, every PROBE_EVERY_S."""
    n = 0
    with httpx.Client(base_url=base_url, timeout=60) as client:
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            answer = client.post(f"/checkout/probe-{n}")
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                errors.append(f"checkout {answer.status_code}")
            else:
                paid = client.post(f"/sandbox/payments/{answer.text}/paid")
                if paid.status_code != 200:
                    errors.append(f"pay {paid.status_code}")
            stop.wait(PROBE_EVERY_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_args(parser)
    parser.add_argument("--changes", type=int, default=4, help="changes of the load to time")
    parser.add_argument("--probe-s", type=float, default=30.0, help="seconds of probing")
    args = parser.parse_args()
    with store_server(args, WIDGET_STORE_DEMO="1") as server:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            mixes = [
                {
                    "shoppers": MAX_SHOPPERS,
                    "pay_weight": 8,
                    "decline_weight": 1,
                    "abandon_weight": 1,
                },
                {
                    "shoppers": MAX_SHOPPERS,
                    "pay_weight": 6,
                    "decline_weight": 2,
                    "abandon_weight": 2,
                },
            ]
            answers = []
            first = time.perf_counter()
            assert client.post("/load", json=mixes[0]).status_code == 200
            answers.append(time.perf_counter() - first)
            time.sleep(5)  # the shoppers at full speed before the probe starts
            stop = threading.Event()
            latencies: list[float] = []
            errors: list[str] = []
            prober = threading.Thread(
                target=probe, args=(server.base_url, stop, latencies, errors), daemon=True
            )
            prober.start()
            deadline = time.monotonic() + args.probe_s
            gap = args.probe_s / (args.changes + 1)
            for i in range(args.changes):
                time.sleep(gap)
                started = time.perf_counter()
                answer = client.post("/load", json=mixes[(i + 1) % 2])
                answers.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            time.sleep(max(0.0, deadline - time.monotonic()))
            stop.set()
            prober.join()
            client.post("/load/stop")
            paid = server.database.execute(
                "SELECT count(*) FROM orders WHERE order_status IN (1, 2)"
            )[0][0]
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"backend: {args.backend}, built-in shoppers: {MAX_SHOPPERS}")
    print(
        f"load change answer: max {max(answers):.2f} s, median {statistics.median(answers):.2f} s"
    )
    print(
        f"real shopper checkout: p50 {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms, {len(ordered)} checkouts"
    )
    print(f"real shopper errors: {len(errors)} {sorted(set(errors))}")
    print(f"paid orders in the run (built-in shoppers and probe): {paid}")


if __name__ == "__main__":
    main()
