"""Splitting money between a campaign's funders (出资方), to the fen.

One rule, used for funding and for the return at close alike: each funder's part is `amount * share_bp // 10000`
(rounded down, in the fund's favour, as POLICIES.md says), and the leftover fen of the split go to the first funder
listed in the contract. The parts always sum to the amount exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from voucher_engine.invariants import invariant

BASIS_POINTS = 10_000


def split_by_shares(amount_fen: int, shares_bp: Sequence[int]) -> list[int]:
    """Parts of `amount_fen` in the shares given (basis points summing to 10000), leftover to the first."""
    invariant(amount_fen >= 0, "the amount to split is not negative", amount_fen)
    invariant(len(shares_bp) > 0, "there is at least one funder")
    invariant(sum(shares_bp) == BASIS_POINTS, "the shares add up to 100%", shares_bp)
    invariant(all(share > 0 for share in shares_bp), "every share is positive", shares_bp)
    parts = [amount_fen * share // BASIS_POINTS for share in shares_bp]
    parts[0] += amount_fen - sum(parts)
    # The pair to the assertions above: nothing made, nothing lost, nobody owed a negative part.
    invariant(sum(parts) == amount_fen, "the parts add up to the amount", amount_fen, parts)
    invariant(all(part >= 0 for part in parts), "no part is negative", parts)
    return parts
