"""The bare baseline the redemption path is measured against, in the same run on the same machine.

A FastAPI endpoint that does only what the issue names: the conditional UPDATE of one voucher and the INSERT of one
ledger row, one transaction per request, on asyncpg. No signature, no contract, no idempotency, no batching.
Run as `uvicorn loadtest.baseline:app --workers N` with DATABASE_URL set.
"""

from __future__ import annotations

import os

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_vouchers (id bigint PRIMARY KEY, status text NOT NULL, face_fen bigint NOT NULL);
CREATE TABLE IF NOT EXISTS baseline_ledger (id bigserial PRIMARY KEY, voucher_id bigint NOT NULL,
                                            amount_fen bigint NOT NULL, at timestamptz NOT NULL DEFAULT now());
"""

app = FastAPI()


@app.on_event("startup")
async def _startup() -> None:
    # BASELINE_POOL_SIZE: connections per worker (loadtest/capacity.py looks for the baseline's best).
    size = int(os.environ.get("BASELINE_POOL_SIZE", "16"))
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=min(4, size), max_size=size)


@app.post("/redeem")
async def redeem(request: Request) -> Response:
    body = await request.json()
    async with app.state.pool.acquire() as conn, conn.transaction():
        face = await conn.fetchval(
            "UPDATE baseline_vouchers SET status = 'redeemed' WHERE id = $1 AND status = 'issued' RETURNING face_fen",
            body["voucher_id"],
        )
        if face is None:
            return JSONResponse({"code": "VOUCHER_ALREADY_REDEEMED"}, status_code=409)
        await conn.execute(
            "INSERT INTO baseline_ledger (voucher_id, amount_fen) VALUES ($1, $2)", body["voucher_id"], face
        )
    return JSONResponse({"status": "settled", "subsidy_fen": face}, status_code=201)


async def seed(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("TRUNCATE baseline_vouchers, baseline_ledger")
        await conn.copy_records_to_table(
            "baseline_vouchers",
            records=((i, "issued", 2000) for i in range(count)),
            columns=["id", "status", "face_fen"],
        )
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------------------------
# The hook other benchmarks call to print their ratio to this baseline (loadtest/bench_campaigns.py claims).


def redeem_request(slots: int, slot: int, n: int) -> bytes:
    """Client `slot`'s n-th request: a voucher no other client redeems (ids slot, slot + slots, ...)."""
    body = b'{"voucher_id": %d}' % (n * slots + slot)
    return (
        b"POST /redeem HTTP/1.1\r\nHost: baseline\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(body)
    ) + body


def measure_per_s(database_url: str, clients: int, seconds: float, workers: int = 2) -> float:
    """Redemptions per second of this baseline on this machine: seeded in `database_url`, served by `uvicorn
    loadtest.baseline:app --workers N` (as loadtest/redemption_load.py runs it), driven closed-loop by `clients`
    keep-alive clients for `seconds` with the same driver as the claims benchmark (loadtest/harness.py)."""
    import asyncio
    import sys
    from functools import partial
    from pathlib import Path

    from loadtest import harness
    from voucher_engine.db.engine import plain_url

    root = Path(__file__).resolve().parents[1]
    dsn = plain_url(database_url)
    # Enough fresh vouchers for several times the rate this baseline reaches here (each request redeems one).
    per_client = int(seconds * 10_000 / max(clients, 1)) + 100
    asyncio.run(seed(dsn, per_client * clients))
    port = harness.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    with harness.server(
        harness.uvicorn_command("loadtest.baseline:app", port, workers),
        env,
        port,
        cwd=str(root),
        ready_path="/openapi.json",
    ):
        request_for = partial(redeem_request, clients)
        harness.closed_loop(port, request_for, min(clients, 16), 2.0)  # warm-up: connections, plans
        asyncio.run(seed(dsn, per_client * clients))
        result = harness.closed_loop(port, request_for, clients, seconds)
    if result.count(409):
        print(
            f"baseline: {result.count(409)} requests found their voucher already redeemed (seed more)", file=sys.stderr
        )
    return result.count(201) / result.seconds
