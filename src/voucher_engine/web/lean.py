"""What the lean ASGI handlers of the hot paths share (`redemption/fastpath.py`, `campaigns/fastpath.py`).

They answer like the FastAPI routes they stand in front of: the same problem+json documents (web/problems.py), the
same validation answers (400 for broken JSON, 422 for a wrong shape), `Retry-After` on 429 and 503.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.types import Receive, Send

from voucher_engine.errors import EngineError
from voucher_engine.web.problems import problem_document, shape_detail

JSON = [(b"content-type", b"application/json")]
PROBLEM = [(b"content-type", b"application/problem+json")]


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body (None if the client went away first); PAYLOAD_TOO_LARGE past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise EngineError("PAYLOAD_TOO_LARGE", f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]] = JSON) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def respond_problem(send: Send, exc: EngineError) -> None:
    document = problem_document(exc.code, exc.detail, **exc.extra)
    headers = PROBLEM
    if exc.code in ("RATE_LIMITED", "UNAVAILABLE"):
        # The code-guessing guard says how long; otherwise a second.
        headers = [*PROBLEM, (b"retry-after", str(exc.extra.get("retry_after_s", 1)).encode())]
    await respond(send, document["status"], orjson.dumps(document), headers)


def validation_error(exc: ValidationError) -> EngineError:
    """The document FastAPI's handler gives (web/problems.py): 400 for broken JSON, 422 for a wrong shape."""
    errors = [
        {
            "loc": ["body", *(str(part) for part in error.get("loc", ()))][:16],
            "message": str(error.get("msg", ""))[:300],
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()[:50]
    ]
    if any(error["type"] == "json_invalid" for error in errors):
        error = EngineError("VALIDATION_ERROR", "The body is not valid JSON.", errors=errors)
        error.extra["status"] = 400
        return error
    return EngineError("VALIDATION_ERROR", shape_detail(errors), errors=errors)
