"""A refund is read without locks and written in one statement that is its own transaction (refunds.py, the
unlocked way); when what it read has changed before it writes, nothing of it is written and the locked way decides
it again. The races here run on real connections: another refund, or a close, lands between a refund's read and
its write."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from redemption_world import holder

from service_support import outbox_kept
from voucher_engine.ledger import service as ledger
from voucher_engine.redemption import repository

NOODLES = "xuhui-noodles"


def _ways() -> dict[str, float]:
    return {
        way: REGISTRY.get_sample_value("ve_write_ways_total", {"kind": "refund", "way": way}) or 0.0
        for way in ("unlocked", "locked")
    }


def _since(before: dict[str, float]) -> dict[str, float]:
    return {way: count - before[way] for way, count in _ways().items()}


async def _paid(world, amount_fen: int = 30000) -> tuple[str, dict]:
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    paid = await world.tills[NOODLES].redeem(await world.code(campaign), amount_fen)
    assert paid.status_code == 201, paid.text
    return campaign, paid.json()


async def _books(world, campaign: str) -> dict[str, int]:
    async with world.service.state.engine.begin() as conn:
        return {
            "escrow": await ledger.balance(conn, f"escrow:{campaign}"),
            "merchant": await ledger.balance(conn, f"merchant:{NOODLES}"),
            "fiscal": await ledger.balance(conn, "fiscal:iss_310000"),
        }


async def _stored(world, campaign: str, redemption_id: str):
    async with world.service.state.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        redemption = await raw.fetchrow(
            "SELECT refunded_fen, subsidy_refunded_fen FROM redemptions WHERE campaign_id = $1 AND id = $2",
            campaign,
            redemption_id,
        )
        refunds = await raw.fetch(
            "SELECT refund_id, amount_fen, subsidy_clawback_fen, ledger_tx_id FROM refunds WHERE redemption_id = $1",
            redemption_id,
        )
        events = await raw.fetch(
            "SELECT data FROM webhook_outbox WHERE type = 'refund.created' AND data->>'redemption_id' = $1",
            redemption_id,
        )
    return redemption, refunds, events


def _after_the_read(monkeypatch, meanwhile) -> list[str]:
    """Run `meanwhile()` once, after the next refund has read (PEEK_REFUND) and before it writes."""
    ran: list[str] = []
    peek = repository.peek_refund

    async def peek_then_change(*args, **kwargs):
        row = await peek(*args, **kwargs)
        if not ran:
            ran.append("meanwhile")
            await meanwhile()
        return row

    monkeypatch.setattr(repository, "peek_refund", peek_then_change)
    return ran


async def test_a_refund_goes_the_unlocked_way_with_its_event_and_a_retry_the_locked_way(world):
    campaign, paid = await _paid(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)
    async with outbox_kept(world.service.settings.database_url):
        ways = _ways()
        first = await till.refund(paid["id"], 3000, refund_id="r-1", reason="one dish back")
        assert first.status_code == 201, first.text
        assert _since(ways) == {"unlocked": 1, "locked": 0}
        answer = first.json()
        # ¥20 off a ¥300 order; ¥30 back owes the fund 2000 × 3000 / 30000 = 200 fen.
        assert answer["subsidy_clawback_fen"] == 200 and answer["redemption"]["refunded_fen"] == 3000
        redemption, refunds, events = await _stored(world, campaign, paid["id"])
        assert (redemption["refunded_fen"], redemption["subsidy_refunded_fen"]) == (3000, 200)
        assert [(r["refund_id"], r["amount_fen"], r["ledger_tx_id"]) for r in refunds] == [
            ("r-1", 3000, answer["ledger_tx_id"])
        ]
        assert [e["data"] for e in events] == [answer]  # the event is the answer, written in the same statement
        after = await _books(world, campaign)
        assert after["escrow"] - books["escrow"] == 200 and books["merchant"] - after["merchant"] == 200

        ways = _ways()
        again = await till.refund(paid["id"], 3000, refund_id="r-1", reason="one dish back")
        assert again.status_code == 200 and again.json() == answer
        assert _since(ways) == {"unlocked": 0, "locked": 1}
        assert await _books(world, campaign) == after
        assert len((await _stored(world, campaign, paid["id"]))[2]) == 1  # no second event


@pytest.mark.parametrize(
    "amount_fen, status, refunded_fen",
    [
        (3000, 201, 11000),  # still fits in what is left: refunded, its clawback counted on the new amounts
        (23000, 422, 8000),  # no longer fits: refused as if it had come second
    ],
)
async def test_a_refund_that_landed_between_read_and_write_sends_the_later_one_the_locked_way(
    world, monkeypatch, amount_fen, status, refunded_fen
):
    campaign, paid = await _paid(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)
    other: list = []

    async def another_refund() -> None:
        other.append(await till.refund(paid["id"], 8000, refund_id="other"))

    ran = _after_the_read(monkeypatch, another_refund)
    ways = _ways()
    async with outbox_kept(world.service.settings.database_url):
        late = await till.refund(paid["id"], amount_fen, refund_id="late")
        assert ran and other[0].status_code == 201, other[0].text
        assert late.status_code == status, late.text
        # The other refund went unlocked; the late one's write found the redemption changed and went under locks.
        assert _since(ways) == {"unlocked": 1, "locked": 1}
        redemption, refunds, events = await _stored(world, campaign, paid["id"])
    assert redemption["refunded_fen"] == refunded_fen
    assert sum(r["amount_fen"] for r in refunds) == refunded_fen
    clawed = sum(r["subsidy_clawback_fen"] for r in refunds)
    assert redemption["subsidy_refunded_fen"] == clawed and len(events) == len(refunds)
    if status == 422:
        assert late.json()["code"] == "REFUND_EXCEEDS_ORDER" and late.json()["refundable_fen"] == 22000
    else:
        # 8000 then 3000 of 30000: ⌈2000 × 8000 / 30000⌉ = 534, then ⌈2000 × 11000 / 30000⌉ − 534 = 200.
        assert [r["subsidy_clawback_fen"] for r in sorted(refunds, key=lambda r: r["refund_id"])] == [200, 534]
    after = await _books(world, campaign)
    assert after["escrow"] - books["escrow"] == clawed and books["merchant"] - after["merchant"] == clawed


async def test_a_close_between_read_and_write_sends_the_clawback_on_to_the_funders(world, monkeypatch):
    # Without the campaign's status in the write, the refund would put its clawback into a closed campaign's escrow,
    # which the close has already emptied, and the funders would never see it.
    campaign, paid = await _paid(world, 12000)
    till = world.tills[NOODLES]
    await world.set_clock("2025-02-05T10:00:00+08:00")
    gov = world.service.auth(world.gov["310000"])
    closed: list = []

    async def close() -> None:
        closed.append(await world.service.client.post(f"/v1/campaigns/{campaign}/close", headers=gov))

    _after_the_read(monkeypatch, close)
    ways = _ways()
    refund = await till.refund(paid["id"], 12000)
    assert closed[0].status_code == 200, closed[0].text
    assert refund.status_code == 201, refund.text
    assert _since(ways) == {"unlocked": 0, "locked": 1}
    books = await _books(world, campaign)
    assert books["escrow"] == 0 and books["fiscal"] == 0  # every fen funded is back with the funder


async def test_a_key_revoked_between_read_and_write_refuses_the_refund(world, monkeypatch):
    campaign, paid = await _paid(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)

    async def revoke() -> None:
        async with world.service.state.engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute("UPDATE merchant_keys SET revoked_at = now() WHERE key_id = $1", till.key_id)

    _after_the_read(monkeypatch, revoke)
    try:
        refund = await till.refund(paid["id"], 3000)
        assert refund.status_code == 401 and refund.json()["code"] == "BAD_SIGNATURE", refund.text
        assert await _books(world, campaign) == books
        assert (await _stored(world, campaign, paid["id"]))[1] == []
    finally:
        async with world.service.state.engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute("UPDATE merchant_keys SET revoked_at = NULL WHERE key_id = $1", till.key_id)


async def test_refunds_racing_for_one_order_refund_it_exactly_once(world):
    campaign, paid = await _paid(world)
    till = world.tills[NOODLES]
    books = await _books(world, campaign)
    # Nine 4,000-fen refunds at once, on real connections, for an order of 30,000: seven fit.
    async with outbox_kept(world.service.settings.database_url):
        answers = await asyncio.gather(*(till.refund(paid["id"], 4000, refund_id=f"race-{i}") for i in range(9)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] * 7 + [422] * 2, [a.text for a in answers]
        assert {a.json()["code"] for a in answers if a.status_code == 422} == {"REFUND_EXCEEDS_ORDER"}
        redemption, refunds, events = await _stored(world, campaign, paid["id"])
    assert redemption["refunded_fen"] == 28000 and len(refunds) == 7 and len(events) == 7
    # The ¥20 kept falls below the ¥100 threshold: the whole subsidy is back, and not a fen more, however the
    # refunds interleaved.
    assert redemption["subsidy_refunded_fen"] == sum(r["subsidy_clawback_fen"] for r in refunds) == 2000
    after = await _books(world, campaign)
    assert after["escrow"] - books["escrow"] == 2000 and books["merchant"] - after["merchant"] == 2000
