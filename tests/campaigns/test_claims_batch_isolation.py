"""One bad claim never fails its neighbours: the shared micro-batcher runs a failed batch again one claim at a time."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from campaign_helpers import make_gov, policy, set_clock, wallet


def _county_fair(quantity: int) -> str:
    source = policy("county-fair-rural").replace("budget ¥100,000", f"budget ¥{quantity * 10}")
    return source.replace(
        "distribution first come", f"quantity {quantity}\nlimit 1 per holder\ndistribution first come"
    )


async def test_forty_concurrent_claims_with_every_fourth_unstorable_fail_only_the_bad_ones(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    campaign = await zhejiang.active(_county_fair(100))
    path = f"/v1/campaigns/{campaign['id']}/claims"
    # A NUL passes JSON and the holder conditions (this contract has none) but PostgreSQL cannot store it in JSONB:
    # the batch that carries it fails in the database.
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
    async with service.state.engine.connect() as conn:
        issued = (
            await conn.execute(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": campaign["id"]})
        ).scalar_one()
        left = (
            await conn.execute(
                sa.text("SELECT sum(remaining) FROM claim_stock WHERE campaign_id = :c"), {"c": campaign["id"]}
            )
        ).scalar_one()
    assert issued == 30 and left == 70
