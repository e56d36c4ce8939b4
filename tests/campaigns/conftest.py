"""Fixtures of the campaign tests (helpers are in campaign_helpers.py)."""

from __future__ import annotations

import pytest_asyncio
from campaign_helpers import Gov, make_gov, set_clock


@pytest_asyncio.fixture(loop_scope="session")
async def shanghai(service) -> Gov:
    """The Shanghai government, with the central government registered too; business time mid-January 2025."""
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    return await make_gov(service, "310000", register=("000000",))
