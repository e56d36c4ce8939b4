"""Where a redemption's CPU goes: per process of the service, per PostgreSQL backend (by its application name) and,
where the server has pg_stat_statements loaded, per statement.

    python loadtest/where_time_goes.py [--rate 500 | --clients 32] [--seconds 10] [--workers 1] [--pool 10]
                                       [--kind redeem | --kind mix [--mix-without refund,q,retry,spent]]
                                       [--watch-disk] [--watch-run-queue]

loadtest/capacity.py gives the CPU per request of the service's tree, PostgreSQL's tree and the generator at each
rung; this takes one load (offered open loop at --rate, or closed loop with --clients) and splits those figures:

- the service: each process of `serve`'s tree (the workers, the ledger's sequencer, the webhook dispatcher, the risk
  window detector) in µs of CPU per answered request;
- PostgreSQL: each backend, summed by `application_name` (the tills' batches are "voucher-engine batcher"), and the
  server's own helper processes;
- per redemption batch: the worker's CPU and its batch backend's (run at two rates, a batch's fixed cost and a
  job's separate: docs/redemption.md, "The targets as CPU");
- with pg_stat_statements: the statements by execution plus planning time per 1,000 answered requests, and how
  often each runs per 1,000 (the redemption batch's write and its peek run once per batch: their calls per 1,000
  say the mean batch size), with each call's time, WAL records and buffers touched;
- with --watch-disk: the disk's flushes timed beside the load, and which bursts of slow answers a stall of the disk
  explains; with --watch-run-queue, the same for the moments the worker or a batch's backend waited for a CPU.

PostgreSQL: an embedded server in a temporary directory unless DATABASE_URL names one (then a fresh database is
made on it and dropped after). pg_stat_statements must be in the server's `shared_preload_libraries` for the
statement table (`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'` and a restart; with
`pg_stat_statements.track = 'all'` the ledger's posting function's inner statement shows too); without it the
table is left out. The numbers are CPU, so they are less at the mercy of a busy machine than latencies are, but
a busy machine still lengthens them (caches, frequency): note the load printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from loadtest.capacity import Config, Servers, burst_groups, bursts, postgres_pid  # noqa: E402
from loadtest.harness import (  # noqa: E402
    DiskWatch,
    RunQueueWatch,
    descendants,
    fetch,
    machine_state,
    proc_stat,
    scratch_dir,
    warm_wal,
)
from loadtest.lean_client import Generators  # noqa: E402
from voucher_engine.redemption.service import BATCH_APPLICATION_NAME  # noqa: E402

TOP_STATEMENTS = 20
STATEMENT_CHARS = 110


# /metrics lines read around a load: the batcher's jobs and batches, and which way batches and refunds were written.
SERVICE_FIGURES = {
    "jobs": "ve_redemption_batch_size_sum ",
    "batches": "ve_redemption_batch_size_count ",
    **{
        f"{kind} {way}": f've_write_ways_total{{kind="{kind}",way="{way}"}} '
        for kind in ("redemption_batch", "refund")
        for way in ("unlocked", "locked")
    },
}


def service_figures(port: int) -> dict[str, float]:
    """SERVICE_FIGURES's counts so far, from /metrics (every worker's, added up)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    figures = dict.fromkeys(SERVICE_FIGURES, 0.0)
    for line in text.splitlines():
        for name, prefix in SERVICE_FIGURES.items():
            if line.startswith(prefix):
                figures[name] = float(line.split()[1])
    return figures


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def service_role(command: str, pid: int, root: int) -> str:
    if pid == root:
        return "serve (the worker, with --workers 1)"
    if "resource_tracker" in command:
        return "multiprocessing's resource tracker"
    if "spawn_main" in command:
        return "a background process (below: which, by its database backends)"
    return command[:80]


