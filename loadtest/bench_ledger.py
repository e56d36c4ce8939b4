"""Ledger benchmarks: `python loadtest/bench_ledger.py [N]` (same as `voucher-engine ledger bench --transactions N`).

Prints the posting and sequencing rates, `verify` over N transactions, inclusion/consistency proof latency and the
CSV export time with its memory. Uses DATABASE_URL's server (in a scratch database) or an embedded PostgreSQL.
"""

from __future__ import annotations

import sys

from voucher_engine.ledger.bench import main

if __name__ == "__main__":
    main(transactions=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
