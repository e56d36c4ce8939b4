"""Smoke: check, create, scoping (no money yet)."""

from campaign_helpers import dining, make_gov


async def test_check_answers_errors_with_line_and_column(shanghai):
    bad = await shanghai.post("/v1/contracts/check", {"source": 'campaign "x" issuer 310000\nbudget ¥100\nvoucher zap'})
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["code"] == "CONTRACT_INVALID"
    assert problem["errors"] and all({"line", "column", "message"} <= set(e) for e in problem["errors"])
    assert problem["errors"][0]["line"] == 3
    good = await shanghai.post("/v1/contracts/check", {"source": dining()})
    assert good.status_code == 200 and good.json()["ok"] is True
    assert good.json()["summary"]["budget_fen"] == 1_000_000_000


async def test_create_is_a_draft_identified_by_sha256(shanghai):
    import hashlib

    source = dining()
    campaign = await shanghai.create(source)
    assert campaign["status"] == "draft"
    assert campaign["contract_sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert campaign["contract_source"] == source
    assert campaign["totals"]["funded_fen"] == 0 and campaign["totals"]["vouchers_issued"] == 0


async def test_gov_creates_only_within_its_region_and_sees_only_its_own(service, shanghai):
    suzhou = await make_gov(service, "320500")
    refused = await suzhou.post("/v1/campaigns", {"source": dining()})
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    xuhui = await make_gov(service, "310104")
    assert (await xuhui.post("/v1/campaigns", {"source": dining()})).status_code == 403
    campaign = await shanghai.create(dining(issuer="310104"))  # Xuhui lies within Shanghai
    assert (await suzhou.get(f"/v1/campaigns/{campaign['id']}")).status_code == 404
    assert (await suzhou.post(f"/v1/campaigns/{campaign['id']}/fund")).status_code == 404
    listed = await suzhou.get("/v1/campaigns")
    assert listed.json()["items"] == []
    auditor = await service.token("auditor")
    seen = await service.client.get(f"/v1/campaigns/{campaign['id']}", headers=service.auth(auditor))
    assert seen.status_code == 200
    not_changed = await service.client.post(f"/v1/campaigns/{campaign['id']}/fund", headers=service.auth(auditor))
    assert not_changed.status_code == 403
    bound = await service.token("auditor", suzhou.issuer_id)
    assert (await service.client.get(f"/v1/campaigns/{campaign['id']}", headers=service.auth(bound))).status_code == 404
    admin = await service.client.get("/v1/campaigns", headers=service.admin)
    assert [c["id"] for c in admin.json()["items"]] == [campaign["id"]]


async def test_openapi_describes_the_campaign_api(service):
    document = (await service.client.get("/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/v1/contracts/check",
        "/v1/campaigns",
        "/v1/campaigns/{campaign_id}",
        "/v1/campaigns/{campaign_id}/fund",
        "/v1/campaigns/{campaign_id}/activate",
        "/v1/campaigns/{campaign_id}/pause",
        "/v1/campaigns/{campaign_id}/close",
        "/v1/campaigns/{campaign_id}/issuances",
        "/v1/issuances/{issuance_id}",
        "/v1/campaigns/{campaign_id}/claims",
        "/v1/wallets/{wallet_id}/vouchers",
    ):
        assert path in paths, path
    body = paths["/v1/campaigns/{campaign_id}/issuances"]["post"]["requestBody"]["content"]["application/json"]
    assert "holders" in body["schema"]["properties"] and "lottery" in body["schema"]["properties"]


async def test_the_stored_contract_cannot_be_changed(service, shanghai):
    import pytest
    import sqlalchemy as sa

    campaign = await shanghai.create(dining())
    with pytest.raises(sa.exc.DBAPIError):
        async with service.state.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE campaigns SET contract_source = contract_source || ' ' WHERE id = :id"),
                {"id": campaign["id"]},
            )
    with pytest.raises(sa.exc.DBAPIError):
        async with service.state.engine.begin() as conn:
            # A copy under another id whose digest does not match its text.
            await conn.execute(
                sa.text(
                    "INSERT INTO campaigns SELECT (jsonb_populate_record(NULL::campaigns, to_jsonb(c)"
                    ' || \'{"id": "cmp_0000000000000000", "contract_sha256": "00"}\'::jsonb)).*'
                    " FROM campaigns c WHERE id = :id"
                ),
                {"id": campaign["id"]},
            )
