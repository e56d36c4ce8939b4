"""Co-funding by consent (联合出资): whose fiscal account a campaign may draw on, and who said so.

A campaign's own issuer commits only its own fiscal account. Every other funder its contract names is a
registered issuer (checked when the campaign is created: `CONTRACT_INVALID` at the funder's line otherwise) whose
share stays `pending` until that issuer's government approves or declines it. The named co-funder may read the
campaign (and finds it in its list). Funding needs every share `own` or `approved`, checked under the campaign's
lock, where approvals are also taken, so a decline cannot slip in between the check and the money moving.

Approving commits nothing yet, but is refused when the share would already take the approver beyond its
appropriation (`INSUFFICIENT_FUNDS`); funding checks every funder's appropriation again, under the issuers' locks.
A decision can be changed while the campaign is a draft (at most `MAX_DECISIONS_PER_FUNDER` times); once funded,
consents are final. Every decision is kept (campaign_funder_decisions, append-only) with the token that gave it
and when.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import repository
from voucher_engine.campaigns.shares import split_by_shares
from voucher_engine.contracts import Funder
from voucher_engine.errors import EngineError
from voucher_engine.issuers import repository as issuer_repository
from voucher_engine.issuers import service as issuer_service

MAX_DECISIONS_PER_FUNDER = 20
# What an approval and a decline write into `campaign_funders.approval`.
DECISIONS = {"approve": "approved", "decline": "declined"}
FUNDABLE = ("own", "approved")


async def funder_rows(
    conn: AsyncConnection, funders: Sequence[Funder], campaign_id: str, issuer_id: str
) -> list[dict[str, object]]:
    """The contract's funders as `campaign_funders` rows: `own` for the campaign's issuer, else `pending`.
    Refuses the contract (CONTRACT_INVALID, at each funder's line) if a funder is not a registered issuer."""
    wanted = [issuer_service.issuer_id_for(funder.region_code) for funder in funders]
    known = await issuer_repository.registered(conn, wanted)
    errors = []
    for funder, funder_issuer in zip(funders, wanted):
        if funder_issuer not in known:
            span = funder.span
            errors.append(
                {
                    "line": span.line if span else 1,
                    "column": span.column if span else 1,
                    "message": f"the funder {funder.region_code} is not a registered issuer: an operator registers "
                    "it first (POST /v1/issuers)",
                }
            )
    if errors:
        raise EngineError("CONTRACT_INVALID", f"The contract has {len(errors)} error(s).", errors=errors)
    return [
        {
            "campaign_id": campaign_id,
            "position": position,
            "region_code": funder.region_code,
            "issuer_id": funder_issuer,
            "share_bp": funder.share_bp,
            "approval": "own" if funder_issuer == issuer_id else "pending",
        }
        for position, (funder, funder_issuer) in enumerate(zip(funders, wanted))
    ]


def amounts_fen(budget_fen: int, funders: Sequence[sa.Row]) -> list[int]:
    """Each funder's part of the budget, as funding will move it (shares.py's rule)."""
    return split_by_shares(budget_fen, [funder.share_bp for funder in funders])


def require_fundable(funders: Sequence[sa.Row]) -> None:
    """FUNDING_NOT_APPROVED unless every share is the issuer's own or approved. Call under the campaign's lock."""
    waiting = [{"issuer_id": f.issuer_id, "approval": f.approval} for f in funders if f.approval not in FUNDABLE]
    if waiting:
        named = ", ".join(f"{w['issuer_id']} ({w['approval']})" for w in waiting)
        raise EngineError(
            "FUNDING_NOT_APPROVED",
            f"Every co-funder must approve its share before funding; not approved: {named}.",
            funders=waiting,
        )


async def check_appropriations(conn: AsyncConnection, budget_fen: int, funders: Sequence[sa.Row]) -> None:
    """Lock every funder's issuer row and refuse if its part would take it beyond its appropriation."""
    wanted: dict[str, int] = {}
    for funder, part in zip(funders, amounts_fen(budget_fen, funders)):
        wanted[funder.issuer_id] = wanted.get(funder.issuer_id, 0) + part
    await issuer_service.commit_check(conn, wanted, what="Funding this campaign")


async def decide(conn: AsyncConnection, subject: Subject, row: sa.Row, issuer_id: str, action: str) -> None:
    """Record `subject`'s approval or decline of `issuer_id`'s share of the campaign `row` (already locked and
    visible to the subject). Deciding again the way it stands is a no-op: nothing new is recorded."""
    if subject.role != "gov" or subject.issuer_id != issuer_id:
        raise EngineError("FORBIDDEN", f"Only the government of {issuer_id} approves or declines its share.")
    funders = await repository.funders_of(conn, row.id)
    mine = [(f, part) for f, part in zip(funders, amounts_fen(row.budget_fen, funders)) if f.issuer_id == issuer_id]
    if not mine:
        raise EngineError("NOT_FOUND", f"{issuer_id} is not a funder of campaign {row.id!r}.")
    funder, part_fen = mine[0]
    if funder.approval == "own":
        raise EngineError(
            "INVALID_STATE", "The campaign's own issuer commits its own share; there is nothing to approve."
        )
    if row.status != "draft":
        raise EngineError(
            "INVALID_STATE",
            f"The campaign is {row.status}: consents are final once it is funded.",
            campaign_status=row.status,
        )
    decision = DECISIONS[action]
    if funder.approval == decision:
        return
    if await repository.count_decisions(conn, row.id, issuer_id) >= MAX_DECISIONS_PER_FUNDER:
        raise EngineError(
            "INVALID_STATE",
            f"{issuer_id} has changed its decision {MAX_DECISIONS_PER_FUNDER} times; that is the limit.",
        )
    if decision == "approved":
        await issuer_service.commit_check(conn, {issuer_id: part_fen}, what="Approving this share")
    await repository.record_decision(
        conn, campaign_id=row.id, issuer_id=issuer_id, decision=decision, token_id=subject.token_id, at=clock.now()
    )
