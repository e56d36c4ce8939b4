"""Numbers no attribute can hold (2^64 and beyond) are refused as 422 VALIDATION_ERROR, never a 500: in a claim's
holder attributes, in an issuance's, and in an order item's attributes at the till."""

from __future__ import annotations

import json

import pytest
from redemption_world import CONTRACTS, WALLET, holder

from voucher_engine.merchants.client import signed_headers

HUGE = (2**64, 2**64 + 1, -(2**64), 10**30, 2**63)


def _validation_error(response) -> None:
    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "VALIDATION_ERROR"


def _fridge(grade: int) -> dict:
    return {
        "sku": "sku-1",
        "category": "appliance.refrigerator",
        "amount_fen": 500000,
        "attributes": {"energy_grade": grade, "trade_in_certificate": "CERT-1"},
    }


@pytest.mark.parametrize("value", HUGE)
async def test_an_item_attribute_past_64_bits_is_422(world, value):
    await world.set_clock("2025-06-01T12:00:00+08:00")
    campaign = await world.launch("appliance-trade-in-2025.contract", [holder(WALLET)])
    code = await world.code(campaign)
    till = world.tills["xuhui-electric"]
    # The standard library's JSON writes any integer (orjson, like many clients, refuses past 64 bits).
    for path, extra in (("/v1/redemptions/quote", {}), ("/v1/redemptions", {"pos_txn_id": "huge-1"})):
        body = {"voucher_code": code, "wallet_id": WALLET, "order_amount_fen": 500000, "items": [_fridge(value)]}
        raw = json.dumps({**body, **extra}).encode()
        headers = signed_headers(till.key_id, till.secret, "POST", path, raw)
        _validation_error(await world.service.client.post(path, content=raw, headers=headers))
    # The voucher is untouched and still pays on a sane item.
    paid = await till.redeem(code, 500000, items=[_fridge(1)])
    assert paid.status_code == 201, paid.text


@pytest.mark.parametrize("value", HUGE)
async def test_a_holder_attribute_past_64_bits_is_422(world, value):
    svc = world.service
    await world.set_clock("2025-01-15T12:00:00+08:00")
    source = (
        (CONTRACTS / "shanghai-dining-2025.contract")
        .read_text()
        .replace("distribution targeted", "distribution first come, first served")
    )
    campaign = await world.launch("shanghai-dining-2025.contract", [], source=source)
    gov = svc.auth(world.gov["310000"])
    claim = {"wallet_id": WALLET, "id_hash": "h-1", "attributes": {"age": value, "residence_region": "310104"}}
    headers = {**gov, "Content-Type": "application/json"}
    for path, body in (
        (f"/v1/campaigns/{campaign}/claims", claim),
        (f"/v1/campaigns/{campaign}/issuances", {"holders": [holder(WALLET, age=value)]}),
    ):
        _validation_error(await svc.client.post(path, content=json.dumps(body).encode(), headers=headers))
