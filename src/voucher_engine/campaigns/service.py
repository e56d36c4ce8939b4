"""Campaigns for governments: create from a contract, the lifecycle, funding, close, totals and wallets.

Lifecycle (状态机)::

    draft --fund--> funded --activate--> active <--pause/activate--> paused
                                           |                            |
                                           +-----------close------------+--> closed

Every other move is refused with `INVALID_STATE`. Moves are conditional UPDATEs under the campaign's advisory lock
(repository.lock_campaign), so two concurrent moves cannot both win.

- **Fund** moves the whole budget from each funder's fiscal account to the campaign's escrow in one balanced `fund`
  transaction, in the contract's shares (rounded down to the fen; the leftover fen to the first funder listed).
  Every funder must be a registered issuer (`iss_<region>`; checked at creation, consent.py), every co-funder must
  have approved its share (`FUNDING_NOT_APPROVED`), and no funder may go beyond its appropriation
  (`INSUFFICIENT_FUNDS`): all checked under the campaign's lock and the funders' issuer locks.
- **Close** first expires the vouchers whose window has ended, then revokes every voucher still spendable (an
  early close: some voucher was still within, or not yet in, its window), stops first-come stock, and returns the
  whole escrow balance to the funders in one `return` transaction split by the same rule. For a fixed window the
  campaign's window ends at its `valid_until`; for a validity relative to issue it ends when the last voucher
  issued has passed its own `valid_until`. Closing is allowed from `active` and `paused`.

Scoping: gov creates campaigns only for contracts whose issuer region lies within its own region, and sees and
changes only its own issuer's campaigns (another's answer 404); a co-funder named by a campaign's contract reads it
too and approves or declines its share (consent.py). Auditors read (a bound auditor, one issuer's, and those it
co-funds); admins read everything.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.attestations import service as attestation_service
from voucher_engine.auth.subjects import Subject, region_contains
from voucher_engine.campaigns import codes, consent, expiry, ids, money, repository
from voucher_engine.campaigns.schemas import (
    Campaign,
    CampaignDetail,
    CheckAnswer,
    FunderDecision,
    Funding,
    Totals,
    Voucher,
)
from voucher_engine.contracts import ContractInvalid, FixedWindow, check_contract, compile_contract
from voucher_engine.contracts.sample import explain_payment
from voucher_engine.errors import EngineError
from voucher_engine.webhooks import service as webhooks

T = TypeVar("T")

# A campaign's detail shows at most this many funder decisions (the latest; all are kept).
MAX_DECISIONS_SHOWN = 100
# First-come stock is split over this many rows at most (fewer when the quantity is smaller).
MAX_STOCK_SHARDS = 64

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "fund": (("draft",), "funded"),
    "activate": (("funded", "paused"), "active"),
    "pause": (("active",), "paused"),
    "close": (("active", "paused"), "closed"),
}


# Checking and compiling a contract is CPU only (contracts/limits.py bounds it to tens of milliseconds); it runs in a
# thread of its own so that the worker's event loop keeps answering (/healthz, tills, claims) meanwhile. One thread:
# concurrent checks queue behind each other rather than multiply threads that fight the loop for the GIL.
_CONTRACT_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contract-check")


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on the contract thread, awaited."""
    return await asyncio.get_running_loop().run_in_executor(_CONTRACT_THREAD, function, *args)


async def check_off_loop(source: str) -> CheckAnswer:
    """`check`, off the event loop."""
    return await off_loop(check, source)


def check(source: str) -> CheckAnswer:
    result = check_contract(source)
    if not result.ok:
        raise EngineError(
            "CONTRACT_INVALID",
            f"The contract has {len(result.errors)} error(s).",
            errors=[d.to_dict() for d in result.errors],
            warnings=[d.to_dict() for d in result.warnings],
        )
    return CheckAnswer(ok=True, summary=result.summary, warnings=[d.to_dict() for d in result.warnings])


def explain(source: str, payment: dict[str, Any], holder: dict[str, Any] | None, issued_at: Any) -> dict[str, Any]:
    """What the contract does with one sample payment (contracts.sample), after the same check as `check`."""
    check(source)
    if issued_at is not None and issued_at.tzinfo is None:
        raise EngineError("VALIDATION_ERROR", "issued_at must carry an offset, like +08:00.")
    try:
        return explain_payment(compile_contract(source), payment, holder, issued_at)
    except (ValueError, TypeError) as exc:
        raise EngineError("VALIDATION_ERROR", f"The payment cannot be read: {exc}.") from None


