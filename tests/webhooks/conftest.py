"""Fixtures of the webhook tests: the service with private receivers allowed and fast retries, a world, a receiver."""

from __future__ import annotations

import pytest_asyncio
from webhook_helpers import RETRY_BASE_S, build_world

from service_support import start_service
from voucher_engine.webhooks.receiver import Receiver


@pytest_asyncio.fixture(loop_scope="session")
async def hooked(database_url, tmp_path):
    svc, close = await start_service(
        database_url,
        tmp_path / "data",
        test_clock=True,
        webhook_allow_private=True,
        webhook_retry_base_s=RETRY_BASE_S,
    )
    try:
        yield svc
    finally:
        await close()


@pytest_asyncio.fixture(loop_scope="session")
async def hooked_world(hooked):
    return await build_world(hooked)


@pytest_asyncio.fixture(loop_scope="session")
async def receiver():
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
