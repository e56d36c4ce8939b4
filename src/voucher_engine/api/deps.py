"""FastAPI dependencies: the worker's state, the caller's identity and role checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from voucher_engine.api.state import AppState
from voucher_engine.auth import service as auth_service
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.merchants import signing


async def get_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread hop on every request.
    return request.app.state.ve


State = Annotated[AppState, Depends(get_state)]


async def get_subject(request: Request, authorization: Annotated[str | None, Header()] = None) -> Subject:
    state: AppState = request.app.state.ve
    async with state.engine.connect() as conn:
        subject = await auth_service.authenticate(conn, authorization)
    request.scope["ve.role"] = subject.role  # for the request's log line (api/observe.py)
    return subject


def require(*roles: str) -> Callable[..., Coroutine[Any, Any, Subject]]:
    """A dependency that admits a bearer subject holding one of `roles` (401 without one, 403 with another)."""

    async def dependency(subject: Annotated[Subject, Depends(get_subject)]) -> Subject:
        if subject.role not in roles:
            raise EngineError("FORBIDDEN", f"This needs the role {' or '.join(roles)}; the token is {subject.role}.")
        return subject

    return dependency


Admin = Annotated[Subject, Depends(require("admin"))]


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
    request.scope["ve.role"] = "merchant"
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
