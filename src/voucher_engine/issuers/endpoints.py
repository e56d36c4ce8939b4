"""`/v1/issuers`: registered by the operator (admin); each issuer's appropriation and commitment are readable by
the operator, auditors and that issuer's own government."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from voucher_engine.auth.dependencies import Admin, require
from voucher_engine.auth.subjects import Subject
from voucher_engine.issuers import repository, service
from voucher_engine.issuers.schemas import Issuer, IssuerCreate, IssuerPatch
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/issuers", tags=["operator"])

Reader = Annotated[Subject, Depends(require("admin", "gov", "auditor"))]
IssuerId = Annotated[str, Path(max_length=64)]


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
        "An issuer, with its appropriation and what it has committed",
        "Admin, an auditor (a bound auditor: its own issuer), or that issuer's own gov. `committed_fen` is the "
        "issuer's share of every funded campaign less what came back to it; `appropriation_fen` the ceiling on it "
        "(null = no limit). Another issuer's answers 404.",
        response_example={
            "id": "iss_310000",
            "name": "Shanghai Municipal Commission of Commerce",
            "region_code": "310000",
            "fiscal_account": "fiscal:iss_310000",
            "appropriation_fen": 5_000_000_000,
            "committed_fen": 1_250_000_000,
            "created_at": "2025-01-01T09:00:00+08:00",
        },
        errors=["NOT_FOUND"],
    ),
)
async def get_issuer(issuer_id: IssuerId, state: State, subject: Reader) -> Issuer:
    async with state.engine.connect() as conn:
        return await service.get(conn, issuer_id, subject)


@router.patch(
    "/{issuer_id}",
    response_model=Issuer,
    **operation(
        "Set or lift an issuer's appropriation (admin)",
        '`{"appropriation_fen": N}` caps what the issuer may have committed at once (its share of every funded '
        'campaign, less what came back); `{"appropriation_fen": null}` lifts the cap. Funding, or approving a '
        "share, beyond it is then `INSUFFICIENT_FUNDS`. A cap below what is committed already takes nothing back: "
        "it refuses new commitments until returns bring the issuer under it. Whole fen from 0 to 10^16.",
        request_example={"appropriation_fen": 5_000_000_000},
        response_example={
            "id": "iss_310000",
            "name": "Shanghai Municipal Commission of Commerce",
            "region_code": "310000",
            "fiscal_account": "fiscal:iss_310000",
            "appropriation_fen": 5_000_000_000,
            "committed_fen": 1_250_000_000,
            "created_at": "2025-01-01T09:00:00+08:00",
        },
        errors=["NOT_FOUND"],
    ),
)
async def patch_issuer(issuer_id: IssuerId, body: IssuerPatch, state: State, _: Admin) -> Issuer:
    async with state.engine.begin() as conn:
        return await service.set_appropriation(conn, issuer_id, body.appropriation_fen)
