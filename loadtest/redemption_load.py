"""Redemption load test: the full signed path against a bare baseline, in the same run, on this machine.

    python loadtest/redemption_load.py [--duration 10] [--rounds 5] [--concurrency 128] [--workers 2] [--rate 1000]
                                       [--risk on|off|both|control|alone|alone-control]

It starts PostgreSQL (embedded, or DATABASE_URL), seeds a funded, active campaign with vouchers, starts
`voucher-engine serve --workers N` and the baseline (`loadtest/baseline.py`, uvicorn with the same workers), then:

1. baseline: closed loop, every request a redemption (conditional UPDATE + ledger INSERT, one txn per request);
2. full, redemptions only: closed loop, every request a fresh signed redemption (1 and 2 alternate in `--rounds`
   slices of the duration, so that a drift in the machine's speed falls on both alike);
3. full, realistic mix: redemptions, quotes, retries of earlier requests, rejected vouchers and refunds;
4. full, open loop at a fixed offered rate of redemptions (latency measured from each request's scheduled time).

It prints throughput, p50/p99 latency and unexpected answers for each phase, the ratio to the baseline, and the
generator's own CPU use (it must stay well below one core to be sure it is not the bottleneck).

`--risk` sets the risk rules of the service (VE_RISK: the per-redemption rules and the window detector; on by
default, as in production). `--risk both` starts a second service with them off over the same database and alternates
the two in the redemptions-only rounds and in the open loop (in `--open-pairs` pairs of slices, on and off in turn,
each first in every other pair), then prints the on/off ratio of settled/s, the p99s, each pair's p99 difference and
their median (one slow stretch of a shared machine moves one pair, not the median). `--risk control` runs the same
comparison with the rules off on both sides: what it prints is the comparison's own noise on this machine. The
detector of the service with rules on reads every redemption of the database, the other's too, a poll later: part of
its cost falls in the slices of the service without rules, so the same-run ratio is the till's own cost of the
rules; `--risk on` against `--risk off` in two runs counts all of it.

`--risk alone` (and `alone-control`) makes the same comparison one service at a time (`loadtest/risk_cost.py`):
each slice restarts `serve` with the rules on or off, measures throughput closed loop at 32 clients and p99 at
`--rate` open loop with the lean generator, in `--open-pairs` pairs of `--duration`/(2 x pairs) seconds each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from loadtest.harness import free_port, scratch_dir, wait_ready, warm_wal  # noqa: E402
from loadtest.http_client import Connection, request_bytes  # noqa: E402
from voucher_engine.merchants.client import signed_headers  # noqa: E402

CHUNK = 50_000
ROUNDS = 5
PRESIGNED_PER_S = 9_000  # redemptions signed ahead per second of the redemptions-only phase


def contract_source(now: datetime, quantity: int, *, flag_every_redemption: bool = False) -> str:
    """The load's campaign. Its `risk` section pins the one per-redemption rule that depends on the clock: by default
    the dining odd hours (03:00-06:00 China time) would flag every redemption of a run made in them, and a flagged
    redemption is written another way, so a figure would depend on the hour it was taken at. Off by default;
    `flag_every_redemption` makes the odd hours the whole day instead (the flagged way, measured on purpose)."""
    start = (now - timedelta(days=1)).astimezone(timezone(timedelta(hours=8)))
    end = start + timedelta(days=60)
    odd_hour = "odd_hour from 00:00 to 23:59: flag" if flag_every_redemption else "odd_hour: off"
    return f"""campaign "Load test dining vouchers" issuer 310000
