"""Money-path checks stay on under `python -O`, and each says which half of a compound check broke."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from voucher_engine.campaigns.shares import split_by_shares
from voucher_engine.invariants import InvariantViolation, invariant
from voucher_engine.redemption.decide import clawback_for

SRC = Path(__file__).resolve().parents[2] / "src" / "voucher_engine"
# The modules that move money or write the books: no `assert` may stand in for a check there.
MONEY_PATHS = [
    "redemption/service.py",
    "redemption/repository.py",
    "redemption/decide.py",
    "redemption/refunds.py",
    "ledger/service.py",
    "ledger/repository.py",
    "ledger/sequencer.py",
    "ledger/model.py",
    "campaigns/shares.py",
    "campaigns/money.py",
    "campaigns/issuance.py",
    "campaigns/claims.py",
    "settlement/service.py",
    "settlement/clawbacks.py",
    "settlement/repository.py",
    "db/raw.py",
]


def test_invariant_raises_with_what_must_hold_and_what_was_seen():
    invariant(True, "never raised")
    with pytest.raises(InvariantViolation, match=r"the parts add up to the amount: 100, \[60, 30\]"):
        invariant(60 + 30 == 100, "the parts add up to the amount", 100, [60, 30])


def test_a_compound_check_says_which_half_broke():
    with pytest.raises(InvariantViolation, match="the shares add up to 100%"):
        split_by_shares(100, [5000, 4000])
    with pytest.raises(InvariantViolation, match="every share is positive"):
        split_by_shares(100, [10_001, -1])
    with pytest.raises(InvariantViolation, match="refunds add up to at most the order"):
        clawback_for(subsidy_fen=10, order_amount_fen=100, refunded_before_fen=90, clawed_before_fen=9, amount_fen=20)


def test_invariants_survive_python_dash_O():
    """Under -O an `assert` is gone; the same check through invariant() still refuses."""
    program = (
        "from voucher_engine.campaigns.shares import split_by_shares\n"
        "from voucher_engine.invariants import InvariantViolation\n"
        "assert False, 'asserts are on'\n"
        "try:\n"
        "    split_by_shares(-5, [10000])\n"
        "except InvariantViolation as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused: the amount to split is not negative: -5" in done.stdout


@pytest.mark.parametrize("module", MONEY_PATHS)
def test_no_assert_on_money_paths(module):
    tree = ast.parse((SRC / module).read_text(), module)
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert asserts == [], f"{module} checks with `assert` (stripped by python -O) on lines {asserts}; use invariant()"
