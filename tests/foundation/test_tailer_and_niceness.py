"""The ledger tailer's loop (db/tailer.py) and the background backends' niceness (db/niceness.py), against the test
PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from voucher_engine.db import niceness, tailer
from voucher_engine.db.engine import create_engine


async def test_catch_up_runs_committed_rounds_until_one_comes_back_short(database_url):
    engine = create_engine(database_url, pool_size=1)
    backlog = [5, 5, 5, 2]  # transactions each round finds: three full rounds of 5, then a short one
    seen_in_transaction = []

    async def one_round(conn, limit: int) -> int:
        seen_in_transaction.append(conn.in_transaction())
        return min(limit, backlog.pop(0))

    try:
        assert await tailer.catch_up(engine, one_round, 5) == 17
    finally:
        await engine.dispose()
    assert backlog == [] and seen_in_transaction == [True] * 4


async def test_run_forever_logs_a_failed_round_tries_again_and_stops_when_told(database_url, caplog):
    engine = create_engine(database_url, pool_size=1)
    rounds = []

    async def one_round(conn, limit: int) -> int:
        rounds.append(limit)
        if len(rounds) == 1:
            raise RuntimeError("the database went away")
        return 0

    try:
        with caplog.at_level(logging.WARNING):
            await asyncio.wait_for(
                tailer.run_forever(
                    engine,
                    one_round,
                    7,
                    lambda: 0.0,
                    logging.getLogger("test.tailer"),
                    "test round",
                    keep_going=lambda: len(rounds) < 3,
                ),
                timeout=10,
            )
    finally:
        await engine.dispose()
    assert rounds == [7, 7, 7]
    assert [r.getMessage() for r in caplog.records] == ["test round failed; will retry"]


def test_only_a_server_on_this_machine_is_local():
    assert niceness.is_local("postgresql://postgres:@/voucher_engine?host=/tmp/data/pg")
    assert niceness.is_local("postgresql+asyncpg://u@localhost:5432/x")
    assert niceness.is_local("postgresql://u@127.0.0.1/x")
    assert not niceness.is_local("postgresql://u@db.example.com:5432/x")


async def test_a_backend_is_lowered_and_nothing_but_a_postgres_process_is_touched(database_url):
    if not niceness.is_local(database_url):
        pytest.skip("the test server is not on this machine")
    engine = create_engine(database_url, pool_size=1)
    niceness.lower_backends(engine, database_url, 7)
    try:
        async with engine.connect() as conn:
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
            assert os.getpriority(os.PRIO_PROCESS, pid) == 7
            assert niceness.renice_backend(pid, 3)  # never raised back up: it stays at 7
            assert os.getpriority(os.PRIO_PROCESS, pid) == 7
    finally:
        await engine.dispose()
    assert not niceness.renice_backend(os.getpid(), 7)  # a python process, not a backend
