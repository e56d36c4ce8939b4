"""Fixtures of the settlement tests (helpers in settlement_world.py)."""

from __future__ import annotations

import pytest_asyncio
from settlement_world import build


@pytest_asyncio.fixture(loop_scope="session")
async def sw(service):
    """Issuers, auditor, and four Shanghai restaurants with tills (one to be held)."""
    return await build(service)
