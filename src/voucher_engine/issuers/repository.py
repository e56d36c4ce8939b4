"""SQL for issuers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.foundation import issuers
from voucher_engine.db.schema.ledger import ledger_accounts

# What an issuer has committed: the negative of its fiscal account's balance (funds out, returns back in).
_COMMITTED = sa.func.coalesce(-ledger_accounts.c.balance_fen, 0).label("committed_fen")


def _with_committed() -> sa.Select:
    fiscal = ledger_accounts.c.account == sa.func.concat("fiscal:", issuers.c.id)
    return sa.select(issuers, _COMMITTED).select_from(issuers.outerjoin(ledger_accounts, fiscal))


async def get(conn: AsyncConnection, issuer_id: str) -> sa.Row | None:
    return (await conn.execute(_with_committed().where(issuers.c.id == issuer_id))).first()


async def get_by_region(conn: AsyncConnection, region_code: str) -> sa.Row | None:
    return (await conn.execute(sa.select(issuers).where(issuers.c.region_code == region_code))).first()


async def registered(conn: AsyncConnection, issuer_ids: Sequence[str]) -> set[str]:
    """Which of these ids are registered issuers."""
    query = sa.select(issuers.c.id).where(issuers.c.id.in_(list(issuer_ids)))
    return set((await conn.execute(query)).scalars())


async def insert(conn: AsyncConnection, *, issuer_id: str, name: str, region_code: str, created_at: datetime) -> bool:
    """Insert; answer False when an issuer for that region already exists."""
    statement = (
        pg_insert(issuers)
        .values(id=issuer_id, name=name, region_code=region_code, created_at=created_at)
        .on_conflict_do_nothing()
        .returning(issuers.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def set_appropriation(conn: AsyncConnection, issuer_id: str, appropriation_fen: int | None) -> bool:
    """Set (or lift, with None) the ceiling; answers False for an unknown issuer. Waits for a funding of this
    issuer in flight, which holds its row (lock_for_commitment)."""
    statement = (
        sa.update(issuers)
        .where(issuers.c.id == issuer_id)
        .values(appropriation_fen=appropriation_fen)
        .returning(issuers.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def lock_for_commitment(conn: AsyncConnection, issuer_ids: Sequence[str]) -> dict[str, sa.Row]:
    """Lock these issuers' rows (in id order, so that two fundings sharing funders cannot deadlock) and read each
    one's appropriation and what it has committed, as committed by everyone before the lock was granted.

    Every funding and approval of an issuer takes this lock first, so that racing ones are checked one after the
    other against what the earlier ones committed."""
    ordered = sorted(set(issuer_ids))
    await conn.execute(
        sa.select(issuers.c.id).where(issuers.c.id.in_(ordered)).order_by(issuers.c.id).with_for_update()
    )
    # A statement of its own, after the lock: under READ COMMITTED it sees the fiscal balances the transactions
    # that held the lock before us committed.
    rows = (await conn.execute(_with_committed().where(issuers.c.id.in_(ordered)))).all()
    return {row.id: row for row in rows}


async def list_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[sa.Row]:
    query = _with_committed().order_by(issuers.c.id).limit(limit)
    if after is not None:
        query = query.where(issuers.c.id > after)
    return list((await conn.execute(query)).all())