def stock_split(quantity: int) -> list[int]:
    shards = min(MAX_STOCK_SHARDS, quantity)
    base, extra = divmod(quantity, shards)
    return [base + (1 if shard < extra else 0) for shard in range(shards)]


async def create(conn: AsyncConnection, subject: Subject, source: str) -> CampaignDetail:
    if subject.role != "gov" or subject.issuer_id is None or subject.issuer_region is None:
        raise EngineError("FORBIDDEN", "Only a government (gov) token creates campaigns.")
    try:
        contract = await off_loop(compile_contract, source)
    except ContractInvalid as exc:
        raise EngineError(
            "CONTRACT_INVALID",
            f"The contract has {len(exc.errors)} error(s).",
            errors=[d.to_dict() for d in exc.errors],
        ) from None
    await _resolve_attester(conn, source, contract.model.attester)
    if not region_contains(subject.issuer_region, contract.issuer_region):
        raise EngineError(
            "FORBIDDEN",
            f"The contract's issuer region {contract.issuer_region} is not within this "
            f"government's region {subject.issuer_region}.",
        )
    now = clock.now()
    campaign_id = ids.new_campaign_id()
    validity = contract.validity
    window: tuple[datetime | None, datetime | None]
    if isinstance(validity, FixedWindow):
        window, validity_seconds = (validity.valid_from, validity.valid_until), None
    else:
        window, validity_seconds = (None, None), validity.seconds
    stock = stock_split(contract.quantity) if contract.distribution == "first_come" else []
    values = {
        "id": campaign_id,
        "issuer_id": subject.issuer_id,
        "name": contract.name,
        "status": "draft",
        "contract_source": source,
        "contract_sha256": contract.sha256,
        "issuer_region": contract.issuer_region,
        "timezone": contract.timezone,
        "budget_fen": contract.budget_fen,
        "quantity": contract.quantity,
        "per_holder_limit": contract.per_holder_limit,
        "kind": contract.kind,
        "distribution": contract.distribution,
        "face_value_fen": contract.face_value_fen,
        "daily_cap_fen": contract.daily_cap_fen,
        "valid_from": window[0],
        "valid_until": window[1],
        "validity_seconds": validity_seconds,
        "summary": contract.summary(),
        "stock_shards": len(stock),
        "created_at": now,
        "updated_at": now,
    }
    funders = await consent.funder_rows(conn, contract.funders, campaign_id, subject.issuer_id)
    await repository.insert_campaign(conn, values, funders, stock)
    await money.open_escrow(conn, campaign_id)
    return await get(conn, subject, campaign_id)


async def _resolve_attester(conn: AsyncConnection, source: str, name: str | None) -> None:
    """`holder attested by "<name>"` must name a registered attester (any of its keys, active or not: a name's keys
    rotate) when the campaign is created; the contract language itself cannot know the registry."""
    if name is None or await attestation_service.name_registered(conn, name):
        return
    match = re.search(r"holder\s+attested\s+by\s+\"", source)
    line = source.count("\n", 0, match.end()) + 1 if match else 1
    column = match.end() - source.rfind("\n", 0, match.end()) - 1 if match else 1
    raise EngineError(
        "CONTRACT_INVALID",
        "The contract has 1 error(s).",
        errors=[{"line": line, "column": column, "message": f"no attester named {name!r} is registered"}],
    )


async def _visible_row(conn: AsyncConnection, subject: Subject, campaign_id: str, *, lock: bool = False) -> sa.Row:
    if lock:
        await repository.lock_campaign(conn, campaign_id)
    row = await repository.get_campaign(conn, campaign_id)
    if row is None or not (
        subject.can_see_issuer(row.issuer_id)
        or (subject.issuer_id is not None and await repository.is_funder(conn, campaign_id, subject.issuer_id))
    ):
        raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
    return row


async def get(conn: AsyncConnection, subject: Subject, campaign_id: str, *, with_totals: bool = True) -> CampaignDetail:
    row = await _visible_row(conn, subject, campaign_id)
    funders = await repository.funders_of(conn, campaign_id)
    totals = await campaign_totals(conn, campaign_id) if with_totals else None
    decisions = await repository.decisions_of(conn, campaign_id, limit=MAX_DECISIONS_SHOWN)
    return to_detail(row, funders, totals, decisions)


async def decide_funding(
    conn: AsyncConnection, subject: Subject, campaign_id: str, issuer_id: str, action: str
) -> CampaignDetail:
    """A co-funder's `approve` or `decline` of its share, under the campaign's lock (consent.py)."""
    row = await _visible_row(conn, subject, campaign_id, lock=True)
    await consent.decide(conn, subject, row, issuer_id, action)
    return await get(conn, subject, campaign_id)


