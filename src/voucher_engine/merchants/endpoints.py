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
from voucher_engine.merchants.schemas import MERCHANT_EXAMPLE, MERCHANT_ID_PATTERN, KeyCreated, Merchant, MerchantPut
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/merchants", tags=["operator"])
MerchantId = Annotated[str, Path(pattern=MERCHANT_ID_PATTERN)]


@router.put(
    "/{merchant_id}",
    response_model=Merchant,
    responses={201: {"model": Merchant, "description": "Created: the merchant was not registered before."}},
    **operation(
        "Create or update a merchant (admin)",
        "The merchant registry: category (MCC), region and tags here are what contracts see at the till, never what a request says. 201 when created, 200 when updated.",
        request_example={
            "name": "Xuhui Noodle Bar",
            "mcc": "5812",
            "region_code": "310104",
            "settlement_wallet": "0012345678901234",
            "tags": ["ecny-signed"],
        },
        response_example=MERCHANT_EXAMPLE,
    ),
)
async def put_merchant(
    merchant_id: MerchantId, body: MerchantPut, state: State, _: Admin, response: Response
) -> Merchant:
    async with state.engine.begin() as conn:
        merchant, created = await service.put(conn, merchant_id, body)
    response.status_code = 201 if created else 200
    return merchant


@router.get(
    "",
    response_model=Page[Merchant],
    **operation(
        "List merchants (admin, auditor)",
        "Every merchant, paged by cursor.",
        response_example={
            "items": [MERCHANT_EXAMPLE],
            "next_cursor": None,
        },
    ),
)
async def list_merchants(state: State, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> Page[Merchant]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get(
    "/{merchant_id}",
    response_model=Merchant,
    **operation(
        "A merchant (admin, auditor)",
        "The merchant as registered, with its status and payout hold.",
        response_example=MERCHANT_EXAMPLE,
    ),
)
async def get_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.connect() as conn:
        return await service.get(conn, merchant_id)


@router.post(
    "/{merchant_id}/suspend",
    response_model=Merchant,
    **operation(
        "Suspend a merchant (admin)",
        "Its tills are refused (`MERCHANT_SUSPENDED`) until resumed. Idempotent.",
        response_example={**MERCHANT_EXAMPLE, "status": "suspended"},
    ),
)
async def suspend_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.set_status(conn, merchant_id, "suspended")


@router.post(
    "/{merchant_id}/resume",
    response_model=Merchant,
    **operation(
        "Resume a suspended merchant (admin)",
        "Its tills are served again. Idempotent.",
        response_example=MERCHANT_EXAMPLE,
    ),
)
async def resume_merchant(merchant_id: MerchantId, state: State, _: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.set_status(conn, merchant_id, "active")


@router.post(
    "/{merchant_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    **operation(
        "Make a POS key for a merchant (admin)",
        "Answers the key id and its secret (hex) once: the till signs every request with it (see the `X-VE-*` security schemes). The server keeps only what it needs to verify.",
        response_example={"key_id": "pk_demo-noodle-bar_3f9a", "secret": "5e0f…c2", "merchant_id": "demo-noodle-bar"},
    ),
)
async def create_key(merchant_id: MerchantId, state: State, _: Admin) -> KeyCreated:
    async with state.engine.begin() as conn:
        return await service.create_key(conn, state.server_secret, merchant_id)


@router.delete(
    "/{merchant_id}/keys/{key_id}",
    status_code=204,
    **operation(
        "Revoke a POS key (admin)",
        "Requests signed with it are refused at once (`BAD_SIGNATURE`). 204, no body.",
        response_example=None,
    ),
)
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


@pos_router.get(
    "/ping",
    response_model=PosPing,
    **operation(
        "Signed no-op (till)",
        "Checks a till's key and signing code without touching anything: 200 with the merchant the key belongs to.",
        response_example={"ok": True, "merchant_id": "demo-noodle-bar", "key_id": "pk_demo-noodle-bar_3f9a"},
        errors=["MERCHANT_SUSPENDED"],
    ),
)
async def ping(caller: SignedCaller) -> PosPing:
    """A signed no-op, so that a till vendor can check its signing code before it touches money."""
    return PosPing(merchant_id=caller.merchant_id, key_id=caller.key_id, server_time=clock.real_now())
