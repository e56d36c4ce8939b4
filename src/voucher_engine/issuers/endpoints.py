"""`/v1/issuers` (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from voucher_engine.auth.dependencies import Admin
from voucher_engine.issuers import repository, service
from voucher_engine.issuers.schemas import Issuer, IssuerCreate
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/issuers", tags=["operator"])


@router.post(
    "",
    status_code=201,
    response_model=Issuer,
    **operation(
        "Register an issuer (admin)",
        "A government body that can run campaigns. It gets a fiscal account in the ledger, `fiscal:<id>`. The region is its GB/T 2260 code; its campaigns may be spent only within it.",
        request_example={"name": "Shanghai Municipal Commission of Commerce", "region_code": "310000"},
        response_example={
            "id": "iss_4c1d2e3f5a6b",
            "name": "Shanghai Municipal Commission of Commerce",
            "region_code": "310000",
            "appropriation_fen": None,
            "committed_fen": 0,
            "created_at": "2025-01-01T09:00:00+08:00",
        },
        errors=["CONFLICT"],
    ),
)
async def create_issuer(body: IssuerCreate, state: State, _: Admin) -> Issuer:
    async with state.engine.begin() as conn:
        return await service.create(conn, body)


@router.get(
    "",
    response_model=Page[Issuer],
    **operation(
        "List issuers (admin, auditor)",
        "Every registered issuer, paged by cursor (`limit` up to 1000).",
        response_example={
            "items": [
                {
                    "id": "iss_4c1d2e3f5a6b",
                    "name": "Shanghai Municipal Commission of Commerce",
                    "region_code": "310000",
                    "appropriation_fen": None,
                    "committed_fen": 0,
                    "created_at": "2025-01-01T09:00:00+08:00",
                }
            ],
            "next_cursor": None,
        },
    ),
)
async def list_issuers(state: State, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> Page[Issuer]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get(
    "/{issuer_id}",
    response_model=Issuer,
    **operation(
        "An issuer, with its appropriation",
        "Admin, or the issuer's own gov: the issuer with `appropriation_fen` (the most it may have committed at once; null = no limit) and `committed_fen`.",
        response_example={
            "id": "iss_4c1d2e3f5a6b",
            "name": "Shanghai Municipal Commission of Commerce",
            "region_code": "310000",
            "appropriation_fen": None,
            "committed_fen": 0,
            "created_at": "2025-01-01T09:00:00+08:00",
        },
    ),
)
async def get_issuer(issuer_id: str, state: State, _: Admin) -> Issuer:
    async with state.engine.connect() as conn:
        return await service.get(conn, issuer_id)
