"""Risk signals judged in the redemption batch, over HTTP against a real PostgreSQL: each planted signal opens a
flag with its evidence and outcome in the redemption's own transaction; a refusal moves nothing and an honest retry
of the same request later succeeds; a contract's `risk { … }` section tightens the defaults; an honest lunch rush is
not flagged."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from prometheus_client import REGISTRY
from risk_world import DINING, SUBSIDY, flags, merchant

from service_support import outbox_kept
from voucher_engine.db.engine import plain_url
from voucher_engine.redemption import repository

ORDER = 12000


def _batch_ways() -> dict[str, float]:
    return {
        way: REGISTRY.get_sample_value("ve_write_ways_total", {"kind": "redemption_batch", "way": way}) or 0.0
        for way in ("unlocked", "locked")
    }


async def _flag_events(conn) -> list[dict]:
    rows = await conn.fetch(
        "SELECT e.data, e.issuer_id, e.campaign_id, c.issuer_id AS campaign_issuer FROM webhook_outbox e"
        " JOIN campaigns c ON c.id = e.campaign_id WHERE e.type = 'risk.flag_opened'"
    )
    return [{**row, "data": json.loads(row["data"])} for row in rows]


def _one_event_each(found: list[dict], events: list[dict], campaign_id: str) -> None:
    """Each flag has exactly one risk.flag_opened event, which says what the API says of the flag."""
    by_flag = {event["data"]["id"]: event for event in events}
    assert len(events) == len(by_flag) == len(found) and set(by_flag) == {f["id"] for f in found}
    for flag in found:
        event = by_flag[flag["id"]]
        assert event["data"] == {k: v for k, v in flag.items() if k != "decision"}
        assert event["campaign_id"] == campaign_id and event["issuer_id"] == event["campaign_issuer"]


async def test_an_odd_hour_redemption_settles_and_opens_a_flag_with_its_evidence(rw, service):
    await rw.set_clock("2025-01-10T04:10:00+08:00")  # restaurants (5812): odd from 03:00 to 06:00
    campaign_id, vouchers = await rw.launch_dining(1)
    redeemed = await rw.redeem("rest-a", vouchers[0])
    assert redeemed["status"] == "settled"
    [flag] = await flags(rw, merchant_id="rest-a")
    assert flag["signal"] == "odd_hour" and flag["outcome"] == "flag" and flag["status"] == "open"
    assert flag["redemption_ids"] == [redeemed["id"]] and flag["campaign_id"] == campaign_id
    evidence = flag["evidence"]
    assert evidence["local_time"] == "04:10" and evidence["odd_hours"] == ["03:00", "06:00"]
    assert evidence["mcc"] == "5812" and evidence["source"] == "platform default"
    assert evidence["rule"] == "odd_hour: flag" and evidence["order_amount_fen"] == ORDER
    assert (await merchant(rw, "rest-a"))["payout_hold"] is None
    assert await rw.balance("merchant:rest-a") == SUBSIDY  # a flag settles


async def test_forty_odd_hour_redemptions_at_once_open_a_flag_and_an_event_each(rw, service):
    # A batch's flags are written with it, in its one statement (the unlocked way): each redemption gets its own
    # flag and its own risk.flag_opened event, and the event says what the API says of the flag.
    await rw.set_clock("2025-01-10T04:20:00+08:00")
    campaign_id, vouchers = await rw.launch_dining(40)
    ways = _batch_ways()
    async with outbox_kept(service.settings.database_url) as conn:
        redeemed = await asyncio.gather(
            *(rw.redeem(("rest-a", "rest-b")[i % 2], voucher) for i, voucher in enumerate(vouchers))
        )
        events = await _flag_events(conn)
    after = _batch_ways()
    assert after["locked"] == ways["locked"] and after["unlocked"] > ways["unlocked"]
    found = await flags(rw, signal="odd_hour")
    assert sorted(f["redemption_ids"][0] for f in found) == sorted(r["id"] for r in redeemed)
    assert {f["merchant_id"] for f in found} == {"rest-a", "rest-b"}
    assert all(f["evidence"]["local_time"] == "04:20" and f["campaign_id"] == campaign_id for f in found)
    _one_event_each(found, events, campaign_id)
    assert await rw.balance("merchant:rest-a") + await rw.balance("merchant:rest-b") == 40 * SUBSIDY


async def test_a_batch_whose_write_is_refused_leaves_no_flag_and_the_locked_way_opens_each_once(
    rw, service, monkeypatch
):
    # Between the unlocked read and the write, every voucher of the campaign changes (as a racing batch would
    # change it): the write lands nothing, flags included, and the batch is decided again under locks.
    await rw.set_clock("2025-01-10T04:30:00+08:00")
    campaign_id, vouchers = await rw.launch_dining(6)
    peek = repository.load_batch
    changed: list[bool] = []

    async def peek_then_change(conn, jobs, real_now, *, locked, risk=True):
        rows = await peek(conn, jobs, real_now, locked=locked, risk=risk)
        if not locked and not changed:
            changed.append(True)
            other = await asyncpg.connect(plain_url(service.settings.database_url))
            try:
                await other.execute("UPDATE vouchers SET version = version + 1 WHERE campaign_id = $1", campaign_id)
            finally:
                await other.close()
        return rows

    monkeypatch.setattr(repository, "load_batch", peek_then_change)
    ways = _batch_ways()
    async with outbox_kept(service.settings.database_url) as conn:
        redeemed = await asyncio.gather(*(rw.redeem("rest-c", voucher) for voucher in vouchers))
        events = await _flag_events(conn)
    assert changed and _batch_ways()["locked"] > ways["locked"]
    found = await flags(rw, merchant_id="rest-c")
    assert sorted(f["redemption_ids"][0] for f in found) == sorted(r["id"] for r in redeemed)
    _one_event_each(found, events, campaign_id)


async def test_odd_hour_holds_are_opened_under_locks_and_hold_the_merchant(rw, service):
    await rw.set_clock("2025-01-10T04:40:00+08:00")
    source = DINING.replace("\nvoucher ", "\nrisk {\n    odd_hour from 00:00 to 06:00: hold\n}\nvoucher ", 1)
    campaign_id, vouchers = await rw.launch_dining(5, source=source)
    ways = _batch_ways()
    async with outbox_kept(service.settings.database_url) as conn:
        redeemed = await asyncio.gather(*(rw.redeem("rest-h", voucher) for voucher in vouchers))
        events = await _flag_events(conn)
    assert _batch_ways()["locked"] > ways["locked"]
    found = await flags(rw, merchant_id="rest-h")
    assert sorted(f["redemption_ids"][0] for f in found) == sorted(r["id"] for r in redeemed)
    assert {f["outcome"] for f in found} == {"hold"} and sum(f["hold_caused"] for f in found) == 1
    _one_event_each(found, events, campaign_id)
    assert (await merchant(rw, "rest-h"))["payout_hold"] is not None


async def test_refund_then_redeem_again_is_flagged_and_the_third_time_refused_moving_nothing(rw, service):
    await rw.set_clock("2025-01-10T12:00:00+08:00")
    _, vouchers = await rw.launch_dining(1)
    wallet, code = vouchers[0]
    till = rw.tills["rest-b"]
    ids = []
    for _ in range(3):
        redeemed = await rw.redeem("rest-b", vouchers[0])
        ids.append(redeemed["id"])
        refunded = await till.refund(redeemed["id"], ORDER)
        assert refunded.status_code == 201, refunded.text
    found = await flags(rw, merchant_id="rest-b", signal="refund_reredeem")
    # The first was no re-redeem; the second, after one refund, is an honest till's corrected order (after 2).
    assert [f["redemption_ids"][0] for f in found] == ids[2:]
    assert [f["evidence"]["refunds_at_merchant"] for f in found] == [2]

    before = await rw.balance("merchant:rest-b")
    refused = await till.redeem(code, ORDER, wallet=wallet, pos_txn_id="retry-me")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "RISK_REFUSED"
    [explain] = problem["explain"]
    assert explain["signal"] == "refund_reredeem" and explain["actual"] == 3 and explain["expected"] == "< 3"
    assert explain["rule"] == "refund_reredeem after 3: refuse" and explain["line"] is None
    assert await rw.balance("merchant:rest-b") == before
    assert [v["status"] for v in await rw.vouchers(wallet)] == ["issued"]
    # The same voucher at another till is not a re-redeem there: it settles.
    assert (await rw.tills["rest-c"].redeem(code, ORDER, wallet=wallet)).status_code == 201


async def test_a_contract_tightens_the_rules_and_a_refused_request_can_be_retried_later(rw, service):
    source = DINING.replace(
        "payment {",
        "risk {\n    odd_hour from 22:00 to 11:00: refuse\n    threshold_hugging within 2%: hold\n}\n\npayment {",
    )
    await rw.set_clock("2025-01-10T10:59:00+08:00")
    campaign_id, vouchers = await rw.launch_dining(3, source=source)
    wallet, code = vouchers[0]
    till = rw.tills["rest-c"]
    refused = await till.redeem(code, ORDER, wallet=wallet, pos_txn_id="pos-1")
    assert refused.status_code == 422 and refused.json()["code"] == "RISK_REFUSED", refused.text
    [explain] = refused.json()["explain"]
    assert explain["rule"] == "odd_hour from 22:00 to 11:00: refuse" and explain["source"] == "contract"
    assert explain["line"] == source.splitlines().index("    odd_hour from 22:00 to 11:00: refuse") + 1
    assert explain["column"] == 5 and explain["actual"] == "10:59"
    in_force = await rw.service.client.get(f"/v1/risk/rules?campaign_id={campaign_id}", headers=rw.auditor)
    written = [r for r in in_force.json()["rules"] if r["source"] == "contract"]
    assert [(r["signal"], r["outcome"], r["limits"]) for r in written] == [
        ("odd_hour", "refuse", {"from": 22 * 3600, "to": 11 * 3600}),
        ("threshold_hugging", "hold", {"within": 200}),
    ]
    quoted = await till.quote(code, ORDER, wallet=wallet)
    assert quoted.json()["eligible"] is False and quoted.json()["code"] == "RISK_REFUSED"

    # The refusal was not kept under pos-1: the same request, after 11:00, settles (201, not a replay).
    await rw.set_clock("2025-01-10T11:01:00+08:00")
    retried = await till.redeem(code, ORDER, wallet=wallet, pos_txn_id="pos-1")
    assert retried.status_code == 201, retried.text
    assert await flags(rw, merchant_id="rest-c") == []

    # ¥101.50 hugs the ¥100 minimum within 2 %: it settles, and the merchant goes on payout hold.
    hugging = await rw.redeem("rest-c", vouchers[1], amount_fen=10150)
    [flag] = await flags(rw, merchant_id="rest-c")
    assert flag["signal"] == "threshold_hugging" and flag["outcome"] == "hold" and flag["hold_caused"]
    assert flag["redemption_ids"] == [hugging["id"]]
    assert flag["evidence"]["minimum_spend_fen"] == 10000 and flag["evidence"]["above_minimum_bp"] == 150
    assert (await merchant(rw, "rest-c"))["payout_hold"]["reason"].startswith(f"risk flag {flag['id']}")
    await rw.redeem("rest-c", vouchers[2], amount_fen=10300)  # 3 % above: no flag
    assert len(await flags(rw, merchant_id="rest-c")) == 1


async def test_an_honest_lunch_rush_is_not_flagged(rw, service):
    await rw.set_clock("2025-01-10T12:05:00+08:00")
    _, vouchers = await rw.launch_dining(60)
    # Sixty tables in a few minutes, some at exactly the ¥100 minimum (honest: set menus are priced at it), the
    # rest above it; concurrent, so they share batches.
    amounts = [10000 if i % 5 == 0 else 10000 + 137 * i for i in range(60)]
    answers = await asyncio.gather(
        *(rw.tills["rest-h"].redeem(code, amount, wallet=wallet) for (wallet, code), amount in zip(vouchers, amounts))
    )
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    assert await flags(rw, merchant_id="rest-h") == []
    assert (await merchant(rw, "rest-h"))["payout_hold"] is None
