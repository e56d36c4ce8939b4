"""Issue 14, item 4: the OpenAPI document describes every operation for an integrator, and /docs works offline.

Every operation must be documented through `api.openapi.operation(...)` (summary, description, an example answer,
an example request where it takes a body, the error codes of its own); this test fails for any that is not, so a
new endpoint cannot land undocumented. Security is stated as schemes, not as optional header parameters.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from voucher_engine.api.app import create_app
from voucher_engine.config import Settings
from voucher_engine.errors import ALL_CODES


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(database_url="postgresql://unused/unused", test_clock=True))


def _routes(app_or_router):
    """Every API route, including those of included routers (which newer FastAPI keeps nested)."""
    for route in app_or_router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router)


def test_every_operation_is_documented_with_summary_examples_and_errors(app):
    missing = []
    for route in _routes(app):
        extra = route.openapi_extra or {}
        name = f"{route.endpoint.__module__}.{route.endpoint.__name__} {sorted(route.methods)} {route.path}"
        if not extra.get("x-ve-documented"):
            missing.append(f"{name}: not documented with api.openapi.operation(...)")
            continue
        if not route.summary or not route.description or len(route.description) < 20:
            missing.append(f"{name}: summary and description")
        if extra.get("x-ve-response-example") is None and route.status_code != 204:
            missing.append(f"{name}: an example answer")
        if route.body_field is not None and extra.get("x-ve-request-example") is None:
            missing.append(f"{name}: an example request")
        if "x-ve-errors" not in extra:
            missing.append(f"{name}: its error codes")
    assert not missing, "\n".join(missing)


def test_the_document_states_security_errors_and_examples(app):
    document = app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    for name, header in (
        ("veKeyId", "X-VE-Key-Id"),
        ("veTimestamp", "X-VE-Timestamp"),
        ("veNonce", "X-VE-Nonce"),
        ("veSignature", "X-VE-Signature"),
    ):
        assert schemes[name]["type"] == "apiKey" and schemes[name]["in"] == "header" and schemes[name]["name"] == header
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert len(operations) >= 46
    for path, method, op in operations:
        headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
        assert not headers & {"authorization", "x-ve-key-id", "x-ve-signature"}, (method, path)
        assert "security" in op, (method, path)
        assert op["summary"] and op.get("description"), (method, path)
        assert set(op["x-error-codes"]) <= ALL_CODES, (method, path)
        for code in op["x-error-codes"]:
            assert any(
                code in response.get("content", {}).get("application/problem+json", {}).get("examples", {})
                for response in op["responses"].values()
            ), (method, path, code)
        success = next(r for s, r in op["responses"].items() if s.startswith("2"))
        if success.get("content"):
            assert any("example" in media for media in success["content"].values()), (method, path)
        if "requestBody" in op:
            assert any("example" in media for media in op["requestBody"]["content"].values()), (method, path)
    redeem = document["paths"]["/v1/redemptions"]["post"]
    assert redeem["security"] == [{"veKeyId": [], "veTimestamp": [], "veNonce": [], "veSignature": []}]
    assert {"IDEMPOTENCY_CONFLICT", "VOUCHER_ALREADY_REDEEMED", "RULE_NOT_SATISFIED", "BAD_SIGNATURE"} <= set(
        redeem["x-error-codes"]
    )
    assert document["paths"]["/v1/campaigns"]["post"]["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


async def test_docs_pages_load_nothing_from_other_hosts(service):
    """Served: /docs and /redoc name only this server's assets, and the assets are there."""
    for page in ("/docs", "/redoc"):
        response = await service.client.get(page)
        assert response.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", response.text)
        urls = [a or b for a, b in urls]
        assert urls, page
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url}"
            if url != "/openapi.json":
                asset = await service.client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "https://" not in (await service.client.get("/docs")).text
    assert "fonts.googleapis" not in (await service.client.get("/redoc")).text
