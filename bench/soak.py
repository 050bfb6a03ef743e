"""A soak that mixes every fault: three instances of the store behind the shipped haproxy, on a
pg_auto_failover cluster (a monitor, a primary and a synchronous secondary), shoppers buying
non-stop while, one at a time, a serving process is killed (kill -9), the crash button is
pressed, the Postgres primary fails over, a whole instance is lost (and replaced), and a
rolling release restarts every instance in turn. Then every invariant is audited.

    python -m bench.soak --minutes 10
    python -m bench.soak --minutes 2 --shoppers 8 --seed 3

The shoppers, the ledger periods and the audit are bench/chaos.py's (its docstring says what is
checked and why it is sound); only the deployment and its faults are this script's. It prints
purchases, faults by kind, orders lost, stranded orders, and the worst wait past each fault
kind: the longest a request that was in flight during such a fault waited for its answer,
counted from the fault. Exits non-zero if anything was lost or any invariant broke.

Needs pg_auto_failover (`pg_autoctl`) and haproxy; run as root (the cluster runs as the
`postgres` user). Everything it starts is stopped, and its folder removed, at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from widget_store.testing import Database, StoreServer, free_port, temp_dir, wait_until
from widget_store.testing.balancer import haproxy
from widget_store.testing.failover import FailoverCluster

from .chaos import RECOVER_WITHIN_S, chaos_env, press_crash_button, run_chaos
from .chaos_audit import Report

INSTANCES = 3
WORKERS = 2
TAKEOVER_GRACE_S = 5.0
# A lost instance's replacement comes up after the survivors have taken its work over.
REPLACE_AFTER_S = TAKEOVER_GRACE_S + 5.0
FAULT_GAP_S = (8.0, 15.0)
# Six serving processes within a node's 100 connections, with room for replication, the
# monitor and the audit: 4 + 1 + 3 + 2 + 1 = 11 each (Settings.connections_per_process).
POOLS = {
    "WIDGET_STORE_SYS_DB_POOL_SIZE": "4",
    "WIDGET_STORE_EXECUTOR_THREADS": "3",
    "WIDGET_STORE_APP_DB_POOL_SIZE": "2",
}


@dataclass
class Deployment:
    """The cluster, the instances on it, and haproxy in front of them."""

    root: Path
    cluster: FailoverCluster
    instances: list[StoreServer] = field(default_factory=list)
    lb_url: str = ""
    rng: random.Random = field(default_factory=random.Random)

    def instance(self) -> StoreServer:
        return self.rng.choice(self.instances)

    def serving(self, timeout: float = RECOVER_WITHIN_S) -> None:
        """Until the store answers a read of the database through the balancer."""

        def answers() -> bool | None:
            return httpx.get(f"{self.lb_url}/product", timeout=5).status_code == 200 or None

        wait_until(answers, timeout=timeout, interval=0.1, what="the store to serve again")

    # --- the faults ------------------------------------------------------------------------

    def kill_9(self) -> None:
        """kill -9 of one serving process; its supervisor starts it again at once."""
        server = self.instance()
        pid = server.kill_worker()
        server.wait_healthy(not_pid=pid, timeout=RECOVER_WITHIN_S)

    def crash_button(self) -> None:
        press_crash_button(self.instance())

    def failover(self) -> None:
        """The primary's node lost (kill -9 of its keeper and Postgres); pg_auto_failover
        promotes the secondary; the lost node then comes back as the new secondary, so the
        next failover has a synchronous standby again."""
        old = self.cluster.primary()
        self.cluster.kill_primary()
        self.cluster.wait_promoted(old, timeout=RECOVER_WITHIN_S)
        self.serving()
        try:
            self.cluster.rejoin(old, timeout=RECOVER_WITHIN_S)
        except Exception:
            self.keep_cluster_logs()
            raise

    def keep_cluster_logs(self) -> None:
        """The cluster's logs, for a look: the cluster's folder goes when it stops."""
        folder = self.cluster.folder
        if folder is not None:
            for log in [*folder.glob("*.log"), *folder.glob("*/log/*.log")]:
                name = str(log.relative_to(folder)).replace("/", "-")
                shutil.copy(log, self.root / f"cluster-{name}")

    def instance_loss(self) -> None:
        """A whole instance gone (its supervisor and serving processes, kill -9): the others
        take its workflows over; a replacement with the same executor id comes up later."""
        server = self.instance()
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        time.sleep(REPLACE_AFTER_S)
        server.start(wait=True)

    def release(self) -> None:
        """A rolling release: each instance stopped (SIGTERM) and started again, one by one."""
        for server in self.instances:
            server.stop()
            server.start(wait=True)

    def actions(self) -> dict[str, Callable[[], None]]:
        return {
            "kill_9": self.kill_9,
            "crash_button": self.crash_button,
            "failover": self.failover,
            "instance_loss": self.instance_loss,
            "release": self.release,
        }


@contextmanager
def deployment(
    root: Path, payment_timeout_s: float, tick_s: float, seed: int
) -> Iterator[Deployment]:
    with ExitStack() as stack:
        cluster = FailoverCluster()
        stack.callback(cluster.stop)
        cluster.start()
        setup = Deployment(root, cluster, rng=random.Random(f"{seed}-instances"))
        secret = uuid.uuid4().hex
        for n in range(1, INSTANCES + 1):
            database = Database("postgres", root / f"node-{n}", cluster.url)
            server = StoreServer(
                database,
                env_overrides={
                    **chaos_env(payment_timeout_s, tick_s),
                    "WIDGET_STORE_EXECUTOR_ID": f"node-{n}",
                    "WIDGET_STORE_WORKERS": str(WORKERS),
                    "WIDGET_STORE_TAKEOVER_GRACE_S": str(TAKEOVER_GRACE_S),
                    "WIDGET_STORE_FORWARDED_ALLOW_IPS": "127.0.0.1",
                    **POOLS,
                },
                port=free_port(),
                secret=secret,
            )
            stack.callback(server.stop)
            setup.instances.append(server)
        for server in setup.instances:
            server.start(wait=False)
        for server in setup.instances:
            server.wait_healthy(timeout=120)
        addresses = [f"127.0.0.1:{server.port}" for server in setup.instances]
        setup.lb_url = stack.enter_context(haproxy(addresses, root))
        yield setup


def soak(
    *,
    minutes: float,
    shoppers: int,
    seed: int,
    payment_timeout_s: float = 5.0,
    tick_s: float = 0.2,
    fault_gap_s: tuple[float, float] = FAULT_GAP_S,
    root: Path | None = None,
) -> tuple[Report, Deployment]:
    root = root or temp_dir("widget-store-soak-")
    with deployment(root, payment_timeout_s, tick_s, seed) as setup:
        report = run_chaos(
            setup.instances[0],
            duration_s=minutes * 60,
            shoppers=shoppers,
            seed=seed,
            fault_gap_s=fault_gap_s,
            actions=setup.actions(),
            base_url=setup.lb_url,
        )
        report.counts["stranded"] = int(
            httpx.get(f"{setup.lb_url}/stats", timeout=30).json()["stranded"]
        )
    return report, setup


def render(report: Report, setup: Deployment) -> str:
    return "\n".join(
        [
            f"soak: {INSTANCES} instances x {WORKERS} serving processes behind haproxy, "
            "on pg_auto_failover (primary + synchronous secondary)",
            report.render(),
            f"stranded orders              {report.counts['stranded']}",
            f"failovers measured           {setup.cluster.describe_failovers()}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--payment-timeout", type=float, default=5.0)
    parser.add_argument("--tick", type=float, default=0.2, help="dispatch tick, seconds")
    args = parser.parse_args(argv)
    root = temp_dir("widget-store-soak-")
    ok = False
    try:
        report, setup = soak(
            minutes=args.minutes,
            shoppers=args.shoppers,
            seed=args.seed,
            payment_timeout_s=args.payment_timeout,
            tick_s=args.tick,
            root=root,
        )
        print(render(report, setup))
        ok = report.ok and report.counts["stranded"] == 0
    finally:
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept for a look: {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
