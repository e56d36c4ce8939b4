"""`voucher-engine serve --workers 2` on a prepared database: one JSON log line per request with the request id
echoed, nothing secret in the log, and /metrics (parsed with prometheus-client's parser) adding up every worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from webhook_helpers import holder

from voucher_engine.merchants.client import signed_headers

FAMILIES = {
    "ve_http_requests",
    "ve_http_request_duration_seconds",
    "ve_redemption_outcomes",
    "ve_redemption_batch_size",
    "ve_write_ways",
    "ve_ledger_unsequenced_transactions",
    "ve_ledger_sequencing_lag_seconds",
    "ve_webhook_deliveries",
    "ve_webhook_deliveries_pending",
    "ve_webhook_deliveries_failed",
    "ve_campaign_escrow_balance_fen",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_served_logs_and_metrics(hooked_world, receiver, tmp_path):
    world, svc = hooked_world, hooked_world.service
    wallets = [f"67{i:014d}" for i in range(40)]
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
    codes = {w: await world.code(campaign, w) for w in wallets}
    # The served instance's dispatcher process is to deliver (and count) the events, not this process's one.
    own = svc.state.extras.pop("webhooks.dispatcher")
    own.cancel()
    await asyncio.gather(own, return_exceptions=True)
    hook = (
        await svc.client.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["redemption.settled"]},
            headers=svc.admin,
        )
    ).json()
    receiver.secrets.append(hook["secret"])
    gov_token = world.gov["310000"]

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=svc.settings.database_url,
        VE_DATA_DIR=str(svc.settings.data_dir),
        VE_WEBHOOK_ALLOW_PRIVATE="1",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voucher_engine.cli",
                "serve",
                "--workers",
                "2",
                "--port",
                str(port),
                "--test-clock",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    till = world.tills["xuhui-noodles"]
    request_ids = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 240  # a shared, loaded machine has taken 50 s to start a server
            while True:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "server not ready"
                await asyncio.sleep(0.2)

            async def redeem(i: int, wallet: str):
                body = orjson.dumps(
                    {
                        "voucher_code": codes[wallet],
                        "wallet_id": wallet,
                        "pos_txn_id": f"ops-{i}",
                        "order_amount_fen": 12000,
                    }
                )
                headers = signed_headers(till.key_id, till.secret, "POST", "/v1/redemptions", body)
                headers["X-Request-Id"] = f"till-{i}"
                answer = await http.post("/v1/redemptions", content=body, headers=headers)
                assert answer.status_code == 201, answer.text
                assert answer.headers["x-request-id"] == f"till-{i}"
                request_ids.append(f"till-{i}")

            await asyncio.gather(*(redeem(i, w) for i, w in enumerate(wallets)))
            made = await http.get(f"/v1/campaigns/{campaign}", headers={"Authorization": f"Bearer {gov_token}"})
            assert made.status_code == 200
            assert len(made.headers["x-request-id"]) == 16  # none given: a new one
            bad = await http.get("/v1/campaigns", headers={"Authorization": "Bearer ve_not-a-token"})
            assert bad.status_code == 401
            await http.get("/no/such/path/123")

            # Every worker's figures in one scrape, parsed as Prometheus parses it.
            scraped = ""
            # Longer than a delivery lease (10 s timeout + 20 s margin, webhooks/dispatcher.py): a row leased by one
            # worker's dispatcher whose attempt did not finish is taken by the other only when the lease ends; a
            # 30 s window was exactly one lease and failed once in a full CI run with no delivery counted yet.
            end = time.monotonic() + 75
            while time.monotonic() < end:
                scraped = (await http.get("/metrics")).text
                delivered = 've_webhook_deliveries_total{outcome="delivered",type="redemption.settled"} 40.0'
                # The pending gauge is read from the database, where the delivery's row is settled a moment after
                # the worker counts it delivered: wait for both.
                settled = "\nve_webhook_deliveries_pending 0.0" in scraped
                if 'route="/v1/redemptions",status="201"} 40.0' in scraped and delivered in scraped and settled:
                    break
                await asyncio.sleep(0.3)
            families = {f.name: f for f in text_string_to_metric_families(scraped)}
            assert FAMILIES <= families.keys(), FAMILIES - families.keys()
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
            key = ("ve_http_requests_total", (("method", "POST"), ("route", "/v1/redemptions"), ("status", "201")))
            assert samples[key] == 40
            assert samples[("ve_redemption_outcomes_total", (("code", "settled"), ("kind", "redeem")))] == 40
            assert sum(v for (n, _), v in samples.items() if n == "ve_redemption_batch_size_sum") == 40
            # Every batch was written one way or the other, counted across both workers.
            batches = sum(v for (n, _), v in samples.items() if n == "ve_redemption_batch_size_count")
            ways = [v for (n, labels), v in samples.items() if n == "ve_write_ways_total"]
            assert batches >= 1 and sum(ways) == batches
            escrow = samples[("ve_campaign_escrow_balance_fen", (("campaign_id", campaign),))]
            assert escrow == 10_000_000_00 - 40 * 2000
            assert ("ve_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404"))) in samples
            assert not any("123" in str(labels) for (_, labels) in samples)
            assert samples[("ve_webhook_deliveries_pending", ())] == 0
            assert len(receiver.of_type("redemption.settled")) == 40 and receiver.bad_signatures == 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    lines = [orjson.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request"]
    by_id = {line["request_id"]: line for line in requests}
    for request_id in request_ids:
        line = by_id[request_id]
        assert (line["method"], line["route"], line["status"], line["role"]) == (
            "POST",
            "/v1/redemptions",
            201,
            "merchant",
        )
        assert line["duration_ms"] > 0 and line["time"]
    assert any(line["route"] == "/v1/campaigns/{campaign_id}" and line["role"] == "gov" for line in requests)
    assert any(line["route"] == "/v1/campaigns" and line["status"] == 401 for line in requests)
    text = log_path.read_text()
    for secret in (till.secret, gov_token, svc.admin_token, hook["secret"], *codes.values()):
        assert secret not in text
    for marker in ("x-ve-signature", "authorization", "bearer", "whsec_", "attributes"):
        assert marker not in text.lower()
