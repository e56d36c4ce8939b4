"""Campaign statistics over 1,000,000 redemptions: `python loadtest/bench_stats.py [N]` (`voucher-engine bench stats`).

Prints how long the rollup poller takes to take N sequenced redemptions into the rollups, then the latency of
`GET /v1/campaigns/{id}/stats` (by day and by hour) over HTTP against `voucher-engine serve`, next to the scan of the
redemptions table that the rollups spare each call, and how long a new redemption takes to show in the answer.
Target (issue 17): <= 50 ms for a campaign with 1,000,000 redemptions, p99 included, by day and by hour. Each
figure is printed with the load average beside it (the machine is shared).

The N redemptions are written straight into the tables in SQL (redemptions, ledger transactions, ledger sequence rows
with placeholder hashes, 1% of them refunded), spread over 30 days, 60 merchants, 15 districts and 4 categories:
what is measured is the rollup and the read, not the till, and the rollup reads exactly the rows that the real path
writes. The scratch database is dropped at the end (its ledger would not verify: the hashes are placeholders).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time

import asyncpg
import httpx
import sqlalchemy as sa

from bench_campaigns import database
from harness import free_port, stop, wait_ready
from voucher_engine.db.engine import plain_url

CONTRACT = """campaign "Stats bench" issuer 310000
budget ¥100,000,000
funders {
    310000: 100%
}
voucher threshold: spend ¥100, get ¥20 off
quantity 5,000,000
limit 1 per holder
distribution targeted
valid from 2025-01-01 00:00 to 2025-12-31 23:59 China time
payment {
    merchant.region within 310000
}
"""
DISTRICTS = ("310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310113", "310114",
             "310115", "310116", "310117", "310118", "310120")  # fmt: skip
MCCS = ("5812", "5813", "5814", "5411")
MERCHANTS = 60
REQUESTS = 200
TRICKLE_S = 0.1
TRICKLE_PHASE_S = 10.0

SEED = """
WITH head AS (SELECT coalesce(max(seq), 0) AS seq FROM ledger_sequence),
r AS (
    INSERT INTO redemptions (campaign_id, id, merchant_id, pos_txn_id, request_sha256, voucher_id, wallet_id,
                             order_amount_fen, subsidy_fen, payable_fen, ledger_tx_id, settled_at, spend_day)
    SELECT $1, 'rdm_b' || i, 'bm' || (i % $3), 'p' || i, 'x', 'vch_b' || i, lpad(i::text, 16, '0'),
           10000 + (i * 7919) % 40000, 2000, 8000 + (i * 7919) % 40000, 'ltx_b' || i,
           timestamptz '2025-03-01 00:00+08' + (i * interval '30 days') / $2, date '2025-03-01'
      FROM generate_series(1::bigint, $2::bigint) AS i
    RETURNING 1
),
t AS (
    INSERT INTO ledger_transactions (id, campaign_id, kind, at, refs, accounts, amounts_fen)
    SELECT 'ltx_b' || i, $1, 'redeem', timestamptz '2025-03-01 00:00+08' + (i * interval '30 days') / $2,
           jsonb_build_object('campaign_id', $1, 'voucher_id', 'vch_b' || i, 'redemption_id', 'rdm_b' || i,
                              'merchant_id', 'bm' || (i % $3)),
           ARRAY['escrow:' || $1, 'merchant:bm' || (i % $3)], ARRAY[-2000, 2000]::bigint[]
      FROM generate_series(1::bigint, $2::bigint) AS i
    RETURNING 1
)
INSERT INTO ledger_sequence (seq, tx_id, campaign_id, merchant_id, voucher_id, hash, prev_hash, leaf_hash)
SELECT head.seq + i, 'ltx_b' || i, $1, 'bm' || (i % $3), 'vch_b' || i, sha256(i::text::bytea),
       sha256((i - 1)::text::bytea), sha256(('l' || i)::bytea)
  FROM head, generate_series(1::bigint, $2::bigint) AS i
"""
# 1% of the redemptions half refunded, each refund its own sequenced ledger transaction after the redemptions.
SEED_REFUNDS = """
WITH head AS (SELECT max(seq) AS seq FROM ledger_sequence),
f AS (
    INSERT INTO refunds (campaign_id, redemption_id, refund_id, request_sha256, amount_fen, subsidy_clawback_fen,
                         reason, ledger_tx_id, voucher_restored, created_at)
    SELECT $1, 'rdm_b' || (i * 100), 'f1', 'x', 5000, 1000, 'bench', 'ltx_f' || i, false,
           timestamptz '2025-03-01 00:00+08' + (i * 100 * interval '30 days') / $2 + interval '1 hour'
      FROM generate_series(1::bigint, $2::bigint / 100) AS i
    RETURNING 1
),
t AS (
    INSERT INTO ledger_transactions (id, campaign_id, kind, at, refs, accounts, amounts_fen)
    SELECT 'ltx_f' || i, $1, 'refund', timestamptz '2025-03-01 00:00+08' + (i * 100 * interval '30 days') / $2
           + interval '1 hour',
           jsonb_build_object('campaign_id', $1, 'voucher_id', 'vch_b' || (i * 100),
                              'redemption_id', 'rdm_b' || (i * 100), 'merchant_id', 'bm' || ((i * 100) % $3)),
           ARRAY['merchant:bm' || ((i * 100) % $3), 'escrow:' || $1], ARRAY[-1000, 1000]::bigint[]
      FROM generate_series(1::bigint, $2::bigint / 100) AS i
    RETURNING 1
)
INSERT INTO ledger_sequence (seq, tx_id, campaign_id, merchant_id, voucher_id, hash, prev_hash, leaf_hash)
SELECT head.seq + i, 'ltx_f' || i, $1, 'bm' || ((i * 100) % $3), 'vch_b' || (i * 100), sha256(('f' || i)::bytea),
       sha256(('g' || i)::bytea), sha256(('h' || i)::bytea)
  FROM head, generate_series(1::bigint, $2::bigint / 100) AS i
