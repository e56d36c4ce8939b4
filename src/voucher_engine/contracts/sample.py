"""What a contract would do with one sample payment, and why: the console's editor and `POST /v1/contracts/explain`.

Pure, like the rest of the language: the payment is described as JSON (the merchant's `mcc`, `region_code` and
`tags` as the registry would give them, `at`, `order_amount_fen`, `items`, and a balance voucher's `balance_fen`),
and the answer says which code a till would get, the subsidy and what the holder pays, and each failed condition
with its line and column. Nothing is stored and no voucher is needed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .contract import CompiledContract
from .jsonio import payment_from_json
from .model import FixedWindow
from .runtime import Payment


def explain_payment(
    contract: CompiledContract,
    payment: dict[str, Any],
    holder: dict[str, Any] | None = None,
    issued_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The answer for one payment given as JSON; ValueError when the payment cannot be read (its message says why)."""
    return explain(contract, payment_from_json(payment), holder, issued_at)


def explain(
    contract: CompiledContract, p: Payment, holder: dict[str, Any] | None = None, issued_at: dt.datetime | None = None
) -> dict[str, Any]:
    """What a till would be answered for `p`, and why: {"contract", "kind", "validity", "code" (None when it
    settles), "eligible", "subsidy_fen", "payable_fen", "explain" (the payment's failed conditions), and
    "holder_explain" when `holder` is given}. The console, `POST /v1/contracts/explain` and `voucher-engine
    contract explain` all answer this.

    A refused payment (any `code`: outside the validity window, a holder or a payment condition failed) shows
    subsidy 0 and the whole order payable, as the till would be answered, even when the payment's own conditions
    hold and the contract's evaluation alone would pay: the subsidy shown is the one that would be paid.
    """
    answer: dict[str, Any] = {"contract": contract.name, "kind": contract.kind}
    code = None
    validity = contract.validity
    window: tuple[dt.datetime, dt.datetime] | None = None
    if issued_at is not None:
        window = contract.window_for(issued_at)
    elif isinstance(validity, FixedWindow):
        window = validity.valid_from, validity.valid_until
    else:  # counted from an issue not given: not checked
        answer["validity"] = {"seconds_from_issue": validity.seconds, "checked": False}
    if window is not None:
        start, end = window
        answer["validity"] = {"valid_from": start.isoformat(), "valid_until": end.isoformat(), "end": "exclusive"}
        if p.at < start:
            code = "VOUCHER_NOT_YET_VALID"
        elif p.at >= end:
            code = "VOUCHER_EXPIRED"
    holder_failures = contract.check_holder(holder) if holder is not None else []
    evaluation = contract.evaluate(p)
    if code is None and holder_failures:
        code = "NOT_ELIGIBLE"
    if code is None and not evaluation.ok:
        code = "RULE_NOT_SATISFIED"
    answer.update(
        code=code,
        eligible=code is None,
        subsidy_fen=evaluation.subsidy_fen if code is None else 0,
        payable_fen=evaluation.payable_fen if code is None else p.order_amount_fen,
        explain=[f.to_dict() for f in evaluation.failures],
    )
    if holder is not None:
        answer["holder_explain"] = [f.to_dict() for f in holder_failures]
    return answer
