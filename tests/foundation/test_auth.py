"""Every endpoint refuses a missing or wrong credential (401) and a wrong role (403); tokens are stored hashed."""

import hashlib

import pytest
import sqlalchemy as sa

from voucher_engine.db.schema.foundation import api_tokens

MERCHANT_BODY = {
    "name": "m",
    "mcc": "5812",
    "region_code": "310104",
    "settlement_wallet": "0000000000000001",
    "tags": [],
}

# (method, path, body) of every admin-only bearer-token endpoint of the foundation. (`GET /v1/issuers/{id}` is
# also the issuer's own government's and auditors': tests/reliability/test_security_matrix.py covers it.)
ADMIN_ENDPOINTS = [
    ("POST", "/v1/issuers", {"name": "x", "region_code": "320000"}),
    ("GET", "/v1/issuers", None),
    ("PATCH", "/v1/issuers/iss_310000", {"appropriation_fen": None}),
    ("PUT", "/v1/merchants/m-auth", MERCHANT_BODY),
    ("GET", "/v1/merchants", None),
    ("GET", "/v1/merchants/m-auth", None),
    ("POST", "/v1/merchants/m-auth/suspend", None),
    ("POST", "/v1/merchants/m-auth/resume", None),
    ("POST", "/v1/merchants/m-auth/keys", None),
    ("DELETE", "/v1/merchants/m-auth/keys/key_x", None),
    ("POST", "/v1/tokens", {"role": "auditor"}),
    ("GET", "/v1/tokens", None),
    ("DELETE", "/v1/tokens/tok_x", None),
    ("PUT", "/v1/test/clock", {"now": "2025-01-01T00:00:00+08:00"}),
    ("GET", "/v1/test/clock", None),
    ("DELETE", "/v1/test/clock", None),
]


async def _call(service, method, path, body, headers):
    return await service.client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_admin_endpoints_refuse_missing_wrong_and_other_roles(service, method, path, body):
    issuer = await service.issuer("310000")
    gov = await service.token("gov", issuer)
    auditor = await service.token("auditor")

    missing = await _call(service, method, path, body, {})
    assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHENTICATED"
    wrong = await _call(service, method, path, body, service.auth("ve_not-a-real-token"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "UNAUTHENTICATED"
    malformed = await _call(service, method, path, body, {"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    for token in (gov, auditor):
        forbidden = await _call(service, method, path, body, service.auth(token))
        assert forbidden.status_code == 403, (token, forbidden.text)
        assert forbidden.json()["code"] == "FORBIDDEN"
        assert forbidden.headers["content-type"].startswith("application/problem+json")


async def test_admin_creates_tokens_for_each_role_and_they_work(service):
    issuer = await service.issuer("310000")
    for role, issuer_id in (("gov", issuer), ("auditor", None), ("auditor", issuer), ("admin", None)):
        body = {"role": role, **({"issuer_id": issuer_id} if issuer_id else {})}
        response = await service.client.post("/v1/tokens", json=body, headers=service.admin)
        assert response.status_code == 201, response.text
        assert response.json()["role"] == role and response.json()["token"].startswith("ve_")


@pytest.mark.parametrize(
    "body",
    [
        {"role": "gov"},  # a gov token needs an issuer
        {"role": "admin", "issuer_id": "iss_310000"},  # an admin token cannot be bound
        {"role": "root"},  # unknown role
        {"role": "gov", "issuer_id": "iss_999999"},  # unknown issuer
    ],
)
async def test_bad_token_requests_are_refused(service, body):
    await service.issuer("310000")
    response = await service.client.post("/v1/tokens", json=body, headers=service.admin)
    assert response.status_code in (404, 422), response.text
    assert response.json()["code"] in ("VALIDATION_ERROR", "NOT_FOUND")


async def test_tokens_are_stored_hashed_never_in_clear(service):
    token = await service.token("auditor")
    async with service.state.engine.connect() as conn:
        stored = (await conn.execute(sa.select(api_tokens.c.token_sha256))).scalars().all()
        dump = str((await conn.execute(sa.select(api_tokens))).all())
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in dump


async def test_issuer_registration(service):
    created = await service.client.post(
        "/v1/issuers", json={"name": "Shanghai", "region_code": "310000"}, headers=service.admin
    )
    assert created.status_code == 201
    assert created.json()["id"] == "iss_310000" and created.json()["fiscal_account"] == "fiscal:iss_310000"
    again = await service.client.post(
        "/v1/issuers", json={"name": "Shanghai", "region_code": "310000"}, headers=service.admin
    )
    assert again.status_code == 409 and again.json()["code"] == "CONFLICT"
    bad = await service.client.post("/v1/issuers", json={"name": "x", "region_code": "31"}, headers=service.admin)
    assert bad.status_code == 422
    listed = await service.client.get("/v1/issuers?limit=1", headers=service.admin)
    assert [item["id"] for item in listed.json()["items"]] == ["iss_310000"]
