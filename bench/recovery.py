"""How fast the store comes back: seconds from a crash to serving again, and from a crash to
the first recovered workflow's next step. Prints a table; asserts nothing.

    python -m bench.recovery                     # SQLite, 10 crashes
    python -m bench.recovery --backend postgres --postgres-url postgresql://postgres@127.0.0.1/postgres

Each round: a paid order is mid-dispatch, the crash button is pressed, and the script times
(a) until /health answers from a new process and (b) until the dispatch workflow's next tick
is checkpointed (read from its recorded steps). The ticks are --tick-s apart (0.2 s): a tick
runs on its schedule, so with the store's 1 s ticks the next one after a crash is due up to a
second later however fast the recovery, and (b) would time the schedule, not the recovery.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import uuid
from datetime import datetime

import httpx

from widget_store.testing import Database, StoreServer, temp_dir, wait_until


def last_tick_time(client: httpx.Client, order_id: int) -> float | None:
    steps = client.get(f"/workflows/dispatch:{order_id}/steps").json()
    ticks = [s["completed_at"] for s in steps if s["name"] == "tick_dispatch" and s["completed_at"]]
    return datetime.fromisoformat(ticks[-1]).timestamp() if ticks else None


def one_round(server: StoreServer, client: httpx.Client) -> tuple[float, float]:
    client.post("/restock")
    payment_id = client.post(f"/checkout/bench-{uuid.uuid4().hex}").text
    order_id = int(server.pay(client, payment_id, "paid").text)
    wait_until(lambda: last_tick_time(client, order_id), timeout=30, what="the first tick")
    pid = server.health()["pid"]
    crashed_at = time.time()
    try:
        client.post("/crash_application")
    except httpx.TransportError:
        pass
    server.wait_healthy(not_pid=pid, timeout=60)
    serving_s = time.time() - crashed_at

    def next_tick() -> float | None:
        tick = last_tick_time(client, order_id)
        return tick if tick is not None and tick > crashed_at else None

    resumed_s = wait_until(next_tick, timeout=60, what="the next tick") - crashed_at
    return serving_s, resumed_s


def summarize(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"{name:<34} median {statistics.median(ordered):6.2f} s   "
        f"min {ordered[0]:6.2f} s   max {ordered[-1]:6.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tick-s", type=float, default=0.2, help="seconds between ticks")
    args = parser.parse_args()

    database = Database.create(args.backend, temp_dir("widget-store-bench-"), args.postgres_url)
    # Long-lived rounds: space the crashes so the supervisor never sees a crash loop.
    server = StoreServer(database, env_overrides={"WIDGET_STORE_DISPATCH_TICK_S": str(args.tick_s)})
    serving, resumed = [], []
    try:
        server.start()
        with server.client(timeout=30) as client:
            for n in range(args.rounds):
                s, r = one_round(server, client)
                serving.append(s)
                resumed.append(r)
                print(f"round {n + 1:2}: serving again {s:5.2f} s, next step {r:5.2f} s")
                time.sleep(3)  # past the supervisor's 2 s crash-loop threshold: no backoff
    finally:
        server.stop()
        database.drop()
        shutil.rmtree(database.data_dir, ignore_errors=True)
    ticks = f"{args.tick_s:g} s dispatch ticks"
    print(f"\n{args.backend}, {args.rounds} crashes (crash button, {ticks}):")
    print(summarize("crash -> serving again", serving))
    print(summarize("crash -> recovered workflow's step", resumed))


if __name__ == "__main__":
    main()
