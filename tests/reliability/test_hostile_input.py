"""Hostile input beyond tests/foundation/test_bodies.py (which covers the operator endpoints): oversized, deep and
huge bodies on the money endpoints, unicode tricks, negative and enormous amounts, injection-looking strings in
paths, queries and bodies, extreme clock settings, and contracts fuzzed through the whole HTTP lifecycle.

Every answer must be a 2xx or a problem+json 4xx: never a 5xx, and never a change made by a refused request.
"""

from __future__ import annotations

import random

import hypothesis
import orjson
import pytest
from hypothesis import strategies as st
from reliability_helpers import CONTRACTS, WALLET, assert_books_balance, holder

NOW = "2025-01-15T12:00:00+08:00"


def _refused(response, status: int | tuple[int, ...] | None = None, code: str | tuple[str, ...] | None = None):
    """A problem+json 4xx (of the given status and code when named)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code in ((status,) if isinstance(status, int) else status), response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    document = response.json()
    assert {"type", "title", "status", "detail", "code"} <= document.keys()
    if code is not None:
        assert document["code"] in ((code,) if isinstance(code, str) else code), document
    return document


@pytest.fixture
async def dining(world):
    await world.set_clock(NOW)
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET)])
    till = world.tills["xuhui-noodles"]
    paid = await till.redeem(await world.code(campaign), 12000)
    assert paid.status_code == 201, paid.text
    return campaign, paid.json()


async def _counts(service) -> tuple:
    async with service.state.engine.connect() as conn:
        row = (
            await conn.exec_driver_sql(
                "SELECT (SELECT count(*) FROM issuers), (SELECT count(*) FROM merchants), (SELECT count(*) FROM campaigns),"
                " (SELECT count(*) FROM vouchers), (SELECT count(*) FROM redemptions), (SELECT count(*) FROM refunds),"
                " (SELECT count(*) FROM ledger_transactions)"
            )
        ).one()
    return tuple(row)


# -- sizes and shapes ---------------------------------------------------------------------------------------------


async def test_oversized_deep_and_huge_bodies_on_the_money_endpoints(world, dining):
    service = world.service
    campaign, paid = dining
    till = world.tills["xuhui-noodles"]
    gov = service.auth(world.gov["310000"])
    before = await _counts(service)
    code = await world.code(campaign)

    # Over the 1 MiB limit, signed properly: refused before the signature is even looked at.
    big = {
        "voucher_code": code,
        "wallet_id": WALLET,
        "pos_txn_id": "big",
        "order_amount_fen": 12000,
        "items": [{"sku": "x" * 60, "category": "c", "amount_fen": 1, "attributes": {"k": "v" * 20_000}}] * 60,
    }
    _refused(await till.send("POST", "/v1/redemptions", big), 413, "PAYLOAD_TOO_LARGE")

    async def chunks(count: int, size: int):
        block = b" " * size
        for _ in range(count):
            yield block

    # Issuance bodies may be 64 MiB; one that keeps coming past that, without a Content-Length, is cut off.
    response = await service.client.post(
        f"/v1/campaigns/{campaign}/issuances",
        content=chunks(65, 1 << 20),
        headers={**gov, "Content-Type": "application/json"},
    )
    _refused(response, 413, "PAYLOAD_TOO_LARGE")
    # Deeply nested JSON where the money endpoints accept objects.
    deep = b'{"k": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    items = b'[{"sku": "s", "category": "c", "amount_fen": 1, "attributes": ' + deep + b"}]"
    raw = (
        b'{"voucher_code": "'
        + code.encode()
        + b'", "wallet_id": "'
        + WALLET.encode()
        + b'", "pos_txn_id": "deep", "order_amount_fen": 12000, "items": '
        + items
        + b"}"
    )
    from voucher_engine.merchants.client import signed_headers

    response = await service.client.post(
        "/v1/redemptions", content=raw, headers=signed_headers(till.key_id, till.secret, "POST", "/v1/redemptions", raw)
    )
    _refused(response, (400, 422), "VALIDATION_ERROR")
    claim = b'{"wallet_id": "6900000000000001", "attributes": ' + deep + b"}"
    response = await service.client.post(
        f"/v1/campaigns/{campaign}/claims", content=claim, headers={**gov, "Content-Type": "application/json"}
    )
    # The claims fast path holds a claim's body to 16 KiB, so this one may already be too large (413).
    _refused(response, (400, 409, 413, 422))
    # Huge lists: 10,000 order items (at most 100), 1,000,001 holders (at most 1,000,000), 10,000 attributes.
    many_items = [{"sku": f"s{i}", "category": "c", "amount_fen": 1, "attributes": {}} for i in range(10_000)]
    _refused(await till.redeem(code, 12000, items=many_items), 422, "VALIDATION_ERROR")
    holders = b'{"holders": [' + b",".join([b'{"wallet_id": "6900000000000001"}'] * 1_000_001) + b"]}"
    response = await service.client.post(
        f"/v1/campaigns/{campaign}/issuances", content=holders, headers={**gov, "Content-Type": "application/json"}
    )
    _refused(response, 422, "VALIDATION_ERROR")
    attributes = {f"a{i}": i for i in range(10_000)}
    response = await service.client.post(
        f"/v1/campaigns/{campaign}/issuances",
        json={"holders": [{"wallet_id": "6900000000000001", "attributes": attributes}]},
        headers=gov,
    )
    _refused(response, 422, "VALIDATION_ERROR")
    assert await _counts(service) == before


# -- amounts ------------------------------------------------------------------------------------------------------

AMOUNTS = [-1, 0, -(2**63), 2**63, 2**64, 10**12 + 1, 10**30, 1.5, 1e3, "100", None, True, [100], {"fen": 100}]


async def test_negative_enormous_and_mistyped_refund_amounts(world, dining):
    import json

    from voucher_engine.merchants.client import signed_headers

    _, paid = dining
    till = world.tills["xuhui-noodles"]
    path = f"/v1/redemptions/{paid['id']}/refunds"
    for amount in AMOUNTS:
        raw = json.dumps({"refund_id": "hostile-1", "amount_fen": amount, "reason": "x"}).encode()
        response = await world.service.client.post(
            path, content=raw, headers=signed_headers(till.key_id, till.secret, "POST", path, raw)
        )
        _refused(response, 422, "VALIDATION_ERROR")
    fetched = await till.send("GET", f"/v1/redemptions/{paid['id']}")
    assert fetched.json()["refunded_fen"] == 0


BUDGETS = [
    "¥-100",
    "¥0",
    "¥0.001",
    "¥99,999,999,999,999,999,999",
    "¥1e9",
    "¥NaN",
    "¥100,000,000,000.01",
    "-¥5",
    "¥ ٣٠٠",
    "￥100",
]


async def test_negative_and_enormous_contract_amounts_are_contract_errors(world):
    gov = world.service.auth(world.gov["310000"])
    for budget in BUDGETS:
        source = (
            (CONTRACTS / "shanghai-dining-2025.contract").read_text().replace("budget ¥10,000,000", f"budget {budget}")
        )
        for path in ("/v1/contracts/check", "/v1/campaigns"):
            response = await world.service.client.post(path, json={"source": source}, headers=gov)
            document = _refused(response, 422, "CONTRACT_INVALID")
            assert document["errors"] and {"line", "column", "message"} <= document["errors"][0].keys(), budget


async def test_order_amounts_at_the_edges(world, dining):
    campaign, _ = dining
    till = world.tills["xuhui-noodles"]
    code = await world.code(campaign)
    # 1 fen and the largest order accepted: answered (not eligible / eligible), never an error of ours.
    quote = await till.quote(code, 1)
    assert quote.status_code == 200 and quote.json()["eligible"] is False
    quote = await till.quote(code, 10**12)
    assert quote.status_code == 200, quote.text
    for amount in (10**12 + 1, 2**63, -5):
        _refused(await till.quote(code, amount), 422, "VALIDATION_ERROR")


# -- unicode ------------------------------------------------------------------------------------------------------

TRICKY_NAMES = [
    "Xuhui \u202eselddon\u202c",  # right-to-left override
    "Xu\u200bhui\u200d Noodles\ufeff",  # zero-width space, joiner, BOM
    "Noodles\u0301\u0301\u0301" + "\u0300" * 50,  # a stack of combining marks
    "Ｘｕｈｕｉ　麺",  # fullwidth letters and space
    "面馆 🍜👨‍👩‍👧‍👦",  # emoji and a ZWJ sequence
    "Nood\u0000les",  # NUL: not storable, must be refused
    "\ud800",  # a lone surrogate (not encodable as UTF-8)
    "x" * 200,
]


async def test_unicode_tricks_in_names_are_stored_verbatim_or_refused(service):
    for n, name in enumerate(TRICKY_NAMES):
        await _tricky_name(service, f"tricky-{n}", name)


async def _tricky_name(service, merchant_id: str, name: str) -> None:
    body = {"name": name, "mcc": "5812", "region_code": "310104", "settlement_wallet": "0000000000000001", "tags": []}
    raw = (
        orjson.dumps(body)
        if "\ud800" not in name
        else b'{"name": "\\ud800", "mcc": "5812", "region_code": "310104", "settlement_wallet": "0000000000000001"}'
    )
    response = await service.client.put(
        f"/v1/merchants/{merchant_id}", content=raw, headers={**service.admin, "Content-Type": "application/json"}
    )
    if "\u0000" in name or "\ud800" in name:
        _refused(response, (400, 422), "VALIDATION_ERROR")
        assert (await service.client.get(f"/v1/merchants/{merchant_id}", headers=service.admin)).status_code == 404
        issuer = (
            await service.client.post(
                "/v1/issuers", json={"name": name, "region_code": "440000"}, headers=service.admin
            )
            if "\u0000" in name
            else None
        )
        if issuer is not None:
            _refused(issuer, 422, "VALIDATION_ERROR")
        return
    assert response.status_code in (200, 201), response.text
    assert (await service.client.get(f"/v1/merchants/{merchant_id}", headers=service.admin)).json()["name"] == name


LOOKALIKE_IDS = [
    "xuhui-nоodles",  # a Cyrillic о
    "ＸＵＨＵＩ",
    "a/b",
    "..",
    "%2e%2e",
    "a%00b",
    "a b",
    "-lead",
    "x" * 65,
]


async def test_lookalike_and_malformed_merchant_ids(service):
    from urllib.parse import quote

    body = {"name": "x", "mcc": "5812", "region_code": "310104", "settlement_wallet": "0000000000000001"}
    for merchant_id in LOOKALIKE_IDS:
        path = f"/v1/merchants/{quote(merchant_id, safe='%')}"
        _refused(await service.client.get(path, headers=service.admin), (404, 405, 422))
        _refused(await service.client.put(path, json=body, headers=service.admin), (404, 405, 422))


async def test_unicode_in_holders_attributes_and_contract_text(world, dining):
    campaign, _ = dining
    gov = world.service.auth(world.gov["310000"])
    weird = {
        "wallet_id": "6900000000000002",
        "id_hash": "h-6900000000000002",
        "attributes": {"age": 30, "residence_region": "310104", "名字": "\u202e张三", "x\u200b": "🍜"},
    }
    response = await world.service.client.post(
        f"/v1/campaigns/{campaign}/issuances", json={"holders": [weird]}, headers=gov
    )
    assert response.status_code == 201 and response.json()["issued"] == 1, response.text
    nul = {**weird, "wallet_id": "6900000000000003", "attributes": {"age": 30, "note": "a\u0000b"}}
    response = await world.service.client.post(
        f"/v1/campaigns/{campaign}/issuances", json={"holders": [nul]}, headers=gov
    )
    assert response.status_code < 500, response.text
    source = (
        (CONTRACTS / "shanghai-dining-2025.contract")
        .read_text()
        .replace("Shanghai dining vouchers 2025", "上海\u202e餐饮\u200b券 🍜")
    )
    created = await world.service.client.post("/v1/campaigns", json={"source": source}, headers=gov)
    assert created.status_code == 201 and created.json()["name"] == "上海\u202e餐饮\u200b券 🍜", created.text
    nul_source = source.replace("上海", "上\u0000海")
    response = await world.service.client.post("/v1/campaigns", json={"source": nul_source}, headers=gov)
    _refused(response, 422)


# -- injection-looking strings ------------------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE ledger_transactions; --",
    "1; DELETE FROM vouchers",
    "$1",
    "%s",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "../../../etc/passwd",
    "<script>alert(1)</script>",
    "\\x00",
    "cmp_0000000000000000' UNION SELECT * FROM api_tokens --",
]


async def test_injection_looking_strings_in_paths_queries_and_bodies(world, dining):
    auditor = world.service.auth(await world.service.token("auditor"))
    for n, evil in enumerate(INJECTIONS):
        await _injection(world, dining, auditor, n, evil)


async def _injection(world, dining, auditor, n: int, evil: str) -> None:
    from urllib.parse import quote

    service = world.service
    campaign, paid = dining
    before = await _counts(service)
    gov = service.auth(world.gov["310000"])
    till = world.tills["xuhui-noodles"]
    q = quote(evil, safe="")
    answers = [
        await service.client.get(f"/v1/campaigns/{q}", headers=gov),
        await service.client.post(f"/v1/campaigns/{q}/close", headers=gov),
        await service.client.get(f"/v1/issuances/{q}", headers=gov),
        await service.client.get(f"/v1/ledger/transactions?campaign_id={q}", headers=auditor),
        await service.client.get(f"/v1/ledger/transactions?merchant_id={q}&voucher_id={q}", headers=auditor),
        await service.client.get(f"/v1/ledger/accounts/escrow:{q}", headers=auditor),
        await service.client.get(f"/v1/ledger/vouchers/{q}/trace", headers=auditor),
        await service.client.get(f"/v1/ledger/campaigns/{q}/reconciliation", headers=auditor),
        await service.client.get(f"/v1/ledger/export?campaign_id={q}", headers=auditor),
        await service.client.get(f"/v1/wallets/{q}/vouchers", headers=gov),
        await service.client.get(f"/v1/campaigns?cursor={q}", headers=gov),
        await till.send("GET", f"/v1/redemptions/{q}"),
        await till.send("GET", f"/v1/redemptions?pos_txn_id={q}"),
        await till.send("POST", f"/v1/redemptions/{q}/refunds", {"refund_id": "r1", "amount_fen": 1, "reason": evil}),
        await till.redeem(evil, 12000, pos_txn_id=f"inj-{n}"),
        await till.send(
            "POST",
            "/v1/redemptions",
            {
                "voucher_code": await world.code(campaign),
                "wallet_id": WALLET,
                "pos_txn_id": evil,
                "order_amount_fen": 12000,
            },
        ),
        await service.client.post(
            f"/v1/campaigns/{campaign}/claims", json={"wallet_id": evil, "attributes": {evil: evil}}, headers=gov
        ),
    ]
    for response in answers:
        assert response.status_code < 500, (response.request.url, response.text[:300])
        if response.status_code >= 400:
            _refused(response)
    # The export of no such campaign is an empty CSV or a refusal; nothing was read or written that should not be.
    assert await _counts(service) == before
    # As a refund reason (free text) it is stored verbatim.
    stored = await till.send(
        "POST", f"/v1/redemptions/{paid['id']}/refunds", {"refund_id": f"inj-r{n}", "amount_fen": 100, "reason": evil}
    )
    assert stored.status_code == 201 and stored.json()["reason"] == evil, stored.text


# -- the clock ------------------------------------------------------------------------------------------------------

CLOCKS = [
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00",
    "1970-01-01T00:00:00Z",
    "2025-02-30T00:00:00+08:00",
    "2025-01-15T12:00:00",
    "2025-01-15T12:00:00+25:00",
    "tomorrow",
    "",
]


async def test_extreme_test_clock_values_never_break_the_service(world, dining):
    for n, when in enumerate(CLOCKS):
        await _clock(world, dining, n, when)


async def _clock(world, dining, n: int, when: str) -> None:
    service = world.service
    campaign, paid = dining
    response = await service.client.put("/v1/test/clock", json={"now": when}, headers=service.admin)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _refused(response, 422)
    till = world.tills["xuhui-noodles"]
    gov = service.auth(world.gov["310000"])
    for answer in (
        await till.quote(await world.code(campaign), 12000),
        await till.send(
            "POST", f"/v1/redemptions/{paid['id']}/refunds", {"refund_id": f"clk-{n}", "amount_fen": 100, "reason": "x"}
        ),
        await service.client.get(f"/v1/campaigns/{campaign}", headers=gov),
        await service.client.get(f"/v1/wallets/{WALLET}/vouchers", headers=gov),
        await service.client.post(f"/v1/campaigns/{campaign}/pause", headers=gov),
        await service.client.post(f"/v1/campaigns/{campaign}/activate", headers=gov),
    ):
        assert answer.status_code < 500, (when, answer.text)
    await world.set_clock(NOW)
    await assert_books_balance(service.settings.database_url)


# -- contracts fuzzed through the whole lifecycle -----------------------------------------------------------------

POLICIES = sorted(path.name for path in CONTRACTS.glob("*.contract"))
# Top-level lines by keyword: a mutation swaps a contract's line for another of the same keyword (or adds one it
# lacks), so most mutants still parse and the lifecycle below gets to run them; edge values everywhere.
LINES = {
    "budget": ["budget ¥0.01", "budget ¥1", "budget ¥100,000,000,000", "budget ¥999.99"],
    "quantity": ["quantity 1", "quantity 0", "quantity 2", "quantity 999,999,999"],
    "limit": ["limit 0 per holder", "limit 1 per holder", "limit 1000 per holder"],
    "daily": ["daily cap ¥0.01", "daily cap ¥10", "daily cap ¥100,000,000,000"],
    "voucher": [
        "voucher fixed ¥0.01 off",
        "voucher fixed ¥20 off, spend ¥20",
        "voucher balance: ¥0.01",
        "voucher balance: ¥200",
        "voucher percent: 100% off, up to ¥1",
        "voucher percent: 0.01% off, up to ¥0.01",
        "voucher percent: 33.33% off, up to ¥3,000",
        "voucher threshold: spend ¥0.01, get ¥0.01 off",
        "voucher threshold: spend ¥50, get ¥10 off",
    ],
    "valid": [
        "valid for 1 days from issue",
        "valid for 100000 days from issue",
        "valid for 48 hours from issue",
        "valid from 2025-01-15 12:00 to 2025-01-15 12:00 China time",
        "valid during 2025",
        "valid from 2025-01-01 to 2099-12-31",
        "valid during 1970",
    ],
    "timezone": ['timezone "Pacific/Kiritimati"', 'timezone "Nope/Nowhere"', 'timezone "UTC"'],
    "distribution": ["distribution lottery", "distribution first come, first served", "distribution targeted"],
    "payment": [
        "payment { order.amount >= ¥0.01 }",
        "payment { payment.time >= 23:59 }",
        'payment { merchant.tags has "ecny-signed" }',
        "payment { order.amount < ¥1 }",
    ],
    "holder": ["holder { age >= 999999999999999999999 }", "holder { age >= 0 }"],
}
BLOCKS = ("funders", "holder", "payment", "items", "voucher per item")


def _top_level(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each top-level statement: a line, or a block up to its closing brace."""
    spans, at = [], 0
    while at < len(lines):
        end = at
        if lines[at].rstrip().endswith("{"):
            while end < len(lines) and lines[end].strip() != "}":
                end += 1
        if lines[at].strip() and not lines[at].lstrip().startswith("#"):
            spans.append((at, end))
        at = end + 1
    return spans


