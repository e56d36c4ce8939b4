"""SQL for merchants and their keys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.foundation import merchant_keys, merchants, request_nonces


async def get(conn: AsyncConnection, merchant_id: str) -> sa.Row | None:
    return (await conn.execute(sa.select(merchants).where(merchants.c.id == merchant_id))).first()


async def upsert(conn: AsyncConnection, merchant_id: str, values: dict, at: datetime) -> sa.Row:
    insert = pg_insert(merchants).values(id=merchant_id, created_at=at, updated_at=at, **values)
    statement = insert.on_conflict_do_update(
        index_elements=[merchants.c.id],
        set_={**values, "updated_at": at, "version": merchants.c.version + 1},
    ).returning(*merchants.c)
    return (await conn.execute(statement)).one()


async def set_status(conn: AsyncConnection, merchant_id: str, status: str, at: datetime) -> sa.Row | None:
    statement = (
        sa.update(merchants)
        .where(merchants.c.id == merchant_id)
        .values(status=status, updated_at=at, version=merchants.c.version + 1)
        .returning(*merchants.c)
    )
    return (await conn.execute(statement)).first()


async def list_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[sa.Row]:
    query = sa.select(merchants).order_by(merchants.c.id).limit(limit)
    if after is not None:
        query = query.where(merchants.c.id > after)
    return list((await conn.execute(query)).all())


async def insert_key(conn: AsyncConnection, *, key_id: str, merchant_id: str, at: datetime) -> None:
    await conn.execute(sa.insert(merchant_keys).values(key_id=key_id, merchant_id=merchant_id, created_at=at))


async def revoke_key(conn: AsyncConnection, *, key_id: str, merchant_id: str, at: datetime) -> bool:
    statement = (
        sa.update(merchant_keys)
        .where(
            merchant_keys.c.key_id == key_id,
            merchant_keys.c.merchant_id == merchant_id,
            merchant_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=at)
        .returning(merchant_keys.c.key_id)
    )
    return (await conn.execute(statement)).first() is not None


async def active_key_merchant(conn: AsyncConnection, key_id: str) -> str | None:
    query = sa.select(merchant_keys.c.merchant_id).where(
        merchant_keys.c.key_id == key_id, merchant_keys.c.revoked_at.is_(None)
    )
    return (await conn.execute(query)).scalar()


async def insert_nonce(conn: AsyncConnection, key_id: str, nonce: str, seen_at: datetime) -> bool:
    """Record a request's nonce; False when this key has used it before (a replay)."""
    statement = (
        pg_insert(request_nonces)
        .values(key_id=key_id, nonce=nonce, seen_at=seen_at)
        .on_conflict_do_nothing()
        .returning(request_nonces.c.nonce)
    )
    return (await conn.execute(statement)).first() is not None


async def delete_nonces_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` nonces seen before `cutoff`; answer how many went."""
    victims = (
        sa.select(request_nonces.c.key_id, request_nonces.c.nonce).where(request_nonces.c.seen_at < cutoff).limit(limit)
    )
    statement = sa.delete(request_nonces).where(sa.tuple_(request_nonces.c.key_id, request_nonces.c.nonce).in_(victims))
    return (await conn.execute(statement)).rowcount or 0
