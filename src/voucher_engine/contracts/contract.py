"""`CompiledContract`: a checked, compiled contract, ready to decide holders and payments.

Built once per contract text (callers cache it by `sha256`), immutable afterwards. Its `evaluate` and
`check_holder` are the generated functions themselves (compiler.py), stored on the instance so a call costs one
attribute read and one Python call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Callable

from .checker import CheckResult, check, summarize
from .compiler import compile_model
from .diagnostics import ContractInvalid, Diagnostic
from .model import ContractModel, FixedWindow, Funder, RelativeValidity, TCompare
from .risk import RiskRules
from .runtime import Evaluation, Failure, Payment


class CompiledContract:
    """One campaign's contract: its terms as plain values and its conditions as compiled functions.

    Terms: name, issuer_region, timezone, budget_fen, funders (Funder(region_code, share_bp), in the order
    written), kind (fixed | threshold | percent | item_percent | balance), face_value_fen, quantity,
    per_holder_limit, daily_cap_fen, distribution (targeted | lottery | first_come), validity (FixedWindow or
    RelativeValidity, both half-open: valid when valid_from <= t < valid_until), needs_items, worst_case_fen
    (quantity x face value) and needs_escrow_check (worst case above the budget: redemption must check escrow).

    Decisions: `check_holder(attributes) -> list[Failure]` ([] means eligible) and
    `evaluate(payment) -> Evaluation`.
    """

    __slots__ = (
        "source",
        "sha256",
        "name",
        "issuer_region",
        "timezone",
        "budget_fen",
        "funders",
        "kind",
        "face_value_fen",
        "quantity",
        "per_holder_limit",
        "daily_cap_fen",
        "distribution",
        "validity",
        "needs_items",
        "worst_case_fen",
        "needs_escrow_check",
        "warnings",
        "model",
        "python_source",
        "evaluate",
        "check_holder",
        "risk",
        "_summary",
    )

    # Declared for readers and type checkers: __init__ sets every slot once (the object is immutable after).
    source: str
    sha256: str
    name: str
    issuer_region: str
    timezone: str
    budget_fen: int
    funders: tuple[Funder, ...]
    kind: str
    face_value_fen: int
    quantity: int
    per_holder_limit: int
    daily_cap_fen: int | None
    distribution: str
    validity: FixedWindow | RelativeValidity
    needs_items: bool
    worst_case_fen: int
    needs_escrow_check: bool
    warnings: tuple[Diagnostic, ...]
    model: ContractModel
    python_source: str
    evaluate: Callable[[Payment], Evaluation]
    check_holder: Callable[[dict[str, Any]], list[Failure]]
    # The campaign's risk rules: the platform's defaults with the contract's `risk { … }` section applied.
    risk: RiskRules
    _summary: dict[str, Any]

    def __init__(self, source: str, model: ContractModel, warnings: list[Diagnostic]) -> None:
        compiled = compile_model(model)
        values = {
            "source": source,
            "sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
            "name": model.name,
            "issuer_region": model.issuer_region,
            "timezone": model.timezone,
            "budget_fen": model.budget_fen,
            "funders": model.funders,
            "kind": model.kind,
            "face_value_fen": model.face_value_fen,
            "quantity": model.quantity,
            "per_holder_limit": model.per_holder_limit,
            "daily_cap_fen": model.daily_cap_fen,
            "distribution": model.distribution,
            "validity": model.validity,
            "needs_items": model.kind == "item_percent",
            "worst_case_fen": model.worst_case_fen,
            "needs_escrow_check": model.needs_escrow_check,
            "warnings": tuple(warnings),
            "model": model,
            "python_source": compiled.source,
            "evaluate": compiled.evaluate,
            "check_holder": compiled.check_holder,
            "_summary": summarize(model),
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "risk", RiskRules(model.risk_rules, minimum_fen=self.minimum_order_fen))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a CompiledContract is immutable")

    def __repr__(self) -> str:
        return f"<CompiledContract {self.name!r} {self.kind} sha256={self.sha256[:12]}>"

    def summary(self) -> dict[str, Any]:
        """JSON-able terms of the campaign (a fresh copy each call)."""
        import copy

        return copy.deepcopy(self._summary)

    @property
    def minimum_order_fen(self) -> int:
        """The smallest order the voucher can be used on (0: none): its `spend` and any top-level `order.amount >=`,
        `>` or `=` payment condition. A partial refund that takes an order below it claws back the whole subsidy."""
        floor = self.model.spend_fen or 0
        for rule in self.model.payment_rules:
            condition = rule.condition
            if (
                isinstance(condition, TCompare)
                and condition.path == "order.amount"
                and condition.op in (">=", ">", "=")
            ):
                floor = max(floor, condition.value + (1 if condition.op == ">" else 0))
        return floor

    def window_for(self, issued_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The validity window of a voucher issued at `issued_at`: [valid_from, valid_until)."""
        return self.validity.window_for(issued_at)

    def split_fen(self, amount_fen: int) -> tuple[tuple[str, int], ...]:
        """Split an amount among the funders by share, rounding down; leftover fen go to the first funder."""
        parts = [amount_fen * f.share_bp // 10000 for f in self.funders]
        parts[0] += amount_fen - sum(parts)
        return tuple((f.region_code, part) for f, part in zip(self.funders, parts))


def check_contract(source: str) -> CheckResult:
    """Check a contract's text: `.ok`, `.errors`, `.warnings` (Diagnostics) and a JSON-able `.summary`."""
    return check(source)


def compile_contract(source: str) -> CompiledContract:
    """Check and compile a contract; raises ContractInvalid (with every error) if it has any error."""
    result = check(source)
    if not result.ok or result.model is None:
        raise ContractInvalid(result.errors or [Diagnostic(1, 1, "the contract is invalid")])
    return CompiledContract(source, result.model, result.warnings)


__all__ = ["CompiledContract", "check_contract", "compile_contract", "FixedWindow", "RelativeValidity", "Funder"]
