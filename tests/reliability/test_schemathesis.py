"""Schemathesis against the served OpenAPI: every operation, valid credentials for its role, inputs generated from
the schema (valid and invalid ones). No answer may be a 5xx, and every answer must match the document: a
documented status, the documented content type, a body that matches its schema.

It runs against a real `voucher-engine serve --workers 2` over a seeded database (issuers, merchants with POS keys,
an active campaign with vouchers and a redemption), signing POS requests as a till does. The number of examples
per operation is bounded to keep CI fast: `VE_SCHEMATHESIS_EXAMPLES` (default 20) raises it for a longer run.
"""

from __future__ import annotations

import os

import hypothesis
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import strategies as st
from reliability_helpers import RealServer, build_world, create_database, drop_database, holder, start_service
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from voucher_engine.merchants.client import signed_headers

EXAMPLES = int(os.environ.get("VE_SCHEMATHESIS_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Figures for RELIABILITY.md (printed at the end of the module).
FIGURES = {"cases": 0, "5xx": 0}


class PosSignature(requests.auth.AuthBase):
    """Signs each prepared request exactly as sent (method, path with query, body bytes)."""

    def __init__(self, key_id: str, secret: str):
        self.key_id = key_id
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = signed_headers(self.key_id, self.secret, request.method, request.path_url, body)
        for name in ("X-VE-Key-Id", "X-VE-Timestamp", "X-VE-Nonce", "X-VE-Signature"):
            request.headers[name] = headers[name]
        return request


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(server_url, template_database, tmp_path_factory):
    """A seeded database, and a real two-worker server over it: (base_url, sessions by role)."""
    name, url = await create_database(server_url, template_database)
    data_dir = tmp_path_factory.mktemp("schemathesis") / "data"
    service, close = await start_service(url, data_dir, test_clock=True)
    server = None
    try:
        world = await build_world(service)
        await world.set_clock("2025-01-15T12:00:00+08:00")
        wallets = [f"6800000000000{n:03d}" for n in range(5)]
        campaign = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
        till = world.tills["xuhui-noodles"]
        paid = await till.redeem(await world.code(campaign, wallets[0]), 12000, wallet=wallets[0])
        assert paid.status_code == 201, paid.text
        # Bearer tokens go in as explicit headers, over any Authorization the case generated; tills sign each
        # prepared request, over any X-VE-* headers the case generated.
        sessions = {}
        for role, token in (
            ("admin", service.admin_token),
            ("gov", world.gov["310000"]),
            ("auditor", await service.token("auditor")),
        ):
            sessions[role] = (requests.Session(), {"Authorization": f"Bearer {token}"})
        merchant = requests.Session()
        merchant.auth = PosSignature(till.key_id, till.secret)
        sessions["merchant"] = (merchant, {})
        server = RealServer(url, data_dir, workers=2)
        await server.ready()
        yield server.base_url, sessions
    finally:
        if server is not None:
            server.stop()
        await close()
        await drop_database(server_url, name)
        print(f"\nschemathesis: {FIGURES['cases']} cases, {FIGURES['5xx']} answers 5xx")


def _document() -> dict:
    """The OpenAPI document the app serves (built without a database; the served one is checked to be equal)."""
    from voucher_engine.api.app import create_app
    from voucher_engine.config import Settings

    return create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused", test_clock=True)).openapi()


DOCUMENT = _document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
)


def role_for(path: str) -> str:
    """The role whose credentials an operation is called with: the one it is for."""
    if path.startswith(("/v1/redemptions", "/v1/pos/")):
        return "merchant"
    if path.startswith("/v1/ledger/"):
        return "auditor"
    if path.startswith(("/v1/campaigns", "/v1/contracts", "/v1/issuances", "/v1/wallets")):
        return "gov"
    return "admin"


def test_the_served_document_is_the_apps(served):
    base_url, _ = served
    assert requests.get(f"{base_url}/openapi.json", timeout=10).json() == DOCUMENT


# Found by this suite in code this suite may not change (ledger/, campaigns/): kept failing on purpose (strict), so
# that fixing the code turns them into an unexpected pass and the mark is removed.
KNOWN: dict[tuple[str, str], str] = {}


def _param(method: str, path: str):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN[(method, path)])] if (method, path) in KNOWN else []
    return pytest.param(method, path, marks=marks, id=f"{method} {path}")


@pytest.mark.parametrize(("method", "path"), [_param(m, p) for m, p in OPERATIONS])
def test_every_operation_conforms_and_never_answers_5xx(method, path, served):
    base_url, sessions = served
    session, headers = sessions[role_for(path)]
    operation = SCHEMA[path][method]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    def run(case):
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        FIGURES["cases"] += 1
        if response.status_code >= 500:
            FIGURES["5xx"] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
