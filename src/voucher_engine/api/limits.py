"""Request-body size limits, enforced as bytes arrive (a lying or absent Content-Length cannot get around them)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voucher_engine.web.problems import problem_document


class BodyLimitMiddleware:
    """Refuse bodies above a limit with 413 problem+json; paths ending in a listed suffix get a larger limit.

    The body is read here, in full and against the limit, before the app sees it: FastAPI would turn an error
    raised while it reads into a generic 400, and a client must learn that its body was too large.
    """

    def __init__(self, app: ASGIApp, *, default_bytes: int, large_bytes: int, large_suffixes: tuple[str, ...]):
        self.app = app
        self.default_bytes = default_bytes
        self.large_bytes = large_bytes
        self.large_suffixes = large_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.large_bytes if scope["path"].endswith(self.large_suffixes) else self.default_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _refuse(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
