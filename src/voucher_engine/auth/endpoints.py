"""`/v1/tokens` (admin): make credentials for the other roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from voucher_engine.auth import service
from voucher_engine.auth.dependencies import Admin, get_subject
from voucher_engine.auth.schemas import TokenCreate, TokenCreated
from voucher_engine.auth.subjects import Subject
from voucher_engine.web.openapi import operation
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/tokens", tags=["operator"])


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    **operation(
        "Make a bearer token (admin)",
        "For a `gov` (bound to an issuer), an `auditor` (optionally bound) or another `admin`. The token is shown once; only its hash is kept.",
        request_example={"role": "gov", "issuer_id": "iss_4c1d2e3f5a6b"},
        response_example={"id": "tok_01HZX", "token": "ve_3kq9…"},
    ),
)
async def create_token(body: TokenCreate, state: State, _: Admin) -> TokenCreated:
    async with state.engine.begin() as conn:
        token, token_id = await service.create_token(conn, body.role, body.issuer_id)
    return TokenCreated(token=token, id=token_id, role=body.role, issuer_id=body.issuer_id)


whoami_router = APIRouter(tags=["operator"])


@whoami_router.get(
    "/v1/whoami",
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
    **operation(
        "Who the bearer token is: its role and the issuer it is bound to",
        (
            "For clients that show each role its own views (the web console). Any bearer token; errors: 401 "
            "UNAUTHENTICATED (no token, or an unknown or revoked one)."
        ),
        response_example={"role": "gov", "issuer_id": "iss_4c1d2e3f5a6b", "issuer_region": "310000"},
    ),
)
async def whoami(subject: Annotated[Subject, Depends(get_subject)]) -> dict:
    return {
        "role": subject.role,
        "token_id": subject.token_id,
        "issuer_id": subject.issuer_id,
        "issuer_region": subject.issuer_region,
    }
