"""Helpers of the reliability suite: the redemption tests' world (issuers, merchants, signed tills, campaigns from
the reference contracts), the app's routes, a real multi-worker server over a test database, and the books check
every suite ends with.

A module of its own (test modules cannot import from a conftest: every test folder's conftest is "conftest"), which
loads the shared conftests by path under names of their own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from voucher_engine.db.engine import plain_url

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def _load(name: str, path: Path):
    """A conftest module, loaded once by path under a name of its own."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _first(*candidates: tuple[str, Path]):
    """The first of these modules that exists (the shared helpers have lived in conftests and in modules of their
    own; either way works)."""
    for name, path in candidates:
        if path.exists():
            return _load(name, path)
    raise ImportError(f"none of {[str(path) for _, path in candidates]}")


_TESTS = ROOT / "tests"
_support = _first(
    ("ve_reliability_service_support", _TESTS / "service_support.py"),
    ("ve_reliability_root_conftest", _TESTS / "conftest.py"),
)
_redemption = _first(
    ("ve_reliability_redemption_world", _TESTS / "redemption" / "redemption_world.py"),
    ("ve_reliability_redemption_conftest", _TESTS / "redemption" / "conftest.py"),
)

start_service = _support.start_service
World = _redemption.World
Till = _redemption.Till
holder = _redemption.holder
ISSUER_REGIONS = _redemption.ISSUER_REGIONS
MERCHANTS = _redemption.MERCHANTS
WALLET = _redemption.WALLET
OTHER_WALLET = _redemption.OTHER_WALLET


async def build_world(service) -> Any:
    """The redemption tests' world: every issuer with a gov token, every merchant with a signed till."""
    world = World(service)
    for region in ISSUER_REGIONS:
        issuer_id = await service.issuer(region)
        world.gov[region] = await service.token("gov", issuer_id)
    for merchant_id, (mcc, region, tags) in MERCHANTS.items():
        await service.merchant(merchant_id, mcc=mcc, region_code=region, tags=tags)
        key = await service.pos_key(merchant_id)
        world.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    return world


# -- databases ----------------------------------------------------------------------------------------------------


async def admin_sql(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(plain_url(server_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_url: str, template: str) -> tuple[str, str]:
    """A fresh copy of the migrated template: answers (name, url)."""
    from sqlalchemy.engine import make_url

    name = f"ve_r_{uuid.uuid4().hex[:12]}"
    await admin_sql(server_url, f"CREATE DATABASE {name} TEMPLATE {template}")
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    await admin_sql(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- routes -------------------------------------------------------------------------------------------------------


def routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, HEAD aside, walking included routers however FastAPI nests them."""
    found: set[tuple[str, str]] = set()

    def walk(items) -> None:
        for route in items:
            if hasattr(route, "effective_route_contexts"):  # FastAPI >= 0.16x keeps included routers nested
                walk(route.effective_route_contexts())
                continue
            if hasattr(route, "routes") and not hasattr(route, "methods"):  # a mounted sub-application
                walk(route.routes)
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, route.path))

    walk(app.routes)
    return found


# -- a real server ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RealServer:
    """`voucher-engine serve --workers N --test-clock` over an existing database and data directory (the same server
    secret as the in-process service, so codes and POS keys made there verify here)."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        workers: int = 2,
        pool_size: int = 10,
        extra_env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VE_") and k != "DATABASE_URL"}
        env.update(
            DATABASE_URL=database_url, VE_DATA_DIR=str(data_dir), VE_DB_POOL_SIZE=str(pool_size), **(extra_env or {})
        )
        # The server's log goes to a file beside its data directory (read it when a test fails: VE_KEEP_LOGS).
        self.log_path = Path(data_dir).parent / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voucher_engine.cli",
                "serve",
                "--workers",
                str(workers),
                "--port",
                str(self.port),
                "--test-clock",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1) as http:
            while True:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self.process.poll() is not None:
                    raise AssertionError(self.log()[-3000:])
                if time.monotonic() > deadline:
                    raise AssertionError("the server did not become ready")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        if os.environ.get("VE_KEEP_LOGS"):
            print(f"server log: {self.log_path}")


# -- the books ----------------------------------------------------------------------------------------------------

from reliability_books import books_problems  # noqa: E402  (shared with loadtest/crash.py)


async def assert_books_balance(database_url: str) -> None:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        problems = await books_problems(conn)
    finally:
        await conn.close()
    assert problems == {}, problems


async def reconciliations(
    client: httpx.AsyncClient, auditor_headers: dict[str, str], campaign_ids: list[str]
) -> dict[str, dict]:
    """GET /v1/ledger/campaigns/{id}/reconciliation for each campaign, as an auditor sees it."""
    out = {}
    for campaign_id in campaign_ids:
        response = await client.get(f"/v1/ledger/campaigns/{campaign_id}/reconciliation", headers=auditor_headers)
        assert response.status_code == 200, response.text
        out[campaign_id] = response.json()
    return out
