"""Registering issuers, and their appropriations (预算额度). Each issuer's id is derived from its region, and it gets
a fiscal account in the ledger.

An issuer's *committed* money is what its fiscal account has paid out and not had back: its share of every funded
campaign, less returns (the negative of the account's balance; nothing else moves a fiscal account). An optional
*appropriation* caps it: funding a campaign, or approving a share of one, beyond the ceiling is
`INSUFFICIENT_FUNDS`. `commit_check` is how fundings and approvals test it: under a lock on the issuers' rows, so
that racing fundings of one issuer are checked one after the other and never exceed the ceiling together.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.issuers import repository
from voucher_engine.issuers.schemas import Issuer, IssuerCreate
from voucher_engine.ledger import service as ledger


def issuer_id_for(region_code: str) -> str:
    return f"iss_{region_code}"


def fiscal_account(issuer_id: str) -> str:
    return f"fiscal:{issuer_id}"


def to_model(row) -> Issuer:
    return Issuer(
        id=row.id,
        name=row.name,
        region_code=row.region_code,
        fiscal_account=fiscal_account(row.id),
        created_at=row.created_at,
        appropriation_fen=row.appropriation_fen,
        committed_fen=int(row.committed_fen),
    )


async def create(conn: AsyncConnection, body: IssuerCreate) -> Issuer:
    issuer_id = issuer_id_for(body.region_code)
    if not await repository.insert(
        conn, issuer_id=issuer_id, name=body.name, region_code=body.region_code, created_at=clock.now()
    ):
        raise EngineError("CONFLICT", f"an issuer for region {body.region_code} already exists ({issuer_id})")
    await _open_fiscal_account(conn, issuer_id)
    row = await repository.get(conn, issuer_id)
    return to_model(row)


async def get(conn: AsyncConnection, issuer_id: str, subject: Subject | None = None) -> Issuer:
    """One issuer; a gov or bound auditor sees only its own (another's answers 404, like anything not theirs)."""
    row = await repository.get(conn, issuer_id)
    if row is None or (subject is not None and not subject.can_see_issuer(issuer_id)):
        raise EngineError("NOT_FOUND", f"no issuer {issuer_id!r}")
    return to_model(row)


async def set_appropriation(conn: AsyncConnection, issuer_id: str, appropriation_fen: int | None) -> Issuer:
    """Set or lift the ceiling. A ceiling below what is committed already is allowed: it refuses new commitments
    until returns bring the issuer back under it, and takes back nothing."""
    if not await repository.set_appropriation(conn, issuer_id, appropriation_fen):
        raise EngineError("NOT_FOUND", f"no issuer {issuer_id!r}")
    return await get(conn, issuer_id)


async def commit_check(conn: AsyncConnection, wanted_fen: Mapping[str, int], *, what: str) -> None:
    """Lock the issuers named and refuse (`INSUFFICIENT_FUNDS`) if committing `wanted_fen[issuer]` more would take
    any of them beyond its appropriation. The locks are held to the end of the caller's transaction, in which the
    caller then commits the money (or, for an approval, records the consent)."""
    rows = await repository.lock_for_commitment(conn, list(wanted_fen))
    for issuer_id, amount_fen in wanted_fen.items():
        row = rows.get(issuer_id)
        if row is None:
            raise EngineError("NOT_FOUND", f"no issuer {issuer_id!r}")
        if row.appropriation_fen is None:
            continue
        committed_fen = int(row.committed_fen)
        if committed_fen + amount_fen > row.appropriation_fen:
            raise EngineError(
                "INSUFFICIENT_FUNDS",
                f"{what} would commit {amount_fen} fen more of {issuer_id}, which has committed {committed_fen} fen "
                f"of its appropriation of {row.appropriation_fen} fen.",
                issuer_id=issuer_id,
                appropriation_fen=row.appropriation_fen,
                committed_fen=committed_fen,
                needed_fen=amount_fen,
            )


async def _open_fiscal_account(conn: AsyncConnection, issuer_id: str) -> None:
    await ledger.open_account(conn, fiscal_account(issuer_id))
