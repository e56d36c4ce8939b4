"""How the window detector reads its rules, and the few shapes of its windows that are not rules.

The thresholds are the risk rules' (`contracts.risk`: `DEFAULT_RULES`, the window signals' parameters); this module
says which window each parameter applies to and holds what no rule names: how much history velocity is judged
against, how long threshold and refund windows are, and the floors under a ratio. docs/risk.md ("Window signals")
documents both, with the scenario that tuned them (`python loadtest/risk_scenarios.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from voucher_engine.contracts.risk import DEFAULT_RULES, RiskRule, RiskRules

MERCHANT_VELOCITY = "merchant_velocity"
THRESHOLD_SHARE = "threshold_share"
EXACT_REPEAT = "exact_repeat"
PAIR_RECURRENCE = "pair_recurrence"
NEW_MERCHANT_VOLUME = "new_merchant_volume"
HOLDER_SPREAD = "holder_spread"
CLAIMS_BURST = "claims_burst"

WINDOW_SIGNALS = (
    MERCHANT_VELOCITY,
    THRESHOLD_SHARE,
    EXACT_REPEAT,
    PAIR_RECURRENCE,
    NEW_MERCHANT_VOLUME,
    HOLDER_SPREAD,
    CLAIMS_BURST,
)


@dataclass(frozen=True)
class Shapes:
    """The windows' shapes (not thresholds: those are rules)."""

    # Velocity: a merchant's history is its hours of the last `history`; shorter than `history_min`, and only the
    # absolute limits (per_minute, per_hour) apply. An hour judged against history needs at least `hour_floor`
    # redemptions: five times a quiet shop's two is not a pattern.
    history: timedelta = timedelta(days=7)
    history_min: timedelta = timedelta(hours=20)
    hour_floor: int = 20
    # Threshold share: over the merchant's threshold-voucher orders of the last `share_window` (in whole hours).
    share_window: timedelta = timedelta(days=7)
    # A merchant's per-minute counts are kept this long behind the newest event: its sliding hours need the last
    # hour; the rest is room for events that arrive late.
    minutes_kept: timedelta = timedelta(days=1)
    # Pairs recur over weeks (campaign rounds); a pair idle this long is forgotten.
    pair_window: timedelta = timedelta(days=60)
    # Claims bursts: the "source" of a claim is its block of wallets (ids sharing their first `wallet_block_digits`
    # digits: wallets opened in a row, a farm's). Buckets of one minute.
    wallet_block_digits: int = 12


SHAPES = Shapes()

# A flag names at most this many redemptions (the latest); its figures count them all.
MAX_EVIDENCE_IDS = 100


def rules_for(rules: RiskRules, signal: str) -> tuple[RiskRule, ...]:
    """The signal's rules, most severe first (empty: the signal is off)."""
    return tuple(r for r in rules.for_signal(signal) if r.outcome is not None)


def limit(rule: RiskRule, name: str) -> int | None:
    """A rule's limit; one a contract's rule leaves out is the platform default's (None: no default either)."""
    value = rule.limit(name)
    if value is not None:
        return value
    for default in DEFAULT_RULES:
        if default.signal == rule.signal and default.limit(name) is not None:
            return default.limit(name)
    return None