async def list_campaigns(conn: AsyncConnection, subject: Subject, *, after: str | None, limit: int) -> list[Campaign]:
    issuer_filter = None if subject.can_see_issuer("\x00all") else subject.issuer_id
    rows = await repository.list_campaigns(conn, issuer_id=issuer_filter, after=after, limit=limit)
    funders = await repository.funders_of_many(conn, [row.id for row in rows]) if rows else {}
    return [to_model(row, funders[row.id], None) for row in rows]


async def campaign_totals(conn: AsyncConnection, campaign_id: str) -> Totals:
    counts = await repository.voucher_counts(conn, campaign_id)
    found = await money.totals(conn, campaign_id)
    return Totals(
        funded_fen=found.funded_fen,
        issued_fen=counts["issued_fen"],
        redeemed_fen=found.redeemed_fen,
        refunded_fen=found.refunded_fen,
        returned_fen=found.returned_fen,
        clawed_back_fen=found.clawed_back_fen,
        outstanding_fen=found.outstanding_fen,
        vouchers_issued=counts["issued"],
        vouchers_redeemed=counts["redeemed"],
        vouchers_expired=counts["expired"],
        vouchers_revoked=counts["revoked"],
    )


def _require_changer(subject: Subject, row: sa.Row) -> None:
    if subject.role != "gov" or subject.issuer_id != row.issuer_id:
        # Readers who may see it are told they may not change it; others were already answered 404.
        raise EngineError("FORBIDDEN", "Only the issuing government changes a campaign.")


def _refuse(row: sa.Row, action: str) -> EngineError:
    allowed, _ = TRANSITIONS[action]
    return EngineError(
        "INVALID_STATE",
        f"Cannot {action} a campaign that is {row.status}; {action} needs {' or '.join(allowed)}.",
        campaign_status=row.status,
    )


async def transition(conn: AsyncConnection, subject: Subject, campaign_id: str, action: str) -> CampaignDetail:
    """One lifecycle move (fund, activate, pause, close), with its money where it has any."""
    row = await _visible_row(conn, subject, campaign_id, lock=True)
    _require_changer(subject, row)
    allowed, to = TRANSITIONS[action]
    if row.status not in allowed:
        raise _refuse(row, action)
    now = clock.now()
    if action == "fund":
        await _fund(conn, row, now)
    elif action == "activate":
        extra = {"activated_at": now} if row.activated_at is None else {}
        if await repository.move_status(conn, campaign_id, allowed, to, now, **extra) is None:
            raise _refuse(row, action)
    elif action == "pause":
        if await repository.move_status(conn, campaign_id, allowed, to, now) is None:
            raise _refuse(row, action)
    else:
        await _close(conn, row, now)
    detail = await get(conn, subject, campaign_id)
    event = CAMPAIGN_EVENTS.get(action)
    if event is not None:
        # In the move's own transaction: the event exists exactly when the move does (webhooks/service.py).
        data = detail.model_dump(mode="json")
        await webhooks.record(conn, event, data, campaign_id=campaign_id, issuer_id=row.issuer_id, at=now)
    return detail


CAMPAIGN_EVENTS = {"fund": "campaign.funded", "activate": "campaign.activated", "close": "campaign.closed"}


async def _fund(conn: AsyncConnection, row: sa.Row, now: datetime) -> None:
    # Under the campaign's lock (transition), which approvals and declines also take: what is checked here is
    # what stands when the money moves.
    funders = await repository.funders_of(conn, row.id)
    consent.require_fundable(funders)
    await consent.check_appropriations(conn, row.budget_fen, funders)
    moved = await repository.move_status(conn, row.id, ("draft",), "funded", now, funded_at=now)
    if moved is None:
        raise _refuse(row, "fund")
    tx_id = await money.fund(
        conn, row.id, row.budget_fen, [money.FunderShare(f.issuer_id, f.share_bp) for f in funders]
    )
    await repository.update_campaign(conn, row.id, fund_tx_id=tx_id)


