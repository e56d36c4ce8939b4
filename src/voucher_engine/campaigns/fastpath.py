"""`POST /v1/campaigns/{id}/claims` served as a lean ASGI handler, for the burst when a round opens.

The FastAPI route stays registered (it describes the endpoint in the OpenAPI document and answers whenever this
handler is not installed); this handler answers the same requests the same way — the same bearer check (a token's
identity remembered per worker, its revocation checked in the claim's own batch), the same pydantic model, the same service call and problem+json documents —
without the framework's per-request machinery (matching over every route of every domain, dependency solving,
response re-validation), which profiling showed to cost several times the claim's own work.

api/app.py installs it in front of FastAPI's middleware stack, after the test clock and the body limit, next to the
redemption fast path (`EngineApp`). Anything it does not recognise goes on to the app. The answer is the voucher's
JSON as `claims.voucher_document` builds it (the same document the route gives, without the model per claim).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from voucher_engine.campaigns import claims
from voucher_engine.campaigns.schemas import ClaimBody
from voucher_engine.errors import EngineError
from voucher_engine.web.lean import read_body, respond, respond_problem, validation_error

CLAIM_PATH = re.compile(r"^/v1/campaigns/([^/]{1,64})/claims$")
# A claim is a wallet, an id_hash and a few attributes or an attestation; anything longer is not one.
MAX_CLAIM_BODY_BYTES = 16 * 1024


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
        scope["ve.route"] = "/v1/campaigns/{campaign_id}/claims"  # api/observe.py: this request's route label
        try:
            body = await read_body(receive, MAX_CLAIM_BODY_BYTES)
            if body is None:
                return
            document = await self._claim(scope, match.group(1), body)
            await respond(send, 201, document)
        except EngineError as exc:
            await respond_problem(send, exc)

    async def _claim(self, scope: Scope, campaign_id: str, body: bytes) -> bytes:
        from voucher_engine.campaigns.endpoints import BATCHER_KEY, authenticate_claim, refusal

        app: Any = scope.get("app") or self.app  # EngineApp sets scope["app"]; a test may wrap the app directly
        state = app.state.ve
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        subject, remembered = await authenticate_claim(state, authorization)
        scope["ve.role"] = subject.role
        try:
            try:
                request = ClaimBody.model_validate_json(body)
            except ValidationError as exc:
                raise validation_error(exc) from None
            return await claims.claim(
                state,
                state.extras[BATCHER_KEY],
                subject,
                campaign_id,
                request.wallet_id,
                request.id_hash,
                request.attributes,
                request.attestation,
            )
        except EngineError as exc:
            if not remembered:
                raise
            raise await refusal(state, authorization, exc) from None
