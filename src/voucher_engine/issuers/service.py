"""Registering issuers. Each issuer's id is derived from its region, and it gets a fiscal account in the ledger."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.errors import EngineError
from voucher_engine.issuers import repository
from voucher_engine.issuers.schemas import Issuer, IssuerCreate
from voucher_engine.ledger import service as ledger


def issuer_id_for(region_code: str) -> str:
    return f"iss_{region_code}"


def fiscal_account(issuer_id: str) -> str:
    return f"fiscal:{issuer_id}"


def to_model(row) -> Issuer:
    return Issuer(
        id=row.id,
        name=row.name,
        region_code=row.region_code,
        fiscal_account=fiscal_account(row.id),
        created_at=row.created_at,
    )


async def create(conn: AsyncConnection, body: IssuerCreate) -> Issuer:
    issuer_id = issuer_id_for(body.region_code)
    if not await repository.insert(
        conn, issuer_id=issuer_id, name=body.name, region_code=body.region_code, created_at=clock.now()
    ):
        raise EngineError("CONFLICT", f"an issuer for region {body.region_code} already exists ({issuer_id})")
    await _open_fiscal_account(conn, issuer_id)
    row = await repository.get(conn, issuer_id)
    return to_model(row)


async def get(conn: AsyncConnection, issuer_id: str) -> Issuer:
    row = await repository.get(conn, issuer_id)
    if row is None:
        raise EngineError("NOT_FOUND", f"no issuer {issuer_id!r}")
    return to_model(row)


async def _open_fiscal_account(conn: AsyncConnection, issuer_id: str) -> None:
    await ledger.open_account(conn, fiscal_account(issuer_id))
