"""The policies' tables of POLICIES.md, end to end over HTTP: signed tills, real PostgreSQL, the ledger."""

from __future__ import annotations

import secrets

from redemption_world import OTHER_WALLET, WALLET, holder


def _code(response) -> str:
    return response.json().get("code")


async def test_shanghai_dining_table(world):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET), holder(OTHER_WALLET)])
    code = await world.code(campaign)
    noodles, grocer = world.tills["xuhui-noodles"], world.tills["xuhui-grocer"]

    short = await noodles.redeem(code, 9999)
    assert short.status_code == 422 and _code(short) == "RULE_NOT_SATISFIED"
    assert any("order" in f["rule"] or "spend" in f["rule"] for f in short.json()["explain"]), short.json()

    category = await grocer.redeem(code, 30000)
    assert _code(category) == "RULE_NOT_SATISFIED"
    assert any("mcc" in f["rule"] for f in category.json()["explain"]), category.json()

    elsewhere = await world.tills["suzhou-noodles"].redeem(code, 30000)
    assert _code(elsewhere) == "RULE_NOT_SATISFIED"
    assert any("region" in f["rule"] for f in elsewhere.json()["explain"]), elsewhere.json()

    paid = await noodles.redeem(code, 12000)
    assert paid.status_code == 201, paid.text
    assert paid.json()["subsidy_fen"] == 2000 and paid.json()["payable_fen"] == 10000
    assert paid.json()["status"] == "settled" and paid.json()["ledger_tx_id"]

    other_code = await world.code(campaign, OTHER_WALLET)
    await world.set_clock("2025-02-01T10:00:00+08:00")
    late = await noodles.redeem(other_code, 12000, wallet=OTHER_WALLET)
    assert late.status_code == 422 and _code(late) == "VOUCHER_EXPIRED"
    vouchers = await world.vouchers(OTHER_WALLET, campaign)
    assert vouchers[0]["status"] == "expired"  # expired lazily, at the till


async def test_appliance_trade_in_table(world):
    await world.set_clock("2025-06-01T12:00:00+08:00")
    campaign = await world.launch("appliance-trade-in-2025.contract", [holder(WALLET)] * 1)
    code = await world.code(campaign)
    till = world.tills["xuhui-electric"]

    def item(category, grade, amount, certificate=True):
        attributes = {"energy_grade": grade}
        if certificate:
            attributes["trade_in_certificate"] = "CERT-" + secrets.token_hex(4)
        return {"sku": "sku-1", "category": category, "amount_fen": amount, "attributes": attributes}

    cases = [
        (item("appliance.tv", 3, 400000), "RULE_NOT_SATISFIED", None),
        (item("appliance.washer", 1, 300000, certificate=False), "RULE_NOT_SATISFIED", "certificate"),
        (item("appliance.air_conditioner", 2, 2000000), None, 200000),
    ]
    for it, error, expected in cases:
        quote = await till.quote(code, it["amount_fen"], items=[it])
        assert quote.status_code == 200, quote.text
        if error:
            assert quote.json()["eligible"] is False and quote.json()["code"] == error
            if expected:
                assert any(expected in f["rule"] for f in quote.json()["explain"]), quote.json()
        else:
            assert quote.json() == {
                "eligible": True,
                "subsidy_fen": expected,
                "payable_fen": it["amount_fen"] - expected,
            }
    fridge = item("appliance.refrigerator", 1, 500000)
    paid = await till.redeem(code, 500000, items=[fridge])
    assert paid.status_code == 201, paid.text
    assert paid.json()["subsidy_fen"] == 100000