def has_statements(url: str) -> bool:
    preloaded = fetch(url, "SELECT current_setting('shared_preload_libraries') AS libs")[0]["libs"]
    if "pg_stat_statements" not in preloaded:
        return False
    fetch(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


def database(tmp: Path) -> tuple[str, object | None]:
    """A URL of an empty database: on DATABASE_URL's server (made here), or an embedded server's."""
    from sqlalchemy.engine import make_url

    external = os.environ.get("DATABASE_URL")
    if not external:
        from voucher_engine.db import embedded

        return embedded.start(tmp / "data"), None
    name = f"ve_where_{uuid.uuid4().hex[:10]}"
    fetch(external, f"CREATE DATABASE {name}")
    return make_url(external).set(database=name).render_as_string(hide_password=False), name


def without(text: str) -> frozenset[str]:
    """--mix-without's parts, refused by name when one is not a part of the mix that may be left out."""
    from loadtest.lean_client import MIX_PARTS

    parts = frozenset(part.strip() for part in text.split(",") if part.strip())
    may = {name for _, name in MIX_PARTS if name != "redeem"}
    unknown = sorted(parts - may)
    if unknown:
        raise SystemExit(f"--mix-without: {', '.join(unknown)} is not one of {', '.join(sorted(may))}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="offered redemptions per second (open loop)")
    parser.add_argument("--clients", type=int, default=0, help="closed loop with this many clients instead")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--kind", default="redeem", choices=("redeem", "mix"))
    parser.add_argument(
        "--mix-without",
        default="",
        help="parts of the mix (q, retry, spent, refund; comma-separated) sent as fresh redemptions instead, to see"
        " what each part costs everyone",
    )
    parser.add_argument(
        "--watch-disk",
        action="store_true",
        help="time an 8 kB write and fdatasync every 5 ms beside the load (harness.DiskWatch), and say how many of"
        " the bursts of slow answers overlap a stall of the disk",
    )
    parser.add_argument(
        "--watch-run-queue",
        action="store_true",
        help="read how long the worker and the batches' PostgreSQL backends wait for a CPU (harness.RunQueueWatch),"
        " and say how many bursts of slow answers overlap a moment one of them was starved",
    )
    parser.add_argument(
        "--flag-every-redemption",
        action="store_true",
        help="the campaign's odd hours cover the whole day, so that every redemption opens a risk flag",
    )
    args = parser.parse_args()
    mix_without = without(args.mix_without)

    from loadtest import baseline
    from loadtest.redemption_load import seed
    from voucher_engine.db import migrate
    from voucher_engine.db.engine import plain_url

    machine_before = machine_state()
    tmp = scratch_dir("ve-where-")
    url, made = database(tmp)
    external = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url  # the service started below uses it
    migrate.upgrade(url)
    expected = args.clients * 150 if args.clients else args.rate  # per second, generously
    vouchers = int(expected * (args.seconds + 6) * 1.5) + 5_000
    print(f"seeding {vouchers:,} vouchers ...", flush=True)
    seeded = asyncio.run(seed(url, tmp / "data", vouchers, flag_every_redemption=args.flag_every_redemption))
    asyncio.run(baseline.seed(plain_url(url), 1))
    warm_wal(url)
    statements = has_statements(url)
    generators = Generators(2, seeded.key_id, seeded.secret, seeded.codes, seeded.wallets, 1, mix_without=mix_without)
    servers = Servers(url, tmp / "data", tmp)
    try:
        port, root = servers.ensure("full", Config(args.workers, args.pool))
        generators.closed_loop(port, "redeem", 16, 2.0, expected_rate=3000)  # warm: caches, plans, pools
        time.sleep(1.0)
        postmaster = postgres_pid(url)
        if statements:
            fetch(url, "SELECT pg_stat_statements_reset()")
        figures_before = service_figures(port)
        before = proc_stat()
        began = time.monotonic()
        # The worker is the service's root process with --workers 1 (with more, workers and background processes
        # are alike multiprocessing children, so only the backends are watched).
        roles = {root: "the worker"} if args.workers == 1 else {}
        roles.update({row["pid"]: "a batch's backend" for row in fetch(url, _BATCH_BACKENDS)})
        with (
            DiskWatch(tmp) if args.watch_disk else contextlib.nullcontext() as watch,
            RunQueueWatch(roles) if args.watch_run_queue else contextlib.nullcontext() as queue,
        ):
            if args.clients:
                result = generators.closed_loop(port, args.kind, args.clients, args.seconds, expected_rate=expected)
                shape = f"closed loop, {args.clients} clients"
            else:
                result = generators.open_loop(port, args.kind, args.rate, args.seconds, 256)
                shape = f"open loop, {args.rate:.0f}/s offered"
        after = proc_stat()
        wall = time.monotonic() - began
        figures_after = service_figures(port)
        answered = max(1, result.answered())
        backends = {row["pid"]: row["name"] for row in fetch(url, _BACKENDS)}
        per = 1e6 / answered
        label = args.kind + (f" without {','.join(sorted(mix_without))}" if mix_without else "")

        def used(pid: int) -> float:
            return (after[pid][1] - before[pid][1]) if pid in before and pid in after else 0.0

        print(
            f"\n{shape}, {label}: {answered:,} answered in {wall:.1f} s ({answered / wall:,.0f}/s), "
            f"p50 {result.percentile_ms(0.5):.1f} ms, p99 {result.percentile_ms(0.99):.1f} ms, "
            f"failed {result.failed}; load {os.getloadavg()[0]:.2f}"
        )
        if result.slow:
            print(f"  {bursts(result.slow, result.wall_s, began)}")
        groups = burst_groups(result.slow)
        if watch is not None:
            print(f"  {watch.report(began, groups)}")
        if queue is not None:
            print(f"  {queue.report(groups)}")
        for part, values in sorted(result.mix_latencies_s.items()):
            print(
                f"  {part:<7} {len(values):6,} answered, p50 {result.percentile_ms(0.5, values):5.1f} ms, "
                f"p99 {result.percentile_ms(0.99, values):5.1f} ms"
            )
        counted = {name: figures_after[name] - figures_before[name] for name in SERVICE_FIGURES}
        if counted["batches"]:
            print(
                f"  redemption batches: {counted['batches']:,.0f}, "
                f"{counted['jobs'] / counted['batches']:.2f} jobs each on average"
            )
        for kind, plural in (("redemption_batch", "redemption batches"), ("refund", "refunds")):
            unlocked, locked = counted[f"{kind} unlocked"], counted[f"{kind} locked"]
            if unlocked + locked:
                print(f"  {plural} written the unlocked way {unlocked:,.0f}, the locked way {locked:,.0f}")
        service = descendants(after, root)
        print(f"\nservice: {sum(used(p) for p in service) * per:,.0f} µs of CPU per request")
        for pid in sorted(service, key=used, reverse=True):
            print(f"  {used(pid) * per:7,.0f} µs  pid {pid}  {service_role(command_line(pid), pid, root)}")
        server = descendants(after, postmaster)
        by_name: dict[str, float] = {}
        for pid in server:
            name = backends.get(pid) or command_line(pid).split(":", 1)[-1].strip()[:50] or "postmaster"
            by_name[name] = by_name.get(name, 0.0) + used(pid)
        print(f"\nPostgreSQL: {sum(by_name.values()) * per:,.0f} µs of CPU per request (live processes)")
        for name, cpu in sorted(by_name.items(), key=lambda item: -item[1]):
            if cpu * per >= 1:
                print(f"  {cpu * per:7,.0f} µs  {name}")
        print(f"\ngenerator: {result.cpu_s * per:,.0f} µs of CPU per request")
        if counted["batches"]:
            # A batch's fixed cost against its jobs': run at two rates, these two lines give both (docs/redemption.md).
            per_batch = 1e6 / counted["batches"]
            worker = f"the worker {used(root) * per_batch:,.0f} µs, " if args.workers == 1 else ""
            print(
                f"per redemption batch ({counted['jobs'] / counted['batches']:.2f} jobs): {worker}"
                f"its backend {by_name.get(BATCH_APPLICATION_NAME, 0.0) * per_batch:,.0f} µs of CPU"
            )
        if statements:
            print(
                "\nstatements, per 1,000 answered requests: execution + planning ms, calls;"
                " per call: ms, WAL records, buffers touched"
            )
            for row in fetch(url, _STATEMENTS, TOP_STATEMENTS):
                text = " ".join(row["query"].split())[:STATEMENT_CHARS]
                calls = max(1, row["calls"])
                print(
                    f"  {row['ms'] * 1000 / answered:8.1f} ms  {row['calls'] * 1000 / answered:7.1f}"
                    f"  {row['ms'] / calls:7.3f} ms {row['wal_records'] / calls:6.1f} {row['buffers'] / calls:7.1f}"
                    f"  {text}"
                )
        else:
            print("\n(no statement table: pg_stat_statements is not in the server's shared_preload_libraries)")
        print(f"\nmachine: {os.cpu_count()} cores; its yardsticks before the run: {machine_before}")
        print(f"                          and after it: {machine_state()}")
    finally:
        servers.stop_all()
        generators.close()
        if made is not None and external:
            fetch(external, f"DROP DATABASE IF EXISTS {made} WITH (FORCE)")


_BACKENDS = """SELECT pid, coalesce(nullif(application_name, ''), backend_type) AS name FROM pg_stat_activity"""
_BATCH_BACKENDS = f"SELECT pid FROM pg_stat_activity WHERE application_name = '{BATCH_APPLICATION_NAME}'"
_STATEMENTS = """SELECT calls, total_exec_time + total_plan_time AS ms, wal_records,
       shared_blks_hit + shared_blks_read AS buffers, query FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time + total_plan_time DESC LIMIT $1"""


if __name__ == "__main__":
    main()