"""
# What each call would cost without the rollups: the same figures by a scan of the campaign's redemptions.
SCAN = """
SELECT (settled_at AT TIME ZONE 'Asia/Shanghai')::date AS day, m.region_code, m.mcc, count(*),
       sum(r.subsidy_fen), sum(r.order_amount_fen)
  FROM redemptions r JOIN merchants m ON m.id = r.merchant_id
 WHERE r.campaign_id = $1 GROUP BY 1, 2, 3
"""


def _line(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<52} {value:>16}  {note}", flush=True)


async def _setup(url: str, redemptions: int) -> tuple[str, str]:
    """An issuer, a funded active campaign (through the services), merchants, a gov token; then the N rows."""
    from voucher_engine.auth import service as auth
    from voucher_engine.auth.subjects import Subject
    from voucher_engine.campaigns import service as campaigns
    from voucher_engine.db.engine import create_engine
    from voucher_engine.issuers import service as issuers
    from voucher_engine.issuers.schemas import IssuerCreate
    from voucher_engine.ledger import sequencer
    from voucher_engine.ledger import service as ledger

    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            issuer = await issuers.create(conn, IssuerCreate(name="Shanghai (bench)", region_code="310000"))
            gov = Subject(role="gov", token_id="bench", issuer_id=issuer.id, issuer_region="310000")
            campaign = await campaigns.create(conn, gov, CONTRACT)
            token, _ = await auth.create_token(conn, "gov", issuer.id)
            for m in range(MERCHANTS):
                await conn.execute(
                    sa.text(
                        "INSERT INTO merchants (id, name, mcc, region_code, settlement_wallet, tags, created_at,"
                        " updated_at) VALUES (:id, :id, :mcc, :region, '0000000000000001', '{}', now(), now())"
                    ),
                    {"id": f"bm{m}", "mcc": MCCS[m % len(MCCS)], "region": DISTRICTS[m % len(DISTRICTS)]},
                )
                await ledger.open_account(conn, f"merchant:bm{m}")
        for action in ("fund", "activate"):
            async with engine.begin() as conn:
                await campaigns.transition(conn, gov, campaign.id, action)
        await sequencer.drain(engine)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(plain_url(url))
    try:
        started = time.perf_counter()
        await conn.execute(SEED, campaign.id, redemptions, MERCHANTS)
        await conn.execute(SEED_REFUNDS, campaign.id, redemptions, MERCHANTS)
        await conn.execute("ANALYZE")
        _line("seed (SQL, not measured against a target)", f"{time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()
    return campaign.id, token


async def _rollup(url: str) -> int:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.stats import service as stats

    engine = create_engine(url, pool_size=2)
    try:
        return await stats.catch_up(engine)
    finally:
        await engine.dispose()


async def _detector_to_head(url: str) -> int:
    """The risk detector tails the same ledger (risk/detector.py). Its first passes over N synthetic rows took 16 min
    at N = 1,000,000 and would run beside the measured calls: its cursor is set to the ledger's head instead (what
    is measured here is the stats answer; the detector still judges every redemption the bench adds later)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        return await conn.fetchval(
            "UPDATE risk_w_cursor SET last_seq = (SELECT max(seq) FROM ledger_sequence) WHERE id = 1 RETURNING last_seq"
        )
    finally:
        await conn.close()


async def _scan_ms(url: str, campaign_id: str) -> float:
    conn = await asyncpg.connect(plain_url(url))
    try:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            await conn.fetch(SCAN, campaign_id)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)
    finally:
        await conn.close()


def _more_sql(prefix: str) -> str:
    """SEED for redemptions of their own ids (`prefix`): the same three rows the real path and the sequencer write."""
    return (
        SEED.replace("'rdm_b' ||", f"'rdm_{prefix}' ||")
        .replace("'ltx_b' ||", f"'ltx_{prefix}' ||")
        .replace("'vch_b' ||", f"'vch_{prefix}' ||")
        .replace("'p' ||", f"'q{prefix}' ||")
    )


