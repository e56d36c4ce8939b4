"""The one clock every part of the engine reads for business time.

Validity windows, China calendar days, expiry and checkpoint `signed_at` all come from `now()`. In production it is
the real clock. A service started with `--test-clock` lets an admin move it (`PUT /v1/test/clock`); the offset is
kept in PostgreSQL so that every worker process sees the same time, and each request refreshes it before work
starts. Request-signing freshness and nonce windows deliberately use `real_now()` instead: moving business time must
never open a replay window.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

CHINA_TZ = ZoneInfo("Asia/Shanghai")

_offset = timedelta(0)


def real_now() -> datetime:
    """Wall-clock time, for security windows only."""
    return datetime.now(timezone.utc)


def now() -> datetime:
    """Business time: the real clock moved by the test clock's offset (zero in production)."""
    return datetime.now(timezone.utc) + _offset


def set_offset(offset: timedelta) -> None:
    global _offset
    _offset = offset


def offset() -> timedelta:
    return _offset
