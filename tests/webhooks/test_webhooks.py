"""Webhooks against a real receiver on a local port: every event once per cause, signed; retries with backoff;
URL checks; roles; leases between racing dispatchers; give-ups visible."""

from __future__ import annotations

import asyncio

import pytest
from webhook_helpers import RETRY_BASE_S, holder, wait_for, world_module

from voucher_engine.webhooks import background
from voucher_engine.webhooks.receiver import Receiver

ALL_NOW = ["campaign.funded", "campaign.activated", "campaign.closed", "redemption.settled", "refund.created"]
SHANGHAI = "310000"


async def subscribe(svc, headers, url, events, receiver=None):
    answer = await svc.client.post("/v1/webhooks", json={"url": url, "events": events}, headers=headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["secret"].startswith("whsec_") and body["events"] == events
    if receiver is not None:
        receiver.secrets.append(body["secret"])
    return body


async def test_every_event_type_arrives_once_per_cause_with_a_signature_that_verifies(hooked_world, receiver):
    world, svc = hooked_world, hooked_world.service
    url = f"http://127.0.0.1:{receiver.port}/hook"
    admin_hook = await subscribe(svc, svc.admin, url, ALL_NOW, receiver)
    # A gov's subscription sees its own campaigns only: Shanghai's sees these, Suzhou's nothing.
    own = Receiver()
    other = Receiver()
    own_url, other_url = await own.start(), await other.start()
    try:
        await subscribe(svc, svc.auth(world.gov[SHANGHAI]), own_url, ALL_NOW, own)
        await subscribe(svc, svc.auth(world.gov["320500"]), other_url, ALL_NOW, other)

        await world.set_clock("2025-01-15T12:00:00+08:00")
        wallets = ["6300000000000001", "6300000000000002"]
        campaign = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
        till = world.tills["xuhui-noodles"]
        redemptions = []
        for wallet in wallets:
            answer = await till.redeem(await world.code(campaign, wallet), 12000, wallet=wallet)
            assert answer.status_code == 201, answer.text
            redemptions.append(answer.json())
        refund = await till.refund(redemptions[0]["id"], 5000)
        assert refund.status_code == 201, refund.text
        closed = await svc.client.post(f"/v1/campaigns/{campaign}/close", headers=svc.auth(world.gov[SHANGHAI]))
        assert closed.status_code == 200, closed.text

        expected = {
            "campaign.funded": 1,
            "campaign.activated": 1,
            "redemption.settled": 2,
            "refund.created": 1,
            "campaign.closed": 1,
        }
        for r in (receiver, own):
            await wait_for(lambda r=r: len(r.unique) >= 6, what="six events")
        await asyncio.sleep(1.0)  # anything extra (a duplicate, a stray event) would arrive by now
        for r in (receiver, own):
            counts = {t: len(r.of_type(t)) for t in expected}
            assert counts == expected
            assert r.bad_signatures == 0 and r.duplicates == 0
            assert all(item.signature_ok for item in r.received)
            assert len(r.received) == 6
        assert other.received == []

        settled = {item.body["data"]["id"]: item.body for item in receiver.of_type("redemption.settled")}
        assert set(settled) == {r["id"] for r in redemptions}
        first = settled[redemptions[0]["id"]]
        assert first["data"]["subsidy_fen"] == 2000 and first["data"]["campaign_id"] == campaign
        assert first["data"]["ledger_tx_id"] == redemptions[0]["ledger_tx_id"]
        assert first["id"].startswith("evt_") and first["created_at"]
        item = receiver.of_type("redemption.settled")[0]
        assert item.headers["x-ve-event-id"] == item.body["id"]
        refund_event = receiver.of_type("refund.created")[0].body["data"]
        assert refund_event["amount_fen"] == 5000
        funded = receiver.of_type("campaign.funded")[0].body["data"]
        assert funded["id"] == campaign and funded["status"] == "funded"
        assert receiver.of_type("campaign.closed")[0].body["data"]["status"] == "closed"

        log = await svc.client.get(f"/v1/webhooks/{admin_hook['id']}/deliveries", headers=svc.admin)
        assert log.status_code == 200
        items = log.json()["items"]
        assert len(items) == 6 and all(i["attempt"] == 1 and i["status_code"] == 200 for i in items)
        assert all(i["outcome"] == "delivered" for i in items)
    finally:
        await own.stop()
        await other.stop()


async def test_a_receiver_answering_500_three_times_gets_the_event_on_the_fourth_attempt(hooked_world, receiver):
    world, svc = hooked_world, hooked_world.service
    url = f"http://127.0.0.1:{receiver.port}/hook"
    hook = await subscribe(svc, svc.admin, url, ["campaign.funded"], receiver)
    receiver.statuses = [500, 500, 500]
    gov = svc.auth(world.gov[SHANGHAI])
    created = await svc.client.post(
        "/v1/campaigns",
        json={"source": (world_module.CONTRACTS / "shanghai-dining-2025.contract").read_text()},
        headers=gov,
    )
    campaign = created.json()["id"]
    assert (await svc.client.post(f"/v1/campaigns/{campaign}/fund", headers=gov)).status_code == 200

    await wait_for(lambda: len(receiver.received) >= 4, timeout_s=30, what="the fourth attempt")
    await asyncio.sleep(RETRY_BASE_S * 10)  # no fifth
    assert [r.event_id for r in receiver.received] == [receiver.received[0].event_id] * 4
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:])]
    # First retry base after the failure, then twice as long each time (the dispatcher polls every 0.25 s).
    for gap, wanted in zip(gaps, (RETRY_BASE_S, 2 * RETRY_BASE_S, 4 * RETRY_BASE_S)):
        assert wanted * 0.9 <= gap <= wanted + 0.8, gaps
    log = (await svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.admin)).json()["items"]
    log.reverse()  # oldest first
    assert [(i["attempt"], i["status_code"], i["outcome"]) for i in log] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 500, "retrying"),
        (4, 200, "delivered"),
    ]
    assert all(item.signature_ok for item in receiver.received)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "https://user:pw@example.com/x",
        "not a url",
    ],
)
async def test_urls_are_checked_when_a_subscription_is_made(service, url):
    answer = await service.client.post(
        "/v1/webhooks", json={"url": url, "events": ["refund.created"]}, headers=service.admin
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "VALIDATION_ERROR"


async def test_who_may_subscribe_to_what(hooked_world):
    world, svc = hooked_world, hooked_world.service
    url = "http://127.0.0.1:9/hook"
    auditor = svc.auth(await svc.token("auditor"))
    refused = await svc.client.post("/v1/webhooks", json={"url": url, "events": ["refund.created"]}, headers=auditor)
    assert refused.status_code == 403
    gov = svc.auth(world.gov[SHANGHAI])
    payouts = await svc.client.post("/v1/webhooks", json={"url": url, "events": ["payout.sent"]}, headers=gov)
    assert payouts.status_code == 403
    unknown = await svc.client.post("/v1/webhooks", json={"url": url, "events": ["voucher.eaten"]}, headers=gov)
    assert unknown.status_code == 422
    mine = await subscribe(svc, gov, url, ["refund.created"])
    theirs = svc.auth(world.gov["320500"])
    assert (await svc.client.get(f"/v1/webhooks/{mine['id']}/deliveries", headers=theirs)).status_code == 404
    assert (await svc.client.delete(f"/v1/webhooks/{mine['id']}", headers=theirs)).status_code == 404
    listed = (await svc.client.get("/v1/webhooks", headers=gov)).json()["items"]
    assert [h["id"] for h in listed] == [mine["id"]] and "secret" not in listed[0]
    assert (await svc.client.get("/v1/webhooks", headers=theirs)).json()["items"] == []
    assert (await svc.client.delete(f"/v1/webhooks/{mine['id']}", headers=gov)).status_code == 204
    assert (await svc.client.get("/v1/webhooks", headers=svc.admin)).json()["items"] == []
    unauthenticated = await svc.client.post("/v1/webhooks", json={"url": url, "events": ["refund.created"]})
    assert unauthenticated.status_code == 401


async def test_racing_dispatchers_never_send_one_attempt_twice(hooked_world, receiver):
    """The service's own dispatcher and three more over their own connections, on 60 events to a slow receiver."""
    world, svc = hooked_world, hooked_world.service
    receiver.delay_s = 0.05
    hook = await subscribe(svc, svc.admin, f"http://127.0.0.1:{receiver.port}/hook", ["redemption.settled"], receiver)
    extra = [background.make(svc.state.engine, svc.settings, svc.state.server_secret) for _ in range(3)]
    tasks = [asyncio.create_task(d.run_forever()) for d in extra]
    try:
        await world.set_clock("2025-01-15T12:00:00+08:00")
        wallets = [f"64{i:014d}" for i in range(60)]
        campaign = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
        till = world.tills["xuhui-noodles"]
        codes = {w: await world.code(campaign, w) for w in wallets}
        answers = await asyncio.gather(*(till.redeem(codes[w], 12000, wallet=w) for w in wallets))
        assert all(a.status_code == 201 for a in answers)
        await wait_for(lambda: len(receiver.unique) >= 60, timeout_s=30, what="60 events")
        await asyncio.sleep(1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(receiver.received) == 60 and receiver.duplicates == 0
    log = (await svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=1000", headers=svc.admin)).json()
    assert len(log["items"]) == 60 and {i["attempt"] for i in log["items"]} == {1}


async def test_a_delivery_given_up_shows_in_the_log_and_the_metrics(hooked_world, receiver):
    world, svc = hooked_world, hooked_world.service
    receiver.statuses = [503] * 100
    hook = await subscribe(svc, svc.admin, f"http://127.0.0.1:{receiver.port}/hook", ["campaign.funded"], receiver)
    # A dispatcher whose patience ends at once; the service's own one is stopped so that this one gets the event.
    own = svc.state.extras.pop("webhooks.dispatcher")
    own.cancel()
    await asyncio.gather(own, return_exceptions=True)
    impatient = background.make(svc.state.engine, svc.settings, svc.state.server_secret)
    impatient.config.give_up_after_s = 0.0
    gov = svc.auth(world.gov[SHANGHAI])
    created = await svc.client.post(
        "/v1/campaigns",
        json={"source": (world_module.CONTRACTS / "shanghai-dining-2025.contract").read_text()},
        headers=gov,
    )
    assert (await svc.client.post(f"/v1/campaigns/{created.json()['id']}/fund", headers=gov)).status_code == 200
    await impatient.drain(deadline_s=10)
    await impatient.close()
    log = (await svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.admin)).json()["items"]
    assert [(i["attempt"], i["status_code"], i["outcome"]) for i in log] == [(1, 503, "failed")]
    scraped = (await svc.client.get("/metrics")).text
    assert "ve_webhook_deliveries_failed 1.0" in scraped
    listed = (await svc.client.get("/v1/webhooks", headers=svc.admin)).json()["items"]
    assert listed[0]["pending"] == 0


async def test_clawbacks_and_payouts_arrive_once_each_from_their_ledger_transactions(hooked_world, receiver):
    world, svc = hooked_world, hooked_world.service
    url = f"http://127.0.0.1:{receiver.port}/hook"
    settlement = ["clawback.created", "payout.sent", "payout.paid", "payout.failed"]
    await subscribe(svc, svc.admin, url, settlement, receiver)
    gov_receiver = Receiver()
    gov_url = await gov_receiver.start()
    try:
        await subscribe(svc, svc.auth(world.gov[SHANGHAI]), gov_url, ["clawback.created"], gov_receiver)
        await svc.merchant("xuhui-dumplings", mcc="5812", region_code="310104")
        key = await svc.pos_key("xuhui-dumplings")
        dumplings = type(world.tills["xuhui-noodles"])(svc, "xuhui-dumplings", key["key_id"], key["secret"])
        await world.set_clock("2025-01-15T12:00:00+08:00")
        wallets = [f"68{i:014d}" for i in range(3)]
        campaign = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
        tills = [world.tills["xuhui-noodles"], world.tills["xuhui-noodles"], dumplings]
        paid = []
        for wallet, till in zip(wallets, tills):
            answer = await till.redeem(await world.code(campaign, wallet), 12000, wallet=wallet)
            assert answer.status_code == 201, answer.text
            paid.append(answer.json())
        clawed = await svc.client.post(
            f"/v1/redemptions/{paid[1]['id']}/clawback", json={"reason": "test"}, headers=svc.admin
        )
        assert clawed.status_code in (200, 201), clawed.text
        await world.set_clock("2025-01-15T14:00:00+08:00")
        run = await svc.client.post("/v1/payout-runs", json={"cutoff": "2025-01-15T13:00:00+08:00"}, headers=svc.admin)
        assert run.status_code == 201, run.text
        items = {item["merchant_id"]: item for item in run.json()["items"]}
        assert set(items) == {"xuhui-noodles", "xuhui-dumplings"}
        confirmations = [
            {"item_id": items["xuhui-noodles"]["id"], "status": "paid", "bank_reference": "B-1"},
            {"item_id": items["xuhui-dumplings"]["id"], "status": "failed", "bank_reference": "B-2"},
        ]
        confirmed = await svc.client.post(
            f"/v1/payout-runs/{run.json()['id']}/confirmations", json={"items": confirmations}, headers=svc.admin
        )
        assert confirmed.status_code in (200, 201), confirmed.text

        expected = {"clawback.created": 1, "payout.sent": 2, "payout.paid": 1, "payout.failed": 1}
        await wait_for(lambda: len(receiver.unique) >= 5 and len(gov_receiver.unique) >= 1, what="five events")
        await asyncio.sleep(1.0)
        assert {t: len(receiver.of_type(t)) for t in expected} == expected
        assert receiver.duplicates == 0 and receiver.bad_signatures == 0 and len(receiver.received) == 5
        clawback = receiver.of_type("clawback.created")[0].body["data"]
        assert clawback["redemption_id"] == paid[1]["id"] and clawback["amount_fen"] == 2000
        sent = {e.body["data"]["merchant_id"]: e.body["data"] for e in receiver.of_type("payout.sent")}
        assert sent["xuhui-noodles"]["amount_fen"] == 2000 and sent["xuhui-dumplings"]["amount_fen"] == 2000
        assert receiver.of_type("payout.failed")[0].body["data"]["merchant_id"] == "xuhui-dumplings"
        assert [e.type for e in gov_receiver.received] == ["clawback.created"] and gov_receiver.bad_signatures == 0
    finally:
        await gov_receiver.stop()
