"""A till's refund on the lean path is decided by its own request and written by the next redemption batch, in the
batch's one statement (service.RefundJob): one commit, and one writer of the campaign's escrow row at a time. What
the batch cannot take, or a batch that does not land, leaves the refund to a statement of its own (refunds.py)."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import REGISTRY
from redemption_world import OTHER_WALLET, WALLET, holder

from service_support import outbox_kept
from voucher_engine.db.engine import plain_url
from voucher_engine.ledger import service as ledger
from voucher_engine.redemption.dispatch import EXTRA_KEY, RUNNER_KEY

NOODLES = "xuhui-noodles"
THIRD_WALLET = "6200000000000003"


def _ways() -> dict[str, float]:
    return {
        way: REGISTRY.get_sample_value("ve_write_ways_total", {"kind": "refund", "way": way}) or 0.0
        for way in ("unlocked", "locked")
    }


class HeldBatches:
    """Holds the redemption batcher's first batch until `release()`, so that what arrives meanwhile queues up and
    leaves together as the next batch."""

    def __init__(self, world, monkeypatch):
        state = world.service.state
        self.batcher = state.extras[EXTRA_KEY]
        runner = state.extras[RUNNER_KEY]
        original = runner.run_batch
        self.entered = asyncio.Event()
        self._held = asyncio.Event()

        async def holding(jobs):
            if not self.entered.is_set():
                self.entered.set()
                await self._held.wait()
            return await original(jobs)

        monkeypatch.setattr(runner, "run_batch", holding)

    async def queued(self, count: int) -> None:
        for _ in range(500):
            if len(self.batcher._queue) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never {count} jobs queued behind the held batch")

    def release(self) -> None:
        self._held.set()


async def _world_with_a_paid_order(world) -> tuple[str, dict, dict[str, str]]:
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch(
        "shanghai-dining-2025.contract", [holder(WALLET), holder(OTHER_WALLET), holder(THIRD_WALLET)]
    )
    codes = {wallet: await world.code(campaign, wallet) for wallet in (WALLET, OTHER_WALLET, THIRD_WALLET)}
    paid = await world.tills[NOODLES].redeem(codes[WALLET], 30000)
    assert paid.status_code == 201, paid.text
    return campaign, paid.json(), codes


async def _xmin(world, sql: str, *args) -> int:
    """The transaction that wrote a row (PostgreSQL's xmin): rows of one statement that is its own transaction share
    it."""
    conn = await asyncpg.connect(plain_url(world.service.settings.database_url))
    try:
        return int(await conn.fetchval(f"SELECT xmin::text FROM {sql}", *args))
    finally:
        await conn.close()


async def _books(world, campaign: str) -> dict[str, int]:
    async with world.service.state.engine.begin() as conn:
        return {
            "escrow": await ledger.balance(conn, f"escrow:{campaign}"),
            "merchant": await ledger.balance(conn, f"merchant:{NOODLES}"),
        }


async def test_a_refund_lands_in_the_same_transaction_as_the_redemptions_of_its_batch(world, monkeypatch):
    campaign, paid, codes = await _world_with_a_paid_order(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)
    held = HeldBatches(world, monkeypatch)
    ways = _ways()
    async with outbox_kept(world.service.settings.database_url):
        first = asyncio.create_task(till.redeem(codes[OTHER_WALLET], 12000, wallet=OTHER_WALLET))
        await held.entered.wait()
        refund = asyncio.create_task(till.refund(paid["id"], 3000, refund_id="one-dish"))
        later = asyncio.create_task(till.redeem(codes[THIRD_WALLET], 12000, wallet=THIRD_WALLET))
        await held.queued(2)
        held.release()
        first, refund, later = await asyncio.gather(first, refund, later)
        assert (first.status_code, refund.status_code, later.status_code) == (201, 201, 201), refund.text
        answer = refund.json()
        # ¥20 off a ¥300 order; ¥30 back owes the fund ⌈2000 × 3000 / 30000⌉ = 200 fen.
        assert answer["subsidy_clawback_fen"] == 200 and answer["redemption"]["refunded_fen"] == 3000
        assert {way: count - ways[way] for way, count in _ways().items()} == {"unlocked": 1, "locked": 0}
        # One statement, one transaction: the refund's row, the redemption it refunded, its event and its ledger
        # transaction were written by the transaction that wrote the batch's other redemption.
        batch = await _xmin(world, "redemptions WHERE id = $1", later.json()["id"])
        assert await _xmin(world, "refunds WHERE refund_id = $1", "one-dish") == batch
        assert await _xmin(world, "redemptions WHERE id = $1", paid["id"]) == batch
        assert await _xmin(world, "ledger_transactions WHERE id = $1", answer["ledger_tx_id"]) == batch
        assert (
            await _xmin(world, "webhook_outbox WHERE type = 'refund.created' AND data->>'refund_id' = $1", "one-dish")
            == batch
        )
        assert await _xmin(world, "redemptions WHERE id = $1", first.json()["id"]) != batch  # the held batch
    after = await _books(world, campaign)
    # Two more redemptions of ¥20 each left escrow; the refund brought 200 fen of subsidy back.
    assert books["escrow"] - after["escrow"] == 2 * 2000 - 200
    assert after["merchant"] - books["merchant"] == 2 * 2000 - 200

    again = await till.refund(paid["id"], 3000, refund_id="one-dish")  # a retry: the stored refund, nothing new
    assert again.status_code == 200 and again.json() == answer
    assert await _books(world, campaign) == after


async def test_two_refunds_of_one_order_in_one_batch_both_land_and_the_batch_redemption_settles(world, monkeypatch):
    # The batch takes the first; the second is left to its own statement, which lands while the batch is deciding or
    # writing. If it lands first, the batch finds the order changed and does not land: its redemption is decided
    # again under locks and its refund goes its own way too. Either way every fen is where it belongs.
    campaign, paid, codes = await _world_with_a_paid_order(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)
    held = HeldBatches(world, monkeypatch)
    async with outbox_kept(world.service.settings.database_url):
        first = asyncio.create_task(till.redeem(codes[OTHER_WALLET], 12000, wallet=OTHER_WALLET))
        await held.entered.wait()
        refunds = [asyncio.create_task(till.refund(paid["id"], 3000, refund_id=f"dish-{n}")) for n in (1, 2)]
        later = asyncio.create_task(till.redeem(codes[THIRD_WALLET], 12000, wallet=THIRD_WALLET))
        await held.queued(3)
        held.release()
        answers = await asyncio.gather(first, later, *refunds)
        assert [a.status_code for a in answers] == [201, 201, 201, 201], [a.text for a in answers]
        conn = await asyncpg.connect(plain_url(world.service.settings.database_url))
        try:
            redemption = await conn.fetchrow(
                "SELECT refunded_fen, subsidy_refunded_fen FROM redemptions WHERE id = $1", paid["id"]
            )
            stored = await conn.fetch(
                "SELECT refund_id, subsidy_clawback_fen FROM refunds WHERE redemption_id = $1 ORDER BY refund_id",
                paid["id"],
            )
            events = await conn.fetchval(
                "SELECT count(*) FROM webhook_outbox WHERE type = 'refund.created' AND data->>'redemption_id' = $1",
                paid["id"],
            )
        finally:
            await conn.close()
    assert redemption["refunded_fen"] == 6000 and len(stored) == 2 and events == 2
    clawed = sum(row["subsidy_clawback_fen"] for row in stored)
    # ⌈2000 × 3000 / 30000⌉ = 200, then ⌈2000 × 6000 / 30000⌉ − 200 = 200, whichever came first.
    assert clawed == 400 and redemption["subsidy_refunded_fen"] == clawed
    after = await _books(world, campaign)
    assert books["escrow"] - after["escrow"] == 2 * 2000 - clawed
    assert after["merchant"] - books["merchant"] == 2 * 2000 - clawed
