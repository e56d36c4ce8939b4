"""The spending area at the till, over HTTP: a campaign whose contract does not confine `merchant.region` is spent
only inside its issuer's region; the central government's anywhere. The merchant's region comes from the registry,
never from the request."""

from __future__ import annotations

from redemption_world import holder

SUZHOU_OPEN = """campaign "Suzhou open dining" issuer 320500
budget ¥10,000
funders { 320500: 100% }
voucher fixed: ¥10 off
quantity 100
valid from 2025-01-01 to 2025-12-31 China time
payment {
    merchant.mcc = "5812"
}
"""


async def test_an_unconfined_campaign_is_refused_outside_its_issuers_region(world):
    await world.set_clock("2025-06-01T12:00:00+08:00")
    campaign_id = await world.launch("", [holder()], source=SUZHOU_OPEN)
    code = await world.code(campaign_id)

    # Shanghai's noodle shop: the right category, the wrong region. Nothing moves, and the refusal says why.
    refused = await world.tills["xuhui-noodles"].redeem(code, 5000)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "RULE_NOT_SATISFIED"
    [failure] = problem["explain"]
    assert failure["rule"] == "merchant.region within 320500"
    assert (failure["line"], failure["column"]) == (1, 38)  # the issuer's code
    assert failure["actual"] == "310104"
    quoted = await world.tills["xuhui-noodles"].quote(code, 5000)
    assert quoted.status_code == 200 and quoted.json()["eligible"] is False

    # Suzhou's own noodle shop is inside: it settles.
    settled = await world.tills["suzhou-noodles"].redeem(code, 5000)
    assert settled.status_code == 201, settled.text
    assert settled.json()["subsidy_fen"] == 1000


async def test_the_central_government_spends_anywhere(world):
    await world.set_clock("2025-06-01T12:00:00+08:00")
    source = SUZHOU_OPEN.replace("issuer 320500", "issuer 000000").replace("320500: 100%", "000000: 100%")
    campaign_id = await world.launch("", [holder()], source=source)
    settled = await world.tills["xuhui-noodles"].redeem(await world.code(campaign_id), 5000)
    assert settled.status_code == 201, settled.text


async def test_a_contract_naming_a_region_outside_is_refused_at_creation(world):
    source = SUZHOU_OPEN.replace('merchant.mcc = "5812"', 'merchant.mcc = "5812"\n    merchant.region within 310000')
    response = await world.service.client.post(
        "/v1/campaigns", json={"source": source}, headers=world.service.auth(world.gov["320500"])
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "CONTRACT_INVALID"
    [error] = problem["errors"]
    assert (error["line"], error["column"]) == (9, 5)
    assert "outside the issuer's region 320500" in error["message"]
    # The same answer from the checker endpoint, before anything is created.
    checked = await world.service.client.post(
        "/v1/contracts/check", json={"source": source}, headers=world.service.auth(world.gov["320500"])
    )
    assert checked.status_code == 422 and checked.json()["errors"] == problem["errors"]
