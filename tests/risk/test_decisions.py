"""Decisions on risk flags over HTTP against a real PostgreSQL: confirm claws back every named redemption (the
ledger, the reconciliation and the books balance) and keeps the hold; clear releases only a hold the flag caused;
a flag is decided once, even by reviewers racing on real connections; who may read and decide."""

from __future__ import annotations

import asyncio

from risk_world import SUBSIDY, assert_verified, decide, flags, merchant

from voucher_engine.risk import service as risk


async def _flag(service, merchant_id: str, campaign_id: str | None, redemption_ids: list[str], key: str, **kw) -> str:
    async with service.state.engine.begin() as conn:
        opened = await risk.open_flag(
            conn,
            signal=kw.get("signal", "pair_recurrence"),
            outcome=kw.get("outcome", "hold"),
            merchant_id=merchant_id,
            campaign_id=campaign_id,
            redemption_ids=redemption_ids,
            evidence={"vouchers": len(redemption_ids)},
            dedupe_key=key,
        )
    return opened.flag.id


async def test_confirm_claws_back_every_redemption_and_keeps_the_hold(rw, service):
    await rw.set_clock("2025-01-10T12:00:00+08:00")
    campaign_id, vouchers = await rw.launch_dining(3)
    redeemed = [await rw.redeem("rest-a", v) for v in vouchers]
    named = [r["id"] for r in redeemed[:2]]
    flag_id = await _flag(service, "rest-a", campaign_id, named, "pair:rest-a:1")
    assert (await merchant(rw, "rest-a"))["payout_hold"] is not None

    city, district = service.auth(rw.gov["310000"]), service.auth(rw.gov["310104"])
    # Readers: the admin, an auditor, the campaign's gov; another issuer's gov does not see it.
    assert [f["id"] for f in await flags(rw, rw.auditor)] == [flag_id]
    assert [f["id"] for f in await flags(rw, city, campaign_id=campaign_id, status="open")] == [flag_id]
    assert await flags(rw, district) == []
    assert (await decide(rw, flag_id, "confirm", district, expect=404))["code"] == "NOT_FOUND"
    assert (await decide(rw, flag_id, "confirm", rw.auditor, expect=403))["code"] == "FORBIDDEN"

    decided = await decide(rw, flag_id, "confirm", city, note="receipts show no sale")
    assert decided["status"] == "confirmed"
    assert decided["decision"]["role"] == "gov" and decided["decision"]["note"] == "receipts show no sale"
    assert len(decided["decision"]["clawback_ids"]) == 2 and decided["decision"]["decided_at"]
    for redemption_id in named:
        seen = await rw.tills["rest-a"].send("GET", f"/v1/redemptions/{redemption_id}")
        assert seen.json()["status"] == "clawed_back"
    assert await rw.balance("merchant:rest-a") == SUBSIDY  # the third, unnamed redemption stands
    assert (await merchant(rw, "rest-a"))["payout_hold"] is not None
    again = await decide(rw, flag_id, "clear", expect=409)
    assert again["code"] == "INVALID_STATE"

    books = await rw.service.client.get(f"/v1/ledger/campaigns/{campaign_id}/reconciliation", headers=rw.auditor)
    assert books.json()["balanced"] and books.json()["clawed_back_fen"] == 2 * SUBSIDY
    await assert_verified(service)


async def test_clear_releases_only_a_hold_the_flag_caused_and_no_other_still_needs(rw, service):
    first = await _flag(service, "rest-b", None, [], "velocity:rest-b:1", signal="merchant_velocity")
    second = await _flag(service, "rest-b", None, [], "velocity:rest-b:2", signal="merchant_velocity")
    cleared = await decide(rw, first, "clear")
    assert cleared["status"] == "cleared" and not cleared["decision"]["released_hold"]
    assert (await merchant(rw, "rest-b"))["payout_hold"] is not None  # the second still needs it
    cleared = await decide(rw, second, "clear")
    assert cleared["decision"]["released_hold"]
    assert (await merchant(rw, "rest-b"))["payout_hold"] is None

    # An operator's hold by hand is the operator's to release.
    held = await rw.service.client.post(
        "/v1/merchants/rest-c/hold", json={"reason": "documents under review"}, headers=rw.service.admin
    )
    assert held.status_code == 200, held.text
    by_hand = await _flag(service, "rest-c", None, [], "velocity:rest-c:1", signal="merchant_velocity")
    assert not (await decide(rw, by_hand, "clear"))["decision"]["released_hold"]
    assert (await merchant(rw, "rest-c"))["payout_hold"]["reason"].startswith("risk flag")

    # A flag whose outcome held nothing releases nothing.
    plain = await _flag(service, "rest-c", None, [], "odd:rest-c:1", signal="odd_hour", outcome="flag")
    assert not (await decide(rw, plain, "clear"))["decision"]["released_hold"]

    # Paging: newest first, one at a time, by cursor.
    seen, cursor = [], None
    while True:
        query = "limit=1&merchant_id=rest-c" + (f"&cursor={cursor}" if cursor else "")
        page = (await rw.service.client.get(f"/v1/risk/flags?{query}", headers=rw.service.admin)).json()
        seen += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [plain, by_hand]


async def test_a_flag_is_decided_once_when_reviewers_race(rw, service):
    flag_id = await _flag(service, "rest-h", None, [], "velocity:rest-h:1", signal="merchant_velocity")
    # Eight reviewers at once, each on a connection of its own (the in-process app serves them concurrently).
    answers = await asyncio.gather(
        *(
            rw.service.client.post(
                f"/v1/risk/flags/{flag_id}/decision",
                json={"decision": "clear" if i % 2 else "confirm", "note": f"reviewer {i}"},
                headers=rw.service.admin,
            )
            for i in range(8)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 7, [a.text for a in answers]
    assert all(a.json()["code"] == "INVALID_STATE" for a in answers if a.status_code == 409)
    async with service.state.engine.connect() as conn:
        raw = await risk.raw_of(conn)
        assert await raw.fetchval("SELECT count(*) FROM risk_decisions WHERE flag_id = $1", flag_id) == 1