async def _close(conn: AsyncConnection, row: sa.Row, now: datetime) -> None:
    moved = await repository.move_status(conn, row.id, ("active", "paused"), "closed", now, closed_at=now)
    if moved is None:
        raise _refuse(row, "close")
    if row.stock_shards:
        # Waits for claims in flight on a shard; after this no claim can add a voucher.
        await repository.end_stock(conn, row.id)
    await expiry.expire_campaign(conn, row.id, now)
    await repository.end_unspent_vouchers(conn, row.id, "revoked", now)
    funders = await repository.funders_of(conn, row.id)
    tx_id, _ = await money.return_unspent(conn, row.id, [money.FunderShare(f.issuer_id, f.share_bp) for f in funders])
    await repository.update_campaign(conn, row.id, return_tx_id=tx_id)


# ---------------------------------------------------------------------------------------------------------------
# Models.


def _validity(row: sa.Row) -> dict[str, Any]:
    if row.validity_seconds is not None:
        return {"kind": "relative", "seconds": row.validity_seconds, "end": "exclusive"}
    return {
        "kind": "fixed",
        "valid_from": row.valid_from.isoformat(),
        "valid_until": row.valid_until.isoformat(),
        "end": "exclusive",
    }


def _funding(row: sa.Row, funders: list[sa.Row]) -> list[Funding]:
    return [
        Funding(
            region_code=f.region_code,
            issuer_id=f.issuer_id,
            share_bp=f.share_bp,
            amount_fen=amount_fen,
            approval=f.approval,
            decided_by=f.decided_by,
            decided_at=f.decided_at,
        )
        for f, amount_fen in zip(funders, consent.amounts_fen(row.budget_fen, funders))
    ]


def _fields(row: sa.Row, funders: list[sa.Row], totals: Totals | None) -> dict[str, Any]:
    return dict(
        id=row.id,
        name=row.name,
        status=row.status,
        issuer_id=row.issuer_id,
        issuer_region=row.issuer_region,
        budget_fen=row.budget_fen,
        contract_sha256=row.contract_sha256,
        kind=row.kind,
        distribution=row.distribution,
        quantity=row.quantity,
        per_holder_limit=row.per_holder_limit,
        face_value_fen=row.face_value_fen,
        daily_cap_fen=row.daily_cap_fen,
        funders=_funding(row, funders),
        validity=_validity(row),
        terms=row.summary.get("terms", {}),
        created_at=row.created_at,
        funded_at=row.funded_at,
        activated_at=row.activated_at,
        closed_at=row.closed_at,
        fund_tx_id=row.fund_tx_id,
        return_tx_id=row.return_tx_id,
        totals=totals,
    )


def to_model(row: sa.Row, funders: list[sa.Row], totals: Totals | None) -> Campaign:
    return Campaign(**_fields(row, funders, totals))


def to_detail(
    row: sa.Row, funders: list[sa.Row], totals: Totals | None, decisions: Sequence[sa.Row] = ()
) -> CampaignDetail:
    return CampaignDetail(
        **_fields(row, funders, totals),
        contract_source=row.contract_source,
        summary=row.summary,
        funder_decisions=[
            FunderDecision(issuer_id=d.issuer_id, decision=d.decision, token_id=d.token_id, decided_at=d.decided_at)
            for d in decisions
        ],
    )


def voucher_model(server_secret: bytes, row: Any, terms: dict[str, Any], tz: str = "Asia/Shanghai") -> Voucher:
    """A voucher as the API shows it, times in the campaign's calendar."""
    zone = ZoneInfo(tz)
    return Voucher(
        id=row.id,
        code=codes.make_code(server_secret, row.campaign_id, row.id, row.wallet_id),
        campaign_id=row.campaign_id,
        wallet_id=row.wallet_id,
        status=row.status,
        valid_from=row.valid_from.astimezone(zone),
        valid_until=row.valid_until.astimezone(zone),
        face_value_fen=row.face_value_fen,
        balance_fen=row.balance_fen,
        issued_at=row.issued_at.astimezone(zone),
        terms=terms,
    )


async def wallet_vouchers(
    conn: AsyncConnection,
    subject: Subject,
    server_secret: bytes,
    wallet_id: str,
    *,
    after: tuple[str, str] | None,
    limit: int,
) -> list[Voucher]:
    issuer_filter = None if subject.can_see_issuer("\x00all") else subject.issuer_id
    rows = await repository.wallet_vouchers(conn, wallet_id, issuer_id=issuer_filter, after=after, limit=limit)
    now = clock.now()
    out = []
    for row in rows:
        voucher = voucher_model(server_secret, row, row.summary.get("terms", {}), row.timezone)
        if voucher.status == "issued" and row.valid_until <= now:
            # Shown as it is: expired, even before the sweep has written it down.
            voucher = voucher.model_copy(update={"status": "expired"})
        out.append(voucher)
    return out


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
