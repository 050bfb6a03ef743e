"""The store's transaction bodies on a real database: place_order, which a workflow step runs
without a checkpoint of its own, must be idempotent by itself."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError

from widget_store.config import Settings
from widget_store.database.handle import Database, open_database
from widget_store.shop import store
from widget_store.testing import StoreServer

from .support import new_key


async def store_database(server: StoreServer) -> Database:
    """The server's own database, opened from this process as the server opens it."""
    env = {} if server.database.url is None else {"DBOS_DATABASE_URL": server.database.url}
    return await open_database(Settings(data_dir=server.database.data_dir, **env))


def stock_and_orders(server: StoreServer, checkout_id: str) -> tuple[int, int]:
    placed = server.database.execute(
        "SELECT count(*) FROM orders WHERE checkout_id = :c", c=checkout_id
    )[0][0]
    return server.database.inventory(), int(placed)


async def place(db: Database, checkout_id: str) -> tuple[int, str | None]:
    """As the step does: retried when a concurrent run got there first."""
    for _ in range(3):
        try:
            return await asyncio.to_thread(db.transact, store.place_order, checkout_id=checkout_id)
        except IntegrityError:
            continue
    raise AssertionError("place_order kept failing")


def test_placing_an_order_again_answers_the_same_and_reserves_nothing(
    shared_server: StoreServer,
) -> None:
    async def scenario() -> None:
        db = await store_database(shared_server)
        try:
            checkout_id = f"checkout:{new_key('again')}"
            stock, _ = stock_and_orders(shared_server, checkout_id)
            first = await place(db, checkout_id)
            assert first[1] is not None
            assert await place(db, checkout_id) == first
            assert stock_and_orders(shared_server, checkout_id) == (stock - 1, 1)
        finally:
            await db.close()

    asyncio.run(scenario())


def test_two_runs_at_once_place_one_order(shared_server: StoreServer) -> None:
    async def scenario() -> None:
        db = await store_database(shared_server)
        try:
            checkout_id = f"checkout:{new_key('race')}"
            stock, _ = stock_and_orders(shared_server, checkout_id)
            answers = await asyncio.gather(*(place(db, checkout_id) for _ in range(4)))
            assert len(set(answers)) == 1
            assert stock_and_orders(shared_server, checkout_id) == (stock - 1, 1)
        finally:
            await db.close()

    asyncio.run(scenario())


def test_an_order_placed_with_none_left_is_found_again_without_a_payment_id(
    shared_server: StoreServer,
) -> None:
    async def scenario() -> None:
        db = await store_database(shared_server)
        checkout_id = f"checkout:{new_key('none')}"
        stock, _ = stock_and_orders(shared_server, checkout_id)
        shared_server.database.execute("UPDATE products SET inventory = 0")
        try:
            first = await place(db, checkout_id)
            assert first[1] is None
            assert await place(db, checkout_id) == first
            assert stock_and_orders(shared_server, checkout_id) == (0, 1)
        finally:
            shared_server.database.execute("UPDATE products SET inventory = :n", n=stock)
            await db.close()

    asyncio.run(scenario())
