"""Request-body size limits, enforced as bytes arrive (a lying or absent Content-Length cannot get around them)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voucher_engine.api.problems import problem_document


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies above a limit with 413 problem+json; paths ending in a listed suffix get a larger limit."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, large_bytes: int, large_suffixes: tuple[str, ...]):
        self.app = app
        self.default_bytes = default_bytes
        self.large_bytes = large_bytes
        self.large_suffixes = large_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large_bytes if scope["path"].endswith(self.large_suffixes) else self.default_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = orjson.dumps(problem_document("PAYLOAD_TOO_LARGE", f"The body is larger than {limit} bytes."))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
