"""What a batch's rows cost on their way to PostgreSQL: one array argument per column, or one JSON text of rows.

    python loadtest/bench_row_arguments.py [--rounds 4000] [--sizes 1,4,16]

The redemption batch's write (redemption/repository.py, WRITE_BATCH_CTES) sends its redemption rows, vouchers, daily
spend and nonces. It used to send them as 23 array arguments, one per column; asyncpg checks every element of an
array argument with a Python-level isinstance on its way out. It now sends one JSON text of rows per kind
(`json_rows`), read in SQL as jsonb by `jsonb_array_elements` and `->>` (as json, `->>` parses a row's text again
for each field: PostgreSQL's CPU for 16 rows doubled).

This sends the twelve columns of a batch's redemption rows both ways, alternating, to a statement that reads every
field of every row, and prints the CPU per batch of the client (this process) and of its PostgreSQL backend (from
/proc), for each batch size. PostgreSQL: DATABASE_URL's server, or an embedded one (loadtest/bench_campaigns.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.bench_campaigns import database  # noqa: E402
from voucher_engine.redemption.repository import NewRedemption, json_rows  # noqa: E402

ARRAYS = """SELECT count(*), sum(o - s), max(length(c || i || m || p || h || vid || w || l)), max(d), max(it)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::bigint[], $9::bigint[], $10::text[], $11::date[], $12::text[]) AS t(c, i, m, p, h, vid, w, o, s, l, d, it)"""
JSON_ROWS = """SELECT count(*), sum((t->>7)::bigint - (t->>8)::bigint),
       max(length((t->>0) || (t->>1) || (t->>2) || (t->>3) || (t->>4) || (t->>5) || (t->>6) || (t->>9))),
       max((t->>10)::date), max(t->>11)
FROM jsonb_array_elements($1::jsonb) AS t"""


def rows(size: int) -> list[NewRedemption]:
    """Redemption rows shaped as the load test's: ids and hashes of their real lengths, no order items."""
    return [
        NewRedemption(
            "cmp_loadtest000000000001",
            f"rdm_{n:026d}",
            "mer_000000000000000001",
            f"pos-{n:012d}",
            "9f" * 32,
            f"vch_{n:026d}",
            "6900000000000001",
            12_000 + n,
            2_000,
            f"ltx_{n:026d}",
            date(2026, 12, 3),
            None,
        )
        for n in range(size)
    ]


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def measure(url: str, rounds: int, sizes: list[int]) -> None:
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        ways = {
            "arrays, one per column": (ARRAYS, lambda batch: [list(column) for column in zip(*batch)]),
            "one jsonb of rows": (JSON_ROWS, lambda batch: [json_rows(batch)]),
        }
        print(f"{rounds:,} batches each way and size; CPU per batch in µs (client / PostgreSQL backend)")
        for size in sizes:
            batch = rows(size)
            answers = {name: await conn.fetchrow(sql, *args(batch)) for name, (sql, args) in ways.items()}
            first, second = answers.values()
            assert tuple(first) == tuple(second), f"the two ways read different rows: {first} != {second}"
            totals = {name: [0.0, 0.0] for name in ways}
            for _ in range(4):  # alternating quarters, so that a drift of the machine falls on both
                for name, (sql, args) in ways.items():
                    client, server = time.process_time(), backend_cpu_s(pid)
                    for _ in range(rounds // 4):
                        await conn.fetchrow(sql, *args(batch))
                    totals[name][0] += time.process_time() - client
                    totals[name][1] += backend_cpu_s(pid) - server
            line = "; ".join(
                f"{name}: {client / rounds * 1e6:,.0f} / {server / rounds * 1e6:,.0f}"
                for name, (client, server) in totals.items()
            )
            print(f"  {size:>3} rows: {line}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4000)
    parser.add_argument("--sizes", default="1,4,16")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    if not 100 <= options.rounds <= 1_000_000 or not all(1 <= size <= 256 for size in sizes):
        parser.error("--rounds between 100 and 1,000,000; sizes between 1 and 256 (the batcher's MAX_BATCH)")
    with database() as (url, _):
        asyncio.run(measure(url, options.rounds, sizes))


if __name__ == "__main__":
    main()
