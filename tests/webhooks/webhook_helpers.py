"""The webhook tests' helpers: the redemption tests' world (loaded by path) and waiting for a receiver."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path

RETRY_BASE_S = 0.3  # the service of these tests retries after 0.3 s, 0.6 s, 1.2 s, ...
_PATH = Path(__file__).resolve().parents[1] / "redemption" / "redemption_world.py"
_NAME = "ve_webhooks_redemption_world"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
world_module = sys.modules[_NAME]
World, Till, holder = world_module.World, world_module.Till, world_module.holder
ISSUER_REGIONS, MERCHANTS = world_module.ISSUER_REGIONS, world_module.MERCHANTS


async def build_world(service) -> World:
    world = World(service)
    for region in ISSUER_REGIONS:
        issuer_id = await service.issuer(region)
        world.gov[region] = await service.token("gov", issuer_id)
        world.issuers = getattr(world, "issuers", {})
        world.issuers[region] = issuer_id
    for merchant_id, (mcc, region, tags) in MERCHANTS.items():
        await service.merchant(merchant_id, mcc=mcc, region_code=region, tags=tags)
        key = await service.pos_key(merchant_id)
        world.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    return world


async def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
