"""Every code of API.md's redemption path is reachable, and each comes as problem+json with the right status."""

from __future__ import annotations

import time

import orjson
import pytest
from redemption_world import OTHER_WALLET, WALLET, holder

from voucher_engine.merchants.client import signed_headers


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    return response.json()


@pytest.fixture
async def dining(world):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET), holder(OTHER_WALLET)])
    return campaign, await world.code(campaign), await world.code(campaign, OTHER_WALLET)


async def test_signature_codes(world, dining):
    _, code, _ = dining
    till = world.tills["xuhui-noodles"]
    body = orjson.dumps({"voucher_code": code, "wallet_id": WALLET, "pos_txn_id": "p1", "order_amount_fen": 12000})
    path = "/v1/redemptions"
    client = world.service.client

    unsigned = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    _problem(unsigned, 401, "UNAUTHENTICATED")
    wrong = signed_headers(till.key_id, "ab" * 32, "POST", path, body)
    _problem(await client.post(path, content=body, headers=wrong), 401, "BAD_SIGNATURE")
    stale = signed_headers(till.key_id, till.secret, "POST", path, body, timestamp=int(time.time()) - 600)
    _problem(await client.post(path, content=stale and body, headers=stale), 401, "STALE_REQUEST")
    tampered = signed_headers(till.key_id, till.secret, "POST", path, body)
    _problem(await client.post(path, content=body.replace(b"12000", b"99999"), headers=tampered), 401, "BAD_SIGNATURE")
    good = signed_headers(till.key_id, till.secret, "POST", path, body, nonce="replay-me-0123456789")
    assert (await client.post(path, content=body, headers=good)).status_code == 201
    _problem(await client.post(path, content=body, headers=good), 401, "REPLAYED_REQUEST")
    # A revoked key stops at once, even for a well-formed, freshly signed request.
    await world.service.client.delete(f"/v1/merchants/xuhui-noodles/keys/{till.key_id}", headers=world.service.admin)
    _problem(await till.redeem(code, 12000), 401, "BAD_SIGNATURE")


async def test_voucher_codes(world, dining):
    campaign, code, other_code = dining
    till = world.tills["xuhui-noodles"]
    _problem(await till.redeem("V1" + "A" * 54, 12000), 404, "VOUCHER_UNKNOWN")
    _problem(await till.redeem(code[:-2] + ("AA" if code[-2:] != "AA" else "BB"), 12000), 404, "VOUCHER_UNKNOWN")
    _problem(await till.redeem("not a code", 12000), 404, "VOUCHER_UNKNOWN")
    _problem(await till.redeem(code, 12000, wallet=OTHER_WALLET), 403, "VOUCHER_NOT_HOLDER")
    assert (await till.redeem(code, 12000)).status_code == 201
    _problem(await till.redeem(code, 12000), 409, "VOUCHER_ALREADY_REDEEMED")
    problem = _problem(await till.redeem(other_code, 5000, wallet=OTHER_WALLET), 422, "RULE_NOT_SATISFIED")
    assert problem["explain"] and {"rule", "line", "column", "actual", "expected"} <= problem["explain"][0].keys()


async def test_merchant_and_campaign_codes(world, dining):
    campaign, code, _ = dining
    till = world.tills["xuhui-noodles"]
    await world.service.client.post("/v1/merchants/xuhui-noodles/suspend", headers=world.service.admin)
    _problem(await till.redeem(code, 12000), 403, "MERCHANT_SUSPENDED")
    await world.service.client.post("/v1/merchants/xuhui-noodles/resume", headers=world.service.admin)
    gov = world.service.auth(world.gov["310000"])
    assert (await world.service.client.post(f"/v1/campaigns/{campaign}/pause", headers=gov)).status_code == 200
    _problem(await till.redeem(code, 12000), 409, "CAMPAIGN_NOT_ACTIVE")
    assert (await world.service.client.post(f"/v1/campaigns/{campaign}/activate", headers=gov)).status_code == 200
    assert (await till.redeem(code, 12000)).status_code == 201


async def test_validity_and_revocation_codes(world):
    await world.set_clock("2024-12-20T12:00:00+08:00")  # issued before the window opens
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET)])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    _problem(await till.redeem(code, 12000), 422, "VOUCHER_NOT_YET_VALID")
    await world.set_clock("2025-01-10T12:00:00+08:00")
    gov = world.service.auth(world.gov["310000"])
    closed = await world.service.client.post(f"/v1/campaigns/{campaign}/close", headers=gov)
    assert closed.status_code == 200, closed.text
    _problem(await till.redeem(code, 12000), 422, "VOUCHER_REVOKED")


async def test_refund_codes(world, dining):
    _, code, _ = dining
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(code, 12000)).json()
    _problem(await till.refund(paid["id"], 12001), 422, "REFUND_EXCEEDS_ORDER")
    first = await till.refund(paid["id"], 1000, refund_id="r-1")
    assert first.status_code == 201
    again = await till.refund(paid["id"], 1000, refund_id="r-1")
    assert again.status_code == 200 and again.json() == first.json()
    _problem(await till.refund(paid["id"], 2000, refund_id="r-1"), 409, "IDEMPOTENCY_CONFLICT")
    _problem(await world.tills["xuhui-grocer"].refund(paid["id"], 100), 404, "NOT_FOUND")
    _problem(await till.refund("rdm_nonsense", 100), 404, "NOT_FOUND")


async def test_validation_codes(world, dining):
    _, code, _ = dining
    till = world.tills["xuhui-noodles"]
    base = {"voucher_code": code, "wallet_id": WALLET, "pos_txn_id": "v-1", "order_amount_fen": 12000}
    for field, value in (
        ("order_amount_fen", -1),
        ("order_amount_fen", 0),
        ("order_amount_fen", 12000.5),
        ("order_amount_fen", "12000"),
        ("order_amount_fen", 10**19),
        ("wallet_id", "123"),
        ("pos_txn_id", "x" * 65),
        ("pos_txn_id", "a b"),
        ("items", [{"sku": "x"}] * 101),
    ):
        response = await till.send("POST", "/v1/redemptions", {**base, field: value})
        _problem(response, 422, "VALIDATION_ERROR")
    response = await till.send("POST", "/v1/redemptions", {**base, "extra": True})
    _problem(response, 422, "VALIDATION_ERROR")


async def test_insufficient_funds_when_escrow_cannot_cover(world, dining):
    """Well-formed contracts prove their worst case fits the budget, so this needs an escrow drained behind the
    engine's back: the database's CHECK still refuses to pay out money that is not there."""
    campaign, code, _ = dining
    async with world.service.state.engine.begin() as conn:
        await conn.exec_driver_sql(f"UPDATE ledger_accounts SET balance_fen = 1500 WHERE account = 'escrow:{campaign}'")
    till = world.tills["xuhui-noodles"]
    _problem(await till.redeem(code, 12000), 409, "INSUFFICIENT_FUNDS")
    vouchers = await world.vouchers(WALLET, campaign)
    assert vouchers[0]["status"] == "issued"  # nothing half done
