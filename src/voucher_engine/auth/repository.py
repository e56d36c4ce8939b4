"""SQL for tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.foundation import api_tokens, issuers

# What a token listing shows: everything but the hash.
LISTED = (
    api_tokens.c.id,
    api_tokens.c.role,
    api_tokens.c.issuer_id,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
)


async def insert_token(
    conn: AsyncConnection, *, token_id: str, token_sha256: str, role: str, issuer_id: str | None, created_at: datetime
) -> None:
    await conn.execute(
        sa.insert(api_tokens).values(
            id=token_id, token_sha256=token_sha256, role=role, issuer_id=issuer_id, created_at=created_at
        )
    )


# The same look-up in raw SQL, for a statement that checks its token itself (one round trip; stats/repository.py):
# format `digest` with the statement's parameter holding `service.bearer_digest(...)`.
ACTIVE_TOKEN = """
SELECT t.id, t.role, t.issuer_id, i.region_code
  FROM api_tokens t LEFT JOIN issuers i ON i.id = t.issuer_id
 WHERE t.token_sha256 = {digest} AND t.revoked_at IS NULL"""


async def find_active_token(conn: AsyncConnection, token_sha256: str) -> sa.Row | None:
    query = (
        sa.select(api_tokens.c.id, api_tokens.c.role, api_tokens.c.issuer_id, issuers.c.region_code)
        .select_from(api_tokens.outerjoin(issuers, issuers.c.id == api_tokens.c.issuer_id))
        .where(api_tokens.c.token_sha256 == token_sha256, api_tokens.c.revoked_at.is_(None))
    )
    return (await conn.execute(query)).first()


async def touch(conn: AsyncConnection, token_id: str, at: datetime, every: timedelta) -> None:
    """Note that the token was used, unless another worker already did within `every`."""
    await conn.execute(
        sa.update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            sa.or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < at - every),
        )
        .values(last_used_at=at)
    )


async def list_page(
    conn: AsyncConnection, *, after: str | None, limit: int, issuer_id: str | None, active_only: bool
) -> list[sa.Row]:
    query = sa.select(*LISTED).order_by(api_tokens.c.id).limit(limit)
    if after is not None:
        query = query.where(api_tokens.c.id > after)
    if issuer_id is not None:
        query = query.where(api_tokens.c.issuer_id == issuer_id)
    if active_only:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return list((await conn.execute(query)).all())


async def revoke(conn: AsyncConnection, token_id: str, at: datetime) -> sa.Row | None:
    """Revoke (a revoked token keeps its first revocation time); answers the token, or None if unknown."""
    await conn.execute(
        sa.update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return (await conn.execute(sa.select(*LISTED).where(api_tokens.c.id == token_id))).first()


async def issuer_exists(conn: AsyncConnection, issuer_id: str) -> bool:
    """Whether a token may be bound to `issuer_id` (auth sits below the issuers room, so it reads the table itself)."""
    query = sa.select(sa.literal(True)).select_from(issuers).where(issuers.c.id == issuer_id)
    return (await conn.execute(query)).scalar() is True
