"""Fixtures of the risk tests (helpers in risk_world.py)."""

from __future__ import annotations

import pytest_asyncio
from risk_world import build_settlement


@pytest_asyncio.fixture(loop_scope="session")
async def rw(service):
    """Issuers, an auditor, four Shanghai restaurants with tills."""
    return await build_settlement(service)
