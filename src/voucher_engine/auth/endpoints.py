"""`/v1/tokens` (admin): make credentials for the other roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from voucher_engine.auth import service
from voucher_engine.auth.dependencies import Admin, get_subject
from voucher_engine.auth.schemas import TokenCreate, TokenCreated
from voucher_engine.auth.subjects import Subject
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/tokens", tags=["operator"])


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, state: State, _: Admin) -> TokenCreated:
    async with state.engine.begin() as conn:
        token, token_id = await service.create_token(conn, body.role, body.issuer_id)
    return TokenCreated(token=token, id=token_id, role=body.role, issuer_id=body.issuer_id)


whoami_router = APIRouter(tags=["operator"])


@whoami_router.get(
    "/v1/whoami",
    summary="Who the bearer token is: its role and the issuer it is bound to",
    description=(
        "For clients that show each role its own views (the web console). Any bearer token; errors: 401 "
        "UNAUTHENTICATED (no token, or an unknown or revoked one)."
    ),
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "role": "gov",
                        "token_id": "tok_01",
                        "issuer_id": "iss_310000",
                        "issuer_region": "310000",
                    }
                }
            }
        },
        401: {"description": "UNAUTHENTICATED"},
    },
)
async def whoami(subject: Annotated[Subject, Depends(get_subject)]) -> dict:
    return {
        "role": subject.role,
        "token_id": subject.token_id,
        "issuer_id": subject.issuer_id,
        "issuer_region": subject.issuer_region,
    }
