"""Tables of the defences (防刷): counters of failed voucher-code lookups, per POS key and minute.

A till that keeps presenting codes this engine never issued is guessing. The redemption path counts its
`VOUCHER_UNKNOWN` answers here — written only on that failure path, never on a success — and refuses the key with
`RATE_LIMITED` for a while once the count over a sliding window passes the limit (redemption/guard.py). The rows
live in PostgreSQL so that every worker process (and every replica) sees the same count.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import metadata

TS = sa.DateTime(timezone=True)

code_guess_failures = sa.Table(
    "code_guess_failures",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    # The start of the minute (real clock) the failures were counted in; the window sums the last few minutes.
    sa.Column("minute", TS, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.CheckConstraint("failures > 0", name="failures_positive"),
    sa.Index(None, "minute"),
)