budget ¥{quantity * 20:,}
funders {{
    310000: 100%
}}
voucher threshold: spend ¥100, get ¥20 off
quantity {quantity:,}
distribution targeted
valid from {start:%Y-%m-%d} 00:00 to {end:%Y-%m-%d} 23:59 China time
payment {{
    merchant.mcc in {{"5812", "5813", "5814"}}
    merchant.region within 310000
}}
risk {{
    {odd_hour}
}}
"""


@dataclass
class Seeded:
    key_id: str
    secret: str
    wallets: list[str]
    codes: list[str]
    admin_token: str = ""


async def seed(database_url: str, data_dir: Path, count: int, *, flag_every_redemption: bool = False) -> Seeded:
    import httpx

    from voucher_engine.api.app import create_app
    from voucher_engine.auth import service as auth_service
    from voucher_engine.campaigns.codes import make_codes
    from voucher_engine.config import Settings

    app = create_app(Settings(database_url=database_url, data_dir=data_dir))
    async with app.router.lifespan_context(app):
        async with app.state.ve.engine.begin() as conn:
            admin, _ = await auth_service.create_token(conn, "admin")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed", timeout=600) as client:
            h = {"Authorization": f"Bearer {admin}"}
            issuer = (
                await client.post("/v1/issuers", json={"name": "Shanghai", "region_code": "310000"}, headers=h)
            ).json()["id"]
            gov = (await client.post("/v1/tokens", json={"role": "gov", "issuer_id": issuer}, headers=h)).json()
            g = {"Authorization": f"Bearer {gov['token']}"}
            await client.put(
                "/v1/merchants/load-noodles",
                headers=h,
                json={
                    "name": "Load Noodles",
                    "mcc": "5812",
                    "region_code": "310104",
                    "settlement_wallet": "0012345678901234",
                    "tags": [],
                },
            )
            key = (await client.post("/v1/merchants/load-noodles/keys", headers=h)).json()
            created = await client.post(
                "/v1/campaigns",
                headers=g,
                json={
                    "source": contract_source(
                        datetime.now(timezone.utc), count, flag_every_redemption=flag_every_redemption
                    )
                },
            )
            assert created.status_code == 201, created.text
            campaign = created.json()["id"]
            for action in ("fund", "activate"):
                moved = await client.post(f"/v1/campaigns/{campaign}/{action}", headers=g)
                assert moved.status_code == 200, moved.text
            wallets = [f"7{i:015d}" for i in range(count)]
            for start in range(0, count, CHUNK):
                holders = [{"wallet_id": w} for w in wallets[start : start + CHUNK]]
                issued = await client.post(f"/v1/campaigns/{campaign}/issuances", headers=g, json={"holders": holders})
                assert issued.status_code == 201 and issued.json()["issued"] == len(holders), issued.text[:300]
        async with app.state.ve.engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql(
                    "SELECT id, wallet_id FROM vouchers WHERE campaign_id = $1 ORDER BY wallet_id", (campaign,)
                )
            ).all()
        codes = make_codes(app.state.ve.server_secret, campaign, [r[0] for r in rows])
    return Seeded(key["key_id"], key["secret"], [r[1] for r in rows], codes, admin)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its log to a file: a pipe nobody reads would stop the server once full.
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"), start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    settled: int = 0
    unexpected: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    unexpected_samples: list[str] = field(default_factory=list)
    server_cpu_s: float = 0.0  # the service's (or baseline's) processes during the phase
    postgres_cpu_s: float = 0.0  # every PostgreSQL process during the phase

    def record(self, status: int, latency_ms: float, expected: tuple[int, ...], body: bytes = b"") -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 201:
            self.settled += 1
        if status not in expected:
            self.unexpected += 1
            if len(self.unexpected_samples) < 3:
                self.unexpected_samples.append(f"{status} {body[:300].decode(errors='replace')}")

    def line(self) -> str:
        lat = sorted(self.latencies_ms) or [0.0]
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        total = len(self.latencies_ms)
        return (
            f"{self.name:<28} {total / self.wall_s:8.0f} req/s {self.settled / self.wall_s:8.0f} settled/s  "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  unexpected {self.unexpected:5d}  "
            f"generator CPU {100 * self.cpu_s / self.wall_s:5.1f}%  statuses {dict(sorted(self.statuses.items()))}"
        )

    def cost_line(self) -> str:
        total = max(1, len(self.latencies_ms))
        return (
            f"{self.name:<28} CPU per request: server {1e6 * self.server_cpu_s / total:5.0f} µs  "
            f"postgres {1e6 * self.postgres_cpu_s / total:5.0f} µs  generator {1e6 * self.cpu_s / total:5.0f} µs"
            f"  (server {100 * self.server_cpu_s / self.wall_s:3.0f}% + postgres "
            f"{100 * self.postgres_cpu_s / self.wall_s:3.0f}% of a core)"
        )


class CpuMeter:
    """CPU seconds used by a process tree and by PostgreSQL, read from /proc (psutil) around a phase."""

    def __init__(self, root_pid: int):
        import psutil

        self.root = psutil.Process(root_pid)

    def _read(self) -> tuple[float, float]:
        import psutil

        def used(proc) -> float:
            try:
                times = proc.cpu_times()
                return times.user + times.system
            except psutil.Error:
                return 0.0

        tree = sum(used(p) for p in [self.root, *self.root.children(recursive=True)])
        pg = sum(used(p) for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres")
        return tree, pg

    def __enter__(self) -> "CpuMeter":
        self.start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        end = self._read()
        self.server_s, self.postgres_s = end[0] - self.start[0], end[1] - self.start[1]


class Ops:
    """Builds signed requests on demand (signing is a few µs; timestamps stay fresh)."""

    def __init__(self, seeded: Seeded, rng: random.Random):
        self.s = seeded
        self.rng = rng
        self.next_voucher = 0
        self.sent: list[bytes] = []  # bodies of redemptions already sent (for retries)
        self.settled_ids: list[str] = []  # redemptions to refund
        self.used: list[int] = []  # indexes of vouchers sent for redemption
        self.answered: list[int] = []  # indexes of vouchers whose redemption was answered 201

    def _signed(self, method: str, path: str, body: dict) -> bytes:
        raw = orjson.dumps(body)
        return request_bytes(method, path, raw, signed_headers(self.s.key_id, self.s.secret, method, path, raw))

    def fresh_redeem(self) -> tuple[bytes, tuple[int, ...]]:
        i = self.next_voucher
        self.next_voucher += 1
        if i >= len(self.s.codes):
            raise SystemExit("out of vouchers: seed more (--vouchers)")
        self.used.append(i)
        body = {
            "voucher_code": self.s.codes[i],
            "wallet_id": self.s.wallets[i],
            "pos_txn_id": f"t{i}",
            "order_amount_fen": 12000,
        }
        self.sent.append(orjson.dumps(body))
        return self._signed("POST", "/v1/redemptions", body), (201,)

    def mixed(self) -> tuple[bytes, tuple[int, ...]]:
        roll = self.rng.random()
        if roll < 0.80 or not self.used:
            return self.fresh_redeem()
        if roll < 0.86:
            i = self.rng.randrange(self.next_voucher, min(len(self.s.codes), self.next_voucher + 1000))
            body = {"voucher_code": self.s.codes[i], "wallet_id": self.s.wallets[i], "order_amount_fen": 12000}
            return self._signed("POST", "/v1/redemptions/quote", body), (200,)
        if roll < 0.91:  # a till retrying an earlier request (same body, new nonce): the original answer
            raw = self.rng.choice(self.sent)
            return request_bytes(
                "POST",
                "/v1/redemptions",
                raw,
                signed_headers(self.s.key_id, self.s.secret, "POST", "/v1/redemptions", raw),
            ), (200, 201)
        if roll < 0.96 and self.answered:  # a voucher already spent, under a new till transaction: refused
            # Only vouchers whose redemption was answered: one still in flight could be beaten to it by this request.
            i = self.rng.choice(self.answered)
            body = {
                "voucher_code": self.s.codes[i],
                "wallet_id": self.s.wallets[i],
                "pos_txn_id": f"x{secrets.token_hex(6)}",
                "order_amount_fen": 12000,
            }
            return self._signed("POST", "/v1/redemptions", body), (409,)
        if self.settled_ids:
            rid = self.settled_ids.pop()
            body = {"refund_id": "r" + secrets.token_hex(6), "amount_fen": 3000, "reason": "load test"}
            return self._signed("POST", f"/v1/redemptions/{rid}/refunds", body), (201,)
        return self.fresh_redeem()


async def closed_loop(port: int, phase: Phase, concurrency: int, duration_s: float, make) -> None:
    conns = [Connection("127.0.0.1", port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    deadline = time.monotonic() + duration_s

    async def worker(conn: Connection) -> None:
        while time.monotonic() < deadline:
            raw, expected, on_answer = make()
            began = time.perf_counter()
            status, body = await conn.send(raw)
            phase.record(status, (time.perf_counter() - began) * 1000, expected, body)
            if on_answer is not None:
                on_answer(status, body)

    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    phase.wall_s += time.monotonic() - wall0  # added up: a phase may run in several rounds
    phase.cpu_s += _cpu() - cpu0
    await asyncio.gather(*(c.close() for c in conns))


async def open_loop(port: int, phase: Phase, rate: float, duration_s: float, make, senders: int = 128) -> None:
    """Offer `rate` requests/s for `duration_s`, whatever the answers' speed: request i is due at start + i/rate;
    `senders` connections take the next due request as they come free. Latency runs from the due moment, not from
    the send, so a slow server cannot hide its queue (coordinated omission)."""
    conns = [Connection("127.0.0.1", port) for _ in range(senders)]
    await asyncio.gather(*(c.open() for c in conns))
    total = int(rate * duration_s)
    next_index = 0
    start = time.perf_counter()
    cpu0 = _cpu()

    async def sender(conn: Connection) -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            raw, expected, _ = make()
            status, body = await conn.send(raw)
            phase.record(status, (time.perf_counter() - due) * 1000, expected, body)

    await asyncio.gather(*(sender(c) for c in conns))
    phase.wall_s += time.perf_counter() - start  # added up: a phase may run in several slices
    phase.cpu_s += _cpu() - cpu0
    await asyncio.gather(*(c.close() for c in conns))


def presigned(ops: "Ops", count: int):
    """`count` signed redemptions made before a phase starts (the issue allows pre-signing): the generator's CPU
    during the phase is then the sending alone. Timestamps stay well inside the ±300 s window of a short run."""
    ready = [ops.fresh_redeem() for _ in range(count)]
    feed = iter(ready)

    def make():
        raw, expected = next(feed, None) or ops.fresh_redeem()  # signed on the spot if the phase outran the stock
        return raw, expected, None

    return make


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="baseline and redemptions-only alternate in this many rounds of duration/rounds each",
    )
    # The closed-loop phases measure capacity, so the clients must be enough to keep each server busy. The baseline
    # is saturated from 32 clients on (2,720/s at 32, 2,731/s at 128 in one run); the batched service is not at 64:
    # its batches grow with what is queued, and at 64 clients they stay small enough that PostgreSQL's fixed cost
    # per statement and the pipeline's waits leave a fifth of the machine idle (measured: 3,094/s at 32 clients,
    # about 5,000 at 64, 5,794 at 128). The open-loop phase, which measures latency, does not depend on this.
    parser.add_argument(
        "--concurrency", type=int, default=128, help="clients of the closed-loop phases (each one request at a time)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered redemptions/s in the open-loop phase")
    parser.add_argument(
        "--open-pairs",
        type=int,
        default=2,
        help="with --risk both: the open loop alternates rules on and off in this many pairs of slices of "
        "duration/(2 x pairs) each, and reports each pair's p99 difference and their median",
    )
    parser.add_argument("--vouchers", type=int, default=0, help="default: enough for the run")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="also run redemptions-only slices with a `redemption.settled` subscriber (a receiver on a local port) "
        "alternating with slices without one, and report the ratio, the delivery lag and how long the backlog took",
    )
    parser.add_argument(
        "--risk",
        choices=("on", "off", "both", "control", "alone", "alone-control"),
        default="on",
        help="the per-redemption risk rules (VE_RISK); both: a second service with them off, compared in alternation; "
        "control: as both, but the first service has them off too (the comparison's own noise); alone, "
        "alone-control: the same one service at a time (loadtest/risk_cost.py)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record a py-spy profile of one server worker during the redemptions-only phase",
    )
    args = parser.parse_args()
    if args.risk.startswith("alone"):
        from loadtest import risk_cost

        pairs = max(1, args.open_pairs)
        risk_cost.run(
            risk_cost.arguments(
                [f"--rate={args.rate}", f"--pairs={pairs}", f"--slice-s={args.duration / (2 * pairs)}"]
                + [f"--workers={args.workers}"]
                + (["--control"] if args.risk == "alone-control" else [])
            )
        )
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    count = args.vouchers or int(
        15_000 * args.duration * (2.3 if args.webhook else 1.3) + args.rate * args.duration + 10_000
    )
    tmp = scratch_dir("ve-load-")
    database_url = os.environ.get("DATABASE_URL")
    if database_url is None:
        from voucher_engine.db import embedded

        database_url = embedded.start(tmp / "data")
    from voucher_engine.db import migrate

    migrate.upgrade(database_url)
    print(f"seeding {count} vouchers ...", flush=True)
    began = time.monotonic()
    seeded = asyncio.run(seed(database_url, tmp / "data", count))
    print(f"seeded in {time.monotonic() - began:.1f} s", flush=True)
    warm_wal(database_url)

    from voucher_engine.db.engine import plain_url

    env = {**os.environ, "DATABASE_URL": database_url, "VE_DATA_DIR": str(tmp / "data")}
    receiver = None
    if args.webhook:
        env["VE_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receiver is on this machine
        args.receiver_port = free_port()
        receiver = start(
            [sys.executable, "-m", "voucher_engine.webhooks.receiver", "--quiet", "--port", str(args.receiver_port)],
            env,
            tmp / "receiver.log",
        )
    port, base_port = free_port(), free_port()
    server = start(
        [sys.executable, "-m", "voucher_engine.cli", "serve", "--workers", str(args.workers), "--port", str(port)],
        {**env, "VE_RISK": "off" if args.risk in ("off", "control") else "on"},
        tmp / "server.log",
    )
    args.off = None
    risk_off = None
    if args.risk in ("both", "control"):
        off_port = free_port()
        risk_off = start(
            [
                sys.executable,
                "-m",
                "voucher_engine.cli",
                "serve",
                "--workers",
                str(args.workers),
                "--port",
                str(off_port),
            ],
            {**env, "VE_RISK": "off"},
            tmp / "server-risk-off.log",
        )
        args.off = (off_port, risk_off.pid)
    from loadtest import baseline

    asyncio.run(baseline.seed(plain_url(database_url), int(PRESIGNED_PER_S * args.duration * 1.2) + 50_000))
    base = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "loadtest.baseline:app",
            "--workers",
            str(args.workers),
            "--port",
            str(base_port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        {**env, "DATABASE_URL": plain_url(database_url)},
        tmp / "baseline.log",
    )
    try:
        wait_ready(port, server, "/readyz", timeout_s=300)  # a shared machine has taken 50 s and more
        if risk_off is not None:
            wait_ready(args.off[0], risk_off, "/readyz", timeout_s=300)
        wait_ready(base_port, base, "/docs")
        phases = asyncio.run(run_phases(args, seeded, port, base_port, server.pid, base.pid))
    finally:
        stop(server)
        if risk_off is not None:
            stop(risk_off)
        stop(base)
        if receiver is not None:
            stop(receiver)
    print()
    print(
        f"machine: {os.cpu_count()} cores; workers {args.workers} each; concurrency {args.concurrency}; "
        f"{args.duration:.0f} s per closed-loop phase"
    )
    for phase in phases:
        print(phase.line())
    for phase in phases:
        print(phase.cost_line())
    for phase in phases:
        for sample in phase.unexpected_samples:
            print(f"unexpected in {phase.name}: {sample}")
    baseline_rate = phases[0].settled / phases[0].wall_s
    only, mix = phases[1], phases[2]
    print(f"ratio {only.name}: {only.settled / only.wall_s / baseline_rate:.2f}x the baseline's settled/s")
    # The mix is a fifth quotes, retries, refusals and refunds, so its settled/s is not like for like with a
    # baseline that only redeems: both its requests/s and its settled/s are shown against the baseline's.
    print(
        f"ratio {mix.name}: {len(mix.latencies_ms) / mix.wall_s / baseline_rate:.2f}x the baseline's req/s "
        f"({mix.settled / mix.wall_s / baseline_rate:.2f}x in settled/s)"
    )
    if args.webhook:
        hooked = next(p for p in phases if p.name.startswith("full: redemptions, with"))
        print(
            f"webhooks: redemptions/s with a redemption.settled subscriber {hooked.settled / hooked.wall_s:,.0f} vs "
            f"{only.settled / only.wall_s:,.0f} without = {hooked.settled / hooked.wall_s / (only.settled / only.wall_s):.1%}"
        )
        for line in args.webhook_report:
            print(f"webhooks: {line}")
    if args.off is not None:
        for line in risk_report(phases, args.open_pair_p99s):
            print(f"risk{' (control: rules off on both sides)' if args.risk == 'control' else ''}: {line}")
    for line in metrics_excerpt(args.metrics_scrape):
        print(f"metrics: {line}")
    report = log_report(tmp / "server.log", seeded)
    print(f"logs: {report}")


def _p99_of(latencies_ms: list[float]) -> float:
    lat = sorted(latencies_ms) or [0.0]
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def _p99(phase: Phase) -> float:
    return _p99_of(phase.latencies_ms)


def risk_report(phases: list[Phase], pair_p99s: list[tuple[float, float]]) -> list[str]:
    """Risk rules on against off, from the phases run in alternation (`--risk both`)."""
    by_name = {p.name: p for p in phases}
    on, off = by_name["full: redemptions only"], by_name["full: redemptions only, risk off"]
    open_on = next(p for p in phases if p.name.startswith("full: open loop") and not p.name.endswith("risk off"))
    open_off = next(p for p in phases if p.name.startswith("full: open loop") and p.name.endswith("risk off"))
    on_rate, off_rate = on.settled / on.wall_s, off.settled / off.wall_s
    return [
        f"redemptions only, settled/s: rules on {on_rate:,.0f} vs off {off_rate:,.0f} = {on_rate / off_rate:.1%}",
        f"open loop p99: rules on {_p99(open_on):.2f} ms vs off {_p99(open_off):.2f} ms "
        f"({_p99(open_on) - _p99(open_off):+.2f} ms)",
        "open loop p99 per pair of slices, on/off (difference): "
        + ", ".join(f"{on_ms:.1f}/{off_ms:.1f} ({on_ms - off_ms:+.1f})" for on_ms, off_ms in pair_p99s),
        f"open loop p99 difference, median of {len(pair_p99s)} pairs: "
        f"{statistics.median(on_ms - off_ms for on_ms, off_ms in pair_p99s):+.2f} ms",
    ]


def metrics_excerpt(text: str) -> list[str]:
    """GET /metrics at the end of the run, parsed with prometheus-client's parser: a line per family."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(text):
        samples = [s for s in family.samples if not s.name.endswith(("_bucket", "_created"))]
        if family.name == "ve_http_requests":
            samples = sorted(samples, key=lambda s: -s.value)[:4]
        shown = ", ".join(
            f"{s.name}{{{','.join(f'{k}={v}' for k, v in s.labels.items())}}}={s.value:g}" for s in samples[:6]
        )
        out.append(f"{family.name} ({family.type}): {shown}")
    return out


