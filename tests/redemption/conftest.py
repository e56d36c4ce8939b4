"""Fixtures for the redemption path (the helpers live in redemption_world.py)."""

from __future__ import annotations

import pytest_asyncio
from redemption_world import ISSUER_REGIONS, MERCHANTS, Till, World


@pytest_asyncio.fixture(loop_scope="session")
async def world(service) -> World:
    w = World(service)
    for region in ISSUER_REGIONS:
        issuer_id = await service.issuer(region)
        w.gov[region] = await service.token("gov", issuer_id)
    for merchant_id, (mcc, region, tags) in MERCHANTS.items():
        await service.merchant(merchant_id, mcc=mcc, region_code=region, tags=tags)
        key = await service.pos_key(merchant_id)
        w.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    return w
