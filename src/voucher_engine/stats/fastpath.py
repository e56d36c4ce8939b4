"""`GET /v1/campaigns/{id}/stats` served as a lean ASGI handler: dashboards poll it.

The FastAPI route stays registered (it describes the endpoint in the OpenAPI document and answers whatever this
handler does not take: another query string, a validation error); this handler answers the same requests the same
way — the same one statement (`service.answer`: the token, who may read, the answer from the rollups or from this
worker's cache under the campaign's rollup sequence) and the same problem+json documents — without the framework's
per-request machinery (matching over every route, dependency solving), which on the shared 2-core machine cost more
than the answer itself. api/app.py installs it in front of FastAPI, beside the claims and redemption fast paths.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Receive, Scope, Send

from voucher_engine.auth import service as auth_service
from voucher_engine.db.errors import is_database_unavailable, is_unstorable_input
from voucher_engine.errors import EngineError
from voucher_engine.stats import service
from voucher_engine.stats.schemas import Bucket
from voucher_engine.web.lean import respond, respond_problem
from voucher_engine.web.problems import UNSTORABLE_DETAIL

STATS_PATH = re.compile(r"^/v1/campaigns/([^/]{1,64})/stats$")
BUCKETS: dict[bytes, Bucket] = {b"": "day", b"bucket=day": "day", b"bucket=hour": "hour"}
ROUTE = "/v1/campaigns/{campaign_id}/stats"


class StatsFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = bucket = None
        if scope["type"] == "http" and scope["method"] == "GET":
            bucket = BUCKETS.get(scope.get("query_string", b""))
            match = STATS_PATH.match(scope["path"]) if bucket is not None else None
        if match is None or bucket is None:
            await self.app(scope, receive, send)
            return
        scope["ve.route"] = ROUTE  # api/observe.py: this request's route label
        try:
            try:
                body = await self._answer(scope, match.group(1), bucket)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # As the app's handlers answer them (web/problems.py): 503 while the database is away, 422 for
                # text it cannot store (a NUL in the id); anything else goes up as an unexpected error.
                if is_database_unavailable(exc):
                    raise EngineError("UNAVAILABLE", "The database is unreachable; try again shortly.") from None
                if is_unstorable_input(exc):
                    raise EngineError("VALIDATION_ERROR", UNSTORABLE_DETAIL) from None
                raise
            await respond(send, 200, body)
        except EngineError as exc:
            await respond_problem(send, exc)

    async def _answer(self, scope: Scope, campaign_id: str, bucket: Bucket) -> bytes:
        from voucher_engine.stats.endpoints import CACHE_KEY, POOL_KEY

        app: Any = scope.get("app") or self.app
        state = app.state.ve
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        body, subject = await service.answer(
            state.extras[POOL_KEY], state.extras[CACHE_KEY], authorization, campaign_id, bucket
        )
        scope["ve.role"] = subject.role
        await auth_service.touch_remembered(state.engine, subject.token_id)
        return body