def log_report(path: Path, seeded: Seeded) -> str:
    """The service's log: one JSON line per request; no secret, token, signature or voucher code in it anywhere."""
    text = path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    requests = 0
    for line in lines:
        if orjson.loads(line).get("msg") == "request":
            requests += 1
    secrets_seen = [
        name
        for name, value in (("POS secret", seeded.secret), ("admin token", seeded.admin_token))
        + tuple(("voucher code", code) for code in seeded.codes[:2000])
        if value and value in text
    ]
    for marker in ("x-ve-signature", "authorization", "whsec_", "Bearer "):
        if marker.lower() in text.lower():
            secrets_seen.append(marker)
    verdict = "none found" if not secrets_seen else f"FOUND {sorted(set(secrets_seen))}"
    return f"{requests:,} request lines of {len(lines):,} JSON lines; secrets, tokens, signatures, codes: {verdict}"


DRAIN_WAIT_S = 25.0  # after a slice with a subscriber: the requests were signed before the rounds (±300 s)


async def webhook_slice(args, seeded: Seeded, port: int, phase: Phase, server_pid: int, run) -> None:
    """One slice with a `redemption.settled` subscriber: subscribe, run the slice, then wait (outside the measured
    time, at most DRAIN_WAIT_S) for the events to reach the receiver, and unsubscribe, which drops what was still
    queued, so that the next slices without a subscriber run without its backlog. Reports the delivery lag and how
    much had arrived when the slice ended and when the wait ended."""
    import httpx

    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    receiver = f"http://127.0.0.1:{args.receiver_port}"
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(f"{receiver}/stats")).json()["unique"]
        made = await http.post(
            f"http://127.0.0.1:{port}/v1/webhooks",
            json={"url": f"{receiver}/hook", "events": ["redemption.settled"]},
            headers=admin,
        )
        assert made.status_code == 201, made.text
        hook = made.json()
        await http.post(f"{receiver}/secrets", content=hook["secret"])
        settled_before = phase.settled
        await measured(phase, server_pid, run)
        ended = time.monotonic()
        arrived_at_end = (await http.get(f"{receiver}/stats")).json()["unique"] - before
        scrape = ""
        while time.monotonic() - ended < DRAIN_WAIT_S:
            scrape = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            figures = dict(
                line.rsplit(" ", 1)
                for line in scrape.splitlines()
                if line.startswith(
                    (
                        "ve_webhook_deliveries_pending ",
                        "ve_webhook_ledger_backlog_transactions ",
                        "ve_ledger_unsequenced_transactions ",
                    )
                )
            )
            if figures and all(float(v) == 0 for v in figures.values()):
                break
            await asyncio.sleep(0.2)
        drained_s = time.monotonic() - ended
        stats = (await http.get(f"{receiver}/stats")).json()
        await http.delete(f"http://127.0.0.1:{port}/v1/webhooks/{hook['id']}", headers=admin)
    settled = phase.settled - settled_before
    args.webhook_report.append(
        f"slice: {settled:,} settled; {arrived_at_end:,} events had arrived when it ended, "
        f"{stats['unique'] - before:,} after {drained_s:.1f} s more; lag settled->received so far "
        f"p50 {stats['settled_lag_s']['p50']} s, p99 {stats['settled_lag_s']['p99']} s, max "
        f"{stats['settled_lag_s']['max']:.1f} s; duplicates {stats['duplicates']}, bad signatures "
        f"{stats['bad_signatures']}"
    )
    args.metrics_scrape = scrape


