"""The till's hot paths — `POST /v1/redemptions`, `/v1/redemptions/quote` and `/v1/redemptions/{id}/refunds` —
served as a lean ASGI handler.

FastAPI's routes for these paths stay registered: they describe them in the OpenAPI document and define the
behaviour. This handler answers the same requests the same way (the same signature check, the same pydantic
models, the same problem+json documents, the same batcher) without the framework's per-request machinery —
router matching over every route, dependency solving, response-model re-validation — which profiling showed to
cost more CPU than the batched database work itself. Anything it does not recognise goes on to the app.

A refund does not go through the batcher (it locks its redemption and voucher, one refund at a time): it runs as one
transaction (refunds.refund_signed) whose first statement checks the key and spends the nonce, which the FastAPI
route's dependency did in a transaction of its own before the refund's.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from voucher_engine.errors import EngineError
from voucher_engine.merchants import signing
from voucher_engine.redemption import refunds
from voucher_engine.redemption.dispatch import make_job, through_batcher
from voucher_engine.redemption.schemas import QuoteRequest, RedeemRequest, RefundRequest
from voucher_engine.redemption.service import fingerprint
from voucher_engine.web.lean import read_body, respond, respond_problem, validation_error

HOT_PATHS = {"/v1/redemptions": "redeem", "/v1/redemptions/quote": "quote"}
REFUND_PREFIX, REFUND_SUFFIX = "/v1/redemptions/", "/refunds"
REFUND_ROUTE = "/v1/redemptions/{redemption_id}/refunds"
MAX_REDEMPTION_ID = 64  # the route's path parameter's bound (endpoints.RedemptionId): longer ones go to FastAPI
_SIGNATURE_HEADERS = {
    b"x-ve-key-id": "key_id",
    b"x-ve-timestamp": "timestamp",
    b"x-ve-nonce": "nonce",
    b"x-ve-signature": "signature",
}


class RedemptionFastPath:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _kind(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        scope["ve.route"] = REFUND_ROUTE if kind == "refund" else scope["path"]  # api/observe.py: the route label
        try:
            # In front of the general body limit (api/app.py), so it holds the body to the same size itself.
            body = await read_body(receive, self.max_body_bytes)
            if body is None:
                return
            status, document = await self._handle(scope, kind, body)
            await respond(send, status, orjson.dumps(document, option=orjson.OPT_UTC_Z))
        except EngineError as exc:
            await respond_problem(send, exc)

    async def _handle(self, scope: Scope, kind: str, body: bytes) -> tuple[int, dict[str, Any]]:
        state = scope["app"].state.ve
        found: dict[str, str] = {}
        for name, value in scope["headers"]:
            field = _SIGNATURE_HEADERS.get(name)
            if field is not None:
                found[field] = value.decode("latin-1")
        signature = signing.verify_without_database(
            state.server_secret,
            method="POST",
            path_with_query=scope["path"],
            body=body,
            **{f: found.get(f) for f in _SIGNATURE_HEADERS.values()},
        )
        scope["ve.role"] = "merchant"
        if kind == "refund":
            return await _refund(state, scope["path"], signature, body)
        model = RedeemRequest if kind == "redeem" else QuoteRequest
        try:
            request = model.model_validate_json(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if not isinstance(request, RedeemRequest):
            outcome = await through_batcher(state, make_job(state, "quote", signature, request))
            return outcome.status, outcome.body
        job = make_job(
            state,
            "redeem",
            signature,
            request,
            pos_txn_id=request.pos_txn_id,
            request_sha256=fingerprint(request.model_dump(mode="json")),
        )
        outcome = await through_batcher(state, job)
        return outcome.status, outcome.body


def _kind(scope: Scope) -> str | None:
    path: str = scope["path"]
    kind = HOT_PATHS.get(path)
    if kind is not None:
        return kind
    if path.startswith(REFUND_PREFIX) and path.endswith(REFUND_SUFFIX):
        redemption_id = path[len(REFUND_PREFIX) : -len(REFUND_SUFFIX)]
        if redemption_id and "/" not in redemption_id and len(redemption_id) <= MAX_REDEMPTION_ID:
            return "refund"
    return None


async def _refund(state, path: str, signature, body: bytes) -> tuple[int, dict[str, Any]]:
    redemption_id = path[len(REFUND_PREFIX) : -len(REFUND_SUFFIX)]
    try:
        request = RefundRequest.model_validate_json(body)
    except ValidationError as exc:
        # The route's signed-caller dependency checked the key and spent the nonce before the body was looked at.
        await refunds.check_key_and_spend_nonce(state.engine, signature)
        raise validation_error(exc) from None
    answer, created = await refunds.refund_signed(state.engine, signature, redemption_id, request)
    return (201 if created else 200), answer.model_dump(mode="json")
