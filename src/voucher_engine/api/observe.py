"""The outermost layer of every HTTP request: request id, the request's log line, and its metrics.

It stands in front of everything (api/app.py's EngineApp), the lean hot paths included, so that a redemption is
counted and logged like any other request. Its per-request cost is kept small on purpose (measured in
docs/operations.md): one pass over the headers, one closure, a cached pair of metric children, one buffered line.

The route label is the route's template (`/v1/redemptions/{redemption_id}`): FastAPI's matched route when the
framework answered, the path a lean handler declared in `scope["ve.route"]` otherwise, and `unmatched` for paths no
route knows (so that a scan of random paths cannot make new series). The caller's role is what the authentication
dependencies or the lean handlers put in `scope["ve.role"]`.
"""

from __future__ import annotations

import itertools
import os
import re
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voucher_engine.observability import logs
from voucher_engine.observability.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
# Answers that are not worth a log line each (scrapes and health probes are counted in the metrics all the same).
QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_PREFIX = os.urandom(4).hex()  # this process's; made again in each worker (module import happens per process)
_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique across processes and restarts without a system call per request (os.urandom showed in profiles)."""
    return f"{_PREFIX}{next(_counter) & 0xFFFFFFFF:08x}"


class Observed:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = Metrics.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        given = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                given = value
                break
        request_id = given.decode() if given is not None and _SANE_ID.match(given) else new_request_id()
        echoed = (b"x-request-id", request_id.encode())
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = logs.request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            logs.request_id_var.reset(token)
            route = scope.get("ve.route")
            if route is None:
                matched = scope.get("route")
                route = getattr(matched, "path", None) or "unmatched"
            duration = perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.request(method, route, status, duration)
            if route not in QUIET_ROUTES:
                logs.request_line(request_id, method, route, status, duration, scope.get("ve.role"))
