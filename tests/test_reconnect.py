"""Waiting for a database that went away (widget_store/database/reconnect.py): one probe at a
time for every waiter, and a wait that ends as soon as a probe finds the database."""

from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa

from widget_store.database.reconnect import Reconnect
from widget_store.testing import POSTGRES_URL_ENV, free_port


def test_waiters_share_the_probes_while_the_database_is_away() -> None:
    # Nothing listens on the port: every probe is refused.
    engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    reconnect = Reconnect(engine, every_s=0.1)
    answers: list[bool] = []

    def wait() -> None:
        answers.append(reconnect.wait(0.35))

    waiters = [threading.Thread(target=wait) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    assert answers == [False] * 8
    # Eight waiters, one probe every 0.1 s between them: 4 at most in 0.35 s, not 8 each.
    assert 1 <= reconnect.probes <= 4, reconnect.probes


def test_a_database_that_answers_ends_the_wait_at_the_first_probe(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("probes Postgres")
    url = sa.make_url(os.environ[POSTGRES_URL_ENV]).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url)
    try:
        reconnect = Reconnect(engine)
        assert reconnect.wait(30.0)
        assert reconnect.probes == 1
    finally:
        engine.dispose()


def test_the_probing_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Reconnect(sa.create_engine("postgresql+psycopg://127.0.0.1/none"), every_s=0)
