"""A batch is read without locks and written in one statement that is its own transaction: when what it read has
changed before it writes, nothing of it is written and it is decided again under locks (service.BatchRunner)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import asyncpg
import pytest
from redemption_world import WALLET, holder

from voucher_engine.db.engine import plain_url
from voucher_engine.ledger import service as ledger
from voucher_engine.redemption import repository
from voucher_engine.redemption.service import BATCH_APPLICATION_NAME, new_redemption_id, redeem_transaction

NOODLES = "xuhui-noodles"


async def _dining(world, holders) -> str:
    await world.set_clock("2025-01-15T12:00:00+08:00")
    return await world.launch("shanghai-dining-2025.contract", holders)


async def _connect(world) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(world.service.settings.database_url))


async def _voucher(conn, campaign_id: str, wallet: str = WALLET) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT id, status, version, balance_fen FROM vouchers WHERE campaign_id = $1 AND wallet_id = $2",
        campaign_id,
        wallet,
    )


async def _escrow(conn, campaign_id: str) -> int:
    return await conn.fetchval("SELECT balance_fen FROM ledger_accounts WHERE account = $1", f"escrow:{campaign_id}")


async def _wait_for_blocked_batch(conn) -> None:
    """Until the redemption's write waits for the row lock another connection holds."""
    for _ in range(500):
        if await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = $1",
            BATCH_APPLICATION_NAME,
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch never waited for the voucher's lock")


@pytest.mark.parametrize(
    "change, status, code",
    [
        ("version = version + 1", 201, None),  # changed, still spendable: redeemed on the second, locked, reading
        ("status = 'revoked', version = version + 1", 422, "VOUCHER_REVOKED"),  # not spendable now: refused
    ],
)
async def test_a_voucher_changed_between_read_and_write_is_decided_again(world, change, status, code):
    campaign = await _dining(world, [holder()])
    voucher_code = await world.code(campaign)
    other = await _connect(world)
    watcher = await _connect(world)
    try:
        before = await _voucher(other, campaign)
        escrow = await _escrow(other, campaign)
        # Another writer holds the voucher's row (its change not yet committed): the batch reads the old version
        # without waiting, decides, and its write then waits for the lock.
        writer = other.transaction()
        await writer.start()
        await other.execute(f"UPDATE vouchers SET {change} WHERE campaign_id = $1 AND id = $2", campaign, before["id"])
        answer = asyncio.create_task(world.tills[NOODLES].redeem(voucher_code, 12000))
        await _wait_for_blocked_batch(watcher)
        await writer.commit()
        response = await answer
        assert response.status_code == status, response.text
        after = await _voucher(other, campaign)
        redemptions = await other.fetchval("SELECT count(*) FROM redemptions WHERE campaign_id = $1", campaign)
        if code is None:
            assert after["status"] == "redeemed" and after["version"] == before["version"] + 2
            assert redemptions == 1
            assert await _escrow(other, campaign) == escrow - response.json()["subsidy_fen"]
        else:
            assert response.json()["code"] == code
            assert after["status"] == "revoked" and after["version"] == before["version"] + 1
            assert redemptions == 0 and await _escrow(other, campaign) == escrow
    finally:
        await other.close()
        await watcher.close()


async def test_a_write_with_one_stale_voucher_writes_nothing(world):
    wallets = [WALLET, "6200000000000002"]
    campaign = await _dining(world, [holder(w) for w in wallets])
    conn = await _connect(world)
    try:
        vouchers = [await _voucher(conn, campaign, w) for w in wallets]
        escrow = await _escrow(conn, campaign)
        now = datetime.now(timezone.utc)
        key_id = await conn.fetchval("SELECT key_id FROM merchant_keys WHERE merchant_id = $1", NOODLES)
        # The second voucher was read at a version it no longer has.
        read = [(campaign, v["id"], "redeemed", 0, v["version"] + (i == 1)) for i, v in enumerate(vouchers)]
        redemption_ids = [new_redemption_id(campaign) for _ in vouchers]
        txs = [
            redeem_transaction(campaign, NOODLES, v["id"], rid, 2000, now) for v, rid in zip(vouchers, redemption_ids)
        ]
        tx_ids = ledger.new_tx_ids(len(txs))
        rows = [
            (campaign, rid, NOODLES, f"stale-{i}", "0" * 64, v["id"], w, 12000, 2000, tx_id, now.date(), None)
            for i, (v, w, rid, tx_id) in enumerate(zip(vouchers, wallets, redemption_ids, tx_ids))
        ]
        nonces = [(key_id, "stale-nonce-1"), (key_id, "stale-nonce-2")]
        with pytest.raises(asyncpg.SerializationError):
            await repository.write_batch_and_post(
                conn, now, sorted(read), rows, [], nonces, now, ledger.prepare(txs, tx_ids), whole=True
            )
        # Nothing of it: not the fresh voucher's update, no redemption, no money moved, no nonce spent, no ledger row.
        assert [await _voucher(conn, campaign, w) for w in wallets] == vouchers
        assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE campaign_id = $1", campaign) == 0
        assert await _escrow(conn, campaign) == escrow
        assert await conn.fetchval("SELECT count(*) FROM request_nonces WHERE nonce LIKE 'stale-nonce-%'") == 0
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = ANY($1::text[])", tx_ids) == 0
    finally:
        await conn.close()


async def test_a_merchant_without_an_open_ledger_account_is_refused_as_before(world):
    """The unlocked write refuses itself; the locked rerun then answers the ledger's own error, not a 500."""
    campaign = await _dining(world, [holder()])
    voucher_code = await world.code(campaign)
    conn = await _connect(world)
    try:
        await conn.execute("SET session_replication_role = replica")  # past the guard that keeps account rows
        await conn.execute("DELETE FROM ledger_accounts WHERE account = $1", f"merchant:{NOODLES}")
        before = await _voucher(conn, campaign)
        response = await world.tills[NOODLES].redeem(voucher_code, 12000)
        assert response.status_code == 409 and response.json()["code"] == "INVALID_STATE", response.text
        assert f"merchant:{NOODLES}" in response.json()["detail"]
        assert await _voucher(conn, campaign) == before
        assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE campaign_id = $1", campaign) == 0
    finally:
        await conn.close()
