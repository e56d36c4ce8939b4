"""SQL for tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.foundation import api_tokens, issuers


async def insert_token(
    conn: AsyncConnection, *, token_id: str, token_sha256: str, role: str, issuer_id: str | None, created_at: datetime
) -> None:
    await conn.execute(
        sa.insert(api_tokens).values(
            id=token_id, token_sha256=token_sha256, role=role, issuer_id=issuer_id, created_at=created_at
        )
    )


async def find_active_token(conn: AsyncConnection, token_sha256: str) -> sa.Row | None:
    query = (
        sa.select(api_tokens.c.id, api_tokens.c.role, api_tokens.c.issuer_id, issuers.c.region_code)
        .select_from(api_tokens.outerjoin(issuers, issuers.c.id == api_tokens.c.issuer_id))
        .where(api_tokens.c.token_sha256 == token_sha256, api_tokens.c.revoked_at.is_(None))
    )
    return (await conn.execute(query)).first()


async def issuer_exists(conn: AsyncConnection, issuer_id: str) -> bool:
    """Whether a token may be bound to `issuer_id` (auth sits below the issuers room, so it reads the table itself)."""
    query = sa.select(sa.literal(True)).select_from(issuers).where(issuers.c.id == issuer_id)
    return (await conn.execute(query)).scalar() is True