def _start_profiler(server_pid: int, seconds: float) -> subprocess.Popen:
    import psutil

    worker = psutil.Process(server_pid).children(recursive=True)[-1]
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "-d",
            str(int(seconds)),
            "-r",
            "200",
            "--gil",
            "--format",
            "raw",
            "-o",
            "/tmp/ve-worker-profile.txt",
            "-p",
            str(worker.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measured(phase: Phase, root_pid: int, run) -> None:
    with CpuMeter(root_pid) as meter:
        await run
    phase.server_cpu_s += meter.server_s
    phase.postgres_cpu_s += meter.postgres_s


async def run_phases(args, seeded: Seeded, port: int, base_port: int, server_pid: int, base_pid: int) -> list[Phase]:
    rng = random.Random(7)
    ops = Ops(seeded, rng)
    next_base = iter(range(10**9))

    def baseline_op():
        raw = orjson.dumps({"voucher_id": next(next_base)})
        return request_bytes("POST", "/redeem", raw, {"Content-Type": "application/json"}), (201,), None

    def remember(status: int, body: bytes) -> None:
        if status != 201:
            return
        answer = orjson.loads(body)
        if "refund_id" in answer:
            return
        if len(ops.settled_ids) < 10_000:
            ops.settled_ids.append(answer["id"])
        if answer["pos_txn_id"].startswith("t") and len(ops.answered) < 100_000:
            ops.answered.append(int(answer["pos_txn_id"][1:]))

    def redeem_op():
        raw, expected = ops.fresh_redeem()
        return raw, expected, None

    # Enough for the fastest closed-loop rate seen on this kind of machine, with room.
    closed_loop_budget = int(PRESIGNED_PER_S * args.duration)

    def mixed_op():
        raw, expected = ops.mixed()
        return raw, expected, remember

    warm = Phase("warm-up")
    await closed_loop(port, warm, 16, 2.0, redeem_op)
    off_only = Phase("full: redemptions only, risk off")
    if args.off is not None:
        await closed_loop(args.off[0], Phase("warm-up"), 16, 2.0, redeem_op)
    await closed_loop(base_port, Phase("warm-up"), 16, 2.0, baseline_op)
    results = [Phase("baseline (bare UPDATE+INSERT)"), Phase("full: redemptions only"), Phase("full: realistic mix")]
    hooked = Phase("full: redemptions, with a redemption.settled subscriber")
    args.webhook_report = []
    # The baseline's requests are made ahead too, as the full path's are: the generator's share of the CPU is
    # then the same small one in both phases.
    # The two are compared in alternating rounds: this machine's speed drifts by tens of per cent within a minute
    # (other tenants of its host), and one long phase each would hand the drift to whichever ran in the slow part.
    base_ready = iter([baseline_op() for _ in range(closed_loop_budget)])
    only = presigned(ops, closed_loop_budget * (2 if args.webhook else 1))
    profiler = _start_profiler(server_pid, args.duration) if args.profile else None
    slice_s = args.duration / max(1, args.rounds)
    for round_ in range(max(1, args.rounds)):
        await measured(
            results[0],
            base_pid,
            closed_loop(
                base_port, results[0], args.concurrency, slice_s, lambda: next(base_ready, None) or baseline_op()
            ),
        )
        full = [(port, server_pid, results[1])]
        if args.off is not None:  # rules on and off in turn, each first in every other round
            full.append((args.off[0], args.off[1], off_only))
            full = full if round_ % 2 == 0 else full[::-1]
        for full_port, full_pid, phase in full:
            await measured(phase, full_pid, closed_loop(full_port, phase, args.concurrency, slice_s, only))
        if args.webhook:
            await webhook_slice(
                args, seeded, port, hooked, server_pid, closed_loop(port, hooked, args.concurrency, slice_s, only)
            )
    if profiler is not None:
        profiler.wait()
    await measured(results[2], server_pid, closed_loop(port, results[2], args.concurrency, args.duration, mixed_op))
    offered = Phase(f"full: open loop {args.rate:.0f}/s")
    if args.off is None:
        fixed_rate = presigned(ops, int(args.rate * args.duration) + 1)
        await measured(offered, server_pid, open_loop(port, offered, args.rate, args.duration, fixed_rate))
        results.append(offered)
    else:
        offered_off = Phase(f"full: open loop {args.rate:.0f}/s, risk off")
        pairs = max(1, args.open_pairs)
        slice_s = args.duration / (2 * pairs)
        args.open_pair_p99s = []
        for pair in range(pairs):
            sides = [(port, server_pid, offered), (args.off[0], args.off[1], offered_off)]
            p99s = {}
            for target_port, pid, phase in sides if pair % 2 == 0 else sides[::-1]:  # each first in turn
                stock = presigned(ops, int(args.rate * slice_s) + 1)
                before = len(phase.latencies_ms)
                await measured(phase, pid, open_loop(target_port, phase, args.rate, slice_s, stock))
                p99s[phase is offered] = _p99_of(phase.latencies_ms[before:])
            args.open_pair_p99s.append((p99s[True], p99s[False]))
        results += [offered, offered_off, off_only]
    if args.webhook:
        results.append(hooked)
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        args.metrics_scrape = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return results


if __name__ == "__main__":
    main()
