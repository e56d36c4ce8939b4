"""What a redemption (or quote) does, decided from rows already loaded: pure, no I/O.

The order of checks is the product's promise to tills (the issue's order, after the signature and the code's own
MAC, which are checked before any database work): merchant status, voucher state and holder, the campaign's
status (a paused or closed campaign pays nothing, though a revoked voucher still says so first), validity window, contract conditions (with `explain`), then budget (daily cap; escrow balance is the ledger's
CHECK). The first failure wins, so the same request always gets the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from voucher_engine.contracts import CompiledContract, Item, Payment
from voucher_engine.errors import EngineError
from voucher_engine.invariants import invariant


@dataclass(frozen=True, slots=True)
class MerchantView:
    merchant_id: str
    status: str
    mcc: str
    region_code: str
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class VoucherView:
    campaign_id: str
    voucher_id: str
    wallet_id: str
    status: str
    valid_from: datetime
    valid_until: datetime
    face_value_fen: int
    balance_fen: int
    campaign_status: str
    kind: str
    daily_cap_fen: int | None
    timezone: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """A redemption that will happen: the subsidy, and what becomes of the voucher."""

    subsidy_fen: int
    payable_fen: int
    new_status: str
    new_balance_fen: int
    spend_day: date


_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    tz = _ZONES.get(name)
    if tz is None:
        tz = _ZONES[name] = ZoneInfo(name)
    return tz


def check_voucher(merchant: MerchantView, voucher: VoucherView, wallet_id: str, now: datetime) -> None:
    """Everything before the contract: raises the first failing code."""
    if merchant.status != "active":
        raise EngineError("MERCHANT_SUSPENDED", "This merchant is suspended and cannot redeem vouchers.")
    if voucher.status == "revoked":
        raise EngineError("VOUCHER_REVOKED", "The voucher was revoked.")
    if voucher.status == "redeemed":
        raise EngineError("VOUCHER_ALREADY_REDEEMED", "The voucher has already been used.")
    if voucher.status == "expired":
        raise EngineError("VOUCHER_EXPIRED", f"The voucher expired at {voucher.valid_until.isoformat()}.")
    if voucher.wallet_id != wallet_id:
        raise EngineError("VOUCHER_NOT_HOLDER", "The wallet at the till is not the voucher's holder.")
    if voucher.campaign_status != "active":
        raise EngineError("CAMPAIGN_NOT_ACTIVE", f"The voucher's campaign is {voucher.campaign_status}.")
    if now < voucher.valid_from:
        raise EngineError("VOUCHER_NOT_YET_VALID", f"The voucher is valid from {voucher.valid_from.isoformat()}.")
    if now >= voucher.valid_until:
        raise EngineError("VOUCHER_EXPIRED", f"The voucher expired at {voucher.valid_until.isoformat()}.")


def payment_for(
    merchant: MerchantView,
    voucher: VoucherView,
    now: datetime,
    order_amount_fen: int,
    items: list[dict[str, Any]] | None,
) -> Payment:
    return Payment(
        merchant_mcc=merchant.mcc,
        merchant_region=merchant.region_code,
        merchant_tags=merchant.tags,
        at=now,
        order_amount_fen=order_amount_fen,
        items=tuple(
            Item(sku=i["sku"], category=i["category"], amount_fen=i["amount_fen"], attributes=i.get("attributes") or {})
            for i in items or ()
        ),
        balance_fen=voucher.balance_fen if voucher.kind == "balance" else None,
    )


def evaluate(
    contract: CompiledContract,
    merchant: MerchantView,
    voucher: VoucherView,
    wallet_id: str,
    now: datetime,
    order_amount_fen: int,
    items: list[dict[str, Any]] | None,
) -> Settlement:
    """The settlement a payment earns, or the EngineError that refuses it (before any daily cap)."""
    check_voucher(merchant, voucher, wallet_id, now)
    evaluation = contract.evaluate(payment_for(merchant, voucher, now, order_amount_fen, items))
    if not evaluation.ok:
        explain = [failure.to_dict() for failure in evaluation.failures]
        first = explain[0]["rule"] if explain else "a condition"
        raise EngineError(
            "RULE_NOT_SATISFIED", f"The payment does not meet the voucher's terms: {first}.", explain=explain
        )
    subsidy = evaluation.subsidy_fen
    if subsidy <= 0:
        raise EngineError("RULE_NOT_SATISFIED", "The payment earns no subsidy under the voucher's terms.", explain=[])
    # Invariants that guard the money, checked again here whatever the contract said.
    invariant(subsidy > 0, "the subsidy is positive", subsidy)
    invariant(subsidy <= order_amount_fen, "the subsidy is at most the order", subsidy, order_amount_fen)
    invariant(
        subsidy <= voucher.balance_fen, "the subsidy is at most the voucher's balance", subsidy, voucher.balance_fen
    )
    if voucher.kind == "balance":
        remaining = voucher.balance_fen - subsidy
        new_status = "issued" if remaining > 0 else "redeemed"
    else:
        remaining, new_status = 0, "redeemed"
    return Settlement(
        subsidy_fen=subsidy,
        payable_fen=order_amount_fen - subsidy,
        new_status=new_status,
        new_balance_fen=remaining,
        spend_day=now.astimezone(zone(voucher.timezone)).date(),
    )


def clawback_for(
    subsidy_fen: int,
    order_amount_fen: int,
    refunded_before_fen: int,
    clawed_before_fen: int,
    amount_fen: int,
    minimum_order_fen: int = 0,
) -> int:
    """The subsidy a refund of `amount_fen` takes back.

    Proportional to the running total refunded, rounded up (in the fund's favour), less what earlier refunds took;
    all of it for a refund of the whole order. When what the customer keeps falls below the voucher's minimum order
    (`minimum_order_fen`: a threshold voucher's `spend`, or an `order.amount >=` condition), all of what is left of
    the subsidy: the kept order would never have earned the voucher (docs/policies.md, "Refunds")."""
    total_refunded = refunded_before_fen + amount_fen
    invariant(total_refunded > 0, "the refunds add up to more than nothing", total_refunded)
    invariant(
        total_refunded <= order_amount_fen, "the refunds add up to at most the order", total_refunded, order_amount_fen
    )
    kept_fen = order_amount_fen - total_refunded
    if 0 < kept_fen < minimum_order_fen:
        return subsidy_fen - clawed_before_fen
    owed_total = -(-subsidy_fen * total_refunded // order_amount_fen)  # ceiling division, integers only
    clawback = owed_total - clawed_before_fen
    invariant(clawback >= 0, "a refund takes no subsidy back negatively", clawback)
    invariant(
        clawback <= subsidy_fen - clawed_before_fen,
        "a refund takes back at most the subsidy not yet taken back",
        clawback,
        subsidy_fen,
        clawed_before_fen,
    )
    return clawback
