"""Attesters (the public-data operators' keys), the per-process registry of them, and audit verification.

Rotation: register the new key under the same name, move the attester's signing to it, then retire the old key
(`DELETE /v1/attesters/{id}`). From then on attestations signed with the old key are refused at issue and claim
(`attester_retired`), while `POST /v1/attestations/verify` still checks them against the retired key and says
whether they were signed before the retirement, for audit.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.attestations import jws, repository
from voucher_engine.attestations.checks import Attester, invalid
from voucher_engine.attestations.schemas import Attester as AttesterModel
from voucher_engine.attestations.schemas import AttesterCreate, AuditAnswer, AuditUse
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError

# Claims read the registry from a per-process copy at most this old: a key registered or retired through any
# worker is seen by every worker within this time (through the worker that made the change, at once). Issuances
# read the registry fresh in their own transaction.
REGISTRY_TTL_S = 2.0
# Attesters' times and attestations' iat/exp are security windows: the real clock, never the test clock (as for
# request signing), so that moving business time cannot revive an expired attestation or a retired key.
_cached: tuple[float, dict[str, Attester]] | None = None


def to_model(row) -> AttesterModel:
    return AttesterModel(
        id=row.id,
        name=row.name,
        public_key=base64.b64encode(row.public_key).decode(),
        status="retired" if row.retired_at is not None else "active",
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


async def create(conn: AsyncConnection, body: AttesterCreate) -> AttesterModel:
    try:
        key = jws.public_key_from_base64(body.public_key)
    except ValueError:
        raise EngineError(
            "VALIDATION_ERROR", "public_key must be the base64 of a raw 32-byte Ed25519 public key."
        ) from None
    raw = key.public_bytes_raw()
    attester_id = "att_" + secrets.token_hex(8)
    if not await repository.insert_attester(
        conn, attester_id=attester_id, name=body.name.strip(), public_key=raw, created_at=clock.real_now()
    ):
        raise EngineError("CONFLICT", "This public key is already registered.")
    invalidate()
    row = await repository.get_attester(conn, attester_id)
    return to_model(row)


async def retire(conn: AsyncConnection, attester_id: str) -> AttesterModel:
    row = await repository.retire(conn, attester_id, clock.real_now())
    if row is None:
        raise EngineError("NOT_FOUND", f"No attester {attester_id!r}.")
    invalidate()
    return to_model(row)


async def name_registered(conn: AsyncConnection, name: str) -> bool:
    return await repository.name_registered(conn, name)


def _attester(row) -> Attester:
    return Attester(
        id=row.id,
        name=row.name,
        public_key=bytes(row.public_key),
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


async def load(conn: AsyncConnection) -> dict[str, Attester]:
    """Every attester by id, read now (issuances: in their own transaction)."""
    return {row.id: _attester(row) for row in await repository.all_attesters(conn)}


async def cached(engine: AsyncEngine) -> dict[str, Attester]:
    """The registry as claims use it: this process's copy, at most `REGISTRY_TTL_S` old."""
    global _cached
    now = time.monotonic()
    if _cached is None or _cached[0] <= now:
        async with engine.connect() as conn:
            registry = await load(conn)
        _cached = (now + REGISTRY_TTL_S, registry)
    return _cached[1]


def invalidate() -> None:
    global _cached
    _cached = None


def _when(seconds: object) -> datetime | None:
    if type(seconds) is not int or not 0 <= seconds < 253402300800:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


async def audit(conn: AsyncConnection, subject: Subject, token: str) -> AuditAnswer:
    """Check an attestation for audit: the signature against its attester's key even if retired, and what the
    engine recorded when it spent it (for a campaign the caller may see). Nothing is spent."""
    try:
        compact = jws.parse(token)
    except jws.Malformed as exc:
        raise invalid(exc.check) from None
    claims = compact.claims
    issuer = claims.get("iss")
    row = await repository.get_attester(conn, issuer) if isinstance(issuer, str) else None
    attester = _attester(row) if row is not None else None
    valid = attester is not None and jws.signature_ok(compact, attester.public_key)
    issued_at = _when(claims.get("iat"))
    before = None
    if attester is not None and attester.retired_at is not None and issued_at is not None:
        before = issued_at < attester.retired_at
    audience, jti = claims.get("aud"), claims.get("jti")
    sha256 = hashlib.sha256(token.encode("ascii")).digest()
    use = None
    if valid and isinstance(audience, str) and isinstance(jti, str):
        found = await repository.get_use(conn, audience, jti)
        if found is not None and found.attestation_sha256 == sha256 and subject.can_see_issuer(found.issuer_id):
            use = AuditUse(
                campaign_id=found.campaign_id,
                decision=found.decision,
                issuance_id=found.issuance_id,
                used_at=found.used_at,
            )
    return AuditAnswer(
        signature_valid=valid,
        attester_id=attester.id if attester is not None else None,
        attester_name=attester.name if attester is not None else None,
        attester_status=None if attester is None else ("retired" if attester.retired_at else "active"),
        signed_before_retirement=before,
        sha256=sha256.hex(),
        campaign_id=audience if isinstance(audience, str) else None,
        wallet_id=claims.get("sub") if valid and isinstance(claims.get("sub"), str) else None,
        jti=jti if isinstance(jti, str) else None,
        issued_at=issued_at,
        expires_at=_when(claims.get("exp")),
        use=use,
    )
