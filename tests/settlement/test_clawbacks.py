"""Clawbacks over HTTP against a real PostgreSQL: before a payout, after one (the merchant goes below zero and the
next run nets it), after the campaign closed (straight on to the funders in their shares); idempotent; by whom."""

from __future__ import annotations

from settlement_world import SUBSIDY, assert_verified, launch_co_funded

BUDGET_FEN = 1_000_000_000


async def _reconciliation(sw, campaign_id: str) -> dict:
    answer = await sw.service.client.get(f"/v1/ledger/campaigns/{campaign_id}/reconciliation", headers=sw.auditor)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _totals(sw, campaign_id: str) -> dict:
    answer = await sw.service.client.get(f"/v1/campaigns/{campaign_id}", headers=sw.service.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()["totals"]


async def test_a_clawback_before_payout_goes_back_to_escrow_once(sw, service):
    await sw.set_clock("2025-01-10T10:00:00+08:00")
    campaign_id, vouchers = await sw.launch_dining(2)
    first = await sw.redeem("rest-a", vouchers[0])
    second = await sw.redeem("rest-a", vouchers[1])

    # Who may: admin or the campaign's own gov; another issuer's gov does not see it, an auditor may not.
    other_gov = service.auth(sw.gov["310104"])
    assert (await sw.clawback(first["id"], other_gov, expect=404))["code"] == "NOT_FOUND"
    assert (await sw.clawback(first["id"], sw.auditor, expect=403))["code"] == "FORBIDDEN"
    assert (await sw.clawback("rdm_nonexistent", expect=404))["code"] == "NOT_FOUND"

    clawed = await sw.clawback(first["id"], service.auth(sw.gov["310000"]))
    assert clawed["amount_fen"] == SUBSIDY and clawed["return_tx_id"] is None
    assert clawed["redemption"]["status"] == "clawed_back"
    again = await sw.clawback(first["id"], expect=200)
    assert again["id"] == clawed["id"] and again["ledger_tx_id"] == clawed["ledger_tx_id"]
    assert await sw.balance("merchant:rest-a") == SUBSIDY
    assert await sw.balance(f"escrow:{campaign_id}") == BUDGET_FEN - SUBSIDY

    # A clawed-back redemption cannot be refunded (that would take the subsidy twice).
    refused = await sw.tills["rest-a"].refund(first["id"], 12000)
    assert refused.status_code == 409 and refused.json()["code"] == "INVALID_STATE", refused.text
    seen = await sw.tills["rest-a"].send("GET", f"/v1/redemptions/{first['id']}")
    assert seen.json()["status"] == "clawed_back"

    # After a partial refund only the subsidy still standing is taken: 2000 - ceil(2000 * 1000 / 12000) = 1833 (the
    # kept ¥110 still meets the ¥100 minimum; below it a refund takes the whole subsidy, docs/policies.md).
    refunded = await sw.tills["rest-a"].refund(second["id"], 1000)
    assert refunded.status_code == 201, refunded.text
    assert (await sw.clawback(second["id"]))["amount_fen"] == SUBSIDY - refunded.json()["subsidy_clawback_fen"]
    assert await sw.balance("merchant:rest-a") == 0

    totals = await _totals(sw, campaign_id)
    assert totals["clawed_back_fen"] == SUBSIDY + 1833 and totals["refunded_fen"] == 167
    assert totals["outstanding_fen"] == BUDGET_FEN
    books = await _reconciliation(sw, campaign_id)
    assert books["balanced"] and books["clawed_back_fen"] == 3833 and books["escrow_balance_fen"] == BUDGET_FEN
    await assert_verified(service)


async def test_a_clawback_after_payout_goes_below_zero_and_the_next_run_nets_it(sw, service):
    await sw.set_clock("2025-01-10T10:00:00+08:00")
    campaign_id, vouchers = await sw.launch_dining(4)
    first = await sw.redeem("rest-b", vouchers[0])
    await sw.redeem("rest-b", vouchers[1])
    await sw.set_clock("2025-01-10T12:00:00+08:00")
    run1 = await sw.run("2025-01-10T11:00:00+08:00")
    await sw.confirm(run1["id"], [(run1["items"][0]["id"], "paid")])
    assert await sw.balances("rest-b") == {"merchant": 0, "payout": 0, "settled": 4000}

    await sw.clawback(first["id"])
    assert await sw.balances("rest-b") == {"merchant": -SUBSIDY, "payout": 0, "settled": 4000}
    # What it earns next first pays back what it owes: no item while the balance is not positive.
    await sw.redeem("rest-b", vouchers[2])
    await sw.set_clock("2025-01-10T13:00:00+08:00")
    assert (await sw.run("2025-01-10T13:00:00+08:00"))["items"] == []
    await sw.redeem("rest-b", vouchers[3])
    await sw.set_clock("2025-01-10T14:00:00+08:00")
    run3 = await sw.run("2025-01-10T14:00:00+08:00")
    assert [(i["merchant_id"], i["amount_fen"]) for i in run3["items"]] == [("rest-b", SUBSIDY)]
    await sw.confirm(run3["id"], [(run3["items"][0]["id"], "paid")])
    # settled + payout + merchant = credited - clawed back: 4 x 2000 - 2000.
    assert await sw.balances("rest-b") == {"merchant": 0, "payout": 0, "settled": 6000}
    assert (await _reconciliation(sw, campaign_id))["balanced"]
    await assert_verified(service)


async def test_a_clawback_after_close_goes_straight_to_the_funders_in_their_shares(sw, service):
    await sw.set_clock("2025-01-10T10:00:00+08:00")
    city, district = f"fiscal:{sw.issuers['310000']}", f"fiscal:{sw.issuers['310104']}"
    campaign_id, vouchers = await launch_co_funded(sw, 2)
    assert (await sw.balance(city), await sw.balance(district)) == (-140_000, -60_000)
    redeemed = await sw.redeem("rest-c", vouchers[0])
    closed = await sw.service.client.post(f"/v1/campaigns/{campaign_id}/close", headers=service.auth(sw.gov["310000"]))
    assert closed.status_code == 200, closed.text
    # At close the unspent 198,000 went back 70/30.
    assert (await sw.balance(city), await sw.balance(district)) == (-140_000 + 138_600, -60_000 + 59_400)

    clawed = await sw.clawback(redeemed["id"])
    assert clawed["return_tx_id"] is not None and clawed["amount_fen"] == SUBSIDY
    assert await sw.balance(f"escrow:{campaign_id}") == 0
    assert await sw.balance("merchant:rest-c") == 0
    # The 2000 fen go on to the funders 70/30: together they got back everything they put in.
    assert (await sw.balance(city), await sw.balance(district)) == (0, 0)
    totals = await _totals(sw, campaign_id)
    assert totals["clawed_back_fen"] == SUBSIDY and totals["returned_fen"] == 200_000 and totals["outstanding_fen"] == 0
    books = await _reconciliation(sw, campaign_id)
    assert books["balanced"], books
    assert (await sw.clawback(redeemed["id"], expect=200))["id"] == clawed["id"]
    await assert_verified(service)
