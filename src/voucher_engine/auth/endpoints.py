"""`/v1/tokens` (admin): make, list and revoke credentials for the other roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from voucher_engine.auth import service
from voucher_engine.auth.dependencies import Admin, get_subject
from voucher_engine.auth.schemas import TokenCreate, TokenCreated, TokenInfo
from voucher_engine.auth.subjects import Subject
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
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


@router.get(
    "",
    response_model=Page[TokenInfo],
    **operation(
        "List bearer tokens (admin), without their secrets",
        "Every token, revoked ones included unless `active=true`, optionally only those bound to `issuer_id`, paged "
        "by cursor. The secret is never shown again after creation (only its SHA-256 is kept); `last_used_at` is "
        "real time, to the minute.",
        response_example={
            "items": [
                {
                    "id": "tok_5f0c1a2b3c4d5e6f",
                    "role": "gov",
                    "issuer_id": "iss_310000",
                    "created_at": "2025-01-01T09:00:00Z",
                    "last_used_at": "2025-01-02T10:31:00Z",
                    "revoked_at": None,
                }
            ],
            "next_cursor": None,
        },
    ),
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
    **operation(
        "Revoke a bearer token (admin)",
        "From the moment this answers, every worker refuses the token (`UNAUTHENTICATED`): tokens are looked up on "
        "every request, never remembered. Revoking a revoked token again changes nothing (204). 204, no body.",
        response_example=None,
        errors=["NOT_FOUND"],
    ),
)
async def revoke_token(token_id: Annotated[str, Path(max_length=64)], state: State, _: Admin) -> Response:
    async with state.engine.begin() as conn:
        await service.revoke_token(conn, token_id)
    return Response(status_code=204)


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
