"""The code-guessing guard (防刷): a POS key that keeps presenting unknown voucher codes is refused for a while.

Voucher codes carry a 128-bit MAC (campaigns/codes.py), so guessing one is hopeless; this guard makes even trying
pointless and cheap to refuse. Each `VOUCHER_UNKNOWN` answer (given only after the batch has checked the key and
spent the nonce, so only a key's real holder can run up its count) adds one to `code_guess_failures(key_id,
minute)` in PostgreSQL — one round trip, on that failure path only; successes never touch the table. When the
count over the last `window_minutes` reaches `limit`, the worker that saw it refuses the key with `RATE_LIMITED`
(429, Retry-After) for `block_s` seconds, from memory, before any database work. The count is shared: another
worker (or replica) blocks the key at its first unknown code from it, because the count it reads back is the
shared one. A blocked key is refused whatever code it shows, so the refusal tells a guesser nothing.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.redemption import repository

log = logging.getLogger("voucher_engine.redemption.guard")

# Unknown codes a key may be answered within the window before it is refused; generous for a till whose scanner
# misreads a damaged QR code now and then, hopeless for anyone guessing 128-bit MACs.
GUESS_LIMIT = int(os.environ.get("VE_CODE_GUESS_LIMIT", "20"))
GUESS_WINDOW_MINUTES = int(os.environ.get("VE_CODE_GUESS_WINDOW_MINUTES", "5"))
BLOCK_S = float(os.environ.get("VE_CODE_GUESS_BLOCK_S", "60"))
MAX_BLOCKED_KEYS = 100_000  # memory bound of one worker's block list


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class CodeGuard:
    """One per worker: the shared count in PostgreSQL, and this worker's list of keys it is refusing."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        limit: int = GUESS_LIMIT,
        window_minutes: int = GUESS_WINDOW_MINUTES,
        block_s: float = BLOCK_S,
    ):
        assert 1 <= limit <= 1_000_000 and 1 <= window_minutes <= 24 * 60 and 0 < block_s <= 86_400
        self.engine = engine
        self.limit = limit
        self.window_minutes = window_minutes
        self.block_s = block_s
        self._blocked_until: dict[str, float] = {}  # key_id -> time.monotonic() deadline

    def check(self, key_id: str) -> None:
        """RATE_LIMITED if this worker is refusing the key; free (no I/O) otherwise."""
        until = self._blocked_until.get(key_id)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            self._blocked_until.pop(key_id, None)
            return
        raise self._refusal(left)

    async def record_unknown(self, key_id: str) -> bool:
        """Count one unknown code for `key_id`; answer True when that puts the key over the limit (now refused)."""
        now = _minute(clock.real_now())
        since = now - timedelta(minutes=self.window_minutes - 1)
        async with self.engine.begin() as sa_conn:
            total = await repository.record_code_failure(await driver(sa_conn), key_id, now, since)
        if total < self.limit:
            return False
        if key_id not in self._blocked_until:
            log.warning(
                "POS key %s refused for %.0f s: %d unknown voucher codes within %d min",
                key_id,
                self.block_s,
                total,
                self.window_minutes,
            )
        if len(self._blocked_until) >= MAX_BLOCKED_KEYS:
            self._prune_memory()
        self._blocked_until[key_id] = time.monotonic() + self.block_s
        return True

    def refusal(self, key_id: str) -> EngineError:
        left = self._blocked_until.get(key_id, time.monotonic() + self.block_s) - time.monotonic()
        return self._refusal(left)

    def _refusal(self, left_s: float) -> EngineError:
        retry = max(1, int(left_s + 0.999))
        return EngineError(
            "RATE_LIMITED", f"Too many unknown voucher codes from this key; retry in {retry} s.", retry_after_s=retry
        )

    def _prune_memory(self) -> None:
        now = time.monotonic()
        for key_id in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key_id]
        while len(self._blocked_until) >= MAX_BLOCKED_KEYS:  # still full: drop the oldest blocks
            self._blocked_until.pop(next(iter(self._blocked_until)))


async def prune(conn: AsyncConnection, window_minutes: int = GUESS_WINDOW_MINUTES) -> int:
    """Delete counts older than any window (housekeeping; the failure path prunes its own key as it goes)."""
    cutoff = _minute(clock.real_now()) - timedelta(minutes=window_minutes + 1)
    return await repository.delete_code_failures_before(conn, cutoff)
