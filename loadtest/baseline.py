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
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=16)


@app.post("/redeem")
async def redeem(request: Request) -> Response:
    body = await request.json()
    async with app.state.pool.acquire() as conn, conn.transaction():
        face = await conn.fetchval(
            "UPDATE baseline_vouchers SET status = 'redeemed' WHERE id = $1 AND status = 'issued' RETURNING face_fen",
            body["voucher_id"])
        if face is None:
            return JSONResponse({"code": "VOUCHER_ALREADY_REDEEMED"}, status_code=409)
        await conn.execute("INSERT INTO baseline_ledger (voucher_id, amount_fen) VALUES ($1, $2)",
                           body["voucher_id"], face)
    return JSONResponse({"status": "settled", "subsidy_fen": face}, status_code=201)


async def seed(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("TRUNCATE baseline_vouchers, baseline_ledger")
        await conn.copy_records_to_table("baseline_vouchers", records=((i, "issued", 2000) for i in range(count)),
                                         columns=["id", "status", "face_fen"])
    finally:
        await conn.close()
