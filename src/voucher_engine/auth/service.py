"""Making and checking bearer tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.auth import repository
from voucher_engine.auth.subjects import ROLES, Subject
from voucher_engine.errors import EngineError

TOKEN_PREFIX = "ve_"
MAX_TOKEN_CHARS = 128


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


async def authenticate(conn: AsyncConnection, authorization: str | None) -> Subject:
    """The subject behind an `Authorization: Bearer ...` header, or UNAUTHENTICATED."""
    if not authorization:
        raise EngineError("UNAUTHENTICATED", "A bearer token is required.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise EngineError("UNAUTHENTICATED", "The Authorization header must be 'Bearer <token>'.")
    row = await repository.find_active_token(conn, _hash(token))
    if row is None:
        raise EngineError("UNAUTHENTICATED", "The token is unknown or revoked.")
    return Subject(role=row.role, token_id=row.id, issuer_id=row.issuer_id, issuer_region=row.region_code)
