"""`/v1/issuers` (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from voucher_engine.auth.dependencies import Admin
from voucher_engine.issuers import repository, service
from voucher_engine.issuers.schemas import Issuer, IssuerCreate
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/issuers", tags=["operator"])


@router.post("", status_code=201, response_model=Issuer)
async def create_issuer(body: IssuerCreate, state: State, _: Admin) -> Issuer:
    async with state.engine.begin() as conn:
        return await service.create(conn, body)


@router.get("", response_model=Page[Issuer])
async def list_issuers(state: State, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> Page[Issuer]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/{issuer_id}", response_model=Issuer)
async def get_issuer(issuer_id: str, state: State, _: Admin) -> Issuer:
    async with state.engine.connect() as conn:
        return await service.get(conn, issuer_id)
