"""POS request signing (API.md): HMAC-SHA256 over five canonical lines, a ±300 s window, single-use nonces.

Verification order: header shapes, freshness (real clock), the key (known and not revoked), the signature in
constant time, and only then the nonce — so that nobody without the secret can burn a till's nonces. Nonces are
stored in PostgreSQL, which every worker shares and which survives restarts; an expired nonce can never be
replayed anyway (its timestamp is stale), so rows older than the window are pruned.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.errors import EngineError
from voucher_engine.merchants import repository
from voucher_engine.secrets_store import derive

WINDOW_SECONDS = 300
# Nonces are kept a little longer than any timestamp could still be accepted (2 × window, plus slack).
NONCE_RETENTION = timedelta(seconds=2 * WINDOW_SECONDS + 60)
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SIGNATURE_PATTERN = re.compile(r"^[0-9a-f]{64}$")
TIMESTAMP_PATTERN = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True, slots=True)
class SignedCaller:
    """A merchant's till, proven by a valid signature."""

    merchant_id: str
    key_id: str


@lru_cache(maxsize=4096)  # a till signs every request: derive once per key and worker (the bound: key ids seen)
def derive_key_secret(server_secret: bytes, key_id: str) -> str:
    """The hex secret a POS key signs with; derived, so it is never stored."""
    return derive(server_secret, "pos-key", key_id).hex()


def canonical_string(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join((method.upper(), path_with_query, timestamp, nonce, hashlib.sha256(body).hexdigest()))


def sign(secret_hex: str, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """What a POS client computes; used by tests, the demo and the load generator."""
    message = canonical_string(method, path_with_query, timestamp, nonce, body)
    return hmac.new(secret_hex.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SignatureHeaders:
    key_id: str
    timestamp: str
    nonce: str
    signature: str


def parse_headers(
    key_id: str | None, timestamp: str | None, nonce: str | None, signature: str | None
) -> SignatureHeaders:
    if not key_id or not timestamp or not nonce or not signature:
        raise EngineError(
            "UNAUTHENTICATED", "Signed requests need X-VE-Key-Id, X-VE-Timestamp, X-VE-Nonce and X-VE-Signature."
        )
    if not KEY_ID_PATTERN.match(key_id):
        raise EngineError("BAD_SIGNATURE", "X-VE-Key-Id is malformed.")
    if not TIMESTAMP_PATTERN.match(timestamp):
        raise EngineError("STALE_REQUEST", "X-VE-Timestamp must be unix seconds.")
    if not NONCE_PATTERN.match(nonce):
        raise EngineError("BAD_SIGNATURE", "X-VE-Nonce must be 16 to 64 characters of [A-Za-z0-9_-].")
    if not SIGNATURE_PATTERN.match(signature):
        raise EngineError("BAD_SIGNATURE", "X-VE-Signature must be 64 lowercase hex digits.")
    return SignatureHeaders(key_id, timestamp, nonce, signature)


def check_fresh(timestamp: str) -> None:
    skew = abs(clock.real_now().timestamp() - int(timestamp))
    if skew > WINDOW_SECONDS:
        raise EngineError(
            "STALE_REQUEST",
            f"X-VE-Timestamp is {int(skew)} s away from the server's clock (at most {WINDOW_SECONDS} s allowed).",
        )


def check_signature(
    server_secret: bytes, headers: SignatureHeaders, method: str, path_with_query: str, body: bytes
) -> None:
    expected = sign(
        derive_key_secret(server_secret, headers.key_id),
        method,
        path_with_query,
        headers.timestamp,
        headers.nonce,
        body,
    )
    if not hmac.compare_digest(expected, headers.signature):
        raise EngineError("BAD_SIGNATURE", "The signature does not match the request.")


async def claim_nonce(conn: AsyncConnection, key_id: str, nonce: str) -> None:
    """Record the nonce; REPLAYED_REQUEST if this key used it before within the window."""
    if not await repository.insert_nonce(conn, key_id, nonce, clock.real_now()):
        raise EngineError("REPLAYED_REQUEST", "This nonce was already used with this key.")


async def prune_nonces(conn: AsyncConnection, limit: int = 10_000) -> int:
    """Delete up to `limit` nonces too old to matter; answer how many went."""
    return await repository.delete_nonces_before(conn, clock.real_now() - NONCE_RETENTION, limit)


def verify_without_database(
    server_secret: bytes,
    *,
    method: str,
    path_with_query: str,
    body: bytes,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
) -> SignatureHeaders:
    """Shapes, freshness and the HMAC: everything but revocation and the nonce, which need the database.

    A valid HMAC already proves the key was made here (its secret is derived from the server secret), so the
    redemption path can do this before any database work and check revocation and the nonce inside its batch.
    """
    headers = parse_headers(key_id, timestamp, nonce, signature)
    check_fresh(headers.timestamp)
    check_signature(server_secret, headers, method, path_with_query, body)
    return headers


async def verify(
    conn: AsyncConnection,
    server_secret: bytes,
    *,
    method: str,
    path_with_query: str,
    body: bytes,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
) -> SignedCaller:
    """The whole check of one signed request; the nonce is recorded on `conn` (commit it even if the work fails)."""
    headers = verify_without_database(
        server_secret,
        method=method,
        path_with_query=path_with_query,
        body=body,
        key_id=key_id,
        timestamp=timestamp,
        nonce=nonce,
        signature=signature,
    )
    merchant_id = await repository.active_key_merchant(conn, headers.key_id)
    if merchant_id is None:
        raise EngineError("BAD_SIGNATURE", "The key is unknown or revoked.")
    await claim_nonce(conn, headers.key_id, headers.nonce)
    return SignedCaller(merchant_id=merchant_id, key_id=headers.key_id)
