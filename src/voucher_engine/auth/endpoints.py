"""`/v1/tokens` (admin): make credentials for the other roles."""

from __future__ import annotations

from fastapi import APIRouter

from voucher_engine.auth import service
from voucher_engine.auth.dependencies import Admin
from voucher_engine.auth.schemas import TokenCreate, TokenCreated
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/tokens", tags=["operator"])


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, state: State, _: Admin) -> TokenCreated:
    async with state.engine.begin() as conn:
        token, token_id = await service.create_token(conn, body.role, body.issuer_id)
    return TokenCreated(token=token, id=token_id, role=body.role, issuer_id=body.issuer_id)
