"""First-come claims under a burst: exactly the quantity, never over a holder's limit, no oversell."""

from __future__ import annotations

import asyncio
import collections
import random

import pytest_asyncio
import sqlalchemy as sa
from campaign_helpers import make_gov, policy, set_clock, wallet


def county_fair(quantity: int, limit: int = 1) -> str:
    source = policy("county-fair-rural").replace("budget ¥100,000", f"budget ¥{quantity * 10}")
    source = source.replace(
        "distribution first come", f"quantity {quantity}\nlimit {limit} per holder\ndistribution first come"
    )
    return source


@pytest_asyncio.fixture(loop_scope="session")
async def burst_service(database_url, tmp_path):
    """Two workers of the app over one database (as `serve --workers 2` runs them), each with its own pools and
    claim batcher, so that claims race in the database from independent workers."""
    from campaign_helpers import start_service

    first, close_first = await start_service(database_url, tmp_path / "data", test_clock=True, db_pool_size=10)
    second, close_second = await start_service(database_url, tmp_path / "data", test_clock=True, db_pool_size=10)
    first.other = second
    try:
        yield first
    finally:
        await close_second()
        await close_first()


async def test_two_thousand_concurrent_claims_for_five_hundred_vouchers(burst_service):
    service = burst_service
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(county_fair(500, limit=2))
    # 2,000 claims: 1,200 people with one wallet each, and 100 people who claim from 8 wallets each.
    claims = [{"wallet_id": wallet(n), "id_hash": f"p{n}"} for n in range(1200)]
    claims += [{"wallet_id": wallet(100_000 + 8 * p + w), "id_hash": f"multi{p}"} for p in range(100) for w in range(8)]
    random.Random(7).shuffle(claims)
    assert len(claims) == 2000
    path = f"/v1/campaigns/{campaign['id']}/claims"
    # All 2,000 start together; at most 256 are in flight in the one test process at a time (as a load balancer
    # would hold them), which keeps every claims connection of the database busy at once.
    gate = asyncio.Semaphore(256)

    clients = [service.client, service.other.client]

    async def claim(index, body):
        async with gate:
            return await clients[index % 2].post(path, json=body, headers=zhejiang.headers)

    responses = await asyncio.gather(*(claim(i, body) for i, body in enumerate(claims)))
    codes = collections.Counter(r.json().get("code", "OK") if r.status_code != 201 else "OK" for r in responses)
    assert codes["OK"] == 500, codes
    assert set(codes) <= {"OK", "SOLD_OUT", "HOLDER_LIMIT"}, codes
    async with service.state.engine.connect() as conn:
        count = (
            await conn.execute(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": campaign["id"]})
        ).scalar_one()
        worst = (
            await conn.execute(
                sa.text(
                    "SELECT max(n) FROM (SELECT count(*) AS n FROM vouchers WHERE campaign_id = :c GROUP BY holder_key) x"
                ),
                {"c": campaign["id"]},
            )
        ).scalar_one()
        stock = (
            await conn.execute(
                sa.text("SELECT sum(remaining), min(remaining) FROM claim_stock WHERE campaign_id = :c"),
                {"c": campaign["id"]},
            )
        ).one()
    assert count == 500 and worst <= 2 and stock == (0, 0)
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 500
    totals = (await zhejiang.campaign(campaign["id"]))["totals"]
    assert totals["vouchers_issued"] == 500 and totals["issued_fen"] == 500 * 1000
    again = await zhejiang.post(path, {"wallet_id": wallet(999_999)})
    assert again.status_code == 409 and again.json()["code"] == "SOLD_OUT"


async def test_claim_answers(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.create(county_fair(3))
    path = f"/v1/campaigns/{campaign['id']}/claims"
    not_active = await zhejiang.post(path, {"wallet_id": wallet(1)})
    assert not_active.status_code == 409 and not_active.json()["code"] == "CAMPAIGN_NOT_ACTIVE"
    await zhejiang.move(campaign["id"], "fund")
    await zhejiang.move(campaign["id"], "activate")
    first = await zhejiang.post(path, {"wallet_id": wallet(1), "id_hash": "alice"})
    assert first.status_code == 201, first.text
    voucher = first.json()
    assert voucher["status"] == "issued" and voucher["wallet_id"] == wallet(1) and voucher["code"].startswith("V1")
    assert voucher["valid_until"].startswith("2026-01-01T00:00:00+08:00")
    other_wallet = await zhejiang.post(path, {"wallet_id": wallet(2), "id_hash": "alice"})
    assert other_wallet.status_code == 409 and other_wallet.json()["code"] == "HOLDER_LIMIT"
    await zhejiang.move(campaign["id"], "pause")
    paused = await zhejiang.post(path, {"wallet_id": wallet(3)})
    assert paused.json()["code"] == "CAMPAIGN_NOT_ACTIVE"
    await zhejiang.move(campaign["id"], "activate")
    assert (await zhejiang.post(path, {"wallet_id": wallet(3)})).status_code == 201
    assert (await zhejiang.post(path, {"wallet_id": wallet(4)})).status_code == 201
    sold_out = await zhejiang.post(path, {"wallet_id": wallet(5)})
    assert sold_out.status_code == 409 and sold_out.json()["code"] == "SOLD_OUT"
    bad = await zhejiang.post(path, {"wallet_id": "not-a-wallet"})
    assert bad.status_code == 422
    shanghai = await make_gov(service, "310000")
    assert (await shanghai.post(path, {"wallet_id": wallet(6)})).status_code == 404


async def test_claims_check_holder_conditions_with_explain(service):
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    shanghai = await make_gov(service, "310000")
    from campaign_helpers import dining

    campaign = await shanghai.active(dining(distribution="first come", quantity="10"))
    response = await shanghai.post(
        f"/v1/campaigns/{campaign['id']}/claims",
        {"wallet_id": wallet(1), "attributes": {"age": 16, "residence_region": "310104"}},
    )
    assert response.status_code == 422 and response.json()["code"] == "NOT_ELIGIBLE"
    explain = response.json()["explain"]
    assert explain[0]["rule"] == "age >= 18" and explain[0]["line"] > 0
    # The rule and what it needs, never the holder's value (issue 18: error details carry no attribute values).
    assert "actual" not in explain[0] and "16" not in response.text


async def test_close_stops_claims_and_revokes(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(county_fair(10))
    path = f"/v1/campaigns/{campaign['id']}/claims"
    for n in range(4):
        assert (await zhejiang.post(path, {"wallet_id": wallet(n)})).status_code == 201
    closed = await zhejiang.move(campaign["id"], "close")
    assert closed["totals"]["vouchers_revoked"] == 4
    assert closed["totals"]["returned_fen"] == closed["totals"]["funded_fen"] == 10_000
    after = await zhejiang.post(path, {"wallet_id": wallet(9)})
    assert after.json()["code"] == "CAMPAIGN_NOT_ACTIVE"


async def test_the_claims_fast_path_answers_as_the_route_does(service):
    """The lean ASGI handler (fastpath.py) gives the same answers as the FastAPI route, wrapped around the app."""
    import httpx

    from voucher_engine.campaigns.fastpath import ClaimsFastPath

    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(county_fair(2))
    path = f"/v1/campaigns/{campaign['id']}/claims"
    fast = httpx.AsyncClient(transport=httpx.ASGITransport(app=ClaimsFastPath(service.app)), base_url="http://t")
    try:
        first = await fast.post(path, json={"wallet_id": wallet(1)}, headers=zhejiang.headers)
        assert first.status_code == 201 and first.json()["wallet_id"] == wallet(1)
        again = await fast.post(path, json={"wallet_id": wallet(1)}, headers=zhejiang.headers)
        assert again.status_code == 409 and again.json()["code"] == "HOLDER_LIMIT"
        assert again.headers["content-type"] == "application/problem+json"
        bad = await fast.post(path, json={"wallet_id": "x"}, headers=zhejiang.headers)
        assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
        broken = await fast.post(path, content=b"{", headers=zhejiang.headers)
        assert broken.status_code == 400
        nobody = await fast.post(path, json={"wallet_id": wallet(2)})
        assert nobody.status_code == 401 and nobody.json()["code"] == "UNAUTHENTICATED"
        auditor = await service.token("auditor")
        assert (await fast.post(path, json={"wallet_id": wallet(2)}, headers=service.auth(auditor))).status_code == 403
        other = await fast.post(
            "/v1/campaigns/cmp_0000000000000000/claims", json={"wallet_id": wallet(2)}, headers=zhejiang.headers
        )
        assert other.status_code == 404
        assert (await fast.post(path, json={"wallet_id": wallet(2)}, headers=zhejiang.headers)).status_code == 201
        sold = await fast.post(path, json={"wallet_id": wallet(3)}, headers=zhejiang.headers)
        assert sold.json()["code"] == "SOLD_OUT"
        assert (await fast.get("/healthz")).status_code == 200  # everything else goes on to the app
    finally:
        await fast.aclose()


async def _claim_batch(service, campaign_id: str, holders: list[tuple[str, str | None]], limit: int) -> list[str]:
    """One call of the claims function (migrations 0006, 0012) with a batch of (wallet, id_hash), as a batcher sends
    it (no attestations)."""
    from datetime import datetime, timezone

    import asyncpg

    from voucher_engine.db.engine import plain_url

    now = datetime(2025, 3, 1, 2, tzinfo=timezone.utc)
    until = datetime(2026, 1, 1, tzinfo=timezone.utc)
    conn = await asyncpg.connect(plain_url(service.settings.database_url))
    try:
        return await conn.fetchval(
            "SELECT campaign_claims($1, $2, $3, $4, $5, 0, $6, $7, $8, 1000, $9::text[], $10::bytea[], $11::text[])",
            campaign_id,
            [f"vch_{i:032x}" for i in range(len(holders))],
            [w for w, _ in holders],
            [h for _, h in holders],
            limit,
            [now] * len(holders),
            [now] * len(holders),
            [until] * len(holders),
            [None] * len(holders),
            [None] * len(holders),
            [None] * len(holders),
        )
    finally:
        await conn.close()


async def test_one_batch_is_decided_in_arrival_order_with_its_own_holders_counted(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    two = await zhejiang.active(county_fair(2, limit=2))
    # Alice's third claim is over her limit once her first two have their units; Bob finds the stock gone.
    alice, bob = (wallet(1), "alice"), (wallet(2), None)
    assert await _claim_batch(service, two["id"], [alice, alice, alice, bob], 2) == [
        "OK",
        "OK",
        "HOLDER_LIMIT",
        "SOLD_OUT",
    ]
    one = await zhejiang.active(county_fair(1, limit=1))
    # Carol's first claim gets no unit, so her second is not over the limit: it is sold out like the first.
    carol = (wallet(3), "carol")
    assert await _claim_batch(service, one["id"], [bob, carol, carol], 1) == ["OK", "SOLD_OUT", "SOLD_OUT"]
    # A batch larger than any one stock row takes its units from several rows; none goes below zero.
    many = await zhejiang.active(county_fair(300))
    results = await _claim_batch(service, many["id"], [(wallet(100 + n), None) for n in range(310)], 1)
    assert results == ["OK"] * 300 + ["SOLD_OUT"] * 10
    async with service.state.engine.connect() as conn:
        stock = (
            await conn.execute(
                sa.text("SELECT count(*), sum(remaining), min(remaining) FROM claim_stock WHERE campaign_id = :c"),
                {"c": many["id"]},
            )
        ).one()
        held = (
            await conn.execute(
                sa.text("SELECT count(*), count(DISTINCT holder_key) FROM vouchers WHERE campaign_id = :c"),
                {"c": many["id"]},
            )
        ).one()
    assert stock[0] > 1 and stock[1:] == (0, 0) and held == (300, 300)
    await zhejiang.move(many["id"], "pause")
    assert await _claim_batch(service, many["id"], [(wallet(999), None)], 1) == ["CAMPAIGN_NOT_ACTIVE"]
