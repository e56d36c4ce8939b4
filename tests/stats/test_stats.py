"""`GET /v1/campaigns/{id}/stats`: figures from the rollups equal what the tills were answered and the ledger says."""

from __future__ import annotations

from collections import Counter, defaultdict

from redemption_world import CONTRACTS, holder

from voucher_engine.ledger import sequencer
from voucher_engine.stats import service as stats

DAYS = ("2025-01-05T11:30:00+08:00", "2025-01-05T19:10:00+08:00", "2025-01-06T12:00:00+08:00")
SHOPS = {"xuhui-noodles": ("310104", "5812"), "jingan-bar": ("310106", "5813"), "pudong-fastfood": ("310115", "5814")}


async def _caught_up(service) -> None:
    await sequencer.drain(service.state.engine)
    await stats.catch_up(service.state.engine)


async def _launch_and_spend(world) -> tuple[str, list[dict], dict]:
    """Six redemptions on two China days at three merchants, one partial refund on the second day."""
    await world.set_clock("2025-01-04T09:00:00+08:00")
    wallets = [f"62000000000001{i:02d}" for i in range(6)]
    campaign_id = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
    settled, shops = [], list(SHOPS)
    for index, wallet in enumerate(wallets):
        await world.set_clock(DAYS[min(index // 2, 2)])
        code = await world.code(campaign_id, wallet)
        answer = await world.tills[shops[index % 3]].redeem(code, 12000 + 1000 * index, wallet=wallet)
        assert answer.status_code == 201, answer.text
        settled.append(answer.json())
    refunded = await world.tills[settled[5]["merchant_id"]].refund(settled[5]["id"], 8500)
    assert refunded.status_code == 201, refunded.text
    return campaign_id, settled, refunded.json()


async def test_stats_add_up_to_the_redemptions_and_the_ledger(service, world):
    campaign_id, settled, refund = await _launch_and_spend(world)
    await _caught_up(service)
    gov = service.auth(world.gov["310000"])
    answer = await service.client.get(f"/v1/campaigns/{campaign_id}/stats?bucket=day", headers=gov)
    assert answer.status_code == 200, answer.text
    body = answer.json()

    days = {b["start"]: b for b in body["buckets"]}
    assert list(days) == ["2025-01-05T00:00:00+08:00", "2025-01-06T00:00:00+08:00"]
    assert days["2025-01-05T00:00:00+08:00"]["redemptions"] == 4
    assert days["2025-01-05T00:00:00+08:00"]["redeemed_fen"] == 4 * 2000
    assert days["2025-01-05T00:00:00+08:00"]["order_amount_fen"] == sum(r["order_amount_fen"] for r in settled[:4])
    second = days["2025-01-06T00:00:00+08:00"]
    assert (second["redemptions"], second["refunded_fen"]) == (2, refund["subsidy_clawback_fen"])
    assert second["order_refunded_fen"] == 8500

    by_region = {r["region_code"]: r for r in body["by_region"]}
    expected = Counter(SHOPS[r["merchant_id"]][0] for r in settled)
    assert {code: r["redemptions"] for code, r in by_region.items()} == dict(expected)
    per_mcc = defaultdict(int)
    for r in settled:
        per_mcc[SHOPS[r["merchant_id"]][1]] += r["subsidy_fen"]
    assert {r["mcc"]: r["redeemed_fen"] for r in body["by_mcc"]} == dict(per_mcc)

    campaign = (await service.client.get(f"/v1/campaigns/{campaign_id}", headers=gov)).json()
    assert sum(b["redeemed_fen"] for b in body["buckets"]) == campaign["totals"]["redeemed_fen"]
    assert sum(b["refunded_fen"] for b in body["buckets"]) == campaign["totals"]["refunded_fen"]
    order_fen = sum(r["order_amount_fen"] for r in settled) - 8500
    subsidy_fen = sum(r["subsidy_fen"] for r in settled) - refund["subsidy_clawback_fen"]
    assert body["leverage"] == {
        "order_amount_fen": order_fen,
        "subsidy_fen": subsidy_fen,
        "ratio": stats.ratio(order_fen, subsidy_fen),
    }
    assert body["as_of"]["ledger_seq"] == body["as_of"]["ledger_head_seq"]

    hours = (await service.client.get(f"/v1/campaigns/{campaign_id}/stats?bucket=hour", headers=gov)).json()
    assert [b["start"] for b in hours["buckets"]] == [
        "2025-01-05T11:00:00+08:00",
        "2025-01-05T19:00:00+08:00",
        "2025-01-06T12:00:00+08:00",
    ]
    assert sum(b["redeemed_fen"] for b in hours["buckets"]) == campaign["totals"]["redeemed_fen"]


async def test_rounds_count_each_transaction_once(service, world):
    campaign_id, _, _ = await _launch_and_spend(world)
    await _caught_up(service)
    gov = service.auth(world.gov["310000"])
    first = (await service.client.get(f"/v1/campaigns/{campaign_id}/stats", headers=gov)).json()
    assert await stats.catch_up(service.state.engine) == 0  # nothing new: the cursor is durable
    async with service.state.engine.begin() as conn:  # a round in small steps gives the same sums
        await conn.exec_driver_sql("UPDATE stats_cursor SET last_seq = 0")
        await conn.exec_driver_sql("TRUNCATE stats_hourly, stats_by_region, stats_by_mcc")
    await stats.catch_up(service.state.engine, limit=3)
    again = (await service.client.get(f"/v1/campaigns/{campaign_id}/stats", headers=gov)).json()
    first.pop("as_of"), again.pop("as_of")
    assert again == first


async def test_who_may_read_stats(service, world):
    campaign_id, _, _ = await _launch_and_spend(world)
    url = f"/v1/campaigns/{campaign_id}/stats"
    auditor = await service.token("auditor")
    assert (await service.client.get(url, headers=service.auth(auditor))).status_code == 200
    assert (await service.client.get(url, headers=service.admin)).json()["code"] == "FORBIDDEN"
    other = await service.client.get(url, headers=service.auth(world.gov["320500"]))
    assert (other.status_code, other.json()["code"]) == (404, "NOT_FOUND")
    assert (await service.client.get(url)).status_code == 401
    bad = await service.client.get(url + "?bucket=week", headers=service.auth(auditor))
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")


async def test_whoami_and_a_sample_payment_explained(service, world):
    gov = service.auth(world.gov["310000"])
    me = (await service.client.get("/v1/whoami", headers=gov)).json()
    assert (me["role"], me["issuer_region"]) == ("gov", "310000")
    source = (CONTRACTS / "shanghai-dining-2025.contract").read_text()
    payment = {"merchant": {"mcc": "5411", "region_code": "310104"}, "at": "2025-01-15T12:00:00+08:00"}
    answer = await service.client.post(
        "/v1/contracts/explain", json={"source": source, "payment": {**payment, "order_amount_fen": 30000}}, headers=gov
    )
    body = answer.json()
    assert (answer.status_code, body["code"], body["eligible"], body["subsidy_fen"]) == (
        200,
        "RULE_NOT_SATISFIED",
        False,
        0,
    )
    assert [f["line"] for f in body["explain"]] == [next(i for i, x in enumerate(source.splitlines(), 1) if "mcc" in x)]
    ok = await service.client.post(
        "/v1/contracts/explain",
        json={
            "source": source,
            "payment": {**payment, "merchant": {"mcc": "5812", "region_code": "310104"}, "order_amount_fen": 12000},
        },
        headers=gov,
    )
    assert (ok.json()["eligible"], ok.json()["subsidy_fen"], ok.json()["payable_fen"]) == (True, 2000, 10000)
    bad = await service.client.post(
        "/v1/contracts/explain", json={"source": source, "payment": {"at": "soon"}}, headers=gov
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")
    broken = await service.client.post(
        "/v1/contracts/explain", json={"source": source + "\nnonsense", "payment": payment}, headers=gov
    )
    assert (broken.status_code, broken.json()["code"]) == (422, "CONTRACT_INVALID")


async def test_a_kept_answer_follows_the_rollups_and_a_revoked_token_is_refused_at_once(service, world):
    campaign_id, settled, _ = await _launch_and_spend(world)
    await _caught_up(service)
    auditor = await service.token("auditor")
    url = f"/v1/campaigns/{campaign_id}/stats?bucket=hour"
    first = (await service.client.get(url, headers=service.auth(auditor))).json()
    assert sum(b["redemptions"] for b in first["buckets"]) == len(settled)
    # A seventh redemption: once the rollups have it, the answer this worker kept is not given again.
    await world.set_clock("2025-01-07T12:30:00+08:00")
    wallet = "6200000000000199"
    issued = await service.client.post(
        f"/v1/campaigns/{campaign_id}/issuances",
        json={"holders": [holder(wallet)]},
        headers=service.auth(world.gov["310000"]),
    )
    assert issued.status_code == 201, issued.text
    code = await world.code(campaign_id, wallet)
    assert (await world.tills["xuhui-noodles"].redeem(code, 15000, wallet=wallet)).status_code == 201
    await _caught_up(service)
    again = (await service.client.get(url, headers=service.auth(auditor))).json()
    assert sum(b["redemptions"] for b in again["buckets"]) == len(settled) + 1
    assert again["buckets"][-1]["start"] == "2025-01-07T12:00:00+08:00"
    assert again["as_of"]["ledger_seq"] > first["as_of"]["ledger_seq"]
    # The token is checked in the answer's own statement: a revoked one is refused, kept answer or not.
    whoami = (await service.client.get("/v1/whoami", headers=service.auth(auditor))).json()
    assert (await service.client.delete(f"/v1/tokens/{whoami['token_id']}", headers=service.admin)).status_code == 204
    refused = await service.client.get(url, headers=service.auth(auditor))
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHENTICATED")


async def test_bucket_starts_are_written_as_python_writes_them_in_any_time_zone(service):
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from voucher_engine.stats import repository

    moments = [datetime(2025, 3, 9, 5, 0, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(0, 24 * 245, 7)]
    sql = (
        f"SELECT {repository._iso('local', 'utc_offset')} FROM (SELECT "
        f"{repository._local('t')} FROM unnest($1::timestamptz[]) AS t, (SELECT $2::text AS timezone) c) x"
    )
    async with service.state.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        # Across New York's spring-forward and fall-back, a half-hour offset, China time and UTC.
        for zone in ("America/New_York", "Asia/Kolkata", "Asia/Shanghai", "UTC"):
            rows = await raw.fetch(sql, moments, zone)
            assert [r[0] for r in rows] == [m.astimezone(ZoneInfo(zone)).isoformat() for m in moments], zone


async def test_a_malformed_campaign_id_is_a_problem_not_a_500(service, world):
    auditor = service.auth(await service.token("auditor"))
    for campaign_id in ("%00", "a%00b", "%C3%28", "x" * 64):
        answer = await service.client.get(f"/v1/campaigns/{campaign_id}/stats", headers=auditor)
        assert answer.status_code in (404, 422), (campaign_id, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