@st.composite
def mutated_contracts(draw) -> str:
    lines = (CONTRACTS / draw(st.sampled_from(POLICIES))).read_text().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        keyword = draw(st.sampled_from(sorted(LINES)))
        replacement = draw(st.sampled_from(LINES[keyword]))
        spans = [(a, b) for a, b in _top_level(lines) if lines[a].split()[0] == keyword]
        if spans:
            start, end = spans[0]
            lines[start : end + 1] = [replacement]
        else:
            lines.insert(len(lines) - 1 if lines[-1].strip() == "}" else len(lines), replacement)
    return "\n".join(lines) + "\n"


@hypothesis.settings(
    max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck)
)
@hypothesis.given(data=st.data())
async def test_fuzzed_contracts_run_their_whole_lifecycle_without_a_5xx(world_for_fuzz, data):
    """A contract the checker accepts can be created, funded, activated, issued, claimed, quoted, redeemed and
    closed without the service failing; one it refuses is a CONTRACT_INVALID with positions."""
    world = world_for_fuzz
    service = world.service
    source = data.draw(mutated_contracts())
    central = service.auth(world.gov["000000"])  # the central government may create a campaign of any region
    checked = await service.client.post("/v1/contracts/check", json={"source": source}, headers=central)
    assert checked.status_code < 500, checked.text
    if checked.status_code != 200:
        document = _refused(checked, 422, "CONTRACT_INVALID")
        assert all(error["line"] >= 1 and error["column"] >= 1 for error in document["errors"])
        return
    created = await service.client.post("/v1/campaigns", json={"source": source}, headers=central)
    assert created.status_code < 500, created.text
    if created.status_code != 201:
        _refused(created)
        return
    campaign = created.json()["id"]
    wallet = f"69{random.Random(source).randrange(10**14):014d}"
    person = {
        "wallet_id": wallet,
        "id_hash": "h" + wallet,
        "attributes": {"age": 70, "residence_region": "310104", "graduate_year": 2025},
    }
    steps = [
        ("POST", f"/v1/campaigns/{campaign}/fund", None),
        ("POST", f"/v1/campaigns/{campaign}/activate", None),
        ("POST", f"/v1/campaigns/{campaign}/issuances", {"holders": [person]}),
        ("POST", f"/v1/campaigns/{campaign}/issuances", {"lottery": {"applicants": [person], "seed": "ab" * 16}}),
        ("POST", f"/v1/campaigns/{campaign}/claims", person),
    ]
    for method, path, body in steps:
        response = await service.client.request(method, path, json=body, headers=central)
        assert response.status_code < 500, (path, response.text)
    listed = await service.client.get(f"/v1/wallets/{wallet}/vouchers", headers=central)
    assert listed.status_code == 200, listed.text
    for voucher in listed.json()["items"]:
        for till in world.tills.values():
            items = [
                {
                    "sku": "s",
                    "category": "appliance.tv",
                    "amount_fen": 500_000,
                    "attributes": {"energy_grade": 1, "trade_in_certificate": "c"},
                }
            ]
            quote = await till.quote(voucher["code"], 500_000, wallet=wallet, items=items)
            assert quote.status_code < 500, quote.text
            redeemed = await till.redeem(voucher["code"], 500_000, wallet=wallet, items=items)
            assert redeemed.status_code < 500, redeemed.text
    closed = await service.client.post(f"/v1/campaigns/{campaign}/close", headers=central)
    assert closed.status_code < 500, closed.text
    await assert_books_balance(service.settings.database_url)


async def test_a_budget_below_one_voucher_is_a_contract_error_not_a_crash(world):
    source = (CONTRACTS / "county-fair-rural.contract").read_text().replace("budget ¥100,000", "budget ¥5")
    gov = world.service.auth(world.gov["330000"])
    for path in ("/v1/contracts/check", "/v1/campaigns"):
        response = await world.service.client.post(path, json={"source": source}, headers=gov)
        _refused(response, 422, "CONTRACT_INVALID")


@pytest.fixture
async def world_for_fuzz(world):
    await world.set_clock(NOW)
    return world
