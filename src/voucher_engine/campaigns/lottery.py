"""The lottery (摇号): a draw anyone can recompute from the published applicant list and seed.

Algorithm `lottery-v1`, all of it:

1. Each applicant's key is `wallet_id + ":" + (id_hash or "")`. The applicant list is the set of keys, sorted by
   their UTF-8 bytes; `applicants_sha256 = SHA-256("\n".join(sorted keys))`. Repeated keys are one applicant.
2. Applicants excluded before the draw are published with their reason: `NOT_ELIGIBLE` (the contract's holder
   conditions on the attributes given) and those whose holder already held its limit before the draw (the
   published `prior_vouchers` counts per holder).
3. Every applicant gets `rank = HMAC-SHA256(key=seed bytes, message=UTF-8 key)`; applicants are ordered by rank
   ascending (ties, which need a SHA-256 collision, by key).
4. Walk that order; an applicant wins when its holder (`id_hash` when given, else the wallet) has fewer than
   `per_holder_limit` vouchers counting prior ones and wins earlier in the walk; stop after `slots` winners.
   `winners_sha256 = SHA-256("\n".join(winning keys in rank order))`.

The seed is chosen and published by the government beforehand (for instance from a public lottery result), so
neither the engine nor the government can steer the outcome once the list is closed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

ALGORITHM = "lottery-v1"
DESCRIPTION = (
    "key = wallet_id ':' id_hash (empty when absent); applicants = sorted set of keys (UTF-8 bytes order), "
    "applicants_sha256 = SHA-256 of the keys joined by newlines; excluded applicants are listed with their reason; "
    "rank = HMAC-SHA256(key=bytes.fromhex(seed), msg=key), ascending; walk the ranking, a key wins while its holder "
    "(id_hash if present, else wallet) has fewer than per_holder_limit vouchers (prior_vouchers plus wins so far); "
    "stop after slots winners; winners_sha256 = SHA-256 of the winning keys in rank order joined by newlines."
)


def applicant_key(wallet_id: str, id_hash: str | None) -> str:
    return f"{wallet_id}:{id_hash or ''}"


def holder_key_of(key: str) -> str:
    """The per-holder limit's key of an applicant key (same form as vouchers.holder_key)."""
    wallet_id, _, id_hash = key.partition(":")
    return f"h:{id_hash}" if id_hash else f"w:{wallet_id}"


def digest(keys: Iterable[str]) -> str:
    hasher = hashlib.sha256()
    first = True
    for key in keys:
        if not first:
            hasher.update(b"\n")
        hasher.update(key.encode())
        first = False
    return hasher.hexdigest()


def ranking(seed: bytes, keys: Iterable[str]) -> list[str]:
    """Keys ordered by HMAC-SHA256(seed, key), ascending."""
    ranked = [(hmac.digest(seed, key.encode(), "sha256"), key) for key in keys]
    ranked.sort()
    return [key for _, key in ranked]


def draw(
    seed: bytes, candidates: Iterable[str], slots: int, per_holder_limit: int, prior_vouchers: Mapping[str, int]
) -> list[str]:
    """The winning keys, in rank order. A pure function of its arguments."""
    assert slots >= 0 and per_holder_limit >= 1
    winners: list[str] = []
    if slots == 0:
        return winners
    held: dict[str, int] = {}
    for key in ranking(seed, candidates):
        holder = holder_key_of(key)
        count = held.get(holder, prior_vouchers.get(holder, 0))
        if count >= per_holder_limit:
            continue
        held[holder] = count + 1
        winners.append(key)
        if len(winners) == slots:
            break
    return winners
