"""Who may see which part of the ledger: the one place the ledger looks at another domain's tables.

gov callers (and auditors bound to an issuer) see the transactions of their issuer's own campaigns and their own
fiscal account. The ledger knows campaigns only as the `campaign_id` its rows carry, so the owner is looked up in
the campaigns' table (`campaigns(id, issuer_id)`, and `vouchers(id, campaign_id)` for a voucher not yet in the
ledger), through the ledger's repository and the tables of db/schema: never through the campaigns room.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.ledger import repository


async def campaign_issuer(conn: AsyncConnection, campaign_id: str) -> str | None:
    """The issuer that owns `campaign_id`, or None (no such campaign)."""
    return await repository.campaign_issuer(conn, campaign_id)


async def voucher_campaign(conn: AsyncConnection, voucher_id: str) -> str | None:
    """The campaign of `voucher_id`, or None (no such voucher)."""
    return await repository.voucher_campaign(conn, voucher_id)


def sees_everything(subject: Subject) -> bool:
    """An auditor bound to no issuer reads the whole ledger."""
    return subject.role == "auditor" and subject.issuer_id is None


async def can_see_campaign(conn: AsyncConnection, subject: Subject, campaign_id: str | None) -> bool:
    """Whether the caller may read this campaign's books (an unbound auditor: every campaign's)."""
    if sees_everything(subject):
        return True
    if subject.issuer_id is None or campaign_id is None:
        return False  # a transaction of no campaign (a payout) is the operator's and the unbound auditor's
    return await campaign_issuer(conn, campaign_id) == subject.issuer_id


async def require_campaign(conn: AsyncConnection, subject: Subject, campaign_id: str) -> None:
    """NOT_FOUND (never FORBIDDEN: another issuer's campaigns are none of the caller's business) unless visible."""
    if not await can_see_campaign(conn, subject, campaign_id):
        raise EngineError("NOT_FOUND", f"no campaign {campaign_id!r} in the caller's ledger")


async def require_account(conn: AsyncConnection, subject: Subject, account: str) -> None:
    if sees_everything(subject):
        return
    kind, _, owner = account.partition(":")
    if kind == "fiscal" and owner == subject.issuer_id:
        return
    if kind == "escrow" and await can_see_campaign(conn, subject, owner):
        return
    # A merchant's settlement account mixes every issuer's campaigns.
    raise EngineError("NOT_FOUND", f"no ledger account {account!r} visible to the caller")
