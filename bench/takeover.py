"""How fast survivors take over a lost instance: seconds from a `kill -9` of a whole instance
(supervisor and server) to the first step of one of its workflows run by a survivor. Prints a
table; asserts nothing. Postgres only (several instances share its database).

    python -m bench.takeover                     # 5 kills, the default grace period (5 s)
    python -m bench.takeover --kills 5 --grace 3

Two survivors (node-1, node-2) serve throughout. Each round starts a victim instance with a new
executor id, pays three orders on it (0.2 s dispatch ticks), waits for their first ticks, kills
its whole process group and reads, from DBOS's recorded steps, when the first step of one of
those dispatches started after the death. The target: the grace period + 1 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
import uuid

from widget_store.testing import Database, StoreServer, wait_until

from .servers import fresh_database

TICK_S = 0.2


def one_round(n: int, database: Database, secret: str, env: dict[str, str]) -> dict[str, float]:
    victim = StoreServer(
        database, env_overrides={**env, "WIDGET_STORE_EXECUTOR_ID": f"victim-{n}"}, secret=secret
    ).start()
    try:
        with victim.client() as client:
            orders = [
                int(
                    victim.pay(
                        client, client.post(f"/checkout/b-{uuid.uuid4().hex}").text, "paid"
                    ).text
                )
                for _ in range(3)
            ]
            workflows = [f"dispatch:{order}" for order in orders]
            wait_until(
                lambda: database.first_step_after(workflows, 0),
                timeout=30,
                what="a first tick",
            )
        assert victim.proc is not None
        died = time.time()
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        resumed = wait_until(
            lambda: database.first_step_after(workflows, died * 1000),
            timeout=60,
            interval=0.02,
            what="a resumed step",
        )
        taken = database.execute(
            "SELECT extract(epoch FROM taken_over_at) FROM executors WHERE executor_id = :id",
            id=f"victim-{n}",
        )[0][0]
        return {"resumed": resumed - died, "taken": float(taken) - died}
    finally:
        victim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--grace", type=float, default=5.0, help="WIDGET_STORE_TAKEOVER_GRACE_S")
    args = parser.parse_args()

    env = {
        "WIDGET_STORE_DISPATCH_TICK_S": str(TICK_S),
        "WIDGET_STORE_TAKEOVER_GRACE_S": str(args.grace),
    }
    results = []
    with fresh_database("postgres", args.postgres_url, "widget-store-bench-") as database:
        survivors = []
        try:
            first = StoreServer(
                database, env_overrides={**env, "WIDGET_STORE_EXECUTOR_ID": "node-1"}
            )
            survivors.append(first.start())
            second = StoreServer(
                database,
                env_overrides={**env, "WIDGET_STORE_EXECUTOR_ID": "node-2"},
                secret=first.secret,
            )
            survivors.append(second.start())
            database.execute("UPDATE products SET inventory = 100000")
            for n in range(1, args.kills + 1):
                result = one_round(n, database, first.secret, env)
                results.append(result)
                print(
                    f"kill {n}: taken over after {result['taken']:5.2f} s, "
                    f"first resumed step after {result['resumed']:5.2f} s"
                )
        finally:
            for server in survivors:
                server.stop()
    resumed = sorted(r["resumed"] for r in results)
    taken = sorted(r["taken"] for r in results)
    print(f"\npostgres, {args.kills} kills -9 of a whole instance, grace {args.grace:g} s:")
    print(
        f"death -> takeover            p50 {statistics.median(taken):5.2f} s"
        f"   max {taken[-1]:5.2f} s"
    )
    print(
        f"death -> first resumed step  p50 {statistics.median(resumed):5.2f} s"
        f"   max {resumed[-1]:5.2f} s   (target: grace + 1 s = {args.grace + 1:g} s)"
    )


if __name__ == "__main__":
    main()
