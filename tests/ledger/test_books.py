"""Posting against a real PostgreSQL: balances, the database's own guards, immutability, sequencing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from voucher_engine.errors import EngineError
from voucher_engine.ledger import sequencer
from voucher_engine.ledger import service as ledger

from .conftest import fund, open_accounts, redeem, seed, superuser


async def test_balances_equal_the_sum_of_postings_and_every_transaction_balances(engine, database_url):
    await seed(engine, redemptions=30)
    conn = await superuser(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions") == 30 + 2 + 2
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM ledger_transactions t WHERE (SELECT sum(a) FROM unnest(t.amounts_fen) a) <> 0"
        )
        assert unbalanced == 0
        mismatched = await conn.fetch("""
            SELECT a.account, a.balance_fen, coalesce(p.total, 0) AS total FROM ledger_accounts a
            LEFT JOIN (SELECT account, sum(amount) AS total FROM ledger_transactions t,
                       unnest(t.accounts, t.amounts_fen) AS p(account, amount) GROUP BY account) p USING (account)
            WHERE a.balance_fen <> coalesce(p.total, 0)""")
        assert mismatched == []
        # Sequenced gap-free from 1, chained.
        seqs = [row["seq"] for row in await conn.fetch("SELECT seq FROM ledger_sequence ORDER BY seq")]
        assert seqs == list(range(1, 35))
    finally:
        await conn.close()
    async with engine.begin() as c:
        assert await ledger.balance(c, "fiscal:iss_310000") == -120_000 + 1_000
        totals = await ledger.campaign_totals(c, "cmp_0")
        assert totals["funded_fen"] == 100_000 and totals["refunded_fen"] == 100
        assert totals["funders"]["iss_310104"]["funded_fen"] == 40_000
        assert totals["escrow_balance_fen"] == await ledger.balance(c, "escrow:cmp_0")


async def test_the_database_refuses_an_unbalanced_transaction(engine, database_url):
    conn = await superuser(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO ledger_transactions (id, campaign_id, kind, at, refs, accounts, amounts_fen)"
                " VALUES ('x', 'c', 'redeem', now(), '{}', '{escrow:c,merchant:m}', '{-5,4}')"
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO ledger_accounts VALUES ('escrow:c', 'escrow', -1, now())")
    finally:
        await conn.close()


async def test_an_overdraft_is_insufficient_funds_and_the_callers_transaction_survives(engine):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
        await ledger.post(conn, fund("c1", {"iss_310000": 500}))
        with pytest.raises(EngineError) as caught:
            await ledger.post_many(conn, [redeem("c1", "m1", 300, "v1"), redeem("c1", "m1", 300, "v2")])
        assert caught.value.code == "INSUFFICIENT_FUNDS" and "escrow:c1" in caught.value.detail
        # Nothing of the refused batch was written, and the transaction goes on.
        await ledger.post(conn, redeem("c1", "m1", 500, "v3"))
        assert await ledger.balance(conn, "escrow:c1") == 0
        with pytest.raises(EngineError) as caught:
            await ledger.post(conn, redeem("c1", "m1", 1, "v4"))
        assert caught.value.code == "INSUFFICIENT_FUNDS"
        with pytest.raises(EngineError) as caught:
            await ledger.post(conn, redeem("c1", "nobody", 0 + 1, "v5"))
        assert caught.value.code in ("INVALID_STATE", "INSUFFICIENT_FUNDS")
    async with engine.begin() as conn:
        assert await sequencer.sequence_now(conn) == 2


async def test_posting_to_an_unopened_account_is_refused(engine):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1")
        await ledger.post(conn, fund("c1", {"iss_310000": 500}))
        with pytest.raises(EngineError) as caught:
            await ledger.post(conn, redeem("c1", "ghost", 5, "v1"))
        assert caught.value.code == "INVALID_STATE" and "merchant:ghost" in caught.value.detail
        await ledger.open_account(conn, "merchant:ghost")
        await ledger.open_account(conn, "merchant:ghost")  # idempotent
        await ledger.post(conn, redeem("c1", "ghost", 5, "v1"))


async def test_a_rolled_back_transaction_leaves_no_trace(engine, database_url):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await ledger.post(conn, fund("c1", {"iss_310000": 500}))
            raise RuntimeError("the caller fails after posting")
    assert await sequencer.drain(engine) == 0
    conn = await superuser(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions") == 0
        assert await conn.fetchval("SELECT balance_fen FROM ledger_accounts WHERE account = 'escrow:c1'") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_transactions SET amounts_fen = '{-1,1}'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_transactions CASCADE",
        "UPDATE ledger_sequence SET hash = prev_hash",
        "DELETE FROM ledger_sequence WHERE seq = 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_tree SET hash = hash",
        "DELETE FROM ledger_checkpoints",
        "DELETE FROM ledger_accounts WHERE account = 'merchant:m1'",
        "UPDATE ledger_accounts SET account = 'merchant:m9' WHERE account = 'merchant:m1'",
        "DELETE FROM ledger_campaign_totals",
    ],
)
async def test_ledger_rows_cannot_be_updated_or_deleted(engine, database_url, signing_key, statement):
    await seed(engine, redemptions=8)
    await ledger.checkpoint_now(engine, signing_key)
    conn = await superuser(database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only|are kept"):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_concurrent_batches_on_shared_accounts_neither_deadlock_nor_break_the_order(engine):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "escrow:c2", *[f"merchant:m{i}" for i in range(6)])
        await ledger.post(conn, fund("c1", {"iss_310000": 3_000}))
        await ledger.post(conn, fund("c2", {"iss_310000": 3_000}))

    async def worker(w: int) -> int:
        refused = 0
        for round_ in range(15):
            txs = [
                redeem(f"c{1 + (w + i) % 2}", f"m{(w * 7 + i * 5 + round_) % 6}", 13, f"v{w}_{round_}_{i}")
                for i in range(5)
            ]
            try:
                async with engine.begin() as conn:
                    await ledger.post_many(conn, txs)
                    await asyncio.sleep(0)
            except EngineError as exc:
                assert exc.code == "INSUFFICIENT_FUNDS"
                refused += 1
        return refused

    sequencing = asyncio.create_task(sequencer.run_forever(engine))
    try:
        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(4))), timeout=60)
    finally:
        sequencing.cancel()
    await sequencer.drain(engine)
    from voucher_engine.ledger import verify

    report = await verify.verify_database(engine, None)
    # Escrow never went negative in seq order, and the books agree (no checkpoints were made: no key needed).
    assert report.ok, report.first
    async with engine.begin() as conn:
        assert await ledger.balance(conn, "escrow:c1") >= 0 and await ledger.balance(conn, "escrow:c2") >= 0


# -- post_many with the caller's ids, with and without a savepoint ----------------------------------------------


async def test_post_many_takes_the_callers_ids_and_checks_them(engine, database_url):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
        await ledger.post(conn, fund("c1", {"iss_310000": 500}))
    ids = ledger.new_tx_ids(2)
    async with engine.begin() as conn:
        posted = await ledger.post_many(
            conn, [redeem("c1", "m1", 5, "v1"), redeem("c1", "m1", 6, "v2")], ids=ids, savepoint=False
        )
        assert [tx.id for tx in posted] == ids
    for bad in (ids[:1], [ids[0], ids[0]], ["ltx_not-one-of-ours", ledger.new_tx_ids(1)[0]], [1, 2]):
        async with engine.begin() as conn:
            with pytest.raises(EngineError) as caught:
                await ledger.post_many(
                    conn, [redeem("c1", "m1", 5, "v3"), redeem("c1", "m1", 6, "v4")], ids=bad, savepoint=False
                )
            assert caught.value.code == "VALIDATION_ERROR"
            await ledger.post(conn, redeem("c1", "m1", 1, "v5"))  # nothing was sent: the transaction goes on
    # An id already in the ledger: with a savepoint the caller's transaction survives it.
    async with engine.begin() as conn:
        with pytest.raises(EngineError) as caught:
            await ledger.post_many(conn, [redeem("c1", "m1", 5, "v6")], ids=ids[:1])
        assert caught.value.code == "CONFLICT"
        assert await ledger.balance(conn, "escrow:c1") == 500 - 5 - 6 - 4 * 1
    conn = await superuser(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = ANY($1)", ids) == 2
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions") == 1 + 2 + 4
    finally:
        await conn.close()


async def test_without_a_savepoint_an_overdraft_aborts_the_callers_transaction(engine, database_url):
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
        await ledger.post(conn, fund("c1", {"iss_310000": 500}))
    with pytest.raises(asyncpg.InFailedSQLTransactionError):
        async with engine.begin() as conn:
            await ledger.post(conn, redeem("c1", "m1", 7, "v0"))
            with pytest.raises(EngineError) as caught:
                await ledger.post_many(
                    conn,
                    [redeem("c1", "m1", 300, "v1"), redeem("c1", "m1", 300, "v2")],
                    ids=ledger.new_tx_ids(2),
                    savepoint=False,
                )
            assert caught.value.code == "INSUFFICIENT_FUNDS" and "escrow:c1: 600 fen asked" in caught.value.detail
            await ledger.balance(conn, "escrow:c1")  # aborted: only a rollback is left
    # An account that was never opened: nothing written, and the transaction is still usable.
    async with engine.begin() as conn:
        with pytest.raises(EngineError) as caught:
            await ledger.post_many(conn, [redeem("c1", "m1", 5, "v3"), redeem("c1", "ghost", 5, "v4")], savepoint=False)
        assert caught.value.code == "INVALID_STATE" and "merchant:ghost" in caught.value.detail
        assert await ledger.balance(conn, "escrow:c1") == 500
    async with engine.begin() as conn:
        assert await sequencer.sequence_now(conn) == 1
        assert await ledger.balance(conn, "escrow:c1") == 500


@pytest.mark.parametrize("savepoint", [True, False])
async def test_racing_funds_and_redemptions_never_show_a_negative_escrow_in_seq_order(engine, savepoint):
    # The escrow starts empty; funders top it up while redeemers spend whatever is there. A redemption that
    # succeeded spent money a fund had just committed, so its seq must come after that fund's: the queue number is
    # drawn in the posting statement after the balance locks (see repository.POST_BATCH). Each transaction holds
    # its locks a moment after posting, so that batches queue up behind one another.
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", *[f"merchant:m{i}" for i in range(3)])

    async def funder(w: int) -> None:
        for _round in range(25):
            async with engine.begin() as conn:
                await ledger.post_many(conn, [fund("c1", {"iss_310000": 20})], savepoint=savepoint)
                await asyncio.sleep(0.002 * (w + 1))

    async def redeemer(w: int) -> int:
        spent = 0
        for round_ in range(40):
            try:
                async with engine.begin() as conn:
                    await ledger.post_many(
                        conn,
                        [redeem("c1", f"m{w}", 15, f"v{w}_{round_}")],
                        ids=ledger.new_tx_ids(1),
                        savepoint=savepoint,
                    )
                    await asyncio.sleep(0.001)
                spent += 1
            except EngineError as exc:
                assert exc.code == "INSUFFICIENT_FUNDS"
                await asyncio.sleep(0.001)
        return spent

    sequencing = asyncio.create_task(sequencer.run_forever(engine))
    try:
        results = await asyncio.wait_for(
            asyncio.gather(funder(0), funder(1), *(redeemer(w) for w in range(3))), timeout=120
        )
    finally:
        sequencing.cancel()
    await sequencer.drain(engine)
    from voucher_engine.ledger import verify

    report = await verify.verify_database(engine, None)
    assert report.ok, report.first
    assert sum(results[2:]) > 0
    async with engine.begin() as conn:
        assert await ledger.balance(conn, "escrow:c1") == 2 * 25 * 20 - 15 * sum(results[2:])
