"""The contract language (合约语言): how a subsidy campaign is written, checked and decided.

A contract is a short text a policy officer writes (docs/contract-language.md): the campaign and its issuer,
budget and funders, the voucher's terms, quantity and limits, validity, and conditions on the holder and the
payment. This package is pure: no I/O, no database, and it depends on nothing else in voucher_engine.

Interface::

    check_contract(source) -> CheckResult          # .ok, .errors, .warnings (Diagnostic), .summary (JSON-able)
    compile_contract(source) -> CompiledContract   # raises ContractInvalid(errors) on any error
    contract.check_holder(attributes) -> list[Failure]
    contract.evaluate(Payment(...)) -> Evaluation  # .ok, .subsidy_fen, .payable_fen, .failures
    payment_from_json(data) -> Payment             # the JSON form the CLI and tests use

Beyond the brief's interface: `Evaluation` also carries `payable_fen` and its `failures` is a tuple;
`Failure.item` names the order item (sku) of an item condition and `to_dict()` adds "item" only then;
`worst_case_fen` is always an int (every kind has a largest subsidy) and `needs_escrow_check` says whether it
exceeds the budget (percentage kinds only; fixed, threshold and balance contracts that exceed it are refused);
validity windows are half-open (`valid_from <= t < valid_until`, see model.FixedWindow) with `.contains()`;
`CompiledContract.split_fen(amount)` splits money among funders; `ContractError` is `ContractInvalid`.

Module map: grammar.lark (syntax), parser.py (text -> syntax.py tree), checker.py (types, sums, limits ->
model.py), compiler.py (model -> generated Python functions), contract.py (CompiledContract), runtime.py
(Payment, Item, Failure, Evaluation), explain.py (how values read), reference.py (a tree-walking interpreter
the compiled code is tested against), limits.py, regions.py, cli.py.
"""

from .checker import CheckResult
from .contract import CompiledContract, check_contract, compile_contract
from .diagnostics import ContractError, ContractInvalid, Diagnostic
from .jsonio import payment_from_json
from .model import FixedWindow, Funder, RelativeValidity
from .runtime import Evaluation, Failure, Item, Payment

__all__ = [
    "CheckResult",
    "CompiledContract",
    "ContractError",
    "ContractInvalid",
    "Diagnostic",
    "Evaluation",
    "Failure",
    "FixedWindow",
    "Funder",
    "Item",
    "Payment",
    "RelativeValidity",
    "check_contract",
    "compile_contract",
    "payment_from_json",
]
