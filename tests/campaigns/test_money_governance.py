"""Money governance over HTTP against a real PostgreSQL: co-funding by consent and appropriations.

A campaign's own issuer commits only its own fiscal account; each co-funder approves or declines its share and can
read the campaign meanwhile; `fund` needs every approval (checked under the campaign's lock) and keeps every funder
within its appropriation. Every decision is kept with who gave it and when.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from campaign_helpers import Gov, contract, make_gov
from sqlalchemy.exc import DBAPIError


def co_funded(issuer: str, funders: str, *, budget: str = "¥100,000", payment: str = 'merchant.mcc = "5812"') -> str:
    return contract(f"""
        campaign "Co-funded dining" issuer {issuer}
        budget {budget}
        funders {{
            {funders}
        }}
        voucher fixed: ¥10 off
        quantity 100
        valid from 2025-01-01 to 2025-12-31 China time
        payment {{
            {payment}
        }}
    """)


async def post(gov: Gov, path: str):
    return await gov.service.client.post(path, headers=gov.headers)


async def issuer(service, issuer_id: str, headers: dict | None = None) -> dict:
    response = await service.client.get(f"/v1/issuers/{issuer_id}", headers=headers or service.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_cross_region_attack_is_refused_at_every_step(service):
    suzhou = await make_gov(service, "320500")
    shanghai = await make_gov(service, "310000")
    shanghai_auditor = service.auth(await service.token("auditor", "iss_310000"))

    # 1. Spending Suzhou's campaign at Shanghai's merchants: refused at creation, at the line and column.
    named = await suzhou.post(
        "/v1/campaigns", {"source": co_funded("320500", "320500: 100%", payment="merchant.region within 310000")}
    )
    assert named.status_code == 422 and named.json()["code"] == "CONTRACT_INVALID"
    assert [(e["line"], e["column"]) for e in named.json()["errors"]] == [(10, 5)]
    # 2. Writing Shanghai in as the issuer: not Suzhou's to write.
    posing = await suzhou.post("/v1/campaigns", {"source": co_funded("310000", "310000: 100%")})
    assert posing.status_code == 403, posing.text

    # 3. Naming Shanghai as the funder: the campaign exists, but Shanghai's share waits for Shanghai.
    campaign = await suzhou.create(co_funded("320500", "310000: 100%"))
    [share] = campaign["funders"]
    assert (share["issuer_id"], share["approval"], share["amount_fen"]) == ("iss_310000", "pending", 10_000_000)
    refused = await post(suzhou, f"/v1/campaigns/{campaign['id']}/fund")
    assert refused.status_code == 409 and refused.json()["code"] == "FUNDING_NOT_APPROVED"
    assert refused.json()["funders"] == [{"issuer_id": "iss_310000", "approval": "pending"}]
    # Suzhou cannot consent for Shanghai.
    forged = await post(suzhou, f"/v1/campaigns/{campaign['id']}/funders/iss_310000/approve")
    assert forged.status_code == 403 and forged.json()["code"] == "FORBIDDEN"

    # 4. Shanghai's gov and auditor see the campaign that names them, in the list and in detail.
    for headers in (shanghai.headers, shanghai_auditor):
        listed = await service.client.get("/v1/campaigns", headers=headers)
        assert campaign["id"] in [c["id"] for c in listed.json()["items"]]
        detail = await service.client.get(f"/v1/campaigns/{campaign['id']}", headers=headers)
        assert detail.status_code == 200 and detail.json()["funders"][0]["approval"] == "pending"
    # ... but cannot run it.
    assert (await post(shanghai, f"/v1/campaigns/{campaign['id']}/fund")).status_code == 403

    # 5. Shanghai declines; funding stays refused; nothing left Shanghai's fiscal account.
    declined = await post(shanghai, f"/v1/campaigns/{campaign['id']}/funders/iss_310000/decline")
    assert declined.status_code == 200, declined.text
    assert declined.json()["funders"][0]["approval"] == "declined"
    refused = await post(suzhou, f"/v1/campaigns/{campaign['id']}/fund")
    assert refused.status_code == 409 and refused.json()["funders"][0]["approval"] == "declined"
    assert (await issuer(service, "iss_310000"))["committed_fen"] == 0
    assert (await suzhou.campaign(campaign["id"]))["status"] == "draft"


async def test_three_funders_fund_in_one_transaction_only_after_both_approvals(service):
    city = await make_gov(service, "310000")
    central = await make_gov(service, "000000")
    district = await make_gov(service, "310104")
    auditor = service.auth(await service.token("auditor"))
    # ¥1,000,000.01: the shares round down and the leftover fen goes to the first funder listed.
    campaign = await city.create(co_funded("310000", "000000: 90%\n310000: 5%\n310104: 5%", budget="¥1,000,000.01"))
    shares = [(f["issuer_id"], f["share_bp"], f["amount_fen"], f["approval"]) for f in campaign["funders"]]
    assert shares == [
        ("iss_000000", 9000, 90_000_001, "pending"),
        ("iss_310000", 500, 5_000_000, "own"),
        ("iss_310104", 500, 5_000_000, "pending"),
    ]
    fund = f"/v1/campaigns/{campaign['id']}/fund"

    approved = await post(central, f"/v1/campaigns/{campaign['id']}/funders/iss_000000/approve")
    assert approved.status_code == 200, approved.text
    refused = await post(city, fund)
    assert refused.status_code == 409 and refused.json()["funders"] == [
        {"issuer_id": "iss_310104", "approval": "pending"}
    ]
    assert (await post(district, f"/v1/campaigns/{campaign['id']}/funders/iss_310104/approve")).status_code == 200

    funded = await post(city, fund)
    assert funded.status_code == 200, funded.text
    body = funded.json()
    assert body["status"] == "funded" and body["totals"]["funded_fen"] == 100_000_001
    # One transaction moved every share, to the fen (sequenced first: the operator signs a checkpoint).
    assert (await service.client.post("/v1/ledger/checkpoints", headers=service.admin)).status_code == 201
    tx = await service.client.get(f"/v1/ledger/transactions/{body['fund_tx_id']}", headers=auditor)
    assert tx.status_code == 200, tx.text
    postings = {p["account"]: p.get("credit_fen", 0) - p.get("debit_fen", 0) for p in tx.json()["postings"]}
    assert postings == {
        "fiscal:iss_000000": 90_000_001,
        "fiscal:iss_310000": 5_000_000,
        "fiscal:iss_310104": 5_000_000,
        f"escrow:{campaign['id']}": -100_000_001,
    }
    assert tx.json()["kind"] == "fund"
    for issuer_id, committed in (("iss_000000", 90_000_001), ("iss_310000", 5_000_000), ("iss_310104", 5_000_000)):
        assert (await issuer(service, issuer_id))["committed_fen"] == committed
    # Consents are final once funded.
    late = await post(district, f"/v1/campaigns/{campaign['id']}/funders/iss_310104/decline")
    assert late.status_code == 409 and late.json()["code"] == "INVALID_STATE"
    # Who approved, and when, is in the campaign for every reader.
    decisions = body["funder_decisions"]
    assert [(d["issuer_id"], d["decision"]) for d in decisions] == [
        ("iss_000000", "approved"),
        ("iss_310104", "approved"),
    ]
    assert all(d["token_id"].startswith("tok_") and d["decided_at"] for d in decisions)
    assert decisions[0]["token_id"] != decisions[1]["token_id"]


async def test_a_decline_blocks_funding_and_every_decision_is_kept(service):
    city = await make_gov(service, "310000")
    district = await make_gov(service, "310104")
    campaign = await city.create(co_funded("310000", "310000: 50%\n310104: 50%"))
    decide = f"/v1/campaigns/{campaign['id']}/funders/iss_310104"
    assert (await post(district, f"{decide}/approve")).status_code == 200
    assert (await post(district, f"{decide}/decline")).status_code == 200
    # Deciding again the way it stands records nothing new.
    again = await post(district, f"{decide}/decline")
    assert again.status_code == 200
    refused = await post(city, f"/v1/campaigns/{campaign['id']}/fund")
    assert refused.status_code == 409 and refused.json()["code"] == "FUNDING_NOT_APPROVED"
    assert (await post(district, f"{decide}/approve")).status_code == 200
    funded = await post(city, f"/v1/campaigns/{campaign['id']}/fund")
    assert funded.status_code == 200, funded.text
    history = [(d["decision"], d["issuer_id"]) for d in funded.json()["funder_decisions"]]
    assert history == [("approved", "iss_310104"), ("declined", "iss_310104"), ("approved", "iss_310104")]
    share = funded.json()["funders"][1]
    assert share["approval"] == "approved" and share["decided_by"].startswith("tok_") and share["decided_at"]

    # The issuer's own share needs no consent; other callers cannot decide.
    own = await post(city, f"/v1/campaigns/{campaign['id']}/funders/iss_310000/approve")
    assert own.status_code in (403, 409)
    admin = await service.client.post(f"{decide}/approve", headers=service.admin)
    assert admin.status_code == 403
    stranger = await make_gov(service, "330000")
    assert (await post(stranger, f"{decide}/approve")).status_code == 404

    # The history is append-only in the database too.
    async with service.state.engine.connect() as conn:
        with pytest.raises(DBAPIError):
            await conn.execute(sa.text("UPDATE campaign_funder_decisions SET decision = 'declined'"))


async def test_an_unregistered_funder_is_refused_at_creation_with_its_line(service):
    city = await make_gov(service, "310000")
    response = await city.post("/v1/campaigns", {"source": co_funded("310000", "310000: 50%\n310115: 50%")})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "CONTRACT_INVALID"
    [error] = problem["errors"]
    assert error["line"] == 5 and "310115" in error["message"] and "not a registered issuer" in error["message"]


async def test_appropriations_cap_funding_and_approval(service):
    city = await make_gov(service, "310000")
    district = await make_gov(service, "310104")
    other = await make_gov(service, "320500")

    # Shapes: admin only, a whole number of fen or null, the key required.
    patch = "/v1/issuers/iss_310000"
    for bad in (
        {},
        {"appropriation_fen": -1},
        {"appropriation_fen": 1.5},
        {"appropriation_fen": "100"},
        {"appropriation_fen": 10**30},
        {"appropriation_fen": 1, "extra": 1},
    ):
        answer = await service.client.patch(patch, json=bad, headers=service.admin)
        assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR", (bad, answer.text)
    assert (await service.client.patch(patch, json={"appropriation_fen": 1}, headers=city.headers)).status_code == 403
    assert (
        await service.client.patch("/v1/issuers/iss_999999", json={"appropriation_fen": 1}, headers=service.admin)
    ).status_code == 404
    # A gov reads its own issuer, not another's.
    assert (await issuer(service, "iss_310000", city.headers))["appropriation_fen"] is None
    assert (await service.client.get("/v1/issuers/iss_310000", headers=other.headers)).status_code == 404

    # The city may commit ¥150,000 at once: one ¥100,000 campaign fits, a second does not.
    capped = await service.client.patch(patch, json={"appropriation_fen": 15_000_000}, headers=service.admin)
    assert capped.status_code == 200 and capped.json()["appropriation_fen"] == 15_000_000
    first = await city.create(co_funded("310000", "310000: 100%"))
    assert (await post(city, f"/v1/campaigns/{first['id']}/fund")).status_code == 200
    second = await city.create(co_funded("310000", "310000: 100%"))
    refused = await post(city, f"/v1/campaigns/{second['id']}/fund")
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "INSUFFICIENT_FUNDS"
    assert (problem["issuer_id"], problem["committed_fen"], problem["needed_fen"]) == (
        "iss_310000",
        10_000_000,
        10_000_000,
    )
    shown = await issuer(service, "iss_310000", city.headers)
    assert (shown["appropriation_fen"], shown["committed_fen"]) == (15_000_000, 10_000_000)

    # Closing the first campaign brings its unspent money back, and room with it.
    assert (await post(city, f"/v1/campaigns/{first['id']}/activate")).status_code == 200
    assert (await post(city, f"/v1/campaigns/{first['id']}/close")).status_code == 200
    assert (await issuer(service, "iss_310000"))["committed_fen"] == 0
    assert (await post(city, f"/v1/campaigns/{second['id']}/fund")).status_code == 200

    # A co-funder cannot approve a share beyond its own appropriation either.
    await service.client.patch("/v1/issuers/iss_310104", json={"appropriation_fen": 4_000_000}, headers=service.admin)
    shared = await city.create(co_funded("310000", "310000: 50%\n310104: 50%"))
    too_much = await post(district, f"/v1/campaigns/{shared['id']}/funders/iss_310104/approve")
    assert too_much.status_code == 409 and too_much.json()["code"] == "INSUFFICIENT_FUNDS"
    # Lifting the limit (null) lets it through.
    lifted = await service.client.patch(
        "/v1/issuers/iss_310104", json={"appropriation_fen": None}, headers=service.admin
    )
    assert lifted.status_code == 200 and lifted.json()["appropriation_fen"] is None
    assert (await post(district, f"/v1/campaigns/{shared['id']}/funders/iss_310104/approve")).status_code == 200
