"""The FastAPI application: one per worker process, built by `create_app()` (uvicorn's factory)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from voucher_engine import __version__
from voucher_engine.api import openapi, operations, test_clock
from voucher_engine.api.limits import BodyLimitMiddleware
from voucher_engine.api.observe import Observed
from voucher_engine.attestations import endpoints as attestations_endpoints
from voucher_engine.auth import endpoints as auth_endpoints
from voucher_engine.campaigns import endpoints as campaigns_endpoints
from voucher_engine.campaigns.fastpath import ClaimsFastPath
from voucher_engine.config import Settings, get_settings
from voucher_engine.console import endpoints as console_endpoints
from voucher_engine.db import migrate
from voucher_engine.db import test_clock as shared_test_clock
from voucher_engine.db.engine import create_engine
from voucher_engine.issuers import endpoints as issuers_endpoints
from voucher_engine.ledger import endpoints as ledger_endpoints
from voucher_engine.merchants import endpoints as merchants_endpoints
from voucher_engine.merchants import signing
from voucher_engine.observability import logs, metrics
from voucher_engine.redemption import dispatch as redemption_dispatch
from voucher_engine.redemption import endpoints as redemption_endpoints
from voucher_engine.redemption import guard
from voucher_engine.redemption.fastpath import RedemptionFastPath
from voucher_engine.risk import detector as risk_detector
from voucher_engine.risk import endpoints as risk_endpoints
from voucher_engine.secrets_store import load_server_secret
from voucher_engine.settlement import endpoints as settlement_endpoints
from voucher_engine.stats import endpoints as stats_endpoints
from voucher_engine.stats.fastpath import StatsFastPath
from voucher_engine.web import problems
from voucher_engine.web.openapi import operation
from voucher_engine.web.state import AppState
from voucher_engine.webhooks import endpoints as webhooks_endpoints

log = logging.getLogger("voucher_engine")

# Paths whose bodies may be large (holder lists); every other body is held to the default limit.
LARGE_BODY_SUFFIXES = ("/issuances",)
MAINTENANCE_INTERVAL_S = 60.0
API_DESCRIPTION = """Money is integer fen; times are RFC 3339; every error is `application/problem+json` with a
stable `code` (each operation lists those it can answer). Governments, auditors and the operator use a bearer
token; merchant tills sign each request with the four `X-VE-*` headers: `X-VE-Signature` is lowercase hex
HMAC-SHA256(secret, `METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nHEX_SHA256(BODY)`). The whole contract, in
prose: `docs/api.md` in the repository."""
GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (CPython's default: 700)


# Every room's routers, in the order their paths appear in the OpenAPI document. A new room adds its line here.
ROUTERS: tuple[APIRouter, ...] = (
    issuers_endpoints.router,
    merchants_endpoints.router,
    merchants_endpoints.pos_router,
    auth_endpoints.router,
    auth_endpoints.whoami_router,
    ledger_endpoints.router,
    ledger_endpoints.public_router,
    campaigns_endpoints.router,
    redemption_endpoints.router,
    stats_endpoints.router,
    webhooks_endpoints.router,
    *settlement_endpoints.routers,
    console_endpoints.router,
    attestations_endpoints.router,
    risk_endpoints.router,
)

# Per-worker start and stop of the rooms' caches and background work, started in this order and stopped in reverse.
Hook = Callable[[AppState], Awaitable[None]]
LIFECYCLE: tuple[tuple[Hook, Hook], ...] = (
    (ledger_endpoints.startup, ledger_endpoints.shutdown),
    (campaigns_endpoints.startup, campaigns_endpoints.shutdown),
    (redemption_dispatch.startup, redemption_dispatch.shutdown),
    (risk_endpoints.startup, risk_endpoints.shutdown),
    (stats_endpoints.startup, stats_endpoints.shutdown),
    (risk_detector.startup, risk_detector.shutdown),
    (webhooks_endpoints.startup, webhooks_endpoints.shutdown),
)


SHUTDOWN_HOOK_S = 5.0  # what the stats and webhook rooms held their own stops to before


async def _maintenance(state: AppState) -> None:
    """Per-worker housekeeping: prune spent nonces and old code-guessing counts. Errors are logged, never fatal."""
    while True:
        await asyncio.sleep(MAINTENANCE_INTERVAL_S)
        try:
            async with state.engine.begin() as conn:
                await signing.prune_nonces(conn)
                await guard.prune(conn)
        except Exception:
            log.warning("nonce pruning failed; will retry", exc_info=True)


class EngineApp(FastAPI):
    """FastAPI, with the till's and the claim burst's hot paths answered in front of the framework's own stack.

    The hot paths (`redemption/fastpath.py`, `campaigns/fastpath.py`) used to sit inside FastAPI's middleware stack; every
    request then also paid for Starlette's error middleware, FastAPI's telemetry and body-limit wrappers and
    uvicorn's view of them — about a tenth of a worker's CPU per redemption in a profile. Here they come first:
    the test clock (when enabled), the body limit, then the hot paths, then FastAPI for everything else.
    """

    def install_front(self, front: ASGIApp) -> None:
        self._front = front
        # Outside everything, the error answer below included: request id, log line, metrics (api/observe.py).
        self._observed = Observed(self._answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or getattr(self, "_front", None) is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette would set; the hot paths find the worker's state through it
        await self._observed(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        try:
            await front(scope, receive, send)
        except Exception as exc:
            # In front of Starlette's error middleware: answer as it would (problem+json 500, logged). If the answer
            # had already begun, the server refuses a second one; the original error then goes up, and the server
            # closes the connection.
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            try:
                await problems.problem_response("INTERNAL", "An unexpected error occurred; it has been logged.")(
                    scope, receive, send
                )
            except Exception:  # noqa: BLE001 - the response had begun
                raise exc from None


class TestClockFollower:
    """Every worker must see the clock an admin set through any other worker, from the next request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with scope["app"].state.ve.engine.connect() as conn:
            await shared_test_clock.refresh(conn)
        await self.app(scope, receive, send)


