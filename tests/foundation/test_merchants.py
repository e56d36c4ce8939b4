"""The merchant registry: create/update, suspend/resume, keys made once and revoked."""

import sqlalchemy as sa

from voucher_engine.db.schema.foundation import merchant_keys


async def test_put_creates_then_updates(service):
    body = {
        "name": "Noodles",
        "mcc": "5812",
        "region_code": "310104",
        "settlement_wallet": "0012345678901234",
        "tags": ["ecny-signed", "ecny-signed", "aging-adaptation-certified"],
    }
    created = await service.client.put("/v1/merchants/noodles", json=body, headers=service.admin)
    assert created.status_code == 201
    assert created.json()["tags"] == ["aging-adaptation-certified", "ecny-signed"]
    assert created.json()["status"] == "active"
    updated = await service.client.put("/v1/merchants/noodles", json={**body, "mcc": "5813"}, headers=service.admin)
    assert updated.status_code == 200
    assert updated.json()["mcc"] == "5813" and updated.json()["version"] == 2


async def test_suspend_and_resume(service):
    await service.merchant("shop")
    suspended = await service.client.post("/v1/merchants/shop/suspend", headers=service.admin)
    assert suspended.json()["status"] == "suspended"
    resumed = await service.client.post("/v1/merchants/shop/resume", headers=service.admin)
    assert resumed.json()["status"] == "active"
    missing = await service.client.post("/v1/merchants/nobody/suspend", headers=service.admin)
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"


async def test_invalid_merchant_fields_are_refused(service):
    base = {"name": "x", "mcc": "5812", "region_code": "310104", "settlement_wallet": "0012345678901234", "tags": []}
    for field, value in (
        ("mcc", 5812),
        ("mcc", "58120"),
        ("region_code", "31010"),
        ("settlement_wallet", "12"),
        ("tags", ["Bad Tag"]),
        ("tags", ["t"] * 33),
        ("name", ""),
    ):
        response = await service.client.put("/v1/merchants/x", json={**base, field: value}, headers=service.admin)
        assert response.status_code == 422, (field, value, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    bad_id = await service.client.put("/v1/merchants/" + "x" * 80, json=base, headers=service.admin)
    assert bad_id.status_code == 422


async def test_keys_are_shown_once_and_not_stored(service):
    await service.merchant("shop")
    key = await service.pos_key("shop")
    assert len(key["secret"]) == 64
    async with service.state.engine.connect() as conn:
        dump = str((await conn.execute(sa.select(merchant_keys))).all())
    assert key["key_id"] in dump and key["secret"] not in dump
    revoked = await service.client.delete(f"/v1/merchants/shop/keys/{key['key_id']}", headers=service.admin)
    assert revoked.status_code == 204
    again = await service.client.delete(f"/v1/merchants/shop/keys/{key['key_id']}", headers=service.admin)
    assert again.status_code == 404


async def test_key_for_unknown_merchant_is_404(service):
    response = await service.client.post("/v1/merchants/ghost/keys", headers=service.admin)
    assert response.status_code == 404
