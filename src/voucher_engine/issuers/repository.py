"""SQL for issuers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.foundation import issuers


async def get(conn: AsyncConnection, issuer_id: str) -> sa.Row | None:
    return (await conn.execute(sa.select(issuers).where(issuers.c.id == issuer_id))).first()


async def get_by_region(conn: AsyncConnection, region_code: str) -> sa.Row | None:
    return (await conn.execute(sa.select(issuers).where(issuers.c.region_code == region_code))).first()


async def insert(conn: AsyncConnection, *, issuer_id: str, name: str, region_code: str, created_at: datetime) -> bool:
    """Insert; answer False when an issuer for that region already exists."""
    statement = (
        pg_insert(issuers)
        .values(id=issuer_id, name=name, region_code=region_code, created_at=created_at)
        .on_conflict_do_nothing()
        .returning(issuers.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def list_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[sa.Row]:
    query = sa.select(issuers).order_by(issuers.c.id).limit(limit)
    if after is not None:
        query = query.where(issuers.c.id > after)
    return list((await conn.execute(query)).all())
