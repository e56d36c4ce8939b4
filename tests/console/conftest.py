"""Fixtures of the console's browser tests: one served instance with data, and headless Chromium.

The site is built once per module over a database of its own: issuers, merchants, a Shanghai dining campaign with
redemptions on four days at three merchants (one refund), a co-funded draft, tokens for each role; then
`voucher-engine serve` runs over it on a free port and Debian's Chromium, driven by Playwright, visits it.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redemption"))

from service_support import start_service  # noqa: E402
from voucher_engine.db.engine import plain_url  # noqa: E402

CHROMIUM = os.environ.get("VE_CHROMIUM", "/usr/bin/chromium")


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; .ci/run does)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_database(server_url: str, template_database: str):
    name = f"ve_console_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(server_url))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await admin.close()
    yield _with_database(server_url, name)
    admin = await asyncpg.connect(plain_url(server_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(module_database, tmp_path_factory, chromium_path):
    """The data (built in process), then a served instance over it: answers a console_site.Site."""
    from console_site import build, serve

    data_dir = tmp_path_factory.mktemp("console-data")
    service, close = await start_service(module_database, data_dir, test_clock=True)
    try:
        site = await build(service)
    finally:
        await close()
    server, base_url = serve(module_database, data_dir)
    site.base_url = base_url
    try:
        yield site
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
