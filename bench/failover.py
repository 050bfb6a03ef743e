"""A Postgres failover under a purchase started every 100 ms: the primary is lost and its
synchronous standby promoted, while checkouts wait for payment. Prints how long the manager took
to promote, how soon checkouts were served again, the worst wait past the promotion, and audits
that nothing was lost: every payment answered 200 is a DISPATCHED order on the new primary, the
checkouts waiting at the kill were paid after it, nothing stranded, the ledger exact.

    python -m bench.failover              # pg_auto_failover: the primary's node killed
    python -m bench.failover --keep-worker    # the same, the serving process left alone
    python -m bench.failover --manual     # no manager: `pg_ctl promote` 1 s after the primary
                                          # died, then the old primary back as a read-only standby

With pg_auto_failover, the serving process is killed (kill -9) at the same moment as the
primary, so that its restart's recovery of pending workflows runs across the failover.
Needs pg_auto_failover (`pg_autoctl`) and Postgres 15's binaries; run as root.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from widget_store.testing import Database, StoreServer, signature, temp_dir, wait_until
from widget_store.testing.failover import FailoverCluster, StreamingPair

from .pg_restarts import Result, audit, purchases_during

WAITING = 10  # checkouts placed before the kill, paid after it
EVERY_S = 0.1
MANUAL_PROMOTE_AFTER_S = 1.0


@dataclass
class Failover:
    """What one run saw, on top of the purchase stream's Result."""

    result: Result = field(default_factory=Result)
    killed_at: float = 0.0
    promoted_at: float = 0.0
    old_primary_back_at: float | None = None
    waiting_paid: list[int] = field(default_factory=list)

    @property
    def detection_s(self) -> float:
        """From the kill to a primary that takes writes again (the manager's share)."""
        return self.promoted_at - self.killed_at

    @property
    def served_again_s(self) -> float | None:
        """From the promotion to the first checkout answered 200 that was sent after it."""
        answers = [
            end
            for start, end, status, what in self.result.requests
            if what == "checkout" and status == 200 and start >= self.promoted_at
        ]
        return min(answers) - self.promoted_at if answers else None

    @property
    def worst_wait_past_promotion_s(self) -> float:
        return max(
            (
                end - max(start, self.promoted_at)
                for start, end, _, _ in self.result.requests
                if end >= self.promoted_at
            ),
            default=0.0,
        )


def place_waiting(server: StoreServer, n: int) -> list[str]:
    """`n` checkouts that will wait for their payment across the failover."""
    with server.client() as client:
        payments = []
        for _ in range(n):
            answer = client.post(f"/checkout/fo-waiting-{uuid.uuid4().hex[:12]}")
            answer.raise_for_status()
            payments.append(answer.text)
        return payments


def pay(server: StoreServer, payment_ids: list[str], run: Failover) -> None:
    """The provider's webhooks for the waiting checkouts, retried while the store is away."""
    with server.client(timeout=30) as client:
        for payment_id in payment_ids:

            def paid(payment_id: str = payment_id) -> int | None:
                answer = client.post(
                    f"/payment_webhook/{payment_id}/paid",
                    headers={"Widget-Signature": signature(server.secret, payment_id, "paid")},
                )
                if answer.status_code == 200:
                    return int(answer.text)
                if answer.status_code in (502, 503, 504):
                    return None
                run.result.problems.append(f"waiting {payment_id}: {answer.status_code}")
                return -1

            order_id = wait_until(paid, timeout=90, interval=0.2, what=f"{payment_id} paid")
            if order_id > 0:
                run.waiting_paid.append(order_id)
                run.result.paid.append(order_id)


async def stream_across(
    server: StoreServer, fault: Callable[[], None], *, before_s: float, after_s: float
) -> Result:
    """Purchases every EVERY_S from `before_s` ahead of the fault until `after_s` after it."""

    async def failing_over(_: Result) -> None:
        await asyncio.sleep(before_s)
        await asyncio.to_thread(fault)
        await asyncio.sleep(after_s)

    return await purchases_during(server, failing_over, EVERY_S, timeout_s=90)


def run_managed(
    server: StoreServer,
    cluster: FailoverCluster,
    *,
    before_s: float = 3.0,
    after_s: float = 10.0,
    kill_worker: bool = True,
) -> Failover:
    """pg_auto_failover: the primary's node killed, and with `kill_worker` the serving process
    at the same moment."""
    run = Failover()
    waiting = place_waiting(server, WAITING)

    def fault() -> None:
        old = cluster.primary()
        run.killed_at = time.monotonic()
        cluster.kill_primary()
        if kill_worker:
            server.kill_worker()
        run.promoted_at = cluster.wait_promoted(old, timeout=90)

    run.result = asyncio.run(stream_across(server, fault, before_s=before_s, after_s=after_s))
    pay(server, waiting, run)
    audit(server, run.result)
    return run


def run_manual(
    server: StoreServer, pair: StreamingPair, *, before_s: float = 3.0, after_s: float = 10.0
) -> Failover:
    """No manager: the standby promoted 1 s after the primary died; the old primary then comes
    back as a read-only standby (SQLSTATE 25006 to any write that reaches it)."""
    run = Failover()
    waiting = place_waiting(server, WAITING)

    def fault() -> None:
        run.killed_at = time.monotonic()
        pair.kill_primary()
        time.sleep(MANUAL_PROMOTE_AFTER_S)
        pair.promote_standby()
        run.promoted_at = time.monotonic()
        time.sleep(2.0)
        pair.restart_old_primary_as_standby()
        run.old_primary_back_at = time.monotonic()

    run.result = asyncio.run(stream_across(server, fault, before_s=before_s, after_s=after_s))
    pay(server, waiting, run)
    audit(server, run.result)
    return run


def report(run: Failover) -> str:
    served = run.served_again_s
    result = run.result
    return "\n".join(
        [
            f"primary killed to new primary taking writes: {run.detection_s:.2f} s",
            "checkouts served again after the promotion: "
            + ("never" if served is None else f"{served:.2f} s"),
            f"worst wait past the promotion: {run.worst_wait_past_promotion_s:.2f} s",
            f"requests: {len(result.requests)}; paid orders: {len(result.paid)} "
            f"(of which waiting at the kill: {len(run.waiting_paid)}/{WAITING})",
            "audit: ok" if not result.problems else "problems:\n  " + "\n  ".join(result.problems),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--manual", action="store_true", help="pg_ctl promote, no manager")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of load after")
    parser.add_argument(
        "--keep-worker",
        action="store_true",
        help="with pg_auto_failover: leave the serving process alone (killed with the primary "
        "by default)",
    )
    args = parser.parse_args(argv)
    root = temp_dir("widget-store-failover-bench-")
    cluster = StreamingPair() if args.manual else FailoverCluster()
    try:
        cluster.start()
        database = Database("postgres", root, cluster.url)
        server = StoreServer(database, env_overrides={"WIDGET_STORE_DISPATCH_TICK_S": "0.2"})
        try:
            server.start()
            if isinstance(cluster, StreamingPair):
                run = run_manual(server, cluster, after_s=args.after)
            else:
                run = run_managed(
                    server, cluster, after_s=args.after, kill_worker=not args.keep_worker
                )
        finally:
            server.stop()
    finally:
        cluster.stop()
    print(report(run))
    if not run.result.problems:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not run.result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
