"""Fixtures of the reliability suite (helpers are in reliability_helpers.py)."""

from __future__ import annotations

import pytest_asyncio
from reliability_helpers import build_world


@pytest_asyncio.fixture(loop_scope="session")
async def world(service):
    """The redemption tests' world over the in-process service: issuers with gov tokens, merchants with tills."""
    return await build_world(service)
