"""Each policy of POLICIES.md through its whole life: create from its contract file, fund in its shares,
distribute as it says (targeted, lottery, first come), redeem and refund at real merchants over the signed POS
API, close, and find the books balanced: returned = funded − redeemed + refunded, split by shares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from campaign_helpers import make_gov, policy, set_clock, wallet

from voucher_engine.merchants.client import signed_headers


@dataclass
class Case:
    contract: str
    region: str
    funders: dict[str, int]  # funder issuer -> share_bp
    clock: str
    holders: list[dict]  # eligible holders to distribute to
    ineligible: list[dict]
    merchant: dict
    order: dict  # redemption body fields besides code / wallet / pos_txn_id
    subsidy_fen: int
    refund: bool = False
    later: str | None = None  # business time to close at (else: close early, now)
    register: tuple[str, ...] = field(default_factory=tuple)


CASES = {
    "shanghai-dining-2025": Case(
        "shanghai-dining-2025",
        "310000",
        {"iss_310000": 10000},
        "2025-01-10T12:00:00+08:00",
        [
            {"wallet_id": wallet(1), "id_hash": "a", "attributes": {"age": 30, "residence_region": "310104"}},
            {"wallet_id": wallet(2), "id_hash": "b", "attributes": {"age": 18, "residence_region": "310115"}},
        ],
        [{"wallet_id": wallet(3), "attributes": {"age": 17, "residence_region": "310104"}}],
        {"mcc": "5812", "region_code": "310104", "tags": []},
        {"order_amount_fen": 12000},
        2000,
    ),
    "appliance-trade-in-2025": Case(
        "appliance-trade-in-2025",
        "310000",
        {"iss_000000": 9000, "iss_310000": 1000},
        "2025-06-01T12:00:00+08:00",
        [{"wallet_id": wallet(n), "id_hash": "family"} for n in range(1, 4)],
        [],
        {"mcc": "5722", "region_code": "310104", "tags": []},
        {
            "order_amount_fen": 500000,
            "items": [
                {
                    "sku": "FRIDGE-1",
                    "category": "appliance.refrigerator",
                    "amount_fen": 500000,
                    "attributes": {"energy_grade": 1, "trade_in_certificate": "T-1"},
                }
            ],
        },
        100000,
        refund=True,
        register=("000000",),
    ),
    "suzhou-ecny-red-envelope": Case(
        "suzhou-ecny-red-envelope",
        "320500",
        {"iss_320505": 10000},
        "2025-05-01T12:00:00+08:00",
        [{"wallet_id": wallet(n)} for n in range(1, 6)],
        [],
        {"mcc": "5411", "region_code": "320505", "tags": ["ecny-signed"]},
        {"order_amount_fen": 15000},
        15000,
        later="2025-05-09T12:00:00+08:00",
        register=("320505",),
    ),
    "elderly-home-adaptation": Case(
        "elderly-home-adaptation",
        "310000",
        {"iss_310000": 5000, "iss_310104": 5000},
        "2025-04-01T12:00:00+08:00",
        [{"wallet_id": wallet(1), "attributes": {"age": 72, "residence_region": "310104"}}],
        [
            {"wallet_id": wallet(2), "attributes": {"age": 59, "residence_region": "310104"}},
            {"wallet_id": wallet(3), "attributes": {"age": 80, "residence_region": "310105"}},
        ],
        {"mcc": "5200", "region_code": "310104", "tags": []},
        {"order_amount_fen": 200000},
        60000,
        refund=True,
        later="2026-01-01T00:00:00+08:00",
        register=("310104",),
    ),
    "graduate-culture-sports": Case(
        "graduate-culture-sports",
        "310000",
        {"iss_310000": 10000},
        "2025-07-05T10:00:00+08:00",  # a Saturday
        [{"wallet_id": wallet(1), "attributes": {"graduate_year": 2025}}],
        [{"wallet_id": wallet(2), "attributes": {"graduate_year": 2024}}],
        {"mcc": "7832", "region_code": "310104", "tags": []},
        {"order_amount_fen": 20000},
        5000,
    ),
    "county-fair-rural": Case(
        "county-fair-rural",
        "330000",
        {"iss_330000": 10000},
        "2025-03-01T10:00:00+08:00",
        [{"wallet_id": wallet(n)} for n in range(1, 4)],
        [],
        {"mcc": "5411", "region_code": "330127", "tags": ["farm-produce"]},
        {"order_amount_fen": 5000},
        1000,
    ),
}


async def _balance(service, account: str) -> int:
    from voucher_engine.ledger import service as ledger

    async with service.state.engine.connect() as conn:
        return int(await ledger.balance(conn, account))


async def _pos(service, key: dict, path: str, body: dict):
    raw = json.dumps(body).encode()
    return await service.client.post(
        path, content=raw, headers=signed_headers(key["key_id"], key["secret"], "POST", path, raw)
    )


@pytest.mark.parametrize("name", list(CASES))
async def test_policy_lifecycle(service, name):
    case = CASES[name]
    await set_clock(service, case.clock)
    gov = await make_gov(service, case.region, register=case.register)
    source = policy(case.contract)
    campaign = await gov.create(source)
    assert campaign["name"] and campaign["status"] == "draft"
    before = {issuer: await _balance(service, f"fiscal:{issuer}") for issuer in case.funders}
    funded = await gov.move(campaign["id"], "fund")
    budget = funded["budget_fen"]
    for issuer, share in case.funders.items():
        assert before[issuer] - await _balance(service, f"fiscal:{issuer}") == budget * share // 10000 + (
            budget - sum(budget * s // 10000 for s in case.funders.values())
            if issuer == next(iter(case.funders))
            else 0
        )
    await gov.move(campaign["id"], "activate")
    await gov.move(campaign["id"], "pause")
    await gov.move(campaign["id"], "activate")

    distribution = funded["distribution"]
    if distribution == "targeted":
        result = await gov.issue(campaign["id"], case.holders + case.ineligible)
        assert result["issued"] == len(case.holders)
        assert [r["code"] for r in result["rejected"]] == ["NOT_ELIGIBLE"] * len(case.ineligible)
    elif distribution == "lottery":
        response = await gov.post(
            f"/v1/campaigns/{campaign['id']}/issuances", {"lottery": {"applicants": case.holders, "seed": "42" * 32}}
        )
        assert response.status_code == 201, response.text
        assert response.json()["issued"] == len(case.holders)  # fewer applicants than envelopes: all win
    else:
        for holder in case.holders:
            claimed = await gov.post(f"/v1/campaigns/{campaign['id']}/claims", holder)
            assert claimed.status_code == 201, claimed.text
    voucher = (await gov.get(f"/v1/wallets/{case.holders[0]['wallet_id']}/vouchers")).json()["items"][0]
    assert voucher["status"] == "issued"

    merchant_id = f"m-{name}"[:40]
    await service.merchant(merchant_id, **case.merchant)
    key = await service.pos_key(merchant_id)
    redeemed = await _pos(
        service,
        key,
        "/v1/redemptions",
        {"voucher_code": voucher["code"], "wallet_id": voucher["wallet_id"], "pos_txn_id": f"{name}-1", **case.order},
    )
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["subsidy_fen"] == case.subsidy_fen
    refunded_fen = 0
    if case.refund:
        refund = await _pos(
            service,
            key,
            f"/v1/redemptions/{redeemed.json()['id']}/refunds",
            {"refund_id": f"{name}-r1", "amount_fen": case.order["order_amount_fen"], "reason": "returned"},
        )
        assert refund.status_code == 201, refund.text
        refunded_fen = case.subsidy_fen

    if case.later:
        await set_clock(service, case.later)
    closed = await gov.move(campaign["id"], "close")
    totals = closed["totals"]
    redeemed_fen = case.subsidy_fen
    assert totals["funded_fen"] == budget and totals["redeemed_fen"] == redeemed_fen
    assert totals["refunded_fen"] == refunded_fen
    assert totals["returned_fen"] == budget - redeemed_fen + refunded_fen
    assert totals["outstanding_fen"] == 0
    if case.later:
        assert totals["vouchers_revoked"] == 0
    else:
        assert totals["vouchers_revoked"] == totals["vouchers_issued"] - totals["vouchers_redeemed"]
    reconciliation = await service.client.get(
        f"/v1/ledger/campaigns/{campaign['id']}/reconciliation", headers=gov.headers
    )
    assert reconciliation.status_code == 200, reconciliation.text
    assert reconciliation.json()["balanced"] is True
    returned = budget - redeemed_fen + refunded_fen
    shares = list(case.funders.values())
    parts = [returned * s // 10000 for s in shares]
    parts[0] += returned - sum(parts)
    for (issuer, _), part in zip(case.funders.items(), parts):
        funded_part = budget * case.funders[issuer] // 10000 + (
            budget - sum(budget * s // 10000 for s in shares) if issuer == next(iter(case.funders)) else 0
        )
        assert before[issuer] - await _balance(service, f"fiscal:{issuer}") == funded_part - part
