"""The risk window detector's statements over one busy till: `python loadtest/bench_risk_detector.py [N] [NEW]`.

The shape of `redemption_load.py`'s database by its open-loop phase: one merchant with N redemptions of a threshold
voucher in the last hour (default 150,000), then a pass's NEW more (default 1,000, a second at 1,000/s). Prints the
best of three runs of each statement of a detector pass over those NEW (each rolled back), with the load average:
what a pass costs the database, which shares the machine with the tills' batches. A statement whose time grows with
N rather than NEW is one that counts the merchant's whole window again on every pass.

The events are written straight into `risk_w_events` (the detector's own copy of the ledger's redemptions) and the
counts built from them as passes would have; the scratch database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime, timedelta, timezone

import asyncpg

from bench_campaigns import database
from voucher_engine.db.engine import plain_url
from voucher_engine.risk import detector_repository as sql
from voucher_engine.risk.windows import MAX_EVIDENCE_IDS, SHAPES

MERCHANT = "load-noodles"


async def bench(url: str, total: int, new: int) -> None:
    conn = await asyncpg.connect(plain_url(url))
    try:
        now = datetime.now(timezone.utc)
        step = timedelta(hours=1) / total
        start = now - timedelta(hours=1)
        rows = [
            (
                i + 1,
                "redeem",
                start + step * (i + 1),
                "cmp_bench",
                f"rdm_{i}",
                MERCHANT,
                f"w:{i}",
                f"v{i}",
                12_000,
                10_000,
            )
            for i in range(total)
        ]
        await conn.copy_records_to_table("risk_w_events", records=rows[: total - new])
        await conn.execute("ANALYZE risk_w_events")
        await conn.execute(sql.ADD_COUNTS, list(range(1, total - new + 1)))
        await conn.copy_records_to_table("risk_w_events", records=rows[total - new :])
        fresh = list(range(total - new + 1, total + 1))
        span = (total - new, total)
        statements = [
            ("ADD_COUNTS", lambda: sql.add_counts(conn, fresh)),
            ("TOUCH_MERCHANTS", lambda: sql.touch_merchants(conn, span, SHAPES.history, None)),
            ("HOUR_REDEMPTIONS", lambda: sql.hour_redemptions(conn, MERCHANT, now, MAX_EVIDENCE_IDS)),
            ("HUGGING", lambda: sql.hugging(conn, span, SHAPES.share_window, 300, 12, None)),
            ("EXACT_REPEAT", lambda: sql.exact_repeats(conn, span, timedelta(minutes=60), 300, 8, 100, None)),
            ("ADD_PAIRS", lambda: sql.add_pairs(conn, fresh, 300, {}, 6)),
            ("HOLDER_VELOCITY", lambda: sql.holder_spread(conn, span, timedelta(minutes=30), 4, None)),
            (
                "PRUNE",
                lambda: sql.prune(
                    conn, now, SHAPES.share_window, SHAPES.history, SHAPES.pair_window, SHAPES.minutes_kept
                ),
            ),
        ]
        print(f"{total:,} redemptions at one merchant in the hour, {new:,} new; load average {_load()}")
        overall = 0.0
        for name, statement in statements:
            best = float("inf")
            for _ in range(3):
                transaction = conn.transaction()
                await transaction.start()
                began = time.perf_counter()
                await statement()
                best = min(best, time.perf_counter() - began)
                await transaction.rollback()
            overall += best
            print(f"  {name:<18} {best * 1000:8.1f} ms")
        print(f"  {'a pass':<18} {overall * 1000:8.1f} ms (the sum; load average {_load()})")
    finally:
        await conn.close()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 150_000
    new = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    with database() as (url, _tmp):
        asyncio.run(bench(url, total, new))


if __name__ == "__main__":
    main()
