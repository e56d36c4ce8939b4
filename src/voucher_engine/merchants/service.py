"""The merchant registry and POS keys. A merchant's category, region and tags always come from here."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.errors import EngineError
from voucher_engine.ledger import service as ledger
from voucher_engine.merchants import repository
from voucher_engine.merchants.schemas import KeyCreated, Merchant, MerchantPut, PayoutHold
from voucher_engine.merchants.signing import derive_key_secret


def to_model(row) -> Merchant:
    return Merchant(
        id=row.id,
        name=row.name,
        mcc=row.mcc,
        region_code=row.region_code,
        settlement_wallet=row.settlement_wallet,
        tags=list(row.tags),
        status=row.status,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        payout_hold=(
            PayoutHold(reason=row.payout_hold_reason, since=row.payout_hold_since)
            if row.payout_hold_since is not None
            else None
        ),
    )


async def put(conn: AsyncConnection, merchant_id: str, body: MerchantPut) -> tuple[Merchant, bool]:
    """Create or replace a merchant; answer (merchant, created)."""
    values = body.model_dump()
    values["tags"] = sorted(set(values["tags"]))
    row = await repository.upsert(conn, merchant_id, values, clock.now())
    await _open_settlement_account(conn, merchant_id)
    return to_model(row), row.version == 1


async def get(conn: AsyncConnection, merchant_id: str) -> Merchant:
    row = await repository.get(conn, merchant_id)
    if row is None:
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    return to_model(row)


async def set_status(conn: AsyncConnection, merchant_id: str, status: str) -> Merchant:
    row = await repository.set_status(conn, merchant_id, status, clock.now())
    if row is None:
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    return to_model(row)


async def create_key(conn: AsyncConnection, server_secret: bytes, merchant_id: str) -> KeyCreated:
    if await repository.get(conn, merchant_id) is None:
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    key_id = "key_" + secrets.token_hex(10)
    await repository.insert_key(conn, key_id=key_id, merchant_id=merchant_id, at=clock.real_now())
    return KeyCreated(key_id=key_id, secret=derive_key_secret(server_secret, key_id), merchant_id=merchant_id)


async def revoke_key(conn: AsyncConnection, merchant_id: str, key_id: str) -> None:
    if not await repository.revoke_key(conn, key_id=key_id, merchant_id=merchant_id, at=clock.real_now()):
        raise EngineError("NOT_FOUND", f"no active key {key_id!r} for merchant {merchant_id!r}")


async def _open_settlement_account(conn: AsyncConnection, merchant_id: str) -> None:
    # payout: and settled: too (where settlement moves its money), so that a payout run need not open them.
    for kind in ("merchant", "payout", "settled"):
        await ledger.open_account(conn, f"{kind}:{merchant_id}")
