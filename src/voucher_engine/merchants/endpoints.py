"""`/v1/merchants` (admin): the registry and POS keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from voucher_engine import clock
from voucher_engine.auth.dependencies import Admin
from voucher_engine.merchants import repository, service
from voucher_engine.merchants.dependencies import SignedCaller
from voucher_engine.merchants.schemas import MERCHANT_ID_PATTERN, KeyCreated, Merchant, MerchantPut
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/merchants", tags=["operator"])
MerchantId = Annotated[str, Path(pattern=MERCHANT_ID_PATTERN)]


@router.put(
    "/{merchant_id}",
    response_model=Merchant,
    responses={201: {"model": Merchant, "description": "Created: the merchant was not registered before."}},
)
async def put_merchant(
    merchant_id: MerchantId, body: MerchantPut, state: State, _: Admin, response: Response
) -> Merchant:
    async with state.engine.begin() as conn:
        merchant, created = await service.put(conn, merchant_id, body)
    response.status_code = 201 if created else 200
    return merchant


@router.get("", response_model=Page[Merchant])
async def list_merchants(state: State, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> Page[Merchant]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/{merchant_id}", response_model=Merchant)
async def get_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.connect() as conn:
        return await service.get(conn, merchant_id)


@router.post("/{merchant_id}/suspend", response_model=Merchant)
async def suspend_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.set_status(conn, merchant_id, "suspended")


@router.post("/{merchant_id}/resume", response_model=Merchant)
async def resume_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.set_status(conn, merchant_id, "active")


@router.post("/{merchant_id}/keys", status_code=201, response_model=KeyCreated)
async def create_key(merchant_id: MerchantId, state: State, _: Admin) -> KeyCreated:
    async with state.engine.begin() as conn:
        return await service.create_key(conn, state.server_secret, merchant_id)


@router.delete("/{merchant_id}/keys/{key_id}", status_code=204)
async def revoke_key(
    merchant_id: MerchantId, key_id: Annotated[str, Path(max_length=64)], state: State, _: Admin
) -> Response:
    async with state.engine.begin() as conn:
        await service.revoke_key(conn, merchant_id, key_id)
    return Response(status_code=204)


pos_router = APIRouter(prefix="/v1/pos", tags=["redemption"])


class PosPing(BaseModel):
    merchant_id: str
    key_id: str
    server_time: datetime


@pos_router.get("/ping", response_model=PosPing)
async def ping(caller: SignedCaller) -> PosPing:
    """A signed no-op, so that a till vendor can check its signing code before it touches money."""
    return PosPing(merchant_id=caller.merchant_id, key_id=caller.key_id, server_time=clock.real_now())
