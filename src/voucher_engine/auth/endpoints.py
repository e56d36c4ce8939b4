"""`/v1/tokens` (admin): make, list and revoke credentials for the other roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from voucher_engine.auth import service
from voucher_engine.auth.dependencies import Admin
from voucher_engine.auth.schemas import TokenCreate, TokenCreated, TokenInfo
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/tokens", tags=["operator"])


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, state: State, _: Admin) -> TokenCreated:
    async with state.engine.begin() as conn:
        token, token_id = await service.create_token(conn, body.role, body.issuer_id)
    return TokenCreated(token=token, id=token_id, role=body.role, issuer_id=body.issuer_id)


@router.get(
    "",
    response_model=Page[TokenInfo],
    summary="List bearer tokens (without their secrets)",
    description="Every token, revoked ones included unless `active=true`, optionally only those bound to "
    "`issuer_id`: `{id, role, issuer_id, created_at, last_used_at, revoked_at}`. The secret is never shown again "
    "after creation (only its SHA-256 is kept).",
)
async def list_tokens(
    state: State,
    _: Admin,
    limit: Limit = 100,
    cursor: Cursor = None,
    issuer_id: Annotated[str | None, Query(max_length=64)] = None,
    active: Annotated[bool, Query(description="Only tokens not revoked.")] = False,
) -> Page[TokenInfo]:
    async with state.engine.connect() as conn:
        items = await service.list_tokens(
            conn, after=decode_cursor(cursor), limit=limit + 1, issuer_id=issuer_id, active_only=active
        )
    page = items[:limit]
    return Page(items=page, next_cursor=encode_cursor(page[-1].id) if len(items) > limit else None)


@router.delete(
    "/{token_id}",
    status_code=204,
    summary="Revoke a bearer token",
    description="From the moment this answers, every worker refuses the token (`UNAUTHENTICATED`): tokens are "
    "looked up on every request, never remembered. Revoking a revoked token again is a no-op (204).",
    responses={404: {"description": "NOT_FOUND: no such token"}},
)
async def revoke_token(token_id: Annotated[str, Path(max_length=64)], state: State, _: Admin) -> Response:
    async with state.engine.begin() as conn:
        await service.revoke_token(conn, token_id)
    return Response(status_code=204)