def _front(app: EngineApp, settings: Settings) -> ASGIApp:
    """Outermost first: the test clock, the stats, claims and redemption hot paths (which hold their bodies to their own
    limits as they read them), the body limit for everything else, then the framework."""
    framework: ASGIApp = BodyLimitMiddleware(
        partial(FastAPI.__call__, app),
        default_bytes=settings.max_body_bytes,
        large_bytes=settings.max_issuance_body_bytes,
        large_suffixes=LARGE_BODY_SUFFIXES,
    )
    front = StatsFastPath(ClaimsFastPath(RedemptionFastPath(framework, max_body_bytes=settings.max_body_bytes)))
    return TestClockFollower(front) if settings.test_clock else front


def _tune_garbage_collector() -> None:
    """A worker allocates many short-lived containers per request; the cyclic collector's full passes over
    everything loaded at start (modules, routes, caches) showed up as latency spikes. Freeze what exists after
    startup so that those passes skip it, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    database_url = settings.database_url
    if database_url is None:
        raise RuntimeError("DATABASE_URL is not set: `voucher-engine serve` sets it after starting PostgreSQL")
    logs.configure(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=settings.db_pool_size)
        state = AppState(
            settings=settings,
            engine=engine,
            server_secret=load_server_secret(settings.resolved_server_secret_path),
            head_revision=migrate.head_revision(),
        )
        app.state.ve = state
        for startup, _ in LIFECYCLE:
            await startup(state)
        maintenance = asyncio.create_task(_maintenance(state))
        if settings.served:
            _tune_garbage_collector()
        try:
            yield
        finally:
            maintenance.cancel()
            for _, shutdown in reversed(LIFECYCLE):
                # Each room's stop is bounded: a stop that never ends (a pool waiting for a connection that is not
                # given back) hung the test suite's teardown; a worker must always get to the end of its stop.
                stopping = asyncio.ensure_future(shutdown(state))
                done, _ = await asyncio.wait([stopping], timeout=SHUTDOWN_HOOK_S)
                if not done:
                    log.warning("%s.shutdown did not end within %s s; going on", shutdown.__module__, SHUTDOWN_HOOK_S)
            await engine.dispose()

    app = EngineApp(
        title="Voucher engine",
        version=__version__,
        summary="Targeted consumption subsidies paid as e-CNY smart-contract vouchers.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # The docs pages are served by openapi.install, from local files instead of a CDN.
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    app.install_front(_front(app, settings))

    @app.get(
        "/healthz",
        tags=["health"],
        **operation(
            "Liveness",
            "Answers 200 while the process lives; needs nothing else (no database, no credentials).",
            response_example={"status": "ok"},
        ),
    )
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        **operation(
            "Readiness",
            "200 once the database is reachable and its schema is at this build's newest migration; otherwise 503 `UNAVAILABLE`, saying which. For load balancers.",
            response_example={"status": "ready", "schema": "0012_settlement"},
        ),
    )
    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.ve
        try:
            async with state.engine.connect() as conn:
                current = await migrate.current_revision(conn)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the database means "not ready"
            return problems.problem_response("UNAVAILABLE", f"The database is not reachable: {type(exc).__name__}.")
        if current != state.head_revision:
            return problems.problem_response("UNAVAILABLE", f"The schema is at {current}, not {state.head_revision}.")
        return JSONResponse({"status": "ready", "schema": current})

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        **operation(
            "Prometheus metrics",
            "Prometheus text format, no authentication: requests by route and status with a latency histogram, "
            "redemption outcomes by code, batch sizes, ledger sequencing lag, webhook deliveries pending and failed, "
            "escrow balance per campaign; added up across every worker process. Names and labels: "
            "docs/operations.md.",
            response_example='ve_http_requests_total{method="POST",route="/v1/redemptions",status="201"} 1024.0\n',
        ),
    )
    async def prometheus_metrics(request: Request) -> Response:
        state: AppState = request.app.state.ve
        figures = await operations.database_figures(state.engine)
        return Response(metrics.exposition(figures), media_type=CONTENT_TYPE_LATEST)

    for router in ROUTERS:
        app.include_router(router)
    if settings.test_clock:
        app.include_router(test_clock.router)
    openapi.install(app)
    return app
