"""FastAPI dependencies of signed callers: a merchant's till, proven by the request signature of API.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from voucher_engine.merchants import signing
from voucher_engine.web.state import AppState


async def get_signed_caller(
    request: Request,
    x_ve_key_id: Annotated[str | None, Header()] = None,
    x_ve_timestamp: Annotated[str | None, Header()] = None,
    x_ve_nonce: Annotated[str | None, Header()] = None,
    x_ve_signature: Annotated[str | None, Header()] = None,
) -> signing.SignedCaller:
    """A merchant's till, proven by the HMAC signature of API.md. The nonce is spent even if the work then fails."""
    state: AppState = request.app.state.ve
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    request.scope["ve.role"] = "merchant"  # for the request's log line (api/observe.py)
    async with state.engine.begin() as conn:
        return await signing.verify(
            conn,
            state.server_secret,
            method=request.method,
            path_with_query=path,
            body=body,
            key_id=x_ve_key_id,
            timestamp=x_ve_timestamp,
            nonce=x_ve_nonce,
            signature=x_ve_signature,
        )


SignedCaller = Annotated[signing.SignedCaller, Depends(get_signed_caller)]


async def get_pos_signature(
    request: Request,
    x_ve_key_id: Annotated[str | None, Header()] = None,
    x_ve_timestamp: Annotated[str | None, Header()] = None,
    x_ve_nonce: Annotated[str | None, Header()] = None,
    x_ve_signature: Annotated[str | None, Header()] = None,
) -> signing.SignatureHeaders:
    """The hot path's signature check: shapes, freshness and HMAC in memory. The caller must still check the
    key's revocation and spend the nonce (the redemption batch does both inside its transaction)."""
    state: AppState = request.app.state.ve
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    request.scope["ve.role"] = "merchant"
    return signing.verify_without_database(
        state.server_secret,
        method=request.method,
        path_with_query=path,
        body=body,
        key_id=x_ve_key_id,
        timestamp=x_ve_timestamp,
        nonce=x_ve_nonce,
        signature=x_ve_signature,
    )


PosSignature = Annotated[signing.SignatureHeaders, Depends(get_pos_signature)]
