"""The risk tests' world: the settlement tests' restaurants, tills and dining campaign, and helpers to read flags
and decide on them the way a reviewer would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_sw = _load("ve_risk_settlement_world", Path(__file__).resolve().parents[1] / "settlement" / "settlement_world.py")
build_settlement = _sw.build
assert_verified = _sw.assert_verified
DINING = _sw.DINING
SUBSIDY = _sw.SUBSIDY


async def flags(world, headers=None, **filters) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v is not None)
    answer = await world.service.client.get(f"/v1/risk/flags?{query}", headers=headers or world.service.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def decide(world, flag_id: str, decision: str, headers=None, expect: int = 200, note: str = "reviewed") -> dict:
    answer = await world.service.client.post(
        f"/v1/risk/flags/{flag_id}/decision",
        json={"decision": decision, "note": note},
        headers=headers or world.service.admin,
    )
    assert answer.status_code == expect, answer.text
    return answer.json()


async def merchant(world, merchant_id: str) -> dict:
    answer = await world.service.client.get(f"/v1/merchants/{merchant_id}", headers=world.service.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()
