"""Fixtures of the attestation tests: the campaign helpers, a gov of Shanghai and a registered attester."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "campaigns"))

from attestation_helpers import Operator, register  # noqa: E402
from campaign_helpers import Gov, make_gov, set_clock  # noqa: E402


@pytest_asyncio.fixture(loop_scope="session")
async def shanghai(service) -> Gov:
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    return await make_gov(service, "310000")


@pytest_asyncio.fixture(loop_scope="session")
async def operator(service) -> Operator:
    """Shanghai's public-data operator, with one registered key."""
    return await register(service, "Shanghai public data operator")
