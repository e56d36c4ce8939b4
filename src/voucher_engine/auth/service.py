"""Making, checking, listing and revoking bearer tokens.

Tokens are looked up in the database on every request (auth/gate.py coalesces a burst's look-ups without ever
answering from before the request), so a revocation takes effect at once on every worker. Claims remember a gov
token's identity and check that it is live in their own batch statement instead (campaigns/endpoints.py), which is
just as immediate. `last_used_at` is
written at most once a minute per token and worker: a write per request would cost the hot paths a round trip.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.auth import repository
from voucher_engine.auth.schemas import TokenInfo
from voucher_engine.auth.subjects import ROLES, Subject
from voucher_engine.errors import EngineError

TOKEN_PREFIX = "ve_"
MAX_TOKEN_CHARS = 128
TOUCH_EVERY = timedelta(minutes=1)
MAX_TOUCH_MEMO = 10_000
# token id -> when this worker last wrote its last_used_at (monotonic seconds).
_touched: dict[str, float] = {}


def _hash(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(conn: AsyncConnection, role: str, issuer_id: str | None = None) -> tuple[str, str]:
    """Make a token; answer (token, token_id). The token itself is never stored."""
    if role not in ROLES:
        raise EngineError("VALIDATION_ERROR", f"role must be one of {', '.join(ROLES)}")
    if role == "gov" and issuer_id is None:
        raise EngineError("VALIDATION_ERROR", "a gov token must be bound to an issuer (issuer_id)")
    if role == "admin" and issuer_id is not None:
        raise EngineError("VALIDATION_ERROR", "an admin token cannot be bound to an issuer")
    if issuer_id is not None and not await repository.issuer_exists(conn, issuer_id):
        raise EngineError("NOT_FOUND", f"no issuer {issuer_id!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = "tok_" + secrets.token_hex(8)
    await repository.insert_token(
        conn, token_id=token_id, token_sha256=_hash(token), role=role, issuer_id=issuer_id, created_at=clock.real_now()
    )
    return token, token_id


def bearer_digest(authorization: str | None) -> str:
    """The SHA-256 under which the `Authorization: Bearer ...` header's token would be stored, or UNAUTHENTICATED.

    For a statement that checks the token itself (`repository.ACTIVE_TOKEN`), as `authenticate` does."""
    if not authorization:
        raise EngineError("UNAUTHENTICATED", "A bearer token is required.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise EngineError("UNAUTHENTICATED", "The Authorization header must be 'Bearer <token>'.")
    return _hash(token)


UNKNOWN_TOKEN = "The token is unknown or revoked."


async def authenticate(conn: AsyncConnection, authorization: str | None) -> Subject:
    """The subject behind an `Authorization: Bearer ...` header, or UNAUTHENTICATED."""
    row = await repository.find_active_token(conn, bearer_digest(authorization))
    if row is None:
        raise EngineError("UNAUTHENTICATED", UNKNOWN_TOKEN)
    await _touch(conn, row.id)
    return Subject(role=row.role, token_id=row.id, issuer_id=row.issuer_id, issuer_region=row.region_code)


async def touch_remembered(engine: AsyncEngine, token_id: str) -> None:
    """Write last_used_at for a token used without a look-up (claims remember theirs), at most once a minute."""
    if time.monotonic() - _touched.get(token_id, float("-inf")) < TOUCH_EVERY.total_seconds():
        return
    async with engine.connect() as conn:
        await _touch(conn, token_id)


async def _touch(conn: AsyncConnection, token_id: str) -> None:
    """Write last_used_at if this worker has not for a minute; commits on `conn` (a connection of its own)."""
    now = time.monotonic()
    if now - _touched.get(token_id, float("-inf")) < TOUCH_EVERY.total_seconds():
        return
    if len(_touched) >= MAX_TOUCH_MEMO:
        _touched.clear()
    _touched[token_id] = now
    await repository.touch(conn, token_id, clock.real_now(), TOUCH_EVERY)
    await conn.commit()


async def list_tokens(
    conn: AsyncConnection, *, after: str | None, limit: int, issuer_id: str | None = None, active_only: bool = False
) -> list[TokenInfo]:
    rows = await repository.list_page(conn, after=after, limit=limit, issuer_id=issuer_id, active_only=active_only)
    return [TokenInfo.model_validate(row._mapping) for row in rows]


async def revoke_token(conn: AsyncConnection, token_id: str) -> TokenInfo:
    """Revoke a token at once (idempotent: revoking it again keeps the first time); NOT_FOUND if unknown."""
    row = await repository.revoke(conn, token_id, clock.real_now())
    if row is None:
        raise EngineError("NOT_FOUND", f"no token {token_id!r}")
    return TokenInfo.model_validate(row._mapping)
