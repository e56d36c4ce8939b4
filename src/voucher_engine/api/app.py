"""The FastAPI application: one per worker process, built by `create_app()` (uvicorn's factory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from voucher_engine import __version__
from voucher_engine.api import openapi, problems, test_clock
from voucher_engine.api.fastpath import RedemptionFastPath
from voucher_engine.campaigns.fastpath import ClaimsFastPath
from voucher_engine.api.limits import BodyLimitMiddleware
from voucher_engine.api.state import AppState
from voucher_engine.config import Settings, get_settings
from voucher_engine.db import migrate
from voucher_engine.db.engine import create_engine
from voucher_engine.merchants import signing
from voucher_engine.secrets_store import load_server_secret

log = logging.getLogger("voucher_engine")

# Paths whose bodies may be large (holder lists); every other body is held to the default limit.
LARGE_BODY_SUFFIXES = ("/issuances",)
MAINTENANCE_INTERVAL_S = 60.0


DOMAINS = ("issuers", "merchants", "auth", "ledger", "campaigns", "redemption")


def _endpoint_modules() -> list:
    """Each domain's `endpoints` module: its `router` (or `routers`), and optional `startup(state)` /
    `shutdown(state)` coroutines for per-worker caches and background work. Domains not written yet are skipped."""
    import importlib

    modules = []
    for name in DOMAINS:
        try:
            modules.append(importlib.import_module(f"voucher_engine.{name}.endpoints"))
        except ModuleNotFoundError as exc:
            if exc.name != f"voucher_engine.{name}.endpoints":
                raise
    return modules


async def _maintenance(state: AppState) -> None:
    """Per-worker housekeeping: prune spent nonces and old code-guessing counts. Errors are logged, never fatal."""
    from voucher_engine.redemption import guard

    while True:
        await asyncio.sleep(MAINTENANCE_INTERVAL_S)
        try:
            async with state.engine.begin() as conn:
                await signing.prune_nonces(conn)
                await guard.prune(conn)
        except Exception:  # noqa: BLE001 - housekeeping must outlive a database restart
            log.warning("nonce pruning failed; will retry", exc_info=True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    modules = _endpoint_modules()
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set: `voucher-engine serve` sets it after starting PostgreSQL")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        state = AppState(settings=settings, engine=engine,
                         server_secret=load_server_secret(settings.resolved_server_secret_path),
                         head_revision=migrate.head_revision())
        app.state.ve = state
        for module in modules:
            if hasattr(module, "startup"):
                await module.startup(state)
        maintenance = asyncio.create_task(_maintenance(state))
        try:
            yield
        finally:
            maintenance.cancel()
            for module in reversed(modules):
                if hasattr(module, "shutdown"):
                    await module.shutdown(state)
            await engine.dispose()

    app = FastAPI(
        title="Voucher engine",
        version=__version__,
        summary="Targeted consumption subsidies paid as e-CNY smart-contract vouchers.",
        lifespan=lifespan,
    )
    problems.install(app)
    # Innermost first: the hot path sees bodies only after the size limit has passed them.
    app.add_middleware(RedemptionFastPath)
    app.add_middleware(ClaimsFastPath)
    app.add_middleware(BodyLimitMiddleware, default_bytes=settings.max_body_bytes,
                       large_bytes=settings.max_issuance_body_bytes, large_suffixes=LARGE_BODY_SUFFIXES)
    if settings.test_clock:

        @app.middleware("http")
        async def follow_test_clock(request: Request, call_next):
            # Every worker must see the clock an admin set through any other worker, from the next request on.
            async with request.app.state.ve.engine.connect() as conn:
                await test_clock.refresh(conn)
            return await call_next(request)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.ve
        try:
            async with state.engine.connect() as conn:
                current = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the database means "not ready"
            return problems.problem_response("UNAVAILABLE", f"The database is not reachable: {type(exc).__name__}.")
        if current != state.head_revision:
            return problems.problem_response("UNAVAILABLE", f"The schema is at {current}, not {state.head_revision}.")
        return JSONResponse({"status": "ready", "schema": current})

    for module in modules:
        for router in getattr(module, "routers", [getattr(module, "router", None)]):
            if router is not None:
                app.include_router(router)
    if settings.test_clock:
        app.include_router(test_clock.router)
    openapi.install(app)
    return app