async def _one_more(url: str, campaign_id: str, prefix: str = "n") -> None:
    """One more redemption, sequenced."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute(_more_sql(prefix), campaign_id, 1, MERCHANTS)
    finally:
        await conn.close()


def _trickle(url: str, campaign_id: str, stop_at: threading.Event) -> None:
    """A redemption sequenced every TRICKLE_S until told to stop: the campaign's rollups move every poller round."""

    async def run() -> None:
        conn = await asyncpg.connect(plain_url(url))
        try:
            n = 0
            while not stop_at.is_set():
                n += 1
                await conn.execute(_more_sql(f"t{n}_"), campaign_id, 1, MERCHANTS)
                await asyncio.sleep(TRICKLE_S)
        finally:
            await conn.close()

    asyncio.run(run())


async def _in_process(url: str, campaign_id: str, token: str, bucket: str) -> list[float]:
    """The answer built afresh on every call (no cache: what a call costs once the campaign's rollups have moved),
    without HTTP: the one statement, the token checked in it, the bytes."""
    from voucher_engine.stats import service as stats

    conn = await asyncpg.connect(plain_url(url))
    samples = []
    try:
        for n in range(10 + REQUESTS):
            started = time.perf_counter()
            await stats.answer(conn, None, f"Bearer {token}", campaign_id, bucket)  # type: ignore[arg-type]
            if n >= 10:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    return samples


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {ordered[-1]:.1f} ms"


def _load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _timed_gets(http: httpx.Client, path: str, bucket: str, count: int) -> tuple[list[float], dict]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        answer = http.get(path, params={"bucket": bucket})
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    return samples, answer.json()


def main(redemptions: int) -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"stats bench: {redemptions:,} redemptions in one campaign (load average {load} on {os.cpu_count()} cores)")
    with database() as (url, tmp):
        campaign_id, token = asyncio.run(_setup(url, redemptions))
        started = time.perf_counter()
        taken = asyncio.run(_rollup(url))
        elapsed = time.perf_counter() - started
        _line("rollup of every sequenced transaction", f"{elapsed:.1f} s", f"{taken:,} ({taken / elapsed:,.0f}/s)")
        _line("risk detector's cursor set to the ledger's head", f"{asyncio.run(_detector_to_head(url)):,}")
        _line("a scan of the redemptions instead (per call)", f"{asyncio.run(_scan_ms(url, campaign_id)):.0f} ms")
        for bucket in ("day", "hour"):
            samples = asyncio.run(_in_process(url, campaign_id, token, bucket))
            _line(f"stats by {bucket} built afresh (no HTTP, no cache)", _percentiles(samples), _load())
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "VE_DATA_DIR": str(tmp / "data"), "VE_LOG_LEVEL": "warning"}
        server = subprocess.Popen(
            [sys.executable, "-m", "voucher_engine.cli", "serve", "--port", str(port)],
            env=env,
            # Not a pipe: nobody reads it, and a full pipe stops the server mid-run (each request logs a line).
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port, server)
            path = f"/v1/campaigns/{campaign_id}/stats"
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as http:
                # Warm the worker (connections, plans, the answers kept) and let the server's start settle (the
                # ledger process reads the whole tree for its first checkpoint): 5 s of calls, not measured.
                warm_until = time.monotonic() + 5
                while time.monotonic() < warm_until:
                    _timed_gets(http, path, "day", 5)
                    _timed_gets(http, path, "hour", 5)
                for bucket in ("day", "hour"):
                    samples, body = _timed_gets(http, path, bucket, REQUESTS)
                    count = sum(b["redemptions"] for b in body["buckets"])
                    _line(f"GET stats?bucket={bucket} over HTTP ({REQUESTS} calls)", _percentiles(samples), _load())
                    _line(f"  its {len(body['buckets'])} buckets count", f"{count:,}", "redemptions")
                # While redemptions land: the campaign's rollup sequence moves every poller round (1 s), so the
                # first call after each round builds the answer again in the database. 10 s of calls per bucket.
                stop_at = threading.Event()
                trickle = threading.Thread(target=_trickle, args=(url, campaign_id, stop_at))
                trickle.start()
                try:
                    for bucket in ("day", "hour"):
                        samples, seen = [], set()
                        until = time.monotonic() + TRICKLE_PHASE_S
                        while time.monotonic() < until:
                            more, body = _timed_gets(http, path, bucket, 20)
                            samples += more
                            seen.add(body["as_of"]["ledger_seq"])
                        _line(
                            f"  ...by {bucket} while a redemption lands every {TRICKLE_S * 1000:.0f} ms",
                            _percentiles(samples),
                            f"{_load()}; {len(samples)} calls, {len(seen)} rollup rounds seen",
                        )
                finally:
                    stop_at.set()
                    trickle.join()
                before = http.get(path).json()["as_of"]["ledger_seq"]
                asyncio.run(_one_more(url, campaign_id))
                started = time.perf_counter()
                while http.get(path).json()["as_of"]["ledger_seq"] == before:
                    time.sleep(0.02)
                _line(
                    "a new sequenced redemption shows after",
                    f"{(time.perf_counter() - started) * 1000:.0f} ms",
                    "poller every VE_STATS_INTERVAL_S (1 s)",
                )
        finally:
            stop(server)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
