"""Fixtures of the statistics tests: the redemption tests' world (issuers, merchants, signing tills)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redemption"))

from redemption_world import ISSUER_REGIONS, MERCHANTS, Till, World

EXTRA_MERCHANTS = {"jingan-bar": ("5813", "310106", []), "pudong-fastfood": ("5814", "310115", [])}


@pytest_asyncio.fixture(loop_scope="session")
async def world(service) -> World:
    w = World(service)
    for region in ISSUER_REGIONS:
        issuer_id = await service.issuer(region)
        w.gov[region] = await service.token("gov", issuer_id)
    for merchant_id, (mcc, region, tags) in {**MERCHANTS, **EXTRA_MERCHANTS}.items():
        await service.merchant(merchant_id, mcc=mcc, region_code=region, tags=tags)
        key = await service.pos_key(merchant_id)
        w.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    return w
