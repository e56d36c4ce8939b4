"""Hostile bodies get a problem+json 4xx, never a 500 and never a half-done change."""

import json

import pytest

MERCHANT = {"name": "m", "mcc": "5812", "region_code": "310104", "settlement_wallet": "0000000000000001", "tags": []}


def _is_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document = response.json()
    assert {"type", "title", "status", "detail", "code"} <= document.keys()
    return document


async def test_oversized_body_is_413(service):
    huge = json.dumps({"name": "x" * (2 << 20), "region_code": "310000"})
    response = await service.client.post(
        "/v1/issuers", content=huge, headers={**service.admin, "Content-Type": "application/json"}
    )
    assert _is_problem(response, 413)["code"] == "PAYLOAD_TOO_LARGE"


async def test_oversized_body_without_content_length_is_413(service):
    async def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = await service.client.post(
        "/v1/issuers", content=chunks(), headers={**service.admin, "Content-Type": "application/json"}
    )
    assert _is_problem(response, 413)["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"[1,2", b'{"name": "x", "region_code": }'])
async def test_malformed_json_is_400(service, raw):
    response = await service.client.post(
        "/v1/issuers", content=raw, headers={**service.admin, "Content-Type": "application/json"}
    )
    assert _is_problem(response, 400)["code"] == "VALIDATION_ERROR"


async def test_deeply_nested_json_is_refused_cleanly(service):
    deep = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b', "region_code": "310000"}'
    response = await service.client.post(
        "/v1/issuers", content=deep, headers={**service.admin, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["code"] in ("VALIDATION_ERROR", "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {"name": "x"},
        {"name": "x", "region_code": 310000},
        {"name": "x", "region_code": "310000", "extra": 1},
        {"name": "x" * 201, "region_code": "310000"},
        {"name": "'; DROP TABLE issuers; --", "region_code": "31000O"},
        {"name": "\u202e\u0000evil", "region_code": "３１００００"},
    ],
)
async def test_wrong_shapes_are_422_and_change_nothing(service, body):
    response = await service.client.post("/v1/issuers", json=body, headers=service.admin)
    assert _is_problem(response, 422)["code"] == "VALIDATION_ERROR"
    listed = await service.client.get("/v1/issuers", headers=service.admin)
    assert listed.json()["items"] == []


async def test_injection_looking_names_are_stored_verbatim(service):
    name = "Robert'); DROP TABLE merchants;-- 上海\u200b"
    response = await service.client.put("/v1/merchants/bobby", json={**MERCHANT, "name": name}, headers=service.admin)
    assert response.status_code == 201
    fetched = await service.client.get("/v1/merchants/bobby", headers=service.admin)
    assert fetched.json()["name"] == name


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "cursor=%%%", "cursor=" + "a" * 600])
async def test_bad_paging_is_refused(service, query):
    response = await service.client.get(f"/v1/merchants?{query}", headers=service.admin)
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_wrong_method_is_problem_json(service):
    response = await service.client.delete("/v1/issuers", headers=service.admin)
    assert _is_problem(response, 405)["code"] == "METHOD_NOT_ALLOWED"


async def test_openapi_is_served(service):
    response = await service.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/merchants/{merchant_id}/keys" in paths and "/v1/tokens" in paths
