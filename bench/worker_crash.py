"""How fast a crashed worker's workflows resume on its sibling: seconds from a `kill -9` of one
of two serving processes (`--workers 2`) to the next step of its dispatch, run by the other,
which sees the crash for certain (the pid gone) and takes over without a grace period. Prints
the rounds and p50/max; asserts nothing. Postgres only.

    python -m bench.worker_crash                 # 5 kills
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
import uuid

import httpx

from widget_store.testing import Database, StoreServer, serving_workers, wait_until

from .servers import fresh_database


def workers(server: StoreServer) -> dict[str, int]:
    """Executor id -> pid of each serving child of the supervisor."""
    assert server.proc is not None
    return serving_workers(server.proc.pid)


def one_round(server: StoreServer, client: httpx.Client, database: Database) -> tuple[str, float]:
    """A paid order mid-dispatch, its worker killed: (that worker, seconds to the next step)."""
    wait_until(lambda: len(workers(server)) == 2 or None, timeout=30)
    payment_id = client.post(f"/checkout/b-{uuid.uuid4().hex}").text
    workflow = f"dispatch:{int(server.pay(client, payment_id, 'paid').text)}"
    wait_until(lambda: database.first_step_after([workflow], 0), timeout=20)
    owner = str(
        database.execute(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = :id", id=workflow
        )[0][0]
    )
    died = time.time()
    os.kill(workers(server)[owner], signal.SIGKILL)
    resumed = wait_until(
        lambda: database.first_step_after([workflow], died * 1000), timeout=30, interval=0.02
    )
    return owner, resumed - died


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    env = {"WIDGET_STORE_WORKERS": "2", "WIDGET_STORE_DISPATCH_TICK_S": "0.2"}
    results: list[float] = []
    with fresh_database("postgres", args.postgres_url, "widget-store-bench-") as database:
        server = StoreServer(database, env_overrides=env)
        try:
            server.start()
            with server.client() as client:
                for n in range(1, args.kills + 1):
                    time.sleep(3)  # past the crash-loop window: the restart is immediate
                    owner, seconds = one_round(server, client, database)
                    results.append(seconds)
                    print(f"kill {n}: {owner}, first resumed step after {seconds:5.2f} s")
        finally:
            server.stop()
    print(
        f"\npostgres, --workers 2, {args.kills} kills -9 of one worker: crash -> first resumed "
        f"step p50 {statistics.median(results):.2f} s, max {max(results):.2f} s (target 1 s)"
    )


if __name__ == "__main__":
    main()
