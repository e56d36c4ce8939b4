"""One bad claim never fails its neighbours (issue 12): the micro-batcher that claims share with redemption runs a
failed batch again one claim at a time, and text PostgreSQL cannot hold is refused as the caller's mistake."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from campaign_helpers import make_gov, policy, set_clock, wallet

from voucher_engine.auth import service as auth_service
from voucher_engine.campaigns import claims
from voucher_engine.campaigns.endpoints import BATCHER_KEY
from voucher_engine.errors import EngineError


def _county_fair(quantity: int) -> str:
    source = policy("county-fair-rural").replace("budget ¥100,000", f"budget ¥{quantity * 10}")
    return source.replace(
        "distribution first come", f"quantity {quantity}\nlimit 1 per holder\ndistribution first come"
    )


async def _issued_and_left(service, campaign_id: str) -> tuple[int, int]:
    async with service.state.engine.connect() as conn:
        issued = (
            await conn.execute(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": campaign_id})
        ).scalar_one()
        left = (
            await conn.execute(
                sa.text("SELECT sum(remaining) FROM claim_stock WHERE campaign_id = :c"), {"c": campaign_id}
            )
        ).scalar_one()
    return issued, left


async def test_forty_concurrent_claims_with_every_fourth_carrying_a_nul_fail_only_the_bad_ones(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(_county_fair(100))
    path = f"/v1/campaigns/{campaign['id']}/claims"
    bodies = [
        {"wallet_id": wallet(7_000 + n), "attributes": {"note": "bad\u0000" if n % 4 == 3 else "fine"}}
        for n in range(40)
    ]
    responses = await asyncio.gather(*(service.client.post(path, json=b, headers=zhejiang.headers) for b in bodies))
    for n, response in enumerate(responses):
        if n % 4 == 3:
            assert response.status_code == 422, (n, response.status_code, response.text)
            assert response.json()["code"] == "VALIDATION_ERROR"
        else:
            assert response.status_code == 201, (n, response.status_code, response.text)
            assert response.json()["wallet_id"] == bodies[n]["wallet_id"]
    assert await _issued_and_left(service, campaign["id"]) == (30, 70)


async def test_a_claim_the_database_refuses_fails_alone_in_its_batch(service):
    """Past the HTTP checks (called as the endpoints call it), every fourth claim carries an id_hash the database
    cannot store, so each batch that holds one fails in PostgreSQL; the batcher runs that batch again claim by claim."""
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(_county_fair(100))
    state = service.state
    # A live token's subject: claims check in their batch that the token is still live (not revoked).
    async with state.engine.connect() as conn:
        subject = await auth_service.authenticate(conn, zhejiang.headers["Authorization"])
    assert subject.role == "gov" and subject.issuer_id == campaign["issuer_id"]

    async def one(n: int) -> bytes | BaseException:
        id_hash = f"person{n}\u0000" if n % 4 == 3 else f"person{n}"
        try:
            return await claims.claim(
                state, state.extras[BATCHER_KEY], subject, campaign["id"], wallet(8_000 + n), id_hash, {}
            )
        except Exception as exc:  # noqa: BLE001 - the answer is what the test looks at
            return exc

    answers = await asyncio.gather(*(one(n) for n in range(40)))
    for n, answer in enumerate(answers):
        if n % 4 == 3:
            assert isinstance(answer, EngineError) and answer.code == "VALIDATION_ERROR", (n, answer)
        else:
            assert isinstance(answer, bytes), (n, answer)
    assert await _issued_and_left(service, campaign["id"]) == (30, 70)