async def test_suzhou_red_envelope_spends_down_refunds_and_expires(world):
    await world.set_clock("2025-05-01T10:00:00+08:00")
    gov = world.service.auth(world.gov["320500"])
    campaign = await world.launch("suzhou-ecny-red-envelope.contract", [])
    drawn = await world.service.client.post(
        f"/v1/campaigns/{campaign}/issuances",
        json={"lottery": {"applicants": [holder(WALLET, residence_region="320505")], "seed": "ab" * 16}},
        headers=gov,
    )
    assert drawn.status_code == 201 and drawn.json()["issued"] == 1, drawn.text
    code = await world.code(campaign)
    till = world.tills["gusu-shop"]

    first = await till.redeem(code, 15000)
    assert first.status_code == 201, first.text
    assert (first.json()["subsidy_fen"], first.json()["payable_fen"]) == (15000, 0)
    second = await till.redeem(code, 8000)
    assert (second.json()["subsidy_fen"], second.json()["payable_fen"]) == (5000, 3000)
    assert (await world.vouchers(WALLET, campaign))[0]["status"] == "redeemed"

    refund = await till.refund(first.json()["id"], 15000)
    assert refund.status_code == 201, refund.text
    assert refund.json()["subsidy_clawback_fen"] == 15000 and refund.json()["voucher_restored"] is True
    assert (await world.vouchers(WALLET, campaign))[0]["status"] == "issued"
    again = await till.quote(code, 20000)
    assert again.json()["subsidy_fen"] == 15000  # what the refund put back on the envelope

    await world.set_clock("2025-05-08T10:00:01+08:00")  # day 8
    late = await till.redeem(code, 1000)
    assert _code(late) == "VOUCHER_EXPIRED"


async def test_county_fair_daily_cap(world):
    await world.set_clock("2025-09-01T09:00:00+08:00")
    campaign = await world.launch("county-fair-rural.contract", [])
    gov = world.service.auth(world.gov["330000"])
    wallets = [f"620000000001{i:04d}" for i in range(202)]
    codes = []
    for wallet in wallets:
        claimed = await world.service.client.post(
            f"/v1/campaigns/{campaign}/claims", json={"wallet_id": wallet, "id_hash": "h" + wallet}, headers=gov
        )
        assert claimed.status_code == 201, claimed.text
        codes.append(claimed.json()["code"])
    farm = world.tills["fuyang-farm"]
    for wallet, code in zip(wallets[:200], codes[:200]):
        paid = await farm.redeem(code, 5000, wallet=wallet)
        assert paid.status_code == 201, paid.text
    over = await farm.redeem(codes[200], 5000, wallet=wallets[200])  # ¥2,000 = 200 × ¥10 already paid today
    assert over.status_code == 409 and _code(over) == "DAILY_BUDGET_EXHAUSTED"
    await world.set_clock("2025-09-02T00:00:01+08:00")
    next_day = await farm.redeem(codes[200], 5000, wallet=wallets[200])
    assert next_day.status_code == 201, next_day.text


async def test_graduates_only_on_weekend_daytime(world):
    await world.set_clock("2025-07-04T12:00:00+08:00")  # a Friday
    campaign = await world.launch("graduate-culture-sports.contract", [holder(WALLET, graduate_year=2025)])
    code = await world.code(campaign)
    cinema = world.tills["xuhui-cinema"]
    friday = await cinema.quote(code, 20000)
    assert friday.json()["eligible"] is False and friday.json()["code"] == "RULE_NOT_SATISFIED"
    await world.set_clock("2025-07-05T22:00:00+08:00")  # Saturday 22:00: closed
    assert (await cinema.quote(code, 20000)).json()["eligible"] is False
    await world.set_clock("2025-07-05T21:59:00+08:00")
    paid = await cinema.redeem(code, 20000)
    assert paid.status_code == 201 and paid.json()["subsidy_fen"] == 5000, paid.text


async def test_elderly_adaptation_percent_with_cap(world):
    await world.set_clock("2025-04-01T10:00:00+08:00")
    campaign = await world.launch(
        "elderly-home-adaptation.contract", [holder(WALLET, age=72, residence_region="310104")]
    )
    code = await world.code(campaign)
    builder = world.tills["xuhui-builder"]
    small = await builder.quote(code, 99999)
    assert small.json()["eligible"] is False
    quote = await builder.quote(code, 500000)
    assert quote.json()["subsidy_fen"] == 150000
    capped = await builder.redeem(code, 2000000)
    assert capped.status_code == 201 and capped.json()["subsidy_fen"] == 300000
