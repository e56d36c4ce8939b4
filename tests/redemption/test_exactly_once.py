"""Exactly once: retries answer the first result, conflicting retries are refused, racing tills get one success."""

from __future__ import annotations

import asyncio
import secrets

from redemption_world import holder

from voucher_engine.ledger import service as ledger


async def _dining(world, holders):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    return await world.launch("shanghai-dining-2025.contract", holders)


async def test_retry_answers_the_original_and_a_different_body_conflicts(world):
    campaign = await _dining(world, [holder()])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    first = await till.redeem(code, 12000, pos_txn_id="till-7-000123")
    assert first.status_code == 201, first.text
    # The till never saw the answer (the connection dropped) and sends the same order again, with a new nonce.
    retry = await till.redeem(code, 12000, pos_txn_id="till-7-000123")
    assert retry.status_code == 200
    assert retry.json() == first.json()
    conflict = await till.redeem(code, 15000, pos_txn_id="till-7-000123")
    assert conflict.status_code == 409 and conflict.json()["code"] == "IDEMPOTENCY_CONFLICT"
    found = await till.send("GET", "/v1/redemptions?pos_txn_id=till-7-000123")
    assert found.status_code == 200 and found.json()["items"] == [first.json()]
    fetched = await till.send("GET", f"/v1/redemptions/{first.json()['id']}")
    assert fetched.json() == first.json()
    # Another merchant cannot see it.
    other = await world.tills["xuhui-grocer"].send("GET", f"/v1/redemptions/{first.json()['id']}")
    assert other.status_code == 404


async def test_concurrent_retries_of_one_request_settle_once(world):
    campaign = await _dining(world, [holder()])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    answers = await asyncio.gather(*(till.redeem(code, 12000, pos_txn_id="same-key-1") for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 1 and statuses.count(200) == 19, statuses
    assert len({a.json()["id"] for a in answers}) == 1


async def test_two_tills_racing_on_one_voucher(world):
    holders = [holder(f"62100000000000{i:02d}") for i in range(20)]
    campaign = await _dining(world, holders)
    tills = [world.tills["xuhui-noodles"], world.tills["xuhui-noodles"]]
    for h in holders:
        code = await world.code(campaign, h["wallet_id"])
        a, b = await asyncio.gather(*(t.redeem(code, 12000, wallet=h["wallet_id"]) for t in tills))
        codes = sorted([a.status_code, b.status_code])
        assert codes == [201, 409], (a.text, b.text)
        loser = a if a.status_code == 409 else b
        assert loser.json()["code"] == "VOUCHER_ALREADY_REDEEMED"


async def test_many_clients_many_vouchers_exactly_once_and_books_balance(world):
    """1,000 attempts on 200 vouchers from 50 concurrent clients in process (the 5,000-on-1,000 test against a
    real multi-worker server is in tests/reliability)."""
    holders = [holder(f"6220000000{i:06d}") for i in range(200)]
    campaign = await _dining(world, holders)
    codes = {h["wallet_id"]: await world.code(campaign, h["wallet_id"]) for h in holders}
    attempts = [(wallet, code) for wallet, code in codes.items() for _ in range(5)]
    secrets.SystemRandom().shuffle(attempts)
    till = world.tills["xuhui-noodles"]
    results: list[int] = []

    async def client(chunk):
        for wallet, code in chunk:
            results.append((await till.redeem(code, 12000, wallet=wallet)).status_code)

    await asyncio.gather(*(client(attempts[i::50]) for i in range(50)))
    assert results.count(201) == 200 and results.count(409) == 800, sorted(set(results))
    async with world.service.state.engine.begin() as conn:
        escrow = await ledger.balance(conn, f"escrow:{campaign}")
        merchant = await ledger.balance(conn, "merchant:xuhui-noodles")
    assert escrow == 10_000_000_00 - 200 * 2000
    assert merchant == 200 * 2000
    detail = (await world.service.client.get(f"/v1/campaigns/{campaign}", headers=world.service.admin)).json()
    assert detail["totals"]["redeemed_fen"] == 200 * 2000
    assert detail["totals"]["vouchers_redeemed"] == 200
