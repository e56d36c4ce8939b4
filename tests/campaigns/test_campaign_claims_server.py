"""2,000 claims for 500 vouchers from 200 connections against a real `voucher-engine serve --workers 2`:
separate worker processes, each with its own batcher, race in the database; exactly 500 vouchers result and no
holder holds more than its limit."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import orjson
import sqlalchemy as sa
from campaign_helpers import Gov, make_gov, set_clock, wallet
from test_campaign_claims import county_fair


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def two_worker_server(service):
    """A real `voucher-engine serve --workers 2` over the service's database; yields its port."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    env.update(
        DATABASE_URL=service.settings.database_url, VE_DATA_DIR=str(service.settings.data_dir), VE_DB_POOL_SIZE="8"
    )
    # Its log to a file: a pipe nobody reads would stop the server once its request lines (one each) filled it.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "voucher_engine.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180  # generous: the machine these run on may be shared
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (log.seek(0), log.read().decode()[-3000:])[1]
            assert time.monotonic() < deadline, "server not ready"
            await asyncio.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


async def test_2000_claims_for_500_vouchers_against_two_server_workers(service):
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    zhejiang = await make_gov(service, "330000")
    # Valid far ahead, so that the server runs on the real clock (no --test-clock middleware in the way).
    source = county_fair(500, limit=2).replace(
        "valid during 2025 China time", "valid from 2025-01-01 to 2034-12-31 China time"
    )
    campaign = await zhejiang.active(source)
    claims = [{"wallet_id": wallet(n), "id_hash": f"p{n}"} for n in range(1200)]
    claims += [{"wallet_id": wallet(100_000 + 8 * p + w), "id_hash": f"multi{p}"} for p in range(100) for w in range(8)]
    random.Random(11).shuffle(claims)

    async with two_worker_server(service) as port:
        path = f"/v1/campaigns/{campaign['id']}/claims"
        queue = list(reversed(claims))
        responses: list[tuple[int, dict]] = []

        async def connection():
            # One of 200 clients, each on its own keep-alive connection, claiming until the 2,000 are gone.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while queue:
                    body = orjson.dumps(queue.pop())
                    writer.write(
                        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        f"Authorization: {zhejiang.headers['Authorization']}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
                    )
                    responses.append((int(head[9:12]), orjson.loads(await reader.readexactly(length))))
            finally:
                writer.close()

        await asyncio.gather(*(connection() for _ in range(200)))
    assert len(responses) == 2000
    codes = collections.Counter("OK" if status == 201 else body["code"] for status, body in responses)
    assert codes["OK"] == 500 and set(codes) <= {"OK", "SOLD_OUT", "HOLDER_LIMIT"}, codes
    async with service.state.engine.connect() as conn:
        count, worst = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), max(n) FROM (SELECT count(*) AS n FROM vouchers WHERE campaign_id = :c"
                    " GROUP BY holder_key) x"
                ),
                {"c": campaign["id"]},
            )
        ).one()
        assert (
            await conn.execute(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": campaign["id"]})
        ).scalar_one() == 500
    assert worst <= 2
    ids = [body["id"] for status, body in responses if status == 201]
    assert len(set(ids)) == 500


async def test_a_token_revoked_mid_burst_gets_no_claim_after_the_revocation_commits(service):
    """Claims with one gov token stream into both workers (which remember the token by then); the token is revoked
    over the API mid-stream. Every claim sent after the revocation's answer (so after its commit) is refused
    UNAUTHENTICATED, and exactly the claims answered 201 hold vouchers."""
    await set_clock(service, "2025-03-01T10:00:00+08:00")
    await make_gov(service, "330000")
    made = await service.client.post(
        "/v1/tokens", json={"role": "gov", "issuer_id": "iss_330000"}, headers=service.admin
    )
    assert made.status_code == 201, made.text
    token_id = made.json()["id"]
    gov = Gov(service, "iss_330000", made.json()["token"])
    source = county_fair(5000).replace("valid during 2025 China time", "valid from 2025-01-01 to 2034-12-31 China time")
    campaign = await gov.active(source)
    path = f"/v1/campaigns/{campaign['id']}/claims"
    serial = iter(range(10**6))
    revoked_at: list[float] = []  # monotonic time once the revocation's 204 is in (its transaction committed)
    # (sent at, status, code) per claim
    answers: list[tuple[float, int, str]] = []
    under_way = asyncio.Event()  # set at the 300th answer: the burst is well under way, both workers serving

    async with two_worker_server(service) as port:

        async def connection():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                # Claim until 0.5 s after the revocation.
                while not revoked_at or time.monotonic() < revoked_at[0] + 0.5:
                    n = next(serial)
                    body = orjson.dumps({"wallet_id": wallet(n), "id_hash": f"r{n}"})
                    sent = time.monotonic()
                    writer.write(
                        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        f"Authorization: {gov.headers['Authorization']}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
                    )
                    document = orjson.loads(await reader.readexactly(length))
                    status = int(head[9:12])
                    answers.append((sent, status, "OK" if status == 201 else document["code"]))
                    if len(answers) == 300:
                        under_way.set()
            finally:
                writer.close()

        async def revoke():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as admin:
                await under_way.wait()
                answer = await admin.delete(f"/v1/tokens/{token_id}", headers=service.admin)
                assert answer.status_code == 204, answer.text
                revoked_at.append(time.monotonic())

        # Bounded: a stuck burst fails the test instead of hanging the suite.
        await asyncio.wait_for(asyncio.gather(revoke(), *(connection() for _ in range(40))), timeout=300)

    after = [(status, code) for sent, status, code in answers if sent > revoked_at[0]]
    assert len(after) >= 40, len(after)  # every connection claimed at least once after the revocation
    assert set(after) == {(401, "UNAUTHENTICATED")}, collections.Counter(after)
    granted = sum(1 for _, status, _ in answers if status == 201)
    assert granted >= 300
    assert {code for _, _, code in answers} <= {"OK", "UNAUTHENTICATED"}
    async with service.state.engine.connect() as conn:
        held = (
            await conn.execute(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": campaign["id"]})
        ).scalar_one()
        last_used = (
            await conn.execute(sa.text("SELECT last_used_at FROM api_tokens WHERE id = :t"), {"t": token_id})
        ).scalar_one()
    assert held == granted  # a refused claim took no voucher
    assert last_used is not None
