"""`POST /v1/campaigns/{id}/claims` served as a lean ASGI handler, for the burst when a round opens.

The FastAPI route stays registered (it describes the endpoint in the OpenAPI document and answers whenever this
handler is not installed); this handler answers the same requests the same way — the same bearer check (with the
claims' short per-worker memory), the same pydantic model, the same service call and problem+json documents —
without the framework's per-request machinery (matching over every route of every domain, dependency solving,
response re-validation), which profiling showed to cost several times the claim's own work.

api/app.py installs it in front of FastAPI's middleware stack, after the test clock and the body limit, next to the
redemption fast path (`EngineApp`). Anything it does not recognise goes on to the app. The answer is the voucher's
JSON as `claims.voucher_document` builds it (the same document the route gives, without the model per claim).
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from voucher_engine.api.problems import problem_document
from voucher_engine.campaigns import claims
from voucher_engine.campaigns.schemas import ClaimBody
from voucher_engine.errors import EngineError

CLAIM_PATH = re.compile(r"^/v1/campaigns/([^/]{1,64})/claims$")
# A claim is a wallet, an id_hash and a few attributes; anything longer is not one.
MAX_CLAIM_BODY_BYTES = 16 * 1024
_JSON = [(b"content-type", b"application/json")]
_PROBLEM = [(b"content-type", b"application/problem+json")]


class ClaimsFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("query_string"):
            match = CLAIM_PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            if body is None:
                return
            document = await self._claim(scope, match.group(1), body)
            await _respond(send, 201, document, _JSON)
        except EngineError as exc:
            document = problem_document(exc.code, exc.detail, **exc.extra)
            headers = _PROBLEM + ([(b"retry-after", b"1")] if exc.code in ("RATE_LIMITED", "UNAVAILABLE") else [])
            await _respond(send, document["status"], orjson.dumps(document), headers)

    async def _claim(self, scope: Scope, campaign_id: str, body: bytes) -> bytes:
        from voucher_engine.campaigns.endpoints import BATCHER_KEY, authenticate_claim

        state = (scope.get("app") or self.app).state.ve
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        subject = await authenticate_claim(state, authorization)
        try:
            request = ClaimBody.model_validate_json(body)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        return await claims.claim(state, state.extras[BATCHER_KEY], subject, campaign_id, request.wallet_id,
                                  request.id_hash, request.attributes)


def _validation_error(exc: ValidationError) -> EngineError:
    """The document FastAPI's handler gives (api/problems.py): 400 for broken JSON, 422 for a wrong shape."""
    errors = [{"loc": ["body", *(str(part) for part in error.get("loc", ()))][:16],
               "message": str(error.get("msg", ""))[:300], "type": str(error.get("type", ""))}
              for error in exc.errors()[:50]]
    if any(error["type"] == "json_invalid" for error in errors):
        error = EngineError("VALIDATION_ERROR", "The body is not valid JSON.", errors=errors)
        error.extra["status"] = 400
        return error
    return EngineError("VALIDATION_ERROR", "The request does not match the expected shape.", errors=errors)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CLAIM_BODY_BYTES:
            raise EngineError("PAYLOAD_TOO_LARGE", f"A claim's body is at most {MAX_CLAIM_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
