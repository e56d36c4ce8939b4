"""SQL of attestations: attesters and spent attestations. No rules live here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.attestations import attestation_uses, attesters

# Columns of `attestation_uses` in the order issuance writes them by COPY.
USE_COPY_COLUMNS = (
    "campaign_id",
    "jti",
    "attestation_sha256",
    "attester_id",
    "wallet_id",
    "decision",
    "issuance_id",
    "used_at",
)


async def insert_attester(
    conn: AsyncConnection, *, attester_id: str, name: str, public_key: bytes, created_at: datetime
) -> bool:
    """Insert; answers False when the key is already registered."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    statement = (
        pg_insert(attesters)
        .values(id=attester_id, name=name, public_key=public_key, created_at=created_at)
        .on_conflict_do_nothing()
        .returning(attesters.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def get_attester(conn: AsyncConnection, attester_id: str) -> sa.Row | None:
    return (await conn.execute(sa.select(attesters).where(attesters.c.id == attester_id))).first()


async def all_attesters(conn: AsyncConnection) -> list[sa.Row]:
    """Every attester, retired ones included (a registry is a few keys per operator: no paging needed here)."""
    return list((await conn.execute(sa.select(attesters).order_by(attesters.c.id))).all())


async def list_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[sa.Row]:
    query = sa.select(attesters).order_by(attesters.c.id).limit(limit)
    if after is not None:
        query = query.where(attesters.c.id > after)
    return list((await conn.execute(query)).all())


async def name_registered(conn: AsyncConnection, name: str) -> bool:
    query = sa.select(sa.literal(1)).where(attesters.c.name == name).limit(1)
    return (await conn.execute(query)).first() is not None


async def retire(conn: AsyncConnection, attester_id: str, at: datetime) -> sa.Row | None:
    """Set retired_at once (a second retire keeps the first time); answers the row, or None if unknown."""
    await conn.execute(
        sa.update(attesters)
        .where(attesters.c.id == attester_id, attesters.c.retired_at.is_(None))
        .values(retired_at=at)
    )
    return await get_attester(conn, attester_id)


async def spent_jtis(raw, campaign_id: str) -> set[str]:
    """The campaign's spent jtis, in one pass over its primary key range (raw asyncpg connection)."""
    spent: set[str] = set()
    async for record in raw.cursor("SELECT jti FROM attestation_uses WHERE campaign_id = $1", campaign_id):
        spent.add(record["jti"])
    return spent


async def get_use(conn: AsyncConnection, campaign_id: str, jti: str) -> sa.Row | None:
    """The recorded use, with its campaign's issuer (for scoping who may see it)."""
    from voucher_engine.db.schema.campaigns import campaigns

    query = (
        sa.select(attestation_uses, campaigns.c.issuer_id)
        .join(campaigns, campaigns.c.id == attestation_uses.c.campaign_id)
        .where(attestation_uses.c.campaign_id == campaign_id, attestation_uses.c.jti == jti)
    )
    return (await conn.execute(query)).first()


async def copy_uses(raw, source: AsyncIterator[bytes]) -> None:
    """COPY attestation_uses in PostgreSQL's binary format (rows of USE_COPY_COLUMNS, header and trailer included)."""
    await raw.copy_to_table("attestation_uses", source=source, columns=USE_COPY_COLUMNS, format="binary")
