"""The lifecycle: every allowed move, every forbidden one, funding and the return at close, to the fen."""

from __future__ import annotations

import pytest
from campaign_helpers import ADULT, dining, make_gov, policy, set_clock, wallet

from voucher_engine.campaigns.service import TRANSITIONS

ACTIONS = ("fund", "activate", "pause", "close")
# How to bring a fresh campaign to each status.
PATHS = {
    "draft": (),
    "funded": ("fund",),
    "active": ("fund", "activate"),
    "paused": ("fund", "activate", "pause"),
    "closed": ("fund", "activate", "close"),
}


async def balance(service, account: str) -> int:
    from voucher_engine.ledger import service as ledger

    async with service.state.engine.connect() as conn:
        return int(await ledger.balance(conn, account))


@pytest.mark.parametrize("status", list(PATHS))
async def test_every_move_from_every_status(shanghai, status):
    for action in ACTIONS:
        campaign = await shanghai.create(dining())
        for step in PATHS[status]:
            await shanghai.move(campaign["id"], step)
        response = await shanghai.post(f"/v1/campaigns/{campaign['id']}/{action}")
        allowed_from, to = TRANSITIONS[action]
        if status in allowed_from:
            assert response.status_code == 200, (status, action, response.text)
            assert response.json()["status"] == to
        else:
            assert response.status_code == 409, (status, action, response.text)
            assert response.json()["code"] == "INVALID_STATE"
            assert (await shanghai.campaign(campaign["id"]))["status"] == status


async def test_the_whole_diagram(shanghai):
    campaign = await shanghai.create(dining())
    statuses = [campaign["status"]]
    for action in ("fund", "activate", "pause", "activate", "pause", "close"):
        statuses.append((await shanghai.move(campaign["id"], action))["status"])
    assert statuses == ["draft", "funded", "active", "paused", "active", "paused", "closed"]


async def test_funding_moves_the_budget_in_shares_to_the_fen(service, shanghai):
    # Trade-in: central 90%, city 10% of ¥50,000,000.
    campaign = await shanghai.create(policy("appliance-trade-in-2025"))
    before_central = await balance(service, "fiscal:iss_000000")
    before_city = await balance(service, "fiscal:iss_310000")
    funded = await shanghai.move(campaign["id"], "fund")
    assert funded["status"] == "funded" and funded["fund_tx_id"]
    assert funded["totals"]["funded_fen"] == 5_000_000_000
    assert funded["totals"]["outstanding_fen"] == 5_000_000_000
    assert await balance(service, f"escrow:{campaign['id']}") == 5_000_000_000
    assert before_central - await balance(service, "fiscal:iss_000000") == 4_500_000_000
    assert before_city - await balance(service, "fiscal:iss_310000") == 500_000_000


async def test_odd_budgets_give_the_leftover_fen_to_the_first_funder(service, shanghai):
    await make_gov(service, "310104")
    source = dining(budget="¥100.01", quantity="5", funders="310104: 33.33%, 310000: 66.67%")
    campaign = await shanghai.create(source)
    city, district = await balance(service, "fiscal:iss_310000"), await balance(service, "fiscal:iss_310104")
    await shanghai.move(campaign["id"], "fund")
    # 10001 fen: 310000 gets floor(10001 * 6667 / 10000) = 6667, the first funder 310104 the rest, 3334.
    assert city - await balance(service, "fiscal:iss_310000") == 6667
    assert district - await balance(service, "fiscal:iss_310104") == 3334


async def test_every_funder_must_be_registered_when_the_campaign_is_created(service):
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    gov = await make_gov(service, "310000")  # the central government (000000) is not registered
    refused = await gov.post("/v1/campaigns", {"source": policy("appliance-trade-in-2025")})
    assert refused.status_code == 422 and refused.json()["code"] == "CONTRACT_INVALID"
    [error] = refused.json()["errors"]
    assert error["line"] == 6 and "000000" in error["message"], error
    listed = await gov.get("/v1/campaigns")
    assert listed.json()["items"] == []


async def test_early_close_revokes_and_returns_everything_unspent_in_shares(service, shanghai):
    central, city = await balance(service, "fiscal:iss_000000"), await balance(service, "fiscal:iss_310000")
    campaign = await shanghai.active(policy("appliance-trade-in-2025"))
    holders = [{"wallet_id": wallet(n), "attributes": {}} for n in range(1, 6)]
    await shanghai.issue(campaign["id"], holders)
    redeemed_fen = await _simulate_redemption(service, campaign["id"], wallet(1), 100_000)
    closed = await shanghai.move(campaign["id"], "close")
    totals = closed["totals"]
    assert closed["status"] == "closed" and closed["return_tx_id"]
    assert totals["redeemed_fen"] == redeemed_fen
    assert totals["returned_fen"] == 5_000_000_000 - redeemed_fen
    assert totals["outstanding_fen"] == 0
    assert totals["vouchers_revoked"] == 4 and totals["vouchers_redeemed"] == 1
    assert await balance(service, f"escrow:{campaign['id']}") == 0
    unspent = 5_000_000_000 - redeemed_fen
    central_back = unspent * 9000 // 10000
    assert await balance(service, "fiscal:iss_000000") - central == -4_500_000_000 + central_back
    assert await balance(service, "fiscal:iss_310000") - city == -500_000_000 + (unspent - central_back)
    listed = await shanghai.get(f"/v1/wallets/{wallet(2)}/vouchers")
    assert [v["status"] for v in listed.json()["items"]] == ["revoked"]


async def test_close_after_the_window_expires_rather_than_revokes(service, shanghai):
    campaign = await shanghai.active(dining())
    await shanghai.issue(campaign["id"], [{"wallet_id": wallet(n), "attributes": ADULT} for n in range(1, 4)])
    await set_clock(service, "2025-02-01T00:00:00+08:00")  # the window is [Jan 1, Feb 1)
    closed = await shanghai.move(campaign["id"], "close")
    assert closed["totals"]["vouchers_expired"] == 3 and closed["totals"]["vouchers_revoked"] == 0
    assert closed["totals"]["returned_fen"] == 1_000_000_000


async def _simulate_redemption(service, campaign_id: str, wallet_id: str, subsidy_fen: int) -> int:
    """What the redemption path does (its own package): the voucher redeemed and the subsidy paid from escrow,
    in one transaction. Here only to see close return funded − redeemed."""
    import sqlalchemy as sa

    from voucher_engine import clock
    from voucher_engine.ledger import service as ledger
    from voucher_engine.ledger.model import NewTransaction, Posting

    async with service.state.engine.begin() as conn:
        voucher_id = (
            await conn.execute(
                sa.text(
                    "UPDATE vouchers SET status = 'redeemed', balance_fen = 0 WHERE campaign_id = :c AND wallet_id = :w"
                    " RETURNING id"
                ),
                {"c": campaign_id, "w": wallet_id},
            )
        ).scalar_one()
        await ledger.open_account(conn, "merchant:m1")
        await ledger.post(
            conn,
            NewTransaction(
                kind="redeem",
                postings=(
                    Posting("merchant:m1", debit_fen=subsidy_fen),
                    Posting(f"escrow:{campaign_id}", credit_fen=subsidy_fen),
                ),
                refs={"voucher_id": voucher_id, "merchant_id": "m1"},
                at=clock.now(),
                campaign_id=campaign_id,
            ),
        )
    return subsidy_fen
